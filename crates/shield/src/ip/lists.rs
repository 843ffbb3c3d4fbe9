//! The operator's allow and deny lists: IPs and networks, IPv4 and IPv6, each entry with a
//! reason and an optional expiry.

use std::net::IpAddr;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use ipnet::IpNet;
use serde::Serialize;

use super::prefix_table::PrefixTable;
use crate::clock::Clock;

/// Which list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ListKind {
    /// Skips every guard.
    Whitelist,
    /// Refused with 403 `ip_blocked`.
    Blacklist,
}

impl ListKind {
    /// `whitelist` or `blacklist`.
    pub fn as_str(self) -> &'static str {
        match self {
            ListKind::Whitelist => "whitelist",
            ListKind::Blacklist => "blacklist",
        }
    }
}

/// One list entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ListEntry {
    /// Why it is there.
    pub reason: String,
    /// When it was added (Unix ms).
    pub added_at_ms: u64,
    /// When it stops applying (Unix ms); `None` for ever.
    pub expires_at_ms: Option<u64>,
}

impl ListEntry {
    fn live_at(&self, now_ms: u64) -> bool {
        self.expires_at_ms.is_none_or(|t| t > now_ms)
    }
}

/// Why an add was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ListError {
    /// The list already holds `ip_list_max_entries` networks.
    #[error(
        "the {list} is full ({cap} entries); remove entries or raise SECURITY_IP_LIST_MAX_ENTRIES"
    )]
    Full {
        /// Which list.
        list: &'static str,
        /// Its cap.
        cap: usize,
    },
}

/// A match: the network that holds the address and its entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ListMatch {
    /// The most specific live network that holds the address.
    pub network: IpNet,
    /// Its entry.
    #[serde(flatten)]
    pub entry: ListEntry,
}

/// The whitelist and the blacklist, safe to share between threads. Reads take a read lock on
/// one list and do a few hash probes; expired entries are skipped at lookup and swept when a full list needs room.
pub struct IpLists {
    whitelist: RwLock<PrefixTable<ListEntry>>,
    blacklist: RwLock<PrefixTable<ListEntry>>,
    cap: usize,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for IpLists {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IpLists")
            .field("whitelist", &self.len(ListKind::Whitelist))
            .field("blacklist", &self.len(ListKind::Blacklist))
            .field("cap", &self.cap)
            .finish()
    }
}

impl IpLists {
    /// Empty lists holding at most `cap` entries each.
    pub fn new(cap: usize, clock: Arc<dyn Clock>) -> Self {
        IpLists {
            whitelist: RwLock::new(PrefixTable::new()),
            blacklist: RwLock::new(PrefixTable::new()),
            cap,
            clock,
        }
    }

    fn table(&self, list: ListKind) -> &RwLock<PrefixTable<ListEntry>> {
        match list {
            ListKind::Whitelist => &self.whitelist,
            ListKind::Blacklist => &self.blacklist,
        }
    }

