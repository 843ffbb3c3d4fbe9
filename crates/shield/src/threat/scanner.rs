//! Scanners and bots, and protocol abuse: judged on the request as a whole rather than on one
//! value.
//!
//! - **Scanner user agents** (`sqlmap`, `nikto`, `nuclei`, `masscan`, `zgrab`, `gobuster`,
//!   `wpscan`, ...): high, they announce an attack tool.
//! - **Generic clients** (`python-requests`, `Go-http-client`, `curl`, `wget`): `bot`, low.
//!   MCP clients are often scripts; this only feeds reputation and the behavioural analysis.
//! - **Probe paths**: secrets an attacker hopes were left on the web root (`/.env`,
//!   `/.git/config`, `/.aws/credentials`) are high; admin consoles and CMS paths
//!   (`/wp-admin`, `/phpmyadmin`) that a gateway in front of an MCP server never serves are
//!   medium; backup and configuration file extensions (`.bak`, `.sql`, `.swp`) medium.
//! - **Protocol abuse**: `TRACE`/`TRACK` (cross-site tracing), both `Content-Length` and
//!   `Transfer-Encoding` (request smuggling), NUL bytes in the URL.
//! - **Session fixation**: a session identifier's argument (`PHPSESSID`, `jsessionid`, ...)
//!   in a request another site's page sent (its `Referer` names another host).

use super::clean_values::{self, CleanValues};
use super::fields::Place;
use super::HttpRequest;
use super::{decode, Finding, Needles, Severity, ThreatIndicator, ThreatType};

/// User-agent fragments of attack tools (lowercase).
const SCANNERS: &[&str] = &[
    "sqlmap",
    "nikto",
    "nuclei",
    "masscan",
    "zgrab",
    "gobuster",
    "wpscan",
    "dirbuster",
    "dirb/",
    "nmap",
    "nessus",
    "openvas",
    "acunetix",
    "netsparker",
    "w3af",
    "arachni",
    "whatweb",
    "wfuzz",
    "ffuf",
    "fuzz faster u fool",
    "feroxbuster",
    "hydra",
    "jaeles",
    "commix",
    "xsstrike",
    "skipfish",
    "zmeu",
    "morfeus",
    "havij",
    "appscan",
    "paros",
    "webinspect",
    "sqlninja",
    "fimap",
    "dirsearch",
    "grabber",
    "bsqlbf",
    "pangolin",
    "webshag",
    "metis",
    "sql power injector",
    "blackwidow",
    "n-stealth",
    "nsauditor",
    "qualys",
    "burp",
    "owasp zap",
    "zaproxy",
    "vega/",
    "cgichk",
    "brutus",
    "mysqloit",
    "httprint",
    "nuclei",
    "xray",
    "goby",
    "fscan",
    "l9explore",
    "l9tcpid",
    "projectdiscovery",
    "interactsh",
    "struts-pwn",
    "crowdstrike",
    "detectify",
    "netlab360",
    "censys",
];

/// Generic HTTP clients (lowercase prefixes or fragments).
const BOTS: &[&str] = &[
    "python-requests",
    "python-urllib",
    "go-http-client",
    "curl/",
    "wget/",
    "libwww-perl",
    "java/",
    "okhttp",
    "apache-httpclient",
    "scrapy",
    "httpclient",
    "aiohttp",
    "axios/",
    "node-fetch",
    "undici",
    "powershell",
    "winhttp",
    "lwp::simple",
    "mechanize",
    "phantomjs",
    "headlesschrome",
    "selenium",
    "python-httpx",
    "ruby",
    "php/",
];

