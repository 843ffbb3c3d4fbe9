//! Keeping the lists, temporary blocks and reputation across restarts in memory mode
//! (`SECURITY_DATA_DIR`; with Redis, Redis keeps the lists and the reputation, and the folder
//! is not used).
//!
//! One JSON file, `ip-state.json`, written atomically (a temporary file in the same folder,
//! synced, then renamed over the old one), so a crash mid-write leaves the previous state.
//! Written every ten seconds when something changed, and on [`crate::SecuritySystem::persist`]
//! (the gateway calls it at shutdown). Reputation records are stored by keyed hash when
//! `SECURITY_IP_HASH_KEY` is set (found again when the address next comes), else by address.
//! List entries, temporary blocks included, are networks the lists must enforce at start, so
//! they are stored as networks: protect the folder as you would logs. Records untouched for
//! `SECURITY_DATA_RETENTION` seconds are dropped at load and at save.

use std::path::{Path, PathBuf};

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::reputation::SavedRecord;
use super::{parse_network, IpLists, ListEntry, ListKind};

/// The file's contents.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Saved {
    /// Format version.
    pub version: u32,
    /// Whitelist entries.
    pub whitelist: Vec<SavedEntry>,
    /// Blacklist entries (temporary blocks included).
    pub blacklist: Vec<SavedEntry>,
    /// Reputation records.
    #[serde(default)]
    pub reputation: Vec<SavedRecord>,
}

/// One list entry.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SavedEntry {
    /// The network.
    pub network: String,
    /// Why.
    pub reason: String,
    /// When added (Unix ms).
    pub added_at_ms: u64,
    /// When it expires (Unix ms).
    pub expires_at_ms: Option<u64>,
}

/// The state file in `dir`.
pub fn state_file(dir: &Path) -> PathBuf {
    dir.join("ip-state.json")
}

/// The lists as saved entries.
pub fn entries_of(lists: &IpLists, list: ListKind) -> Vec<SavedEntry> {
    lists
        .entries(list, usize::MAX)
        .into_iter()
        .map(|m| SavedEntry {
            network: m.network.to_string(),
            reason: m.entry.reason,
            added_at_ms: m.entry.added_at_ms,
            expires_at_ms: m.entry.expires_at_ms,
        })
        .collect()
}

/// Puts saved entries back on a list (expired ones are skipped by the list itself).
pub fn restore(lists: &IpLists, list: ListKind, entries: &[SavedEntry]) -> usize {
    let mut restored = 0;
    for e in entries {
        let Ok(network): Result<IpNet, _> = parse_network(&e.network) else {
            continue;
        };
        let entry = ListEntry {
            reason: e.reason.clone(),
            added_at_ms: e.added_at_ms,
            expires_at_ms: e.expires_at_ms,
        };
        if lists.insert_entry(list, network, entry).is_ok() {
            restored += 1;
        }
    }
    restored
}

/// Writes `saved` atomically.
pub fn write(dir: &Path, saved: &Saved) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let target = state_file(dir);
    let temporary = dir.join(format!(".ip-state.json.{}.tmp", std::process::id()));
    let bytes = serde_json::to_vec(saved).map_err(std::io::Error::other)?;
    {
        use std::io::Write;
        let mut file = std::fs::File::create(&temporary)?;
        file.write_all(&bytes)?;
        file.sync_all()?;
    }
    std::fs::rename(&temporary, &target)
}

/// Reads the state file; `Ok(None)` when there is none yet.
pub fn read(dir: &Path) -> Result<Option<Saved>, String> {
    let path = state_file(dir);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| format!("{}: not a valid state file: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}
