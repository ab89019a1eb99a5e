//! How many `WatchProject` streams may be open: per user, and on this replica.
//!
//! Every open stream holds a task, a subscription to the event hub and, while
//! it reads, a database connection. Without a bound a patient script could
//! open streams until the replica runs out of memory or connections. A stream
//! past either limit is refused with RESOURCE_EXHAUSTED (`TOO_MANY_STREAMS`)
//! and a RetryInfo; closing a stream frees its place at once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::error::ApiError;

pub const DEFAULT_PER_USER: usize = 16;
pub const DEFAULT_PER_REPLICA: usize = 10_000;
/// When a refused watcher should try again.
const RETRY_AFTER: Duration = Duration::from_secs(5);

#[derive(Debug)]
pub struct StreamLimits {
    per_user: usize,
    per_replica: usize,
    open: Mutex<Open>,
}

#[derive(Debug, Default)]
struct Open {
    total: usize,
    by_user: HashMap<String, usize>,
}

/// One open stream's place; dropping it (the stream ends or its client goes
/// away) gives the place back.
#[derive(Debug)]
pub struct StreamPermit {
    limits: Arc<StreamLimits>,
    owner: String,
}

impl StreamLimits {
    pub fn new(per_user: usize, per_replica: usize) -> Arc<Self> {
        Arc::new(Self {
            per_user,
            per_replica,
            open: Mutex::default(),
        })
    }

    fn open(&self) -> std::sync::MutexGuard<'_, Open> {
        self.open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A place for one more stream of `owner`'s, or why there is none.
    pub fn admit(self: &Arc<Self>, owner: &str) -> Result<StreamPermit, ApiError> {
        let mut open = self.open();
        let busy = |message: String| ApiError::Busy {
            reason: "TOO_MANY_STREAMS",
            message,
            retry: RETRY_AFTER,
        };
        if open.total >= self.per_replica {
            return Err(busy(
                "this server is watching as many songs as it can; try again shortly".into(),
            ));
        }
        let mine = open.by_user.get(owner).copied().unwrap_or(0);
        if mine >= self.per_user {
            return Err(busy(format!(
                "you are already watching {mine} songs at once (the most allowed); close one first"
            )));
        }
        open.total += 1;
        *open.by_user.entry(owner.to_owned()).or_default() += 1;
        metrics::gauge!("cadenza_watch_streams_open").set(open.total as f64);
        Ok(StreamPermit {
            limits: self.clone(),
            owner: owner.to_owned(),
        })
    }
}

impl Drop for StreamPermit {
    fn drop(&mut self) {
        let mut open = self.limits.open();
        open.total = open.total.saturating_sub(1);
        if let Some(count) = open.by_user.get_mut(&self.owner) {
            *count -= 1;
            if *count == 0 {
                open.by_user.remove(&self.owner);
            }
        }
        metrics::gauge!("cadenza_watch_streams_open").set(open.total as f64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_are_counted_per_user_and_per_replica_and_given_back() {
        let limits = StreamLimits::new(2, 3);
        let a1 = limits.admit("alice").expect("first");
        let _a2 = limits.admit("alice").expect("second");
        assert!(matches!(
            limits.admit("alice"),
            Err(ApiError::Busy {
                reason: "TOO_MANY_STREAMS",
                ..
            })
        ));
        let _b1 = limits.admit("bob").expect("bob's own");
        assert!(limits.admit("carol").is_err(), "the replica is full");
        drop(a1);
        let _c1 = limits.admit("carol").expect("a place was given back");
        assert!(limits.admit("alice").is_err(), "still full");
    }
}