/// Paths that only exist to be stolen (lowercase, matched at a segment start).
const SECRET_PROBES: &[&str] = &[
    "/.env",
    "/.git/",
    "/.git",
    "/.svn/",
    "/.hg/",
    "/.bzr/",
    "/.aws/",
    "/.ssh/",
    "/.htpasswd",
    "/.htaccess",
    "/.bash_history",
    "/.ds_store",
    "/.npmrc",
    "/.pypirc",
    "/.dockercfg",
    "/.docker/config.json",
    "/.vscode/sftp.json",
    "/sftp-config.json",
    "/id_rsa",
    "/wp-config.php",
    "/web.config",
    "/vendor/phpunit/",
    "/eval-stdin.php",
    "/_ignition/execute-solution",
    "/actuator/env",
    "/actuator/heapdump",
    "/config/database.yml",
    "/database.yml",
    "/credentials.json",
    "/shell.php",
    "/c99.php",
    "/r57.php",
    "/cmd.php",
    "/phpinfo.php",
    "/server-status",
    "/server-info",
    "/.well-known/../",
    // AI coding assistants' and MCP clients' settings: server lists with their tokens.
    "/.claude/",
    "/.claude.json",
    "/.cursor/",
    "/.continue/",
    "/.aider",
    "/.codeium/",
    "/.windsurf/",
    "/.gemini/",
    "/.codex/",
    "/mcp.json",
    "/claude_desktop_config.json",
    // The kernel's view of the host, served by no application.
    "/proc/self/",
    "/proc/interrupts",
    "/proc/version",
    "/sys/class/",
];

/// Admin consoles and CMS paths scanners try everywhere.
const ADMIN_PROBES: &[&str] = &[
    "/wp-admin",
    "/wp-login.php",
    "/wp-content/",
    "/wp-includes/",
    "/xmlrpc.php",
    "/phpmyadmin",
    "/pma/",
    "/myadmin",
    "/administrator/",
    "/manager/html",
    "/jmx-console",
    "/web-console",
    "/solr/admin",
    "/cgi-bin/",
    "/actuator",
    "/boaform",
    "/hnap1",
    "/owa/",
    "/autodiscover/autodiscover.xml",
    "/console/",
    "/telescope/",
    "/debug/default/view",
    "/invoker/",
    "/axis2/",
    "/.well-known/security.txt/",
];

/// File extensions of backups, dumps and configuration (CRS's restricted extensions).
const RESTRICTED_EXTENSIONS: &[&str] = &[
    ".bak", ".backup", ".old", ".orig", ".sql", ".swp", ".swo", ".sav", ".save", ".tmp", ".ini",
    ".log", ".mdb", ".conf", ".config", ".pem", ".key", ".htr", ".idq", ".printer", ".passwd",
    ".history", ".sqlite", ".db", ".dump", ".cfg", ".inc", ".dist", ".git", ".asa", ".cdx",
    ".csproj", ".vbproj", ".vb", ".resx", ".pdb", ".dll", ".ps1",
];

/// Extensions a web server runs rather than serves: a file uploaded under one of them is a
/// web shell waiting for its first request.
const SCRIPT_EXTENSIONS: &[&str] = &[
    ".php",
    ".php3",
    ".php4",
    ".php5",
    ".php7",
    ".php8",
    ".phtml",
    ".pht",
    ".phps",
    ".phar",
    ".inc",
    ".jsp",
    ".jspx",
    ".jsw",
    ".jsv",
    ".asp",
    ".aspx",
    ".ashx",
    ".asmx",
    ".asa",
    ".cer",
    ".cgi",
    ".shtml",
    ".htaccess",
    ".user.ini",
];

/// Whether `field` names a file being uploaded: the `X-Filename` family of headers, or a
/// form's (multipart part's) `filename`.
pub fn is_upload_name(place: Place, name: &str) -> bool {
    match place {
        Place::Header => ["x-filename", "x_filename", "x-file-name"]
            .iter()
            .any(|h| name.eq_ignore_ascii_case(h)),
        Place::FormValue => name.eq_ignore_ascii_case("filename"),
        _ => false,
    }
}

