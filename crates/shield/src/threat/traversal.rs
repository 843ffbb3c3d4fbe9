//! Path traversal and local file inclusion: climbing out of a directory (`../`, `..\`, and the
//! encodings [`super::decode`] undoes), reaching for files that hold secrets or prove access
//! (`/etc/passwd`, `boot.ini`, `WEB-INF/web.xml`), PHP stream wrappers, and NUL truncation.
//!
//! One `../` alone is ordinary in relative links (`../README.md`): it is a low finding, for
//! reputation. Deep climbs and any climb towards a sensitive file are attacks.

use super::{Finding, Needles, Severity, Strongest, ThreatType};

/// Files and folders whose mention in a path means someone is after them (lowercase, `/` as
/// the separator).
const SENSITIVE: &[&str] = &[
    "etc/passwd",
    "etc/shadow",
    "etc/group",
    "etc/hosts",
    "etc/issue",
    "etc/motd",
    "etc/hostname",
    "etc/crontab",
    "etc/sudoers",
    "etc/apache",
    "etc/httpd",
    "etc/nginx",
    "etc/mysql",
    "etc/ssh",
    "etc/master.passwd",
    "etc/security",
    "etc/profile",
    "etc/fstab",
    "etc/resolv.conf",
    "etc/environment",
    "proc/self/",
    "proc/version",
    "proc/cmdline",
    "proc/1/",
    "var/log/",
    "var/mail/",
    "var/www/",
    "boot.ini",
    "win.ini",
    "system.ini",
    "windows/system32",
    "winnt/system32",
    "system32/config",
    "repair/sam",
    "inetpub/",
    "web-inf/",
    "meta-inf/",
    ".htaccess",
    ".htpasswd",
    ".bash_history",
    ".ssh/",
    "id_rsa",
    "id_dsa",
    "id_ed25519",
    "authorized_keys",
    ".aws/credentials",
    ".git/config",
    ".git/head",
    "wp-config.php",
    "php.ini",
    "my.ini",
    "my.cnf",
    "httpd.conf",
    "applicationhost.config",
    "localstart.asp",
    ".env",
    "usr/local/apache",
    "/dev/tcp/",
    "docker.sock",
    "kube/config",
    "etc/kubernetes",
];

/// System folders an application has no business reading on a client's behalf.
const SYSTEM_ROOTS: &[&str] = &[
    "/etc/",
    "/proc/",
    "/boot/",
    "/root/",
    "/sys/",
    "/dev/",
    "/var/log/",
    "/var/lib/",
    "/var/spool/",
    "/usr/local/etc/",
    "c:/windows/",
    "c:/winnt/",
    "c:/boot.ini",
    "c:/inetpub/",
    "c:/xampp/",
    "c:/program files/",
    "/windows/",
    "/winnt/",
    "/log/",
    "/logs/",
];

/// PHP and archive stream wrappers that read local files or run code.
const WRAPPERS: &[&str] = &[
    "php://filter",
    "php://input",
    "php://fd",
    "php://memory",
    "php://temp",
    "phar://",
    "zip://",
    "expect://",
    "compress.zlib://",
    "compress.bzip2://",
    "glob://",
    "data://text/plain",
    "data:text/plain;base64",
    // A PHP filter-chain link named alone (`convert.iconv.UTF8.CSISO2022KR`): the pieces of
    // the chains that turn an include into code execution.
    "convert.iconv.",
];

