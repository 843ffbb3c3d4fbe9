//! IP management: the operator's allow and deny lists (longest-prefix match over IPv4 and
//! IPv6 networks, with expiry) and the guard that enforces the deny list (`lists.rs`,
//! `guard.rs`); reputation and automatic temporary blocks ([`reputation`], kept in Redis by
//! [`shared_reputation`]); GeoIP, country rules and GeoIP risk ([`geo`]); threat-intelligence
//! feeds ([`feeds`]); lists shared through Redis ([`sync`]) and saved to disk ([`persist`]).

pub mod feeds;
pub mod geo;
mod guard;
mod lists;
pub mod persist;
mod prefix_table;
pub mod reputation;
pub mod shared_reputation;
pub mod sync;

pub use guard::BlacklistGuard;
pub use lists::{IpLists, ListEntry, ListError, ListKind, ListMatch};
pub use prefix_table::PrefixTable;

use std::net::IpAddr;

use ipnet::IpNet;

/// Reads `1.2.3.4`, `10.0.0.0/8`, `2001:db8::1` or `2001:db8::/32` as a network (a bare
/// address is a /32 or /128). Host bits below the prefix are cleared: `10.1.2.3/8` is
/// `10.0.0.0/8`.
pub fn parse_network(text: &str) -> Result<IpNet, String> {
    let text = text.trim();
    if text.contains('/') {
        text.parse::<IpNet>()
            .map(|n| n.trunc())
            .map_err(|_| "not an IP address or CIDR network".to_string())
    } else {
        text.parse::<IpAddr>()
            .map(|ip| IpNet::from(ip.to_canonical()))
            .map_err(|_| "not an IP address or CIDR network".to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_parse_and_normalise() {
        assert_eq!(
            parse_network("1.2.3.4").map(|n| n.to_string()),
            Ok("1.2.3.4/32".into())
        );
        assert_eq!(
            parse_network(" 10.1.2.3/8 ").map(|n| n.to_string()),
            Ok("10.0.0.0/8".into())
        );
        assert_eq!(
            parse_network("2001:db8::1").map(|n| n.to_string()),
            Ok("2001:db8::1/128".into())
        );
        assert_eq!(
            parse_network("::ffff:1.2.3.4").map(|n| n.to_string()),
            Ok("1.2.3.4/32".into())
        );
        assert!(parse_network("1.2.3.4/33").is_err());
        assert!(parse_network("example.com").is_err());
        assert!(parse_network("").is_err());
    }
}
