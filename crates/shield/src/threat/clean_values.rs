//! Short values recently judged clean, so that what every request repeats (its `Host`,
//! `User-Agent` and `Accept` headers, a tool's name, an enum-like argument, the path) is not
//! decoded and judged again each time. Field values are remembered in their
//! [`field_context`]; the scanner's checks of the whole request's user agent and path, in
//! contexts of their own.
//!
//! What is remembered is the value itself, byte for byte, with what its judgement depends on
//! besides the bytes (where it sits, whether the server fetches it, whether it names an
//! upload): the built-in detectors are pure functions of those, so a remembered value gets
//! the verdict it would get if judged again. The hash only picks a slot; a hit compares the
//! whole value, so no crafted value can pass as another. Only clean values are remembered:
//! a value with any finding is judged every time, and an attacker who repeats a benign value
//! gains nothing but a faster answer.
//!
//! Bounded: [`SLOTS`] slots of at most [`MAX_VALUE`] bytes each, direct-mapped (a value's
//! hash picks its one slot; the newest clean value there replaces the older). Long values
//! (prompts, code, documents) are never remembered: they rarely repeat, and remembering them
//! would make a benchmark that repeats one body measure the cache instead of the detectors.
//! A slot is taken with `try_lock`: a slot another thread holds is a miss, never a wait.
//!
//! What a client can learn from it: a remembered value is judged a few microseconds faster,
//! so in principle the timing of a request tells whether its value was judged clean recently
//! in that place, by anyone. The first probe of a value remembers it, so each guess can be
//! timed once, and only against network jitter a hundred times larger; and the hash is keyed
//! by a random seed drawn at start, so no one can aim values at a slot to evict a value and
//! time it again.

use std::hash::Hasher;
use std::sync::Mutex;

use super::fields::Place;

/// Longest value remembered, in bytes: a browser's `User-Agent` fits, a prompt does not.
pub const MAX_VALUE: usize = 256;
/// Slots in the table (a power of two).
pub const SLOTS: usize = 4096;

/// A field's context: everything the built-in verdict on its value depends on besides the
/// value's bytes (where it sits, whether the server fetches it, whether it names an upload).
pub fn field_context(place: Place, fetched: bool, upload: bool) -> u16 {
    place as u16 | u16::from(fetched) << 8 | u16::from(upload) << 9
}

/// The context of the scanner's user-agent checks (above every field context).
pub const USER_AGENT_CHECKS: u16 = 1 << 10;
/// The context of the scanner's path checks (probe paths, hidden segments).
pub const PATH_CHECKS: u16 = 1 << 11;

/// The table of values judged clean (see the module docs).
pub struct CleanValues {
    slots: Box<[Mutex<Slot>]>,
    /// Mixed into every hash, drawn at start: which slot a value takes cannot be predicted,
    /// so no one can aim values at a slot to evict another's (see the module docs).
    seed: u64,
}

#[derive(Default)]
struct Slot {
    hash: u64,
    context: u16,
    /// Empty when the slot is free: an empty value is never judged, so never remembered.
    value: Vec<u8>,
}

/// A value's key in the table, computed once for the lookup and the insertion after it.
#[derive(Debug, Clone, Copy)]
pub struct Key {
    hash: u64,
    context: u16,
}

impl Default for CleanValues {
    fn default() -> Self {
        CleanValues::new()
    }
}

impl std::fmt::Debug for CleanValues {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CleanValues")
            .field("slots", &self.slots.len())
            .finish()
    }
}

impl CleanValues {
    /// An empty table.
    pub fn new() -> Self {
        let mut seed = [0u8; 8];
        // Without the system's randomness (never seen), the address of a stack variable:
        // poorer, but still not known to a client.
        if getrandom::fill(&mut seed).is_err() {
            seed = (&seed as *const _ as u64).to_le_bytes();
        }
        CleanValues {
            slots: (0..SLOTS).map(|_| Mutex::new(Slot::default())).collect(),
            seed: u64::from_le_bytes(seed),
        }
    }

