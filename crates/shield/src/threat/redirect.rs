//! Open redirects: a value that is a URL written to leave the site through a parser's
//! confusion. An application that redirects to a parameter checks that it is "local" (starts
//! with one `/`) or "ours" (starts with our host); these spellings pass such checks and still
//! send a browser elsewhere:
//!
//! - separators a browser folds into `//`: `/\evil.example`, `////evil.example`, a tab among
//!   them (`//%09/evil.example`);
//! - an absolute URL behind a slash: `/https://evil.example`;
//! - a trusted name as user info: `https://trusted.example@evil.example/`;
//! - a host written as a number no one types: `http://0330.072.0326.0316`, `http://0xd8.3856078`,
//!   `http://[::ffff:216.58.214.206]` (internal ones are SSRF, judged in [`super::ssrf`]);
//! - a scheme without its slashes (`https:evil.example`) or with backslashes (`https:\\evil`).
//!
//! A plain URL (`https://example.com/docs`, `//cdn.example.com/lib.js`) is none of these, and
//! neither is a sentence that holds one: only a value that is a URL and nothing else is judged.

use std::net::Ipv6Addr;

use super::ssrf::strip_port;
use super::{Finding, Severity, Strongest, ThreatType};

/// Looks for an open-redirect URL in a decoded, lowercased value.
pub fn detect(lower: &str, out: &mut Vec<Finding>) {
    let value = lower.trim_matches([' ', '\n', '\r']);
    // A sentence that mentions a URL is not a URL.
    if value.is_empty() || value.contains([' ', '\n', '\r']) {
        return;
    }
    let offset = value.as_ptr() as usize - lower.as_ptr() as usize;
    let mut best = Strongest::default();
    let mut keep = |severity: Severity, confidence: f32| {
        best.keep(Finding::new(
            ThreatType::OpenRedirect,
            severity,
            confidence,
            offset,
            offset + value.len(),
        ))
    };
    // A malformed URL that leads into the server's own network.
    let mut inward = false;
    let b = value.as_bytes();
    let lead = b
        .iter()
        .take_while(|c| matches!(c, b'/' | b'\\' | b'\t'))
        .count();
    let (seps, rest) = value.split_at(lead);
    if lead >= 2 && host_like(rest) {
        let slash = seps.contains('/');
        let backslash = seps.contains('\\');
        let folded = (slash && backslash) || seps.contains('\t') || (lead >= 3 && slash);
        // `//host` alone is a protocol-relative URL; with a disguise after it, a redirect.
        let disguised = lead == 2 && slash && {
            let (authority, path) = split_authority(rest);
            authority.contains('@') || path.starts_with("//") || climbs_encoded(path)
        };
        if folded || disguised {
            keep(Severity::High, 0.8);
        }
    }
    // An absolute URL behind one or two slashes: `/https://evil.example`.
    if (1..=2).contains(&lead) && !seps.contains('\t') {
        if let Some(after) = strip_web_scheme(rest) {
            if after.starts_with(['/', '\\']) {
                keep(Severity::High, 0.8);
            }
        }
    }
    if lead == 0 {
        if let Some(after) = strip_web_scheme(value) {
            let slashes = after
                .bytes()
                .take_while(|c| matches!(c, b'/' | b'\\'))
                .count();
            let (written, rest) = after.split_at(slashes);
            let (authority, path) = split_authority(rest);
            // The host is after the last `@`.
            let (user, host) = match authority.rfind('@') {
                Some(at) => (Some(&authority[..at]), &authority[at + 1..]),
                None => (None, authority),
            };
            let host = strip_port(host);
            // A scheme without its slashes, or with backslashes, which browsers repair, and
            // resolvers too (`http:127.0.0.1`, `http://\\l\\o\\c\\a\\l\\h\\o\\s\\t/`). Where it
            // leads inside, the SSRF checks' reading of a proper URL misses it: reported as
            // SSRF here.
            if !host.is_empty() && (written.is_empty() || written.contains('\\')) {
                let squeezed = rest.replace('\\', "");
                let (name, _) = split_authority(&squeezed);
                let name = strip_port(name.rsplit('@').next().unwrap_or(""));
                if super::ssrf::is_internal_host(name) || super::ssrf::is_internal_host(host) {
                    inward = true;
                }
                keep(Severity::High, 0.75);
            }
            // A dotted name as user info, with no password: the name a reader trusts.
            if user.is_some_and(|u| u.contains('.') && !u.contains(':')) {
                keep(Severity::High, 0.75);
            }
            if numeric_spelling(host) {
                keep(Severity::High, 0.75);
            }
            if written.len() > 2 && host_like(rest) {
                keep(Severity::High, 0.7);
            }
            if user.is_some() && climbs_encoded(path) {
                keep(Severity::High, 0.7);
            }
        }
    }
    if let Some(mut f) = best.into_inner() {
        if inward {
            f.threat = ThreatType::Ssrf;
            f.severity = Severity::Critical;
        }
        out.push(f);
    }
}