/// Looks for traversal in a decoded, lowercased value. `in_path`: the value is the URL path.
pub fn detect(lower: &str, had_nul: bool, in_path: bool, out: &mut Vec<Finding>) {
    // Backslashes and doubled slashes read as one separator.
    let normalized: String;
    let spelled = contains!(lower, "0x")
        && (contains!(lower, "0x2f") || contains!(lower, "0x5c") || contains!(lower, "0x2e"));
    // Escapes that lost their `%` on the way (`..2f..2fetc2fpasswd`): a decoder that is handed
    // them again, or a filter that strips `%`, reads separators.
    // Each search is a pass over the value: longer needles only where a piece of them is.
    let stripped =
        contains!(lower, "..") && (contains!(lower, "..2f..2f") || contains!(lower, "..5c..5c"));
    let doubled = contains!(lower, "//");
    let text: &str = if lower.contains('\\') || doubled || spelled || stripped {
        let mut s = String::with_capacity(lower.len());
        // `0x2f` written out is a slash to decoders that read C-style escapes.
        let source = if spelled {
            lower
                .replace("0x2f", "/")
                .replace("0x5c", "/")
                .replace("0x2e", ".")
        } else {
            lower.to_string()
        };
        let source = if stripped {
            source.replace("2f", "/").replace("5c", "/")
        } else {
            source
        };
        for c in source.chars() {
            let c = if c == '\\' { '/' } else { c };
            if c == '/' && s.ends_with('/') {
                continue;
            }
            s.push(c);
        }
        normalized = s;
        &normalized
    } else {
        lower
    };
    let climbs = count_climbs(text);
    let sensitive = sensitive_file(text);
    let junk_target = junk_separated(text);
    let colon = memchr::memchr(b':', lower.as_bytes()).is_some();
    let wrapper = if (doubled && colon && contains!(lower, "://"))
        || (colon && contains!(lower, "data:"))
        || contains!(lower, "convert.")
    {
        WRAPPERS
            .iter()
            .find_map(|w| lower.find(w).map(|p| (p, p + w.len())))
    } else {
        None
    };
    let absolute = text.starts_with('/')
        || text.starts_with("file:")
        || text.as_bytes().get(1..3) == Some(b":/");
    let mut best = Strongest::default();
    let mut keep = |f: Finding| best.keep(f);
    // A value that opens with `../../` or `..\..\` in base64 (`Li4vLi4v`, `Li5cLi5c`), for an
    // application that decodes a parameter before opening it. Only at the start: a base64
    // file further on may hold relative links.
    if lower.starts_with("li4vli4v") || lower.starts_with("li5cli5c") {
        keep(Finding::new(
            ThreatType::PathTraversal,
            Severity::High,
            0.75,
            0,
            8,
        ));
    }
    let free_text = lower.trim().contains(char::is_whitespace);
    // An absolute path into the system's own folders, as the whole value.
    let system = (!free_text)
        .then(|| {
            SYSTEM_ROOTS
                .iter()
                .find(|r| text.starts_with(*r))
                .map(|r| (0, r.len(), *r))
        })
        .flatten();
    if let Some((p, end, _)) = sensitive
        .or(junk_target.map(|(p, e)| (p, e, "")))
        .or(system)
    {
        let (severity, confidence) = if climbs > 0 || (absolute && !in_path) {
            (Severity::Critical, 0.95)
        } else if free_text {
            // "Read .git/HEAD to find the branch": a mention in a sentence.
            (Severity::Medium, 0.5)
        } else if in_path {
            // `/etc/passwd` as a URL path is a probe; the scanner checks judge probes.
            (Severity::High, 0.75)
        } else {
            (Severity::High, 0.8)
        };
        keep(Finding::new(
            ThreatType::PathTraversal,
            severity,
            confidence,
            p,
            end,
        ));
    }
    if let Some((p, end)) = wrapper {
        keep(Finding::new(
            ThreatType::PathTraversal,
            Severity::High,
            0.9,
            p,
            end,
        ));
    }
    if climbs > 0 && contains!(text, "{file}") {
        // A traversal scanner's template sent unfilled (`../../{FILE}`): the scanner itself.
        let at = find!(text, "..").unwrap_or(0);
        keep(Finding::new(
            ThreatType::PathTraversal,
            Severity::High,
            0.8,
            at,
            text.len(),
        ));
    }
    if climbs > 0 {
        let at = find!(text, "..").unwrap_or(0);
        // A path is one word; in text and code (`include_bytes!("../../x")`) relative
        // paths are ordinary, so climbs alone stay below blocking there.
        let (severity, confidence) = match (climbs, free_text) {
            (1, _) => (Severity::Low, 0.4),
            (2, _) | (_, true) => (Severity::Medium, 0.6),
            _ => (Severity::High, 0.85),
        };
        keep(Finding::new(
            ThreatType::PathTraversal,
            severity,
            confidence,
            at,
            at + 3 * climbs.min(8),
        ));
    }
    if had_nul && has_extension(text) {
        keep(Finding::new(
            ThreatType::PathTraversal,
            Severity::Medium,
            0.6,
            0,
            text.len().min(40),
        ));
    }
    if let Some(mut f) = best.into_inner() {
        // Offsets were into the normalized copy; they are close enough for a snippet, but
        // must stay inside the original.
        f.start = f.start.min(lower.len());
        f.end = f.end.min(lower.len()).max(f.start);
        out.push(f);
    }
}

