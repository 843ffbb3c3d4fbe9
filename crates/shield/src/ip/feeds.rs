//! Threat-intelligence feeds: lists of IPs and networks from files or URLs, refreshed in the
//! background, looked up on every request.
//!
//! Formats: one IP or CIDR per line, `#` and `;` comments (FireHOL netsets, Spamhaus DROP
//! `1.2.3.0/24 ; SBL123`, plain lists); anything after the first word is ignored, unreadable
//! lines are skipped and counted. A source is `path`, `http(s)://...`, `name=source`, or
//! `name@penalty=source` for a feed whose listed addresses only lose reputation.
//!
//! A refresh uses a conditional GET (`If-None-Match` / `If-Modified-Since`); a failure keeps
//! the last good list and is logged; a list that shrinks by more than 90 % at once is treated
//! as a failure (a truncated download must not unblock everything).
//!
//! All feeds' networks live in two longest-prefix tables (refusing feeds and penalty feeds)
//! whose values are bit sets of feeds, rebuilt off the request path and swapped in; a lookup
//! is a few hash probes whatever the number of entries.

use std::net::IpAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use ipnet::IpNet;

use super::prefix_table::PrefixTable;
use super::{parse_network, reputation::Reputation};
use crate::decision::{BlockReason, Verdict};
use crate::pipeline::{Check, Guard};
use crate::request::RequestFacts;

/// At most this many feeds (one bit each).
pub const MAX_FEEDS: usize = 64;
/// A refresh that keeps less than this share of the previous list is refused.
pub const MIN_KEPT_SHARE: f64 = 0.1;
/// What a penalty feed costs a listed address, once.
pub const FEED_PENALTY: f64 = 30.0;

/// One configured feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedSource {
    /// Its name (in responses, logs and assessments).
    pub name: String,
    /// A file path or an http(s) URL.
    pub location: String,
    /// True: listed addresses only lose reputation; false: they are refused.
    pub penalty_only: bool,
}

impl FeedSource {
    /// Reads `name=source`, `name@penalty=source` or a bare source (named after its last path
    /// segment).
    pub fn parse(text: &str) -> Result<FeedSource, String> {
        let text = text.trim();
        let (name, location) = match text.split_once('=') {
            Some((name, location)) if !name.contains('/') && !name.contains(':') => {
                (name.trim(), location.trim())
            }
            _ => ("", text),
        };
        if location.is_empty() {
            return Err(format!("feed {text:?}: no source"));
        }
        let (name, penalty_only) = match name.strip_suffix("@penalty") {
            Some(base) => (base, true),
            None => (name, false),
        };
        let name = if name.is_empty() {
            location
                .trim_end_matches('/')
                .rsplit('/')
                .next()
                .unwrap_or(location)
                .to_string()
        } else {
            name.to_string()
        };
        Ok(FeedSource {
            name,
            location: location.to_string(),
            penalty_only,
        })
    }
}

/// Reads a feed's text into networks; returns them and how many lines were unreadable.
pub fn parse_feed(text: &str) -> (Vec<IpNet>, usize) {
    let mut networks = Vec::new();
    let mut bad = 0;
    for line in text.lines() {
        let line = line.split(['#', ';']).next().unwrap_or("").trim();
        let Some(word) = line.split_whitespace().next() else {
            continue;
        };
        match parse_network(word) {
            Ok(network) => networks.push(network),
            Err(_) => bad += 1,
        }
    }
    (networks, bad)
}

#[derive(Debug, Default, Clone)]
struct FeedState {
    networks: Vec<IpNet>,
    etag: Option<String>,
    last_modified: Option<String>,
    loaded: bool,
    last_error: Option<String>,
}

#[derive(Default)]
struct Tables {
    refuse: PrefixTable<u64>,
    penalty: PrefixTable<u64>,
}

type HttpsClient = Client<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    Empty<Bytes>,
>;

