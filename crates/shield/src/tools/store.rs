//! Where pins are kept beyond this process: `tool-pins.json` in `SECURITY_DATA_DIR` (written
//! atomically after every change), or Redis, shared by every instance:
//!
//! - `{prefix}tool-pins` (hash): `scope \t name` → pin JSON. The first instance to see a tool
//!   pins it (`HSETNX`); an approval overwrites (`HSET`).
//! - `{prefix}tool-pins:settled` (set): scopes listed to their last page.
//! - `{prefix}tool-refusals` (hash): `scope \t name` → refusal JSON, so a call that reaches an
//!   instance which never saw the list is refused too. Each instance reads it back once a
//!   second (it is small: only what is withheld now).
//!
//! Before judging a tool list, the pins of its tools are read back (`HMGET`, one round trip
//! per list response): a pin or approval made by another instance wins over this one's.
//! Without Redis (or while it is down) the local book decides alone.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use super::pins::{Pin, PinBook, PinFile, Refusal};
use crate::state::redis::RedisState;

/// The file in `SECURITY_DATA_DIR`.
const FILE_NAME: &str = "tool-pins.json";

pub(super) enum PinStore {
    Memory,
    File(PathBuf),
    Redis(Arc<RedisState>),
}

/// Reads an operator's pin file.
pub(super) fn read_pin_file(path: &Path) -> Result<PinFile, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_slice(&bytes)
        .map_err(|e| format!("{}: not a valid pin file: {e}", path.display()))
}

fn field(scope: &str, name: &str) -> String {
    format!("{scope}\t{name}")
}

impl PinStore {
    pub(super) fn new(data_dir: Option<&Path>, redis: Option<Arc<RedisState>>) -> PinStore {
        match (redis, data_dir) {
            (Some(redis), _) => PinStore::Redis(redis),
            (None, Some(dir)) => PinStore::File(dir.join(FILE_NAME)),
            (None, None) => PinStore::Memory,
        }
    }

