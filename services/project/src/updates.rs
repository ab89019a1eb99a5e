//! Consumes stage updates from `generation` and applies them.

use std::sync::Arc;

use cadenza_db::Pool;
use cadenza_proto::v1::envelope::Body;
use cadenza_queue::Publisher;
use cadenza_queue::consume::{Handled, Incoming};
use tokio::sync::Notify;

use crate::orchestrator::{Orchestrator, Published};

/// Handles one delivery: malformed messages are dead-lettered, database trouble
/// requeues, everything else is applied (idempotently) and acked. The work an
/// update causes is published from here, alongside its commit (the shortest
/// path from one stage's result to the next stage's start); the relay stands in
/// for what does not get through.
pub async fn handle(
    pool: Pool,
    orchestrator: Orchestrator,
    publisher: Arc<Publisher>,
    relay_wake: Arc<Notify>,
    incoming: Incoming,
) -> Handled {
    let (envelope, body) = match cadenza_queue::decode(&incoming.data) {
        Ok(decoded) => decoded,
        Err(err) => {
            tracing::error!(error = %err, "dead-lettering an unreadable stage update");
            return Handled::Reject;
        }
    };
    let Body::StageUpdate(update) = body else {
        tracing::error!("dead-lettering a message that is not a stage update");
        return Handled::Reject;
    };
    let Ok(message_id) = uuid::Uuid::parse_str(&envelope.message_id) else {
        tracing::error!("dead-lettering a stage update without a valid message id");
        return Handled::Reject;
    };
    let context =
        cadenza_telemetry::trace::TraceContext::from_traceparent(&envelope.traceparent, None)
            .unwrap_or_else(cadenza_telemetry::trace::TraceContext::new_root);
    cadenza_telemetry::trace::scope(context.clone(), async move {
        // While the database is away the update waits here (it is idempotent):
        // handed straight back, it would spend its delivery limit in milliseconds
        // and be dead-lettered.
        let applied = crate::patience::until_database_answers("a stage update", || {
            let (pool, orchestrator, update, publisher) =
                (pool.clone(), orchestrator.clone(), update.clone(), publisher.clone());
            async move {
                // The transaction is framed by hand: a connection it fails on
                // (or is abandoned on) is closed, not reused.
                let mut conn = cadenza_db::Disposable::new(pool.get().await?);
                let lease_until = chrono::Utc::now() + crate::relay::DIRECT_LEASE;
                let applied = orchestrator
                    .apply_update_publishing(
                        &mut conn,
                        message_id,
                        update,
                        lease_until,
                        Some(&publisher),
                    )
                    .await;
                if applied.is_ok() {
                    conn.keep();
                }
                applied
            }
        })
        .await;
        match applied {
            Ok(Published { sent, messages, .. }) => {
                match sent {
                    Some(sent) => crate::relay::record_sent(&pool, &sent, &relay_wake).await,
                    None => {
                        crate::relay::publish_now(&pool, &publisher, &messages, &relay_wake).await
                    }
                }
                Handled::Ack
            }
            Err(err) if crate::patience::is_transient(&err) => {
                tracing::warn!(trace_id = %context.trace_id, error = %err, "the database stayed away; requeueing the update");
                Handled::Requeue
            }
            Err(err) => {
                tracing::error!(trace_id = %context.trace_id, error = %err, "update cannot be applied; dead-lettering");
                Handled::Reject
            }
        }
    })
    .await
}