/// `http:` or `https:` at the start, and what follows it.
fn strip_web_scheme(text: &str) -> Option<&str> {
    text.strip_prefix("https:")
        .or_else(|| text.strip_prefix("http:"))
}

/// The authority (up to the first `/`, `\`, `?` or `#`) and the rest.
fn split_authority(text: &str) -> (&str, &str) {
    let end = text.find(['/', '\\', '?', '#']).unwrap_or(text.len());
    text.split_at(end)
}

/// Whether `text` starts with something a browser takes for a host: a dotted name, an
/// address, user info before one (`;@evil.example`).
fn host_like(text: &str) -> bool {
    let (authority, _) = split_authority(text);
    let host = authority.rsplit('@').next().unwrap_or(authority);
    let host = strip_port(host);
    let name = host.trim_start_matches(';');
    (name.starts_with('[') && name.ends_with(']'))
        || (name.contains('.')
            && !name.starts_with('.')
            && name
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-' | b'_')))
}

/// `%2f..`, `/%2e%2e`, `..%2f` after the host: a path that climbs once decoded again.
fn climbs_encoded(path: &str) -> bool {
    path.contains("%2f..") || path.contains("%2e%2e") || path.contains("..%2f")
}

/// A host written as an IPv4 number in a form no one types: octal or hex parts, fewer than
/// four parts, one 32-bit number; or an IPv4 address inside an IPv6 one.
fn numeric_spelling(host: &str) -> bool {
    if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return inner
            .parse::<Ipv6Addr>()
            .ok()
            .is_some_and(|ip| inner.contains('.') && ip.to_ipv4().is_some());
    }
    let host = host.trim_end_matches('.');
    if host.is_empty()
        || !host
            .bytes()
            .all(|c| c.is_ascii_hexdigit() || matches!(c, b'.' | b'x'))
        || !host.bytes().any(|c| c.is_ascii_digit())
    {
        return false;
    }
    let parts: Vec<&str> = host.split('.').collect();
    let canonical = parts.len() == 4
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.len() <= 3
                && p.bytes().all(|c| c.is_ascii_digit())
                && (p.len() == 1 || !p.starts_with('0'))
        });
    !canonical && super::ssrf::parses_as_ipv4(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blocked(text: &str) -> bool {
        let mut out = Vec::new();
        detect(&text.to_ascii_lowercase(), &mut out);
        out.iter().any(|f| f.severity >= Severity::High)
    }

    #[test]
    fn urls_that_leave_by_confusion() {
        for attack in [
            "/\\evil.example",
            "/\\/evil.example/",
            "////evil.example",
            "///evil.example/%2f..",
            "//\tevil.example",
            "////\t/evil.example",
            "//\\evil.example",
            "////\\;@evil.example",
            "//trusted.example@evil.example/",
            "//evil.example/%2f..",
            "//evil.example//",
            "/https://evil.example",
            "//https://evil.example//",
            "/http://evil.example",
            "https://www.trusted.example@evil.example/",
            "http://0330.072.0326.0316",
            "http://0xd8.3856078",
            "http:0xd8.0x3a.0xd6.0xce",
            "http://3h6k7liaiqjfnen@0330.072.0326.0316",
            "http://www.trusted.example@[::ffff:216.58.214.206]",
            "https:evil.example",
            "https:\\\\evil.example",
            "https:///www.trusted.example@www.evil.example/%2f%2e%2e",
        ] {
            assert!(blocked(attack), "missed {attack:?}");
        }
    }

    #[test]
    fn a_malformed_url_into_the_network_is_ssrf() {
        for attack in [
            "http:127.0.0.1",
            "http:2852039166",
            "http://\\l\\o\\c\\a\\l\\h\\o\\s\\t/",
        ] {
            let mut out = Vec::new();
            detect(attack, &mut out);
            assert_eq!(out[0].threat, ThreatType::Ssrf, "{attack}");
            assert_eq!(out[0].severity, Severity::Critical, "{attack}");
        }
    }

    #[test]
    fn ordinary_urls_and_paths_are_not_redirects() {
        for benign in [
            "https://example.com/docs?page=2",
            "//cdn.example.com/lib.js",
            "http://8.8.8.8/",
            "https://x-access-token:abc123@github.com/org/repo.git",
            "https://user@example.com/",
            "\\\\fileserver.corp\\share\\report.docx",
            "/usr/local/bin",
            "/api//users",
            "see /\\ for the root",
            "///",
            "docs/guides/istanbul.md",
            "http://[2001:db8::1]/",
            "file:///etc/hosts",
        ] {
            assert!(!blocked(benign), "false alarm on {benign:?}");
        }
    }
}
