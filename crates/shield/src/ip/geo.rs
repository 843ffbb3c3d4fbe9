//! GeoIP from MaxMind MMDB files (GeoLite2 / GeoIP2 City, Country, ASN or Anonymous-IP), the
//! guard that refuses countries, and the GeoIP risk that lowers an address's reputation.
//!
//! Databases are read whole into memory at start and verified there: a corrupt file is an
//! error at start, not a surprise on some request. Each file is used for what its metadata
//! says it is (`database_type`), whichever setting named it. The guard decodes only the
//! country code, borrowed from the database, so a lookup allocates nothing.
//!
//! **GeoIP risk** ([`RiskPolicy::risk`]): an address behind an anonymiser or in a country the
//! operator names as high-risk (`SECURITY_GEO_HIGH_RISK_COUNTRIES`) starts, and recovers to, a
//! lower reputation than [`super::reputation::NEUTRAL`]. The points are the largest of the
//! anonymity flags the Anonymous-IP database gives ([`ANONYMITY_POINTS`]) plus
//! [`RISK_COUNTRY_POINTS`] for a high-risk country, at most [`MAX_RISK_POINTS`], so GeoIP alone
//! never brings an address down to the auto-blacklist threshold: it only takes fewer bad
//! deeds to get there.

use std::net::IpAddr;
use std::path::Path;

use maxminddb::{geoip2, Reader};
use serde::{Deserialize, Serialize};

use crate::decision::{BlockReason, Verdict};
use crate::pipeline::{Check, Guard};
use crate::request::RequestFacts;

/// What GeoIP says of an address.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct GeoInfo {
    /// ISO 3166 alpha-2 country code.
    pub country: Option<String>,
    /// Country name in English.
    pub country_name: Option<String>,
    /// City name in English.
    pub city: Option<String>,
    /// Autonomous system number.
    pub asn: Option<u32>,
    /// The AS's organisation.
    pub as_organization: Option<String>,
    /// What the Anonymous-IP database says of it (`tor_exit_node`, `public_proxy`, ...).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub anonymity: Vec<&'static str>,
}

/// Reputation points each anonymity flag costs (the largest applies).
pub const ANONYMITY_POINTS: [(&str, f64); 5] = [
    ("tor_exit_node", 20.0),
    ("public_proxy", 15.0),
    ("residential_proxy", 15.0),
    ("anonymous_vpn", 10.0),
    ("hosting_provider", 5.0),
];
/// Reputation points an address in a high-risk country costs.
pub const RISK_COUNTRY_POINTS: f64 = 10.0;
/// The most GeoIP can take off an address's reputation.
pub const MAX_RISK_POINTS: f64 = 30.0;

/// How much GeoIP lowers an address's reputation, and why.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct GeoRisk {
    /// Points off the neutral reputation.
    pub points: f64,
    /// Why: anonymity flags and `country:XX`.
    pub reasons: Vec<String>,
}

/// The countries an operator names as high-risk, with the databases to find them.
#[derive(Debug)]
pub struct RiskPolicy {
    geo: std::sync::Arc<GeoIp>,
    countries: Vec<String>,
}

impl RiskPolicy {
    /// A policy over `geo` with `countries` (ISO codes) as high-risk.
    pub fn new(geo: std::sync::Arc<GeoIp>, countries: &[String]) -> Self {
        RiskPolicy {
            geo,
            countries: countries.iter().map(|c| c.to_ascii_uppercase()).collect(),
        }
    }

    /// Whether the policy can ever find a risk (an Anonymous-IP database or risk countries).
    pub fn is_active(&self) -> bool {
        self.geo.anonymous.is_some() || (!self.countries.is_empty() && self.geo.location.is_some())
    }

    /// The risk of `ip`.
    pub fn risk(&self, ip: IpAddr) -> GeoRisk {
        let mut risk = GeoRisk::default();
        let flags = self.geo.anonymity(ip);
        let worst = ANONYMITY_POINTS
            .iter()
            .filter(|(name, _)| flags.contains(name))
            .map(|(_, points)| *points)
            .fold(0.0, f64::max);
        risk.points += worst;
        risk.reasons.extend(flags.iter().map(|f| f.to_string()));
        if !self.countries.is_empty() {
            if let Some(country) = self.geo.country_code(ip) {
                if self.countries.iter().any(|c| c == country) {
                    risk.points += RISK_COUNTRY_POINTS;
                    risk.reasons.push(format!("country:{country}"));
                }
            }
        }
        risk.points = risk.points.min(MAX_RISK_POINTS);
        risk
    }
}

