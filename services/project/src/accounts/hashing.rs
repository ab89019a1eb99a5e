//! Password hashing under a memory budget.
//!
//! Each Argon2id hash holds 19 MiB while it runs (`credentials`), on the
//! blocking pool, which would start hundreds at once: a burst of sign-ins
//! could take the replica's memory. A semaphore sized from
//! `CADENZA_PASSWORD_HASHING_MEMORY_MB` (default 256, so 13 hashes at once)
//! admits hashes; a call that cannot start one within a couple of seconds is
//! answered RESOURCE_EXHAUSTED with a RetryInfo instead of waiting in a queue
//! that only grows.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;

use crate::error::{ApiError, ApiResult};

pub const MEMORY_VARIABLE: &str = "CADENZA_PASSWORD_HASHING_MEMORY_MB";
pub const DEFAULT_MEMORY_MB: usize = 256;
/// The memory one hash takes (Argon2id's `m`, in MiB).
const MEMORY_PER_HASH_MB: usize = 19;
/// How long a call may wait for a hashing slot before it is turned away.
const MAX_WAIT: Duration = Duration::from_secs(2);
/// When a turned-away caller should try again.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// Runs password hashes, at most as many at once as the budget holds.
#[derive(Clone)]
pub struct Hasher {
    slots: Arc<Semaphore>,
    capacity: usize,
}

impl Hasher {
    /// Slots for `memory_mb` of hashing (at least one).
    pub fn new(memory_mb: usize) -> Self {
        let capacity = (memory_mb / MEMORY_PER_HASH_MB).max(1);
        metrics::gauge!("cadenza_password_hashing_slots").set(capacity as f64);
        Self {
            slots: Arc::new(Semaphore::new(capacity)),
            capacity,
        }
    }

    /// How many hashes may run at once.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Runs `hash` on the blocking pool once a slot is free.
    pub async fn run<T: Send + 'static>(
        &self,
        hash: impl FnOnce() -> T + Send + 'static,
    ) -> ApiResult<T> {
        let slot = tokio::time::timeout(MAX_WAIT, self.slots.clone().acquire_owned())
            .await
            .map_err(|_| {
                metrics::counter!("cadenza_password_hashing_refused_total").increment(1);
                ApiError::Busy {
                    reason: "PASSWORD_HASHING_BUSY",
                    message: "too many sign-ins at once; try again in a moment".into(),
                    retry: RETRY_AFTER,
                }
            })?
            .map_err(|_| ApiError::Internal("the hashing slots were closed".into()))?;
        let running = metrics::gauge!("cadenza_password_hashes_running");
        running.increment(1.0);
        let result = tokio::task::spawn_blocking(move || {
            let answer = hash();
            drop(slot);
            answer
        })
        .await;
        running.decrement(1.0);
        result.map_err(|err| ApiError::Internal(err.to_string()))
    }
}

impl Default for Hasher {
    fn default() -> Self {
        Self::new(DEFAULT_MEMORY_MB)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn the_budget_sets_the_slots() {
        assert_eq!(Hasher::new(256).capacity(), 13);
        assert_eq!(Hasher::new(1).capacity(), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn no_more_run_at_once_than_the_budget_holds() {
        let hasher = Hasher::new(3 * MEMORY_PER_HASH_MB);
        let running = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let calls = (0..100).map(|_| {
            let (hasher, running, peak) = (hasher.clone(), running.clone(), peak.clone());
            async move {
                hasher
                    .run(move || {
                        let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                        peak.fetch_max(now, Ordering::SeqCst);
                        std::thread::sleep(Duration::from_millis(20));
                        running.fetch_sub(1, Ordering::SeqCst);
                    })
                    .await
            }
        });
        let results = futures::future::join_all(calls).await;
        assert_eq!(peak.load(Ordering::SeqCst), 3, "at most three at once");
        let (done, busy): (Vec<_>, Vec<_>) = results.into_iter().partition(Result::is_ok);
        assert_eq!(done.len() + busy.len(), 100);
        assert!(done.len() >= 3, "work still gets done: {}", done.len());
        assert!(
            busy.iter().all(|r| matches!(r, Err(ApiError::Busy { .. }))),
            "the rest are told to come back"
        );
    }
}
