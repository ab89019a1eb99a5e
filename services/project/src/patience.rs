//! Consumers keep a message while the database is away, instead of handing it
//! straight back to the broker. A requeued message is redelivered at once, so an
//! outage of a few seconds would spend a quorum queue's whole delivery limit in
//! milliseconds and dead-letter every report that arrived meanwhile. Applying a
//! message is idempotent (the inbox), so trying again in place is safe.

use std::future::Future;
use std::time::Duration;

use crate::error::{ApiError, ApiResult};

/// How long one delivery waits for the database before it goes back to the
/// broker (which counts one delivery). Shutdown waits for handlers in flight, so
/// this also bounds how long a stop can take while the database is down.
pub const PATIENCE: Duration = Duration::from_secs(60);
const FIRST_PAUSE: Duration = Duration::from_millis(100);
const LONGEST_PAUSE: Duration = Duration::from_secs(5);

/// Whether an error means "the database is not answering" (worth waiting for),
/// rather than something about this message.
pub fn is_transient(err: &ApiError) -> bool {
    matches!(err, ApiError::Database(_) | ApiError::Pool(_))
}

/// Runs `attempt` until it succeeds, fails for a reason of its own, or the
/// database has been away for [`PATIENCE`]; returns the last outcome.
pub async fn until_database_answers<T, F, Fut>(what: &'static str, mut attempt: F) -> ApiResult<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ApiResult<T>>,
{
    let started = tokio::time::Instant::now();
    let mut pause = FIRST_PAUSE;
    let mut tries = 0u32;
    loop {
        tries += 1;
        match attempt().await {
            Err(err) if is_transient(&err) && started.elapsed() + pause < PATIENCE => {
                if tries == 1 {
                    tracing::warn!(error = %err, what, "the database is not answering; holding the message and trying again");
                }
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(LONGEST_PAUSE);
            }
            outcome => {
                if tries > 1 {
                    tracing::info!(
                        what,
                        tries,
                        ok = outcome.is_ok(),
                        "the database answered again"
                    );
                }
                return outcome;
            }
        }
    }
}
