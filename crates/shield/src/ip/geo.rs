//! GeoIP from MaxMind MMDB files (GeoLite2 / GeoIP2 City, Country or ASN), and the guard that
//! refuses countries.
//!
//! Databases are read whole into memory at start and verified there: a corrupt file is an
//! error at start, not a surprise on some request. The guard decodes only the country code,
//! borrowed from the database, so a lookup allocates nothing.

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
    /// Opens the configured databases. `Ok(None)` when none is configured or the files are
    /// missing (logged at INFO: everything else works without GeoIP); `Err` for a file that is
    /// there but unreadable or corrupt.
    pub fn open(location_path: &str, asn_path: &str) -> Result<Option<GeoIp>, String> {
        let mut geo = GeoIp {
            location: None,
            asn: None,
        };
        for (path, slot) in [(location_path, &mut geo.location), (asn_path, &mut geo.asn)] {
            if path.is_empty() {
                continue;
            }
            if !Path::new(path).exists() {
                tracing::info!(target: "security.ip_manager", "GeoIP database {path} not found");
                continue;
            }
            *slot = Some(open(path)?);
        }
        if geo.location.is_none() && geo.asn.is_none() {
            tracing::info!(target: "security.ip_manager", "IP manager initialized without GeoIP database");
            return Ok(None);
        }
        // An ASN database given as the only one answers ASN questions.
        if geo.asn.is_none()
            && geo
                .location
                .as_ref()
                .is_some_and(|r| r.metadata().database_type.contains("ASN"))
        {
            geo.asn = geo.location.take();
        }
        Ok(Some(geo))
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
        let geo = GeoIp::open(
            &shared("GeoIP2-City-Test.mmdb"),
            &shared("GeoLite2-ASN-Test.mmdb"),
        )
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
        let geo = GeoIp::open(&shared("GeoLite2-Country-Test.mmdb"), "")
            .expect("opens")
            .expect("configured");
        assert_eq!(
            geo.country_code("81.2.69.142".parse().expect("ip")),
            Some("GB")
        );
        let asn = GeoIp::open(&shared("GeoLite2-ASN-Test.mmdb"), "")
            .expect("opens")
            .expect("configured");
        assert_eq!(asn.lookup("1.128.0.1".parse().expect("ip")).asn, Some(1221));
        assert_eq!(asn.country_code("81.2.69.142".parse().expect("ip")), None);
    }

    #[test]
    fn missing_is_fine_and_corrupt_is_an_error() {
        assert!(GeoIp::open("/nonexistent/GeoLite2-City.mmdb", "")
            .expect("missing is not an error")
            .is_none());
        assert!(GeoIp::open("", "").expect("none configured").is_none());
        for broken in [
            "GeoIP2-City-Test-Broken-Double-Format.mmdb",
            "MaxMind-DB-test-broken-search-tree-24.mmdb",
        ] {
            let err = GeoIp::open(&shared(broken), "").expect_err(broken);
            assert!(err.contains(broken), "{err}");
        }
        let not_mmdb = format!("{}/Cargo.toml", env!("CARGO_MANIFEST_DIR"));
        assert!(GeoIp::open(&not_mmdb, "").is_err());
    }
}