#[derive(Deserialize)]
struct CountryCode<'a> {
    #[serde(borrow, default)]
    country: Option<IsoCode<'a>>,
}

#[derive(Deserialize)]
struct IsoCode<'a> {
    #[serde(borrow, default)]
    iso_code: Option<&'a str>,
}

/// The open databases.
pub struct GeoIp {
    location: Option<Reader<Vec<u8>>>,
    asn: Option<Reader<Vec<u8>>>,
    anonymous: Option<Reader<Vec<u8>>>,
}

impl std::fmt::Debug for GeoIp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GeoIp")
            .field(
                "location",
                &self
                    .location
                    .as_ref()
                    .map(|r| r.metadata().database_type.clone()),
            )
            .field(
                "asn",
                &self
                    .asn
                    .as_ref()
                    .map(|r| r.metadata().database_type.clone()),
            )
            .field("anonymous", &self.anonymous.is_some())
            .finish()
    }
}

fn open(path: &str) -> Result<Reader<Vec<u8>>, String> {
    let reader = Reader::open_readfile(Path::new(path))
        .map_err(|e| format!("GeoIP database {path}: cannot open: {e}"))?;
    reader
        .verify()
        .map_err(|e| format!("GeoIP database {path} is corrupt: {e}"))?;
    Ok(reader)
}

impl GeoIp {
    /// Opens the configured databases (empty paths are skipped), each used for what its
    /// metadata says it is: City or Country, ASN, or Anonymous-IP. `Ok(None)` when none is
    /// configured or the files are missing (logged at INFO: everything else works without
    /// GeoIP); `Err` for a file that is there but unreadable or corrupt, or two files of one
    /// kind.
    pub fn open(paths: &[&str]) -> Result<Option<GeoIp>, String> {
        let mut geo = GeoIp {
            location: None,
            asn: None,
            anonymous: None,
        };
        for path in paths.iter().filter(|p| !p.is_empty()) {
            if !Path::new(path).exists() {
                tracing::info!(target: "security.ip_manager", "GeoIP database {path} not found");
                continue;
            }
            let reader = open(path)?;
            let kind = reader.metadata().database_type.clone();
            let slot = if kind.contains("ASN") {
                &mut geo.asn
            } else if kind.contains("Anonymous-IP") {
                &mut geo.anonymous
            } else if kind.contains("City") || kind.contains("Country") {
                &mut geo.location
            } else {
                return Err(format!(
                    "GeoIP database {path} is a {kind} database; expected City, Country, ASN or Anonymous-IP"
                ));
            };
            if slot.is_some() {
                return Err(format!(
                    "GeoIP database {path}: a second {kind} database (give one of each kind)"
                ));
            }
            *slot = Some(reader);
        }
        if geo.location.is_none() && geo.asn.is_none() && geo.anonymous.is_none() {
            tracing::info!(target: "security.ip_manager", "IP manager initialized without GeoIP database");
            return Ok(None);
        }
        Ok(Some(geo))
    }