/// The feeds, their lists, and the lookup tables built from them.
pub struct Feeds {
    sources: Vec<FeedSource>,
    states: Mutex<Vec<FeedState>>,
    tables: RwLock<Arc<Tables>>,
    client: HttpsClient,
}

impl std::fmt::Debug for Feeds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Feeds")
            .field("sources", &self.sources)
            .finish_non_exhaustive()
    }
}

/// A feed's state for the status.
#[derive(Debug, Clone, serde::Serialize, PartialEq, Eq)]
pub struct FeedStatus {
    /// Its name.
    pub name: String,
    /// Networks in its current list.
    pub entries: usize,
    /// Whether a list was ever loaded.
    pub loaded: bool,
    /// Whether it refuses (`block`) or only lowers reputation (`penalty`).
    pub action: &'static str,
    /// The last refresh's error, if it failed.
    pub last_error: Option<String>,
}

impl Feeds {
    /// Feeds from the configured sources (validated).
    pub fn new(sources: &[String]) -> Result<Arc<Feeds>, String> {
        let sources: Vec<FeedSource> = sources
            .iter()
            .map(|s| FeedSource::parse(s))
            .collect::<Result<_, _>>()?;
        if sources.len() > MAX_FEEDS {
            return Err(format!("at most {MAX_FEEDS} threat feeds"));
        }
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_webpki_roots()
            .https_or_http()
            .enable_http1()
            .build();
        let client = Client::builder(TokioExecutor::new()).build(https);
        Ok(Arc::new(Feeds {
            states: Mutex::new(vec![FeedState::default(); sources.len()]),
            sources,
            tables: RwLock::new(Arc::new(Tables::default())),
            client,
        }))
    }