    /// The key of `value` judged in `context` (a number the caller builds from whatever else
    /// the verdict depends on), or `None` for a value too long or too short to remember.
    pub fn key(&self, context: u16, value: &str) -> Option<Key> {
        if value.is_empty() || value.len() > MAX_VALUE {
            return None;
        }
        let mut hasher = rustc_hash::FxHasher::default();
        hasher.write_u64(self.seed);
        hasher.write(value.as_bytes());
        hasher.write_u16(context);
        Some(Key {
            hash: hasher.finish(),
            context,
        })
    }

    fn slot(&self, key: Key) -> &Mutex<Slot> {
        // The hash's high bits are its best mixed.
        &self.slots[(key.hash >> 32) as usize & (SLOTS - 1)]
    }

    /// Whether `value` was judged clean in the key's context.
    pub fn contains(&self, key: Key, value: &str) -> bool {
        match self.slot(key).try_lock() {
            Ok(slot) => {
                slot.hash == key.hash
                    && slot.context == key.context
                    && slot.value == value.as_bytes()
            }
            Err(_) => false,
        }
    }

    /// Remembers `value` as clean in the key's context, replacing what its slot held.
    pub fn insert(&self, key: Key, value: &str) {
        if let Ok(mut slot) = self.slot(key).try_lock() {
            slot.hash = key.hash;
            slot.context = key.context;
            if slot.value.capacity() < value.len() {
                // Exactly this long: a grown vector could hold twice MAX_VALUE.
                slot.value = value.as_bytes().to_vec();
            } else {
                slot.value.clear();
                slot.value.extend_from_slice(value.as_bytes());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_a_value_in_its_context_only() {
        let table = CleanValues::new();
        let key = table.key(1, "museums near Galata tower").expect("short");
        assert!(!table.contains(key, "museums near Galata tower"));
        table.insert(key, "museums near Galata tower");
        assert!(table.contains(key, "museums near Galata tower"));
        let elsewhere = table.key(2, "museums near Galata tower").expect("short");
        assert!(!table.contains(elsewhere, "museums near Galata tower"));
    }

    #[test]
    fn a_hit_compares_the_whole_value_not_the_hash() {
        let table = CleanValues::new();
        let key = table.key(1, "plan_trip").expect("short");
        table.insert(key, "plan_trip");
        // The same key presented with other bytes (as a hash collision would) is a miss.
        assert!(!table.contains(key, "' or 1=1--"));
        assert!(!table.contains(key, "plan_tri"));
    }

    #[test]
    fn long_and_empty_values_are_never_remembered() {
        let table = CleanValues::new();
        assert!(table.key(0, "").is_none());
        assert!(table.key(0, &"a".repeat(MAX_VALUE)).is_some());
        assert!(table.key(0, &"a".repeat(MAX_VALUE + 1)).is_none());
    }

    #[test]
    fn a_slot_holds_the_newest_value_and_memory_stays_bounded() {
        let table = CleanValues::new();
        // Far more distinct values than slots: each slot keeps one, at most MAX_VALUE bytes.
        for i in 0..SLOTS * 4 {
            let value = format!("{i:0>200}");
            let key = table.key(0, &value).expect("short");
            table.insert(key, &value);
            assert!(table.contains(key, &value));
        }
        let held: usize = table
            .slots
            .iter()
            .map(|s| s.lock().map_or(0, |s| s.value.capacity()))
            .sum();
        assert!(held <= SLOTS * MAX_VALUE, "{held} bytes held");
        let remembered = (0..SLOTS * 4)
            .filter(|i| {
                let value = format!("{i:0>200}");
                let key = table.key(0, &value).expect("short");
                table.contains(key, &value)
            })
            .count();
        assert!(remembered <= SLOTS, "{remembered} remembered");
    }
}