    /// The anonymity flags of `ip` (empty without an Anonymous-IP database).
    pub fn anonymity(&self, ip: IpAddr) -> Vec<&'static str> {
        let Some(reader) = &self.anonymous else {
            return Vec::new();
        };
        let Ok(found) = reader.lookup(ip.to_canonical()) else {
            return Vec::new();
        };
        let Ok(Some(record)) = found.decode::<geoip2::AnonymousIp>() else {
            return Vec::new();
        };
        [
            ("tor_exit_node", record.is_tor_exit_node),
            ("public_proxy", record.is_public_proxy),
            ("residential_proxy", record.is_residential_proxy),
            ("anonymous_vpn", record.is_anonymous_vpn),
            ("hosting_provider", record.is_hosting_provider),
        ]
        .into_iter()
        .filter(|(_, flag)| *flag == Some(true))
        .map(|(name, _)| name)
        .collect()
    }

    /// The country code of `ip`, borrowed from the database.
    pub fn country_code(&self, ip: IpAddr) -> Option<&str> {
        let reader = self.location.as_ref()?;
        let found = reader.lookup(ip.to_canonical()).ok()?;
        let decoded: CountryCode<'_> = found.decode().ok()??;
        decoded.country?.iso_code
    }

    /// Everything the databases know of `ip`.
    pub fn lookup(&self, ip: IpAddr) -> GeoInfo {
        let ip = ip.to_canonical();
        let mut info = GeoInfo::default();
        if let Some(reader) = &self.location {
            if let Ok(found) = reader.lookup(ip) {
                if let Ok(Some(city)) = found.decode::<geoip2::City<'_>>() {
                    info.country = city.country.iso_code.map(str::to_string);
                    info.country_name = city.country.names.english.map(str::to_string);
                    info.city = city.city.names.english.map(str::to_string);
                }
            }
        }
        if let Some(reader) = &self.asn {
            if let Ok(found) = reader.lookup(ip) {
                if let Ok(Some(asn)) = found.decode::<geoip2::Asn<'_>>() {
                    info.asn = asn.autonomous_system_number;
                    info.as_organization = asn.autonomous_system_organization.map(str::to_string);
                }
            }
        }
        info.anonymity = self.anonymity(ip);
        info
    }
}

/// Refuses clients by country.
#[derive(Debug)]
pub struct CountryGuard {
    geo: std::sync::Arc<GeoIp>,
    blocked: Vec<String>,
    allowed: Vec<String>,
}

impl CountryGuard {
    /// A guard refusing `blocked` countries, or everything but `allowed` (ISO codes; one of
    /// the two lists is empty).
    pub fn new(geo: std::sync::Arc<GeoIp>, blocked: &[String], allowed: &[String]) -> Self {
        let upper = |v: &[String]| v.iter().map(|c| c.to_ascii_uppercase()).collect();
        CountryGuard {
            geo,
            blocked: upper(blocked),
            allowed: upper(allowed),
        }
    }
}

