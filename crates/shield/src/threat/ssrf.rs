//! Server-side request forgery and remote file inclusion: URLs a server would fetch that point
//! inside its own network (loopback, private ranges, link-local cloud metadata, in any of the
//! spellings `inet_aton` accepts: `2130706433`, `0x7f.1`, `0177.0.0.1`, `127.1`, `[::ffff:7f00:1]`),
//! schemes that talk to other services (`gopher://`, `dict://`), and URLs shaped to be
//! included as code (`http://evil/shell.txt?`, a NUL after the URL).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::fields::Place;
use super::{Finding, Severity, Strongest, ThreatType};

/// Host names of cloud metadata services.
const METADATA_HOSTS: &[&str] = &[
    "metadata.google.internal",
    "metadata.goog",
    "metadata",
    "instance-data",
    "metadata.azure.com",
    "management.azure.com",
    "metadata.tencentyun.com",
    "metadata.packet.net",
];

/// Schemes whose only business in a parameter is reaching another service.
const SERVICE_SCHEMES: &[&str] = &[
    "gopher", "dict", "ldap", "ldaps", "tftp", "jar", "netdoc", "sftp", "smb", "rmi",
];

/// What an address is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reach {
    Metadata,
    Internal,
    Public,
}

fn classify_v4(ip: Ipv4Addr) -> Reach {
    let o = ip.octets();
    if o == [169, 254, 169, 254]
        || o == [100, 100, 100, 200]
        || o == [192, 0, 0, 192]
        || o == [169, 254, 170, 2]
    {
        return Reach::Metadata;
    }
    if ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || o[0] == 0
        || (o[0] == 100 && (64..128).contains(&o[1]))
        || (o[0] == 192 && o[1] == 0 && o[2] == 0)
        || (o[0] == 198 && (o[1] == 18 || o[1] == 19))
    {
        return Reach::Internal;
    }
    Reach::Public
}

fn classify_v6(ip: Ipv6Addr) -> Reach {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return classify_v4(v4);
    }
    let s = ip.segments();
    if s == [0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254] {
        return Reach::Metadata;
    }
    if ip.is_loopback()
        || ip.is_unspecified()
        || (s[0] & 0xfe00) == 0xfc00
        || (s[0] & 0xffc0) == 0xfe80
        || (s[0..6] == [0, 0, 0, 0, 0, 0] && s[6] != 0)
    {
        return Reach::Internal;
    }
    Reach::Public
}

/// Parses an IPv4 address the way `inet_aton` does: one to four parts, each decimal, octal
/// (leading 0) or hex (0x).
fn inet_aton(host: &str) -> Option<Ipv4Addr> {
    let parts: Vec<&str> = host.split('.').collect();
    if parts.is_empty() || parts.len() > 4 || parts.iter().any(|p| p.is_empty()) {
        return None;
    }
    let mut values = Vec::with_capacity(4);
    for p in &parts {
        let v = if let Some(hex) = p.strip_prefix("0x") {
            u64::from_str_radix(hex, 16).ok()?
        } else if p.len() > 1 && p.starts_with('0') {
            u64::from_str_radix(&p[1..], 8).ok()?
        } else {
            p.parse::<u64>().ok()?
        };
        values.push(v);
    }
    let last = *values.last()?;
    let head = &values[..values.len() - 1];
    if head.iter().any(|v| *v > 255) {
        return None;
    }
    let room = 8 * (4 - head.len() as u32);
    if last >= 1u64 << room {
        return None;
    }
    let mut n: u64 = 0;
    for (i, v) in head.iter().enumerate() {
        n |= v << (24 - 8 * i as u32);
    }
    n |= last;
    Some(Ipv4Addr::from(n as u32))
}

/// The host of `host[:port]`, `[v6]:port` included.
pub(crate) fn strip_port(host_port: &str) -> &str {
    if host_port.starts_with('[') {
        return host_port.find(']').map_or(host_port, |e| &host_port[..=e]);
    }
    host_port.split(':').next().unwrap_or(host_port)
}

/// Whether `host` names the server's own network (loopback, private, metadata), in any
/// spelling [`detect`] reads.
pub(crate) fn is_internal_host(host: &str) -> bool {
    matches!(reach_of_host(host), Some(Reach::Internal | Reach::Metadata))
}

/// Whether `host` is an IPv4 address in one of the spellings `inet_aton` accepts.
pub(crate) fn parses_as_ipv4(host: &str) -> bool {
    inet_aton(host).is_some()
}

fn reach_of_host(host: &str) -> Option<Reach> {
    let host = host.trim_end_matches('.');
    if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        let inner = inner.split('%').next().unwrap_or(inner);
        return inner.parse::<Ipv6Addr>().ok().map(classify_v6);
    }
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Some(match ip {
            IpAddr::V4(v4) => classify_v4(v4),
            IpAddr::V6(v6) => classify_v6(v6),
        });
    }
    if let Some(v4) = inet_aton(host) {
        return Some(classify_v4(v4));
    }
    if METADATA_HOSTS.contains(&host) {
        return Some(Reach::Metadata);
    }
    if host == "localhost"
        || host.ends_with(".localhost")
        || host.ends_with(".internal")
        || host.ends_with(".local")
        || host == "localtest.me"
        || host.ends_with(".localtest.me")
        || host == "lvh.me"
        || host.ends_with(".lvh.me")
        || host.ends_with(".nip.io")
            && host
                .split('.')
                .any(|p| p == "127" || p == "10" || p == "169")
    {
        return Some(Reach::Internal);
    }
    None
}

