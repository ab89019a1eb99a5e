//! Gauges read from the broker and the database on the reconciler's beat: queue
//! depths and consumers, and dead letters waiting for someone to look at them.

use cadenza_queue::Publisher;
use diesel_async::AsyncPgConnection;

use crate::error::ApiResult;
use crate::orchestrator::reconcile::QueueView;

/// Records `cadenza_queue_messages{queue}` and `cadenza_queue_consumers{queue}`;
/// `None` (and a log line) when the broker cannot be asked.
pub async fn observe_queues(publisher: &Publisher) -> Option<QueueView> {
    let depths = match publisher.queue_depths().await {
        Ok(depths) => depths,
        Err(err) => {
            tracing::warn!(error = %err, "could not read the queue depths");
            return None;
        }
    };
    let topology = publisher.topology();
    let mut view = QueueView {
        work_ready: 0,
        updates_ready: 0,
    };
    for depth in depths {
        // Labels name the queue's role, not its prefixed name, so dashboards and
        // alerts hold for any CADENZA_QUEUE_PREFIX.
        let role = if depth.queue == topology.work_queue() {
            view.work_ready = depth.ready;
            "stage-work"
        } else if depth.queue == topology.update_queue() {
            view.updates_ready = depth.ready;
            "stage-updates"
        } else {
            "dead-letters"
        };
        metrics::gauge!("cadenza_queue_messages", "queue" => role).set(f64::from(depth.ready));
        metrics::gauge!("cadenza_queue_consumers", "queue" => role).set(f64::from(depth.consumers));
    }
    Some(view)
}

/// Records `cadenza_dead_letters_pending`: dead-lettered messages neither
/// requeued nor dismissed.
pub async fn observe_dead_letters(conn: &mut AsyncPgConnection) -> ApiResult<()> {
    let pending = crate::dead_letters::pending(conn).await?;
    metrics::gauge!("cadenza_dead_letters_pending").set(pending as f64);
    Ok(())
}