/// A file uploaded under a name the server would run (`shell.php`, `a.jsp`, `.htaccess`,
/// `x.php.` with the trailing dot Windows drops).
pub fn script_upload(lower: &str, out: &mut Vec<Finding>) {
    let name = lower
        .trim()
        .trim_end_matches(['.', ' ', '\0'])
        .rsplit(['/', '\\'])
        .next()
        .unwrap_or("");
    let ext = SCRIPT_EXTENSIONS.iter().find(|e| {
        name.ends_with(**e) && (name.len() > e.len() || e.starts_with(".h") || e.starts_with(".u"))
    });
    if ext.is_some() {
        out.push(Finding::new(
            ThreatType::CodeInjection,
            Severity::High,
            0.8,
            0,
            lower.len(),
        ));
    }
}

/// A hidden file or directory in the path (`/.zed/settings.json`, `/app/.npmrc`): tools keep
/// their settings and secrets there and web applications serve none, so asking for one is a
/// probe, whatever the tool (new ones appear monthly: the list above cannot keep up).
/// `/.well-known/` is the exception the web agreed on (ACME, OAuth and MCP authorization
/// metadata live there).
fn hidden_segment(lower_path: &str) -> Option<&str> {
    lower_path.split('/').find(|segment| {
        let b = segment.as_bytes();
        b.len() > 1 && b[0] == b'.' && b[1].is_ascii_alphanumeric() && *segment != ".well-known"
    })
}

/// The restricted extension the last segment of `lower_path` ends with (`db.sql`), if any.
fn restricted_extension(lower_path: &str) -> Option<&'static str> {
    let name = lower_path.rsplit('/').next()?;
    let dot = name.rfind('.').filter(|d| *d > 0)?;
    RESTRICTED_EXTENSIONS
        .iter()
        .find(|e| **e == &name[dot..])
        .copied()
}

/// The probe paths, secrets first, as one automaton that reports overlapping matches.
fn probes() -> &'static aho_corasick::AhoCorasick {
    static PROBES: std::sync::OnceLock<aho_corasick::AhoCorasick> = std::sync::OnceLock::new();
    PROBES.get_or_init(|| {
        aho_corasick::AhoCorasick::new(SECRET_PROBES.iter().chain(ADMIN_PROBES))
            // Built from the constant lists above; they always compile.
            .unwrap_or_else(|e| panic!("probe list does not build: {e}"))
    })
}

fn indicator(
    threat: ThreatType,
    severity: Severity,
    confidence: f32,
    location: &str,
    snippet: &str,
) -> ThreatIndicator {
    ThreatIndicator {
        threat_type: threat,
        severity,
        confidence,
        location: location.to_string(),
        snippet: snippet.chars().take(120).collect(),
        argument: None,
    }
}

/// Scanner, bot and protocol checks on the whole request; `path` is the decoded URL path.
pub fn request_checks(
    request: &HttpRequest<'_>,
    path: &str,
    clean: &CleanValues,
    out: &mut Vec<ThreatIndicator>,
) {
    // The agent and the path repeat from request to request: each is judged once while it
    // stays clean (see `clean_values`).
    let agent = request.header("user-agent").unwrap_or("");
    remembered_if_clean(
        clean,
        clean_values::USER_AGENT_CHECKS,
        agent,
        out,
        agent_checks,
    );
    remembered_if_clean(clean, clean_values::PATH_CHECKS, path, out, path_checks);
    let method = request.method;
    if ["TRACE", "TRACK", "DEBUG"]
        .iter()
        .any(|m| m.eq_ignore_ascii_case(method))
    {
        out.push(indicator(
            ThreatType::ProtocolViolation,
            Severity::High,
            0.9,
            "method",
            &method.to_ascii_uppercase(),
        ));
    } else if !["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
        .iter()
        .any(|m| m.eq_ignore_ascii_case(method))
    {
        out.push(indicator(
            ThreatType::ProtocolViolation,
            Severity::Medium,
            0.6,
            "method",
            &method.to_ascii_uppercase(),
        ));
    }
    let has = |name: &str| {
        request
            .headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case(name))
    };
    if has("content-length") && has("transfer-encoding") {
        out.push(indicator(
            ThreatType::ProtocolViolation,
            Severity::High,
            0.85,
            "header:Transfer-Encoding",
            "Content-Length with Transfer-Encoding",
        ));
    }
    // Only percent-encoding can hide a NUL in a URI that has none.
    if request.uri.contains('\0')
        || (request.uri.contains('%') && decode::normalize(request.uri, false).had_nul)
    {
        out.push(indicator(
            ThreatType::ProtocolViolation,
            Severity::Medium,
            0.7,
            "path",
            "NUL byte in the URL",
        ));
    }
}