    /// `memory`, `file` or `redis`.
    pub(super) fn name(&self) -> &'static str {
        match self {
            PinStore::Memory => "memory",
            PinStore::File(_) => "file",
            PinStore::Redis(_) => "redis",
        }
    }

    /// The pins saved in the data folder, if there are any.
    pub(super) fn load_file(&self) -> Result<Option<PinFile>, String> {
        let PinStore::File(path) = self else {
            return Ok(None);
        };
        match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| format!("{}: not a valid pin file: {e}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("{}: {e}", path.display())),
        }
    }

    /// Follows refusals made by other instances (Redis only).
    pub(super) fn start(&self, owner: Weak<super::ToolIntegrity>) {
        let PinStore::Redis(redis) = self else {
            return;
        };
        let redis = redis.clone();
        let runtime = redis.runtime().clone();
        runtime.spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let Some(owner) = owner.upgrade() else {
                    return;
                };
                if !redis.is_up() {
                    continue;
                }
                let Ok(mut connection) = redis.connection() else {
                    continue;
                };
                let stored: Result<Vec<(String, String)>, _> = redis
                    .call(
                        redis::cmd("HGETALL")
                            .arg(redis.key(format_args!("tool-refusals")))
                            .query_async(&mut connection),
                    )
                    .await;
                let Ok(stored) = stored else { continue };
                owner
                    .book()
                    .replace_refusals(stored.into_iter().filter_map(|(field, value)| {
                        let (scope, name) = field.split_once('\t')?;
                        let stored: StoredRefusal = serde_json::from_str(&value).ok()?;
                        Some((
                            scope.to_string(),
                            name.to_string(),
                            stored.refusal,
                            stored.pending,
                        ))
                    }));
                owner.note_withheld();
            }
        });
    }

    /// Reads back the pins of `names` in `scope` (Redis only); whether a pin changed.
    pub(super) async fn pull(&self, scope: &str, names: &[&str], book: &Mutex<PinBook>) -> bool {
        let PinStore::Redis(redis) = self else {
            return false;
        };
        if names.is_empty() || !redis.is_up() {
            return false;
        }
        let Ok(mut connection) = redis.connection() else {
            return false;
        };
        let mut pipe = redis::pipe();
        let mut hmget = redis::cmd("HMGET");
        hmget.arg(redis.key(format_args!("tool-pins")));
        for name in names {
            hmget.arg(field(scope, name));
        }
        pipe.add_command(hmget);
        pipe.cmd("SISMEMBER")
            .arg(redis.key(format_args!("tool-pins:settled")))
            .arg(scope);
        let answer: Result<(Vec<Option<String>>, bool), _> =
            redis.call(pipe.query_async(&mut connection)).await;
        let Ok((pins, settled)) = answer else {
            return false;
        };
        let mut book = book.lock().unwrap_or_else(|e| e.into_inner());
        let mut changed = false;
        for (name, pin) in names.iter().zip(pins) {
            let Some(pin) = pin.and_then(|p| serde_json::from_str::<Pin>(&p).ok()) else {
                continue;
            };
            if book.pin(scope, name).is_none_or(|p| p.hash != pin.hash) {
                book.set_pin(scope, name, pin, settled);
                changed = true;
            }
        }
        if settled {
            book.settle(scope);
        }
        changed
    }

    /// Saves what a list changed: new pins (first use wins: `HSETNX`), the scope settled,
    /// refusals set or lifted.
    pub(super) async fn push(
        &self,
        scope: &str,
        names: &[&str],
        refusals: &[(String, Option<Refusal>)],
        book: &Mutex<PinBook>,
    ) {
        match self {
            PinStore::Memory => {}
            PinStore::File(path) => save_file(path, book),
            PinStore::Redis(redis) => {
                let (pins, settled) = {
                    let book = book.lock().unwrap_or_else(|e| e.into_inner());
                    let pins: Vec<(String, String)> = names
                        .iter()
                        .filter_map(|name| {
                            let pin = book.pin(scope, name)?;
                            Some((field(scope, name), serde_json::to_string(pin).ok()?))
                        })
                        .collect();
                    (pins, book.is_settled(scope))
                };
                let mut pipe = redis::pipe();
                for (field, pin) in &pins {
                    pipe.hset_nx(redis.key(format_args!("tool-pins")), field, pin)
                        .ignore();
                }
                if settled {
                    pipe.sadd(redis.key(format_args!("tool-pins:settled")), scope)
                        .ignore();
                }
                let refusals: Vec<(String, Option<String>)> = {
                    let book = book.lock().unwrap_or_else(|e| e.into_inner());
                    refusals
                        .iter()
                        .map(|(name, refusal)| {
                            let stored = refusal.as_ref().and_then(|refusal| {
                                serde_json::to_string(&StoredRefusal {
                                    refusal: refusal.clone(),
                                    pending: book.pending(scope, name).cloned(),
                                })
                                .ok()
                            });
                            (name.clone(), stored)
                        })
                        .collect()
                };
                write_refusals(&mut pipe, redis, scope, &refusals);
                run(redis, pipe).await;
            }
        }
    }

    /// Saves approvals (they overwrite pins and lift refusals everywhere).
    pub(super) async fn approved(&self, approved: &[(String, String)], book: &Mutex<PinBook>) {
        match self {
            PinStore::Memory => {}
            PinStore::File(path) => save_file(path, book),
            PinStore::Redis(redis) => {
                let pins: Vec<(String, String)> = {
                    let book = book.lock().unwrap_or_else(|e| e.into_inner());
                    approved
                        .iter()
                        .filter_map(|(scope, name)| {
                            let pin = book.pin(scope, name)?;
                            Some((field(scope, name), serde_json::to_string(pin).ok()?))
                        })
                        .collect()
                };
                let mut pipe = redis::pipe();
                for (field, pin) in &pins {
                    pipe.hset(redis.key(format_args!("tool-pins")), field, pin)
                        .ignore();
                    pipe.hdel(redis.key(format_args!("tool-refusals")), field)
                        .ignore();
                }
                run(redis, pipe).await;
            }
        }
    }
}

/// A refusal as Redis keeps it: with the definition waiting for approval, so an instance that
/// never saw that definition can approve it.
#[derive(serde::Serialize, serde::Deserialize)]
struct StoredRefusal {
    refusal: Refusal,
    #[serde(default)]
    pending: Option<Pin>,
}

fn write_refusals(
    pipe: &mut redis::Pipeline,
    redis: &RedisState,
    scope: &str,
    refusals: &[(String, Option<String>)],
) {
    for (name, stored) in refusals {
        let key = redis.key(format_args!("tool-refusals"));
        match stored {
            Some(value) => pipe.hset(key, field(scope, name), value).ignore(),
            None => pipe.hdel(key, field(scope, name)).ignore(),
        };
    }
}

async fn run(redis: &Arc<RedisState>, pipe: redis::Pipeline) {
    if !redis.is_up() {
        return;
    }
    let Ok(mut connection) = redis.connection() else {
        return;
    };
    if let Err(e) = redis.call(pipe.query_async::<()>(&mut connection)).await {
        tracing::warn!(target: "security.tools", "tool pins not saved to Redis: {e}");
    }
}

/// Writes the book to the data folder atomically (a temporary file, synced, renamed).
fn save_file(path: &Path, book: &Mutex<PinBook>) {
    let file = book.lock().unwrap_or_else(|e| e.into_inner()).export();
    let write = || -> std::io::Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let temporary = path.with_extension(format!("json.{}.tmp", std::process::id()));
        let bytes = serde_json::to_vec_pretty(&file).map_err(std::io::Error::other)?;
        {
            use std::io::Write;
            let mut out = std::fs::File::create(&temporary)?;
            out.write_all(&bytes)?;
            out.sync_all()?;
        }
        std::fs::rename(&temporary, path)
    };
    if let Err(e) = write() {
        tracing::warn!(target: "security.tools", "tool pins not saved to {}: {e}", path.display());
    }
}