/// Looks for SSRF and remote inclusion in a decoded, lowercased value at `place`.
pub fn detect(lower: &str, place: Place, had_nul: bool, out: &mut Vec<Finding>) {
    let b = lower.as_bytes();
    let mut best = Strongest::default();
    let mut keep = |f: Finding| best.keep(f);
    // A URL inside a sentence is a mention; a URL that is the value is a request to make.
    let free_text = lower.trim().contains(char::is_whitespace);
    let mut k = 0;
    while let Some(p) = find!(&lower[k..], "://").map(|p| p + k) {
        k = p + 3;
        let mut s = p;
        while s > 0 && (b[s - 1].is_ascii_alphanumeric() || matches!(b[s - 1], b'+' | b'.' | b'-'))
        {
            s -= 1;
        }
        let scheme = &lower[s..p];
        if scheme.is_empty() {
            continue;
        }
        let rest = &lower[p + 3..];
        let authority_end = rest
            .find(|c: char| {
                matches!(
                    c,
                    '/' | '?' | '#' | ' ' | '\t' | '\n' | '"' | '\'' | '<' | '>' | '\\'
                )
            })
            .unwrap_or(rest.len());
        let authority = &rest[..authority_end];
        // The host is after the last `@` (user info is a classic disguise).
        let host = strip_port(authority.rsplit('@').next().unwrap_or(authority));
        let end = p + 3 + authority_end;
        if SERVICE_SCHEMES.contains(&scheme) {
            keep(Finding::new(ThreatType::Ssrf, Severity::High, 0.9, s, end));
            continue;
        }
        match reach_of_host(host) {
            Some(Reach::Metadata) if free_text => {
                keep(Finding::new(ThreatType::Ssrf, Severity::High, 0.7, s, end));
            }
            Some(Reach::Metadata) => {
                keep(Finding::new(
                    ThreatType::Ssrf,
                    Severity::Critical,
                    0.95,
                    s,
                    end,
                ));
            }
            Some(Reach::Internal) if matches!(scheme, "http" | "https" | "ftp" | "ws" | "wss") => {
                let severity = if free_text {
                    Severity::Medium
                } else {
                    Severity::High
                };
                keep(Finding::new(ThreatType::Ssrf, severity, 0.85, s, end));
            }
            _ => {}
        }
        // Remote inclusion: a URL that is the whole value, shaped to be included.
        if s == 0 && matches!(scheme, "http" | "https" | "ftp" | "ftps") && place != Place::Header {
            let value_end = lower.trim_end();
            let trailing_query = value_end.ends_with('?');
            let literal_ip = host.parse::<IpAddr>().is_ok();
            let script = rest[authority_end..]
                .split(['?', '#'])
                .next()
                .is_some_and(|path| {
                    [
                        ".txt", ".php", ".jsp", ".asp", ".sh", ".pl", ".py", ".cgi", ".inc",
                    ]
                    .iter()
                    .any(|e| path.ends_with(e))
                });
            if trailing_query || had_nul || (script && literal_ip) {
                keep(Finding::new(
                    ThreatType::RemoteFileInclusion,
                    Severity::High,
                    0.8,
                    0,
                    value_end.len(),
                ));
            } else if script || literal_ip {
                keep(Finding::new(
                    ThreatType::RemoteFileInclusion,
                    Severity::Medium,
                    0.5,
                    0,
                    value_end.len(),
                ));
            }
        }
    }
    if let Some(f) = best.into_inner() {
        out.push(f);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn severity(text: &str) -> Option<(ThreatType, Severity)> {
        let lower = text.to_ascii_lowercase();
        let mut out = Vec::new();
        detect(&lower, Place::QueryValue, false, &mut out);
        out.first().map(|f| (f.threat.clone(), f.severity))
    }

    #[test]
    fn internal_and_metadata_addresses_in_their_spellings() {
        for attack in [
            "http://169.254.169.254/latest/meta-data/",
            "http://metadata.google.internal/computeMetadata/v1/",
            "http://127.0.0.1:6379/",
            "http://localhost/admin",
            "http://2130706433/",
            "http://0x7f000001/",
            "http://0177.0.0.1/",
            "http://127.1/",
            "http://[::1]/",
            "http://[::ffff:127.0.0.1]/",
            "http://evil.example@10.0.0.5/",
            "gopher://127.0.0.1:6379/_config%20set",
            "dict://internal:11211/stat",
            "http://192.0.0.192/latest/",
            "http://[fd00:ec2::254]/latest/",
            "http://evil.example/shell.txt?",
        ] {
            assert!(
                severity(attack).is_some_and(|(_, s)| s >= Severity::High),
                "missed {attack:?}: {:?}",
                severity(attack)
            );
        }
    }

    #[test]
    fn ordinary_links_are_fine() {
        for benign in [
            "https://example.com/docs?page=2",
            "see https://github.com/org/repo/blob/main/README.md",
            "http://8.8.8.8/",
            "file:///home/dev/project/a.sql",
        ] {
            assert!(
                severity(benign).is_none_or(|(_, s)| s < Severity::High),
                "false alarm on {benign:?}: {:?}",
                severity(benign)
            );
        }
        assert_eq!(inet_aton("0x7f.1"), Some(Ipv4Addr::new(127, 0, 0, 1)));
        assert_eq!(inet_aton("1.2.3.4.5"), None);
        assert_eq!(inet_aton("256.1.1.1"), None);
    }
}
