//! API key answers from `project`, remembered briefly so a busy client costs one
//! look-up per `ttl` instead of one per call. A revoked key keeps working for at
//! most `ttl` (`CADENZA_API_KEY_CACHE_SECONDS`, 30 by default; 0 disables the
//! cache) on a gateway that saw it just before.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::auth::Caller;

pub const DEFAULT_TTL_SECONDS: u64 = 30;
/// Past this many keys the cache starts over: memory stays bounded whatever
/// callers send (only keys that verified are stored).
const MAX_ENTRIES: usize = 10_000;

pub struct KeyCache {
    ttl: Duration,
    entries: Mutex<HashMap<[u8; 32], (Caller, Instant)>>,
}

/// Entries are keyed by a hash: the cache never holds a key itself.
fn slot(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

impl KeyCache {
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            entries: Mutex::default(),
        }
    }

    pub fn get(&self, key: &str) -> Option<Caller> {
        let entries = self.entries.lock().ok()?;
        entries
            .get(&slot(key))
            .filter(|(_, at)| at.elapsed() < self.ttl)
            .map(|(caller, _)| caller.clone())
    }

    pub fn put(&self, key: &str, caller: Caller) {
        if self.ttl.is_zero() {
            return;
        }
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() >= MAX_ENTRIES {
                entries.retain(|_, (_, at)| at.elapsed() < self.ttl);
                if entries.len() >= MAX_ENTRIES {
                    entries.clear();
                }
            }
            entries.insert(slot(key), (caller, Instant::now()));
        }
    }
}