/// A session identifier in the query or a form (`?PHPSESSID=...`, `?jsessionid=...`) of a
/// request that a page on another site sent (its `Referer` names another host): the shape
/// of session fixation, where a link plants a session the attacker knows. A session passed in
/// a link from the site's own pages (URL rewriting) is not it, nor any other argument.
pub fn session_fixation(
    request: &HttpRequest<'_>,
    fields: &[super::fields::Field<'_>],
) -> Option<ThreatIndicator> {
    let referer = request.header("referer")?;
    let field = fields.iter().find(|f| {
        matches!(f.place, Place::QueryValue | Place::FormValue)
            && !f.raw.is_empty()
            && is_session_name(&f.name)
    })?;
    let from = host_of(referer.trim());
    // Without a `Host` (HTTP/2 names it in the URI's authority, which is not here) there is
    // nothing to compare: not judged.
    let to = host_of(request.header("host")?);
    if from.eq_ignore_ascii_case(to) {
        return None;
    }
    Some(indicator(
        ThreatType::SessionFixation,
        Severity::High,
        0.75,
        &format!("{}:{}", field.place.label(), field.name),
        &format!("{}={}", field.name, field.raw),
    ))
}

/// The host a URL or a `Host` header names, without port or user info, case as written.
fn host_of(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = authority.rsplit('@').next().unwrap_or("");
    super::ssrf::strip_port(host)
}

/// Whether an argument's name is a session identifier's: a word of it starting `sess`
/// (`session_id`, `laravel_session`, `next-auth.session-token`, `koa:sess`), the frameworks'
/// run-together names (`PHPSESSID`, `JSESSIONID`, `ASPSESSIONIDxxxx`, `weblogicsession`), a
/// `.sid` (`connect.sid`), ColdFusion's and others' own (`CFID`, `CFTOKEN`, `CAKEPHP`). A
/// bare `session` (a conference session, a class) is not one, nor `assessment`.
fn is_session_name(name: &str) -> bool {
    const RUN_TOGETHER: [&str; 6] = [
        "phpsess",
        "jsession",
        "aspsession",
        "jservsession",
        "jwsession",
        "weblogicsession",
    ];
    const OWN: [&str; 6] = [
        "cfid",
        "cftoken",
        "cfsid",
        "cakephp",
        "meteor_login_token",
        "shiny-token",
    ];
    // Compared as bytes, ignoring case: browsers send a Referer with nearly every request,
    // so this runs on each argument of most requests and copies nothing.
    let mut name = name.as_bytes();
    let has_prefix = |n: &[u8], p: &str| {
        n.get(..p.len())
            .is_some_and(|h| h.eq_ignore_ascii_case(p.as_bytes()))
    };
    while let Some(prefix) = ["__host-", "__secure-"]
        .iter()
        .find(|p| has_prefix(name, p))
    {
        name = &name[prefix.len()..];
    }
    if name.eq_ignore_ascii_case(b"session") || name.eq_ignore_ascii_case(b"sessions") {
        return false;
    }
    name.split(|c| matches!(c, b'_' | b'.' | b'-' | b':'))
        .any(|word| has_prefix(word, "sess"))
        || RUN_TOGETHER.iter().any(|p| has_prefix(name, p))
        || name.len() >= 4 && name[name.len() - 4..].eq_ignore_ascii_case(b".sid")
        || OWN
            .iter()
            .any(|own| name.eq_ignore_ascii_case(own.as_bytes()))
}

/// Runs `check` on `value` unless `value` was found clean by it before; remembers it when
/// it is clean now.
fn remembered_if_clean(
    clean: &CleanValues,
    context: u16,
    value: &str,
    out: &mut Vec<ThreatIndicator>,
    check: fn(&str, &mut Vec<ThreatIndicator>),
) {
    let key = clean.key(context, value);
    if key.is_some_and(|key| clean.contains(key, value)) {
        return;
    }
    let before = out.len();
    check(value, out);
    if out.len() == before {
        if let Some(key) = key {
            clean.insert(key, value);
        }
    }
}

/// Scanner and bot user agents, and a missing one.
fn agent_checks(agent: &str, out: &mut Vec<ThreatIndicator>) {
    let lower_agent = agent.to_ascii_lowercase();
    static SCANNER_NEEDLES: std::sync::OnceLock<Needles> = std::sync::OnceLock::new();
    let scanners = Needles::cached(&SCANNER_NEEDLES, || SCANNERS.to_vec());
    static BOT_NEEDLES: std::sync::OnceLock<Needles> = std::sync::OnceLock::new();
    let bots = Needles::cached(&BOT_NEEDLES, || BOTS.to_vec());
    let tool = scanners
        .first(&lower_agent)
        .map(|(index, _)| SCANNERS[index]);
    if let Some(tool) = tool {
        out.push(indicator(
            ThreatType::Scanner,
            Severity::High,
            0.9,
            "header:User-Agent",
            tool,
        ));
    } else if let Some(bot) = bots.first(&lower_agent).map(|(index, _)| BOTS[index]) {
        out.push(indicator(
            ThreatType::Bot,
            Severity::Low,
            0.6,
            "header:User-Agent",
            bot,
        ));
    } else if agent.trim().is_empty() {
        out.push(indicator(
            ThreatType::Bot,
            Severity::Low,
            0.3,
            "header:User-Agent",
            "",
        ));
    }
}

/// Probe paths (secrets, admin pages), hidden segments, restricted extensions.
fn path_checks(path: &str, out: &mut Vec<ThreatIndicator>) {
    let lower_path = path.to_ascii_lowercase();
    // A probe counts where it ends a segment or the name goes on as a file name would.
    let at_segment_end = |probe: &str, end: usize| {
        probe.ends_with('/')
            || end == lower_path.len()
            || matches!(
                lower_path.as_bytes()[end],
                b'/' | b'.' | b'?' | b';' | b'~' | b'_' | b'-'
            )
    };
    // Every occurrence, overlapping ones too: `/.envoy` must not hide a later probe.
    let mut secret: Option<&str> = None;
    let mut admin: Option<&str> = None;
    for m in probes().find_overlapping_iter(lower_path.as_str()) {
        let index = m.pattern().as_usize();
        let (probe, is_secret) = if index < SECRET_PROBES.len() {
            (SECRET_PROBES[index], true)
        } else {
            (ADMIN_PROBES[index - SECRET_PROBES.len()], false)
        };
        if !at_segment_end(probe, m.end()) {
            continue;
        }
        if is_secret {
            secret = Some(probe);
            break;
        }
        admin = admin.or(Some(probe));
    }
    if let Some(probe) = secret {
        out.push(indicator(
            ThreatType::Scanner,
            Severity::High,
            0.85,
            "path",
            probe,
        ));
    } else if let Some(probe) = admin {
        out.push(indicator(
            ThreatType::Scanner,
            Severity::Medium,
            0.6,
            "path",
            probe,
        ));
    } else if let Some(hidden) = hidden_segment(&lower_path) {
        out.push(indicator(
            ThreatType::Scanner,
            Severity::High,
            0.7,
            "path",
            hidden,
        ));
    } else if let Some(ext) = restricted_extension(&lower_path) {
        out.push(indicator(
            ThreatType::Scanner,
            Severity::Medium,
            0.6,
            "path",
            ext,
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hidden_files_are_probes_but_well_known_is_not() {
        let agent = "Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0";
        for probe in [
            "/.zed/settings.json",
            "/app/.npmrc",
            "/.cursorignore",
            "/.claude/settings.json",
        ] {
            assert!(
                check("GET", probe, agent).contains(&(ThreatType::Scanner, Severity::High)),
                "missed {probe}"
            );
        }
        for path in [
            "/.well-known/oauth-protected-resource",
            "/.well-known/acme-challenge/abc",
            "/docs/v1.2/intro",
            "/a/../b",
            "/file.tar.gz",
        ] {
            assert!(
                !check("GET", path, agent)
                    .iter()
                    .any(|(t, s)| *t == ThreatType::Scanner && *s >= Severity::High),
                "flagged {path}"
            );
        }
    }

    #[test]
    fn a_script_uploaded_by_name_is_code_injection() {
        let judge = |name: &str| {
            let mut out = Vec::new();
            script_upload(&name.to_ascii_lowercase(), &mut out);
            !out.is_empty()
        };
        for upload in [
            "a.php",
            "shell.PHTML",
            "x.php.",
            "../../www/cmd.jsp",
            ".htaccess",
            "C:\\up\\a.aspx",
        ] {
            assert!(judge(upload), "missed {upload:?}");
        }
        for file in [
            "report.pdf",
            "php",
            "notes.php.txt",
            "photo.jpg",
            "index.html",
        ] {
            assert!(!judge(file), "flagged {file:?}");
        }
        assert!(is_upload_name(Place::Header, "X-File-Name"));
        assert!(is_upload_name(Place::FormValue, "filename"));
        assert!(!is_upload_name(Place::QueryValue, "filename"));
    }

    fn check(method: &str, uri: &str, agent: &str) -> Vec<(ThreatType, Severity)> {
        let headers = [("User-Agent", agent)];
        let request = HttpRequest {
            method,
            uri,
            headers: &headers,
            body: b"",
        };
        let mut out = Vec::new();
        let path = uri.split('?').next().unwrap_or(uri);
        request_checks(&request, path, &CleanValues::new(), &mut out);
        out.into_iter()
            .map(|i| (i.threat_type, i.severity))
            .collect()
    }

    #[test]
    fn scanners_probes_and_bots() {
        assert!(
            check("GET", "/", "sqlmap/1.7#stable").contains(&(ThreatType::Scanner, Severity::High))
        );
        assert!(check("GET", "/", "Mozilla/5.00 (Nikto/2.1.6)")
            .contains(&(ThreatType::Scanner, Severity::High)));
        assert!(
            check("GET", "/.env", "Mozilla/5.0").contains(&(ThreatType::Scanner, Severity::High))
        );
        assert!(check("GET", "/.git/config", "Mozilla/5.0")
            .contains(&(ThreatType::Scanner, Severity::High)));
        assert!(check("GET", "/wp-admin/", "Mozilla/5.0")
            .contains(&(ThreatType::Scanner, Severity::Medium)));
        assert!(check("GET", "/backup.sql", "Mozilla/5.0")
            .contains(&(ThreatType::Scanner, Severity::Medium)));
        assert_eq!(
            check("GET", "/", "python-requests/2.31"),
            vec![(ThreatType::Bot, Severity::Low)]
        );
        assert!(check("TRACE", "/", "Mozilla/5.0")
            .contains(&(ThreatType::ProtocolViolation, Severity::High)));
    }

    #[test]
    fn ordinary_requests_pass() {
        for (method, uri) in [
            ("POST", "/mcp"),
            ("GET", "/mcp"),
            ("DELETE", "/mcp"),
            ("GET", "/docs/environment.html"),
            ("GET", "/assets/app.js"),
            ("GET", "/.well-known/oauth-authorization-server"),
        ] {
            assert!(
                check(method, uri, "Mozilla/5.0 (X11; Linux x86_64)").is_empty(),
                "{method} {uri}"
            );
        }
    }
}