/// The first sensitive file (by the list's order) that `text` names as a path piece
/// (`/etc/passwd`, `boot.ini`, `.ssh/id_rsa`): where, and which.
fn sensitive_file(text: &str) -> Option<(usize, usize, &'static str)> {
    static SENSITIVE_NEEDLES: std::sync::OnceLock<Needles> = std::sync::OnceLock::new();
    let needles = Needles::cached(&SENSITIVE_NEEDLES, || SENSITIVE.to_vec());
    let mut hits = needles.first_of_each(text);
    hits.sort_by_key(|(index, _)| *index);
    hits.into_iter()
        .map(|(index, p)| (p, p + SENSITIVE[index].len(), SENSITIVE[index]))
        .find(|(p, end, s)| sensitive_here(text, *p, *end, s))
}

/// Whether `lower` names a sensitive file as a path piece: for other detectors that judge
/// what an expression is handed.
pub(crate) fn names_sensitive_file(lower: &str) -> bool {
    sensitive_file(lower).is_some()
}

/// `..` segments followed by a separator (`../`, `..;/`, `.../`), or ending the value.
fn count_climbs(text: &str) -> usize {
    let b = text.as_bytes();
    let mut count = 0;
    let mut i = 0;
    while i + 1 < b.len() {
        // Dots are rare in most values: jump to the next one.
        match memchr::memchr(b'.', &b[i..b.len() - 1]) {
            Some(p) => i += p,
            None => break,
        }
        if b[i + 1] == b'.' {
            let mut j = i + 2;
            while j < b.len() && b[j] == b'.' {
                j += 1;
            }
            if b.get(j) == Some(&b';') {
                j += 1;
            }
            let at_start =
                i == 0 || matches!(b[i - 1], b'/' | b'=' | b' ' | b'.' | b':' | b'"' | b'\'');
            if (j == b.len() && at_start && i > 0) || b.get(j) == Some(&b'/') {
                count += 1;
            }
            i = j;
        } else {
            i += 1;
        }
    }
    count
}

/// Whether a sensitive name found at `p..end` is a path piece, not part of a longer word
/// (`.env` in `.environment`, `etc/hosts` in prose "etc/hostsfile" still counts).
fn sensitive_here(text: &str, p: usize, end: usize, name: &str) -> bool {
    let b = text.as_bytes();
    // Names with a dot or a slash are specific enough to need no boundary before them
    // (`%c1%pcboot.ini`: the separator did not decode).
    let before_ok = p == 0
        || name.starts_with('/')
        || (name.contains(['.', '/']) && !name.starts_with('.'))
        || !b[p - 1].is_ascii_alphanumeric()
        || b[p - 1] == b'/';
    let after_ok = name.ends_with('/')
        || end == b.len()
        || !b[end].is_ascii_alphanumeric()
        || name.contains('.');
    if name == ".env" {
        // `.env` must be a whole file name: `/.env`, `../.env`, `.env.local`.
        return (p == 0 || b[p - 1] == b'/')
            && (end == b.len() || matches!(b[end], b'.' | b'/' | b'?'));
    }
    before_ok && after_ok
}