impl Guard for CountryGuard {
    fn name(&self) -> &'static str {
        "geoip"
    }

    fn check<'a>(&'a self, facts: &'a RequestFacts) -> Check<'a> {
        let Some(country) = self.geo.country_code(facts.client_ip) else {
            // Unknown country (private ranges, gaps in the database): served.
            return Check::Ready(Ok(Verdict::pass()));
        };
        let refused = if !self.allowed.is_empty() {
            (!self.allowed.iter().any(|c| c == country))
                .then(|| format!("Country {country} is not allowed"))
        } else {
            self.blocked
                .iter()
                .any(|c| c == country)
                .then(|| format!("Country {country} is blocked"))
        };
        Check::Ready(Ok(match refused {
            Some(detail) => Verdict::Block(BlockReason::IpBlocked { detail }),
            None => Verdict::pass(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file of the shared GeoIP test databases: `shared/geoip/` beside the checkout, found by
    /// walking up from this crate.
    fn shared(file: &str) -> String {
        let start = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let dir = start
            .ancestors()
            .map(|a| a.join("shared/geoip"))
            .find(|d| d.is_dir())
            .expect("shared/geoip beside the checkout (the MaxMind test databases)");
        dir.join(file).display().to_string()
    }

    #[test]
    fn known_addresses_in_the_test_databases() {
        let geo = GeoIp::open(&[
            &shared("GeoIP2-City-Test.mmdb"),
            &shared("GeoLite2-ASN-Test.mmdb"),
        ])
        .expect("opens")
        .expect("configured");
        let london = geo.lookup("81.2.69.142".parse().expect("ip"));
        assert_eq!(london.country.as_deref(), Some("GB"));
        assert_eq!(london.city.as_deref(), Some("London"));
        assert_eq!(
            geo.country_code("216.160.83.56".parse().expect("ip")),
            Some("US")
        );
        assert_eq!(
            geo.country_code("2001:218::1".parse().expect("ip")),
            Some("JP")
        );
        assert_eq!(
            geo.country_code("::ffff:81.2.69.142".parse().expect("ip")),
            Some("GB")
        );
        assert_eq!(geo.country_code("10.0.0.1".parse().expect("ip")), None);
        let google = geo.lookup("1.0.0.1".parse().expect("ip"));
        assert_eq!(google.asn, Some(15169));
        assert_eq!(google.as_organization.as_deref(), Some("Google Inc."));
    }

    #[test]
    fn country_only_and_asn_only_databases() {
        let geo = GeoIp::open(&[&shared("GeoLite2-Country-Test.mmdb")])
            .expect("opens")
            .expect("configured");
        assert_eq!(
            geo.country_code("81.2.69.142".parse().expect("ip")),
            Some("GB")
        );
        let asn = GeoIp::open(&[&shared("GeoLite2-ASN-Test.mmdb")])
            .expect("opens")
            .expect("configured");
        assert_eq!(asn.lookup("1.128.0.1".parse().expect("ip")).asn, Some(1221));
        assert_eq!(asn.country_code("81.2.69.142".parse().expect("ip")), None);
    }

    #[test]
    fn missing_is_fine_and_corrupt_is_an_error() {
        assert!(GeoIp::open(&["/nonexistent/GeoLite2-City.mmdb"])
            .expect("missing is not an error")
            .is_none());
        assert!(GeoIp::open(&["", ""]).expect("none configured").is_none());
        for broken in [
            "GeoIP2-City-Test-Broken-Double-Format.mmdb",
            "MaxMind-DB-test-broken-search-tree-24.mmdb",
        ] {
            let err = GeoIp::open(&[&shared(broken)]).expect_err(broken);
            assert!(err.contains(broken), "{err}");
        }
        let not_mmdb = format!("{}/Cargo.toml", env!("CARGO_MANIFEST_DIR"));
        assert!(GeoIp::open(&[&not_mmdb]).is_err());
        let twice = GeoIp::open(&[
            &shared("GeoLite2-City-Test.mmdb"),
            &shared("GeoIP2-Country-Test.mmdb"),
        ])
        .expect_err("two location databases");
        assert!(twice.contains("second"), "{twice}");
    }

    #[test]
    fn anonymity_flags_and_risk_points() {
        let geo = std::sync::Arc::new(
            GeoIp::open(&[
                &shared("GeoIP2-Anonymous-IP-Test.mmdb"),
                &shared("GeoIP2-City-Test.mmdb"),
            ])
            .expect("opens")
            .expect("configured"),
        );
        let ip = |s: &str| s.parse::<IpAddr>().expect("ip");
        let policy = RiskPolicy::new(geo.clone(), &["cn".to_string()]);
        assert!(policy.is_active());
        // A Tor exit that is also a VPN: the worst flag counts, once.
        let tor = policy.risk(ip("1.124.213.1"));
        assert_eq!(tor.points, 20.0);
        assert_eq!(tor.reasons, ["tor_exit_node", "anonymous_vpn"]);
        assert_eq!(policy.risk(ip("6.1.0.2")).points, 5.0, "hosting provider");
        assert_eq!(policy.risk(ip("6.1.0.3")).points, 15.0, "public proxy");
        assert_eq!(policy.risk(ip("2001:480:3a::1")).points, 15.0);
        // A high-risk country.
        let changchun = policy.risk(ip("175.16.199.0"));
        assert_eq!(changchun.points, RISK_COUNTRY_POINTS);
        assert_eq!(changchun.reasons, ["country:CN"]);
        // Nothing known: no risk.
        assert_eq!(policy.risk(ip("216.160.83.56")), GeoRisk::default());
        // Every flag and a risk country together stay under the cap.
        let all = RiskPolicy::new(geo.clone(), &["GB".to_string()]).risk(ip("81.2.69.142"));
        assert_eq!(all.points, MAX_RISK_POINTS);
        assert_eq!(all.reasons.len(), 6);
        assert_eq!(
            geo.lookup(ip("1.124.213.1")).anonymity,
            ["tor_exit_node", "anonymous_vpn"]
        );
    }
}