    fn tables(&self) -> Arc<Tables> {
        self.tables
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The refusing feed that lists `ip`, if any.
    pub fn refusing_feed(&self, ip: IpAddr) -> Option<&str> {
        let tables = self.tables();
        let (_, bits) = tables.refuse.longest_match(ip)?;
        self.name_of_first(*bits)
    }

    /// Whether a penalty feed lists `ip`.
    pub fn penalised(&self, ip: IpAddr) -> bool {
        self.tables().penalty.longest_match(ip).is_some()
    }

    fn name_of_first(&self, bits: u64) -> Option<&str> {
        (0..self.sources.len())
            .find(|i| bits & (1 << i) != 0)
            .map(|i| self.sources[i].name.as_str())
    }

    /// Every feed that lists `ip` (in any of its networks).
    pub fn feeds_listing(&self, ip: IpAddr) -> Vec<String> {
        let tables = self.tables();
        let mut bits = 0u64;
        for table in [&tables.refuse, &tables.penalty] {
            // Visit every matching prefix length, not just the longest.
            table.longest_match_where(ip, |b| {
                bits |= *b;
                false
            });
        }
        (0..self.sources.len())
            .filter(|i| bits & (1 << i) != 0)
            .map(|i| self.sources[i].name.clone())
            .collect()
    }

    /// Each feed's state.
    pub fn status(&self) -> Vec<FeedStatus> {
        let states = self.states.lock().unwrap_or_else(|e| e.into_inner());
        self.sources
            .iter()
            .zip(states.iter())
            .map(|(source, state)| FeedStatus {
                name: source.name.clone(),
                entries: state.networks.len(),
                loaded: state.loaded,
                action: if source.penalty_only {
                    "penalty"
                } else {
                    "block"
                },
                last_error: state.last_error.clone(),
            })
            .collect()
    }

    /// Refreshes every feed once; returns how many failed.
    pub async fn refresh_all(&self) -> usize {
        let mut failed = 0;
        for index in 0..self.sources.len() {
            if self.refresh(index).await.is_err() {
                failed += 1;
            }
        }
        self.rebuild();
        failed
    }

    async fn refresh(&self, index: usize) -> Result<(), ()> {
        let source = &self.sources[index];
        let (etag, modified, previous) = {
            let states = self.states.lock().unwrap_or_else(|e| e.into_inner());
            let s = &states[index];
            (s.etag.clone(), s.last_modified.clone(), s.networks.len())
        };
        let fetched =
            if source.location.starts_with("http://") || source.location.starts_with("https://") {
                self.fetch(&source.location, etag.as_deref(), modified.as_deref())
                    .await
            } else {
                tokio::fs::read_to_string(&source.location)
                    .await
                    .map(|text| Fetched::New {
                        text,
                        etag: None,
                        last_modified: None,
                    })
                    .map_err(|e| format!("cannot read {}: {e}", source.location))
            };
        let outcome = match fetched {
            Ok(Fetched::Unchanged) => Ok(None),
            Ok(Fetched::New {
                text,
                etag,
                last_modified,
            }) => {
                let (networks, bad) = parse_feed(&text);
                if previous > 0 && (networks.len() as f64) < previous as f64 * MIN_KEPT_SHARE {
                    Err(format!(
                        "the new list has {} entries against {previous}: a shrink over 90 % is treated as a failed download",
                        networks.len()
                    ))
                } else {
                    Ok(Some((networks, bad, etag, last_modified)))
                }
            }
            Err(e) => Err(e),
        };
        let mut states = self.states.lock().unwrap_or_else(|e| e.into_inner());
        let state = &mut states[index];
        match outcome {
            Ok(None) => {
                state.last_error = None;
                tracing::debug!(target: "security.ip_manager", "threat feed {} unchanged", source.name);
                Ok(())
            }
            Ok(Some((networks, bad, etag, last_modified))) => {
                tracing::info!(
                    target: "security.ip_manager",
                    "threat feed {} loaded: {} networks{}",
                    source.name,
                    networks.len(),
                    if bad > 0 { format!(" ({bad} unreadable lines skipped)") } else { String::new() }
                );
                state.networks = networks;
                state.etag = etag;
                state.last_modified = last_modified;
                state.loaded = true;
                state.last_error = None;
                Ok(())
            }
            Err(e) => {
                tracing::warn!(
                    target: "security.ip_manager",
                    "threat feed {} refresh failed, keeping the last good list ({} networks): {e}",
                    source.name,
                    state.networks.len()
                );
                state.last_error = Some(e);
                Err(())
            }
        }
    }

    async fn fetch(
        &self,
        url: &str,
        etag: Option<&str>,
        modified: Option<&str>,
    ) -> Result<Fetched, String> {
        let mut request = http::Request::get(url);
        if let Some(etag) = etag {
            request = request.header(http::header::IF_NONE_MATCH, etag);
        }
        if let Some(modified) = modified {
            request = request.header(http::header::IF_MODIFIED_SINCE, modified);
        }
        let request = request
            .header(
                http::header::USER_AGENT,
                concat!("mcp-shield/", env!("CARGO_PKG_VERSION")),
            )
            .body(Empty::<Bytes>::new())
            .map_err(|e| format!("bad feed URL {url}: {e}"))?;
        let response = tokio::time::timeout(Duration::from_secs(30), self.client.request(request))
            .await
            .map_err(|_| format!("{url}: no answer within 30 s"))?
            .map_err(|e| format!("{url}: {e}"))?;
        let status = response.status();
        if status == http::StatusCode::NOT_MODIFIED {
            return Ok(Fetched::Unchanged);
        }
        if !status.is_success() {
            return Err(format!("{url}: HTTP {status}"));
        }
        let header = |name| {
            response
                .headers()
                .get(name)
                .and_then(|v: &http::HeaderValue| v.to_str().ok())
                .map(str::to_string)
        };
        let etag = header(http::header::ETAG);
        let last_modified = header(http::header::LAST_MODIFIED);
        // Feeds are lists of addresses: 64 MiB is far beyond any real one.
        let limited = http_body_util::Limited::new(response.into_body(), 64 << 20);
        let body = tokio::time::timeout(Duration::from_secs(120), limited.collect())
            .await
            .map_err(|_| format!("{url}: download took over 120 s"))?
            .map_err(|e| format!("{url}: {e}"))?
            .to_bytes();
        let text = String::from_utf8_lossy(&body).into_owned();
        Ok(Fetched::New {
            text,
            etag,
            last_modified,
        })
    }

    /// Builds the lookup tables from the current lists and swaps them in.
    fn rebuild(&self) {
        let mut tables = Tables::default();
        {
            let states = self.states.lock().unwrap_or_else(|e| e.into_inner());
            for (index, (source, state)) in self.sources.iter().zip(states.iter()).enumerate() {
                let table = if source.penalty_only {
                    &mut tables.penalty
                } else {
                    &mut tables.refuse
                };
                for network in &state.networks {
                    let bits = table.get_exact(network).copied().unwrap_or(0) | (1 << index);
                    table.insert(*network, bits);
                }
            }
        }
        *self.tables.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(tables);
    }

    /// Refreshes every `every`, in the background, for as long as the runtime runs.
    pub fn spawn_refresh(self: &Arc<Self>, runtime: &tokio::runtime::Handle, every: Duration) {
        let feeds = Arc::downgrade(self);
        runtime.spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let Some(feeds) = feeds.upgrade() else { return };
                feeds.refresh_all().await;
            }
        });
    }
}