/// `etc` and a sensitive file separated by junk that is not whitespace (`etc%c0%qfpasswd`,
/// decoders' leftovers): the attacker's separator did not decode here, another decoder may.
fn junk_separated(text: &str) -> Option<(usize, usize)> {
    let mut k = 0;
    while let Some(p) = find!(&text[k..], "etc").map(|p| p + k) {
        k = p + 3;
        let rest = super::prefix(&text[p + 3..], 24);
        for target in ["passwd", "shadow", "issue", "hosts", "group"] {
            if let Some(t) = rest.find(target) {
                let junk = &rest[..t];
                let encodingish = text.contains('%') || contains!(text, "..");
                if !junk.is_empty()
                    && !junk.contains(char::is_whitespace)
                    && (junk.chars().any(|c| !c.is_ascii_alphanumeric())
                        || (junk.len() <= 3 && encodingish))
                {
                    return Some((p, p + 3 + t + target.len()));
                }
            }
        }
    }
    None
}

fn has_extension(text: &str) -> bool {
    text.rsplit('/')
        .next()
        .and_then(|name| name.rsplit_once('.'))
        .is_some_and(|(_, ext)| (1..=5).contains(&ext.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn severity(raw: &str) -> Option<Severity> {
        let n = super::super::decode::normalize(raw, false);
        let mut out = Vec::new();
        detect(&n.text.to_ascii_lowercase(), n.had_nul, false, &mut out);
        out.first().map(|f| f.severity)
    }

    #[test]
    fn climbs_and_targets() {
        for attack in [
            "../../../etc/passwd",
            "..\\..\\..\\windows\\win.ini",
            "%2e%2e%2f%2e%2e%2fetc%2fshadow",
            "%252e%252e%255cboot.ini",
            "..%c0%af..%c0%afetc%c0%afpasswd",
            "....//....//etc/passwd",
            ".../.%%35%%63etc%%35%%63issue",
            "/etc/passwd",
            "php://filter/convert.base64-encode/resource=index.php",
            "%c0%fe%c0%fe%bg%qfetc%bg%qfissue",
            "../../../../../../../../",
            "file:///etc/passwd",
            "..;/..;/..;/WEB-INF/web.xml",
            "/proc/self/environ",
            "..%01/..%01/..%01/etc/passwd",
            "%c0%2e%c0%2e%c1%1c%c0%2e%c0%2e%c1%1cetc%c1%1cpasswd",
            "../{FILE}",
            "convert.iconv.UTF8.CSISO2022KR",
            "%c0%2e%c0%2e%c0%5c%c0%2e%c0%2e%c0%5c{FILE}",
            "..2f..2f..2f..2fetc2fpasswd",
            "Li4vLi4vLi4vLi4vZXRjL3Bhc3N3ZA==",
        ] {
            assert!(
                severity(attack).is_some_and(|s| s >= Severity::High),
                "missed {attack:?}: {:?}",
                severity(attack)
            );
        }
    }

    #[test]
    fn ordinary_paths_are_not_attacks() {
        for benign in [
            "../README.md",
            "./tests/test-sqli-036.txt",
            "/usr/include/nettle/pss-mgf1.h",
            "C:\\Users\\Bob\\source\\repos\\app\\main.rs",
            "file:///home/dev/project/src/lib.rs",
            "~/code/app/config.yml",
            "apples, pears, etc. issues remain",
            "see the .environment docs",
            "version 1.2..1.4",
            "#2f2f2f and #5c5c5c..2f",
            "SGVsbG8uLi4vLi4v and more",
        ] {
            assert!(
                severity(benign).is_none_or(|s| s < Severity::High),
                "false alarm on {benign:?}: {:?}",
                severity(benign)
            );
        }
        assert_eq!(severity("../README.md"), Some(Severity::Low));
    }
}