    // A panic while holding the lock cannot leave a table half-updated (every write is one
    // map operation), so a poisoned lock's data is still sound to use.
    fn read(&self, list: ListKind) -> RwLockReadGuard<'_, PrefixTable<ListEntry>> {
        self.table(list).read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self, list: ListKind) -> RwLockWriteGuard<'_, PrefixTable<ListEntry>> {
        self.table(list).write().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds or replaces `network` with a reason and an optional time to live.
    pub fn add(
        &self,
        list: ListKind,
        network: IpNet,
        reason: impl Into<String>,
        ttl_seconds: Option<u64>,
    ) -> Result<ListEntry, ListError> {
        let now = self.clock.unix_ms();
        let entry = ListEntry {
            reason: reason.into(),
            added_at_ms: now,
            expires_at_ms: ttl_seconds.map(|s| now.saturating_add(s.saturating_mul(1000))),
        };
        self.insert_entry(list, network, entry.clone())?;
        Ok(entry)
    }

    /// Puts an entry made elsewhere (another instance) in place as it is, replacing any for
    /// the same network.
    pub fn insert_entry(
        &self,
        list: ListKind,
        network: IpNet,
        entry: ListEntry,
    ) -> Result<(), ListError> {
        let now = self.clock.unix_ms();
        let mut table = self.write(list);
        if table.len() >= self.cap && table.get_exact(&network).is_none() {
            table.retain(|_, e| e.live_at(now));
            if table.len() >= self.cap {
                return Err(ListError::Full {
                    list: list.as_str(),
                    cap: self.cap,
                });
            }
        }
        table.insert(network, entry);
        Ok(())
    }

    /// Replaces a whole list (a reload from the shared store); expired entries are left out,
    /// and at most the cap is kept.
    pub fn replace_all(&self, list: ListKind, entries: Vec<(IpNet, ListEntry)>) {
        let now = self.clock.unix_ms();
        let mut table = PrefixTable::new();
        for (network, entry) in entries.into_iter().filter(|(_, e)| e.live_at(now)) {
            if table.len() >= self.cap {
                break;
            }
            table.insert(network, entry);
        }
        *self.write(list) = table;
    }

    /// The live entry for exactly `network`.
    pub fn lookup_exact(&self, list: ListKind, network: &IpNet) -> Option<ListEntry> {
        let now = self.clock.unix_ms();
        self.read(list)
            .get_exact(network)
            .filter(|e| e.live_at(now))
            .cloned()
    }

    /// Removes exactly `network`; true when it was there (and not yet expired).
    pub fn remove(&self, list: ListKind, network: &IpNet) -> bool {
        let now = self.clock.unix_ms();
        self.write(list)
            .remove(network)
            .is_some_and(|e| e.live_at(now))
    }

    /// The most specific live entry holding `ip`.
    pub fn lookup(&self, list: ListKind, ip: IpAddr) -> Option<ListMatch> {
        let table = self.read(list);
        if table.is_empty() {
            return None;
        }
        let now = self.clock.unix_ms();
        table
            .longest_match_where(ip, |e| e.live_at(now))
            .map(|(network, entry)| ListMatch {
                network,
                entry: entry.clone(),
            })
    }

    /// Whether a live entry holds `ip`, without copying the entry: the hot path.
    pub fn contains(&self, list: ListKind, ip: IpAddr) -> bool {
        let table = self.read(list);
        if table.is_empty() {
            return false;
        }
        let now = self.clock.unix_ms();
        table.longest_match_where(ip, |e| e.live_at(now)).is_some()
    }

    /// Number of entries, expired ones not yet swept included.
    pub fn len(&self, list: ListKind) -> usize {
        self.read(list).len()
    }

    /// Drops expired entries from both lists; returns how many went.
    pub fn purge_expired(&self) -> usize {
        let now = self.clock.unix_ms();
        let mut removed = 0;
        for list in [ListKind::Whitelist, ListKind::Blacklist] {
            let mut table = self.write(list);
            let before = table.len();
            table.retain(|_, e| e.live_at(now));
            removed += before - table.len();
        }
        removed
    }

    /// Up to `limit` live entries of a list.
    pub fn entries(&self, list: ListKind, limit: usize) -> Vec<ListMatch> {
        let now = self.clock.unix_ms();
        self.read(list)
            .iter()
            .filter(|(_, e)| e.live_at(now))
            .take(limit)
            .map(|(network, entry)| ListMatch {
                network,
                entry: entry.clone(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use std::time::Duration;

    #[test]
    fn ttl_expires_and_falls_back_to_the_wider_entry() {
        let clock = ManualClock::starting_at(1_000_000);
        let lists = IpLists::new(10, clock.clone());
        let host: IpNet = "10.0.0.5/32".parse().expect("net");
        let wide: IpNet = "10.0.0.0/8".parse().expect("net");
        lists
            .add(ListKind::Blacklist, wide, "wide", None)
            .expect("add");
        lists
            .add(ListKind::Blacklist, host, "brief", Some(60))
            .expect("add");
        let ip: IpAddr = "10.0.0.5".parse().expect("ip");
        assert_eq!(
            lists
                .lookup(ListKind::Blacklist, ip)
                .expect("hit")
                .entry
                .reason,
            "brief"
        );
        clock.advance(Duration::from_secs(61));
        assert_eq!(
            lists
                .lookup(ListKind::Blacklist, ip)
                .expect("hit")
                .entry
                .reason,
            "wide"
        );
        assert_eq!(lists.purge_expired(), 1);
        assert!(!lists.remove(ListKind::Blacklist, &host));
        assert!(lists.remove(ListKind::Blacklist, &wide));
        assert!(!lists.contains(ListKind::Blacklist, ip));
    }

    #[test]
    fn cap_is_enforced_after_sweeping_expired_entries() {
        let clock = ManualClock::starting_at(0);
        let lists = IpLists::new(2, clock.clone());
        let net = |s: &str| s.parse::<IpNet>().expect("net");
        lists
            .add(ListKind::Whitelist, net("1.1.1.1/32"), "a", Some(1))
            .expect("add");
        lists
            .add(ListKind::Whitelist, net("1.1.1.2/32"), "b", None)
            .expect("add");
        assert!(matches!(
            lists.add(ListKind::Whitelist, net("1.1.1.3/32"), "c", None),
            Err(ListError::Full { cap: 2, .. })
        ));
        // Replacing an existing entry is not growth.
        lists
            .add(ListKind::Whitelist, net("1.1.1.2/32"), "b2", None)
            .expect("replace");
        clock.advance(Duration::from_secs(2));
        lists
            .add(ListKind::Whitelist, net("1.1.1.3/32"), "c", None)
            .expect("room after expiry");
        assert_eq!(lists.len(ListKind::Whitelist), 2);
    }
}