enum Fetched {
    Unchanged,
    New {
        text: String,
        etag: Option<String>,
        last_modified: Option<String>,
    },
}

/// Refuses addresses on a refusing feed; lowers the reputation of those on a penalty feed.
#[derive(Debug)]
pub struct FeedGuard {
    feeds: Arc<Feeds>,
    reputation: Option<Arc<Reputation>>,
}

impl FeedGuard {
    /// A guard over `feeds`.
    pub fn new(feeds: Arc<Feeds>, reputation: Option<Arc<Reputation>>) -> Self {
        FeedGuard { feeds, reputation }
    }
}

impl Guard for FeedGuard {
    fn name(&self) -> &'static str {
        "threat_feeds"
    }

    fn check<'a>(&'a self, facts: &'a RequestFacts) -> Check<'a> {
        if let Some(name) = self.feeds.refusing_feed(facts.client_ip) {
            return Check::Ready(Ok(Verdict::Block(BlockReason::IpBlocked {
                detail: format!("IP is listed by threat feed {name}"),
            })));
        }
        if let Some(reputation) = &self.reputation {
            if self.feeds.penalised(facts.client_ip) {
                reputation.penalise_once_for_feeds(facts.client_ip, FEED_PENALTY);
            }
        }
        Check::Ready(Ok(Verdict::pass()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_and_formats() {
        let s = FeedSource::parse("spamhaus=https://www.spamhaus.org/drop/drop.txt").expect("ok");
        assert_eq!((s.name.as_str(), s.penalty_only), ("spamhaus", false));
        let s = FeedSource::parse("tor@penalty=/var/lib/feeds/tor.txt").expect("ok");
        assert_eq!(
            (s.name.as_str(), s.location.as_str(), s.penalty_only),
            ("tor", "/var/lib/feeds/tor.txt", true)
        );
        let s = FeedSource::parse("https://iplists.firehol.org/files/firehol_level1.netset")
            .expect("ok");
        assert_eq!(s.name, "firehol_level1.netset");
        let (nets, bad) = parse_feed(
            "# FireHOL\n1.2.3.0/24\n; Spamhaus\n5.6.7.0/24 ; SBL123\n9.9.9.9 # host\n2001:db8::/32\nnot-an-ip\n\n",
        );
        assert_eq!(nets.len(), 4);
        assert_eq!(bad, 1);
    }
}
