//! The outbox relay: publishes rows written by state changes, with publisher
//! confirms, and marks them sent. Rows are claimed with `FOR UPDATE SKIP LOCKED`,
//! so several replicas relay side by side without sending a row twice at once.
//! A crash between publish and mark re-sends the row: consumers deduplicate.

use std::sync::Arc;
use std::time::Duration;

use cadenza_db::Pool;
use cadenza_db::schema::outbox;
use cadenza_queue::Publisher;
use diesel::prelude::*;
use diesel_async::{AsyncConnection, RunQueryDsl};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

const BATCH: i64 = 100;
/// How often the relay looks without being woken (rows from other replicas, restarts).
const POLL: Duration = Duration::from_millis(500);
/// Published rows are kept this long for inspection, then deleted.
const KEEP_PUBLISHED: Duration = Duration::from_secs(24 * 3600);

pub const OUTBOX_BACKLOG: &str = "cadenza_outbox_backlog_messages";

/// Runs until `shutdown`; `wake` is notified after a commit that wrote outbox rows.
pub async fn run(
    pool: Pool,
    publisher: Arc<Publisher>,
    wake: Arc<Notify>,
    shutdown: CancellationToken,
) {
    let mut failures = 0u32;
    let mut last_cleanup = std::time::Instant::now();
    loop {
        match relay_batch(&pool, &publisher).await {
            Ok(sent) if sent as i64 == BATCH => continue,
            Ok(_) => failures = 0,
            Err(err) => {
                failures += 1;
                tracing::warn!(error = %err, failures, "outbox relay failed; will retry");
            }
        }
        if last_cleanup.elapsed() > Duration::from_secs(600) {
            last_cleanup = std::time::Instant::now();
            if let Err(err) = cleanup(&pool).await {
                tracing::warn!(error = %err, "outbox cleanup failed");
            }
        }
        let pause = if failures == 0 {
            POLL
        } else {
            POLL * failures.min(20)
        };
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = wake.notified() => {}
            () = tokio::time::sleep(pause) => {}
        }
    }
}

/// Publishes up to one batch; returns how many rows were sent.
pub async fn relay_batch(pool: &Pool, publisher: &Publisher) -> anyhow::Result<usize> {
    let mut conn = pool.get().await?;
    let sent = conn
        .transaction::<_, anyhow::Error, _>(async |conn| {
            let rows: Vec<(i64, uuid::Uuid, String, Vec<u8>)> = outbox::table
                .filter(outbox::published_at.is_null())
                .order(outbox::id.asc())
                .limit(BATCH)
                .select((
                    outbox::id,
                    outbox::message_id,
                    outbox::routing_key,
                    outbox::payload,
                ))
                .for_update()
                .skip_locked()
                .load(conn)
                .await?;
            let mut published = Vec::with_capacity(rows.len());
            let mut failure = None;
            for (id, message_id, routing_key, payload) in rows {
                let traceparent = cadenza_queue::decode(&payload)
                    .map(|(envelope, _)| envelope.traceparent)
                    .unwrap_or_default();
                match publisher
                    .publish(
                        &routing_key,
                        &message_id.to_string(),
                        &traceparent,
                        &payload,
                    )
                    .await
                {
                    Ok(()) => published.push(id),
                    Err(err) => {
                        failure = Some(err);
                        break;
                    }
                }
            }
            if !published.is_empty() {
                diesel::update(outbox::table.filter(outbox::id.eq_any(&published)))
                    .set((
                        outbox::published_at.eq(diesel::dsl::now),
                        outbox::attempts.eq(outbox::attempts + 1),
                    ))
                    .execute(conn)
                    .await?;
            }
            // Keep what was confirmed even when a later publish failed.
            match failure {
                Some(err) if published.is_empty() => Err(err.into()),
                _ => Ok(published.len()),
            }
        })
        .await?;
    let backlog: i64 = outbox::table
        .filter(outbox::published_at.is_null())
        .count()
        .get_result(&mut conn)
        .await
        .unwrap_or(0);
    metrics::gauge!(OUTBOX_BACKLOG).set(backlog as f64);
    Ok(sent)
}

async fn cleanup(pool: &Pool) -> anyhow::Result<()> {
    let mut conn = pool.get().await?;
    let cutoff = chrono::Utc::now() - chrono::Duration::from_std(KEEP_PUBLISHED)?;
    diesel::delete(outbox::table.filter(outbox::published_at.lt(cutoff)))
        .execute(&mut conn)
        .await?;
    diesel::delete(
        cadenza_db::schema::inbox::table
            .filter(cadenza_db::schema::inbox::processed_at.lt(cutoff - chrono::Duration::days(6))),
    )
    .execute(&mut conn)
    .await?;
    Ok(())
}
