//! The outbox relay: publishes rows written by state changes, with publisher
//! confirms, and marks them sent. Rows are claimed with `FOR UPDATE SKIP LOCKED`,
//! so several replicas (and the several loops of one replica) relay side by side
//! without sending a row twice at once. A woken loop reaches the broker after one
//! round trip to Postgres.
//! A crash between publish and mark re-sends the row: consumers deduplicate.

use std::sync::Arc;
use std::time::{Duration, Instant};

use cadenza_db::Pool;
use cadenza_db::schema::outbox;
use cadenza_queue::Publisher;
use cadenza_queue::publish::Outgoing;
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};

use crate::store::Reusable;
use crate::store::outbox::{self as outbox_store, NewMessage};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

const BATCH: i64 = 100;
/// Relay loops per replica. A batch holds its loop until the broker confirmed
/// it; meanwhile another loop takes rows committed since (`SKIP LOCKED` keeps
/// them apart), so new work does not wait behind the previous batch's confirm.
const LOOPS: usize = 2;
/// How often the relay looks without being woken (rows from other replicas, restarts).
const POLL: Duration = Duration::from_millis(500);
/// Published rows are kept this long for inspection, then deleted.
const KEEP_PUBLISHED: Duration = Duration::from_secs(24 * 3600);
/// The backlog gauge is a COUNT, kept off the path of every batch: taken at most
/// this often while rows flow, and whenever a look finds nothing to send (so it
/// drops to zero as soon as the work is out).
const BACKLOG_EVERY: Duration = Duration::from_secs(1);

pub const OUTBOX_BACKLOG: &str = "cadenza_outbox_backlog_messages";

/// How long the relay leaves alone the work a stage update's handler publishes
/// itself ([`send_leased`]). Only a handler that dies between its commit and
/// the broker's confirm makes that work wait this long.
pub const DIRECT_LEASE: Duration = Duration::from_secs(10);

/// Runs until `shutdown`; `wake` is notified after a commit that wrote outbox rows.
pub async fn run(
    pool: Pool,
    publisher: Arc<Publisher>,
    wake: Arc<Notify>,
    shutdown: CancellationToken,
) {
    let mut loops = tokio::task::JoinSet::new();
    for index in 0..LOOPS {
        loops.spawn(relay_loop(
            index,
            pool.clone(),
            publisher.clone(),
            wake.clone(),
            shutdown.clone(),
        ));
    }
    while loops.join_next().await.is_some() {}
}

/// One relay loop, on a connection of its own (see [`relay_on`]). The first
/// loop also keeps the backlog gauge and cleans up.
async fn relay_loop(
    index: usize,
    pool: Pool,
    publisher: Arc<Publisher>,
    wake: Arc<Notify>,
    shutdown: CancellationToken,
) {
    let mut conn: Option<AsyncPgConnection> = None;
    let mut failures = 0u32;
    let mut last_cleanup = Instant::now();
    let mut last_backlog: Option<Instant> = None;
    loop {
        let relayed = async {
            let conn = match &mut conn {
                Some(conn) => conn,
                None => conn.insert(own_connection(&pool).await?),
            };
            relay_on(conn, &publisher).await
        }
        .await;
        let mut idle = false;
        match relayed {
            Ok(sent) if sent as i64 == BATCH => {
                // More may be waiting: wake a sibling to share them.
                wake.notify_one();
                continue;
            }
            Ok(sent) => {
                failures = 0;
                idle = sent == 0;
            }
            Err(err) => {
                // Its transaction may still be open: never use it again.
                conn = None;
                failures += 1;
                tracing::warn!(error = %err, failures, "outbox relay failed; will retry");
            }
        }
        if index == 0 {
            if idle || last_backlog.is_none_or(|at| at.elapsed() >= BACKLOG_EVERY) {
                last_backlog = Some(Instant::now());
                observe_backlog(&pool).await;
            }
            if last_cleanup.elapsed() > Duration::from_secs(600) {
                last_cleanup = Instant::now();
                if let Err(err) = cleanup(&pool).await {
                    tracing::warn!(error = %err, "outbox cleanup failed");
                }
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

/// A connection taken out of the pool for good (it is closed when dropped,
/// never handed to anyone else), with the pool's settings.
async fn own_connection(pool: &Pool) -> anyhow::Result<AsyncPgConnection> {
    Ok(cadenza_db::PooledConnection::take(pool.get().await?))
}

/// Publishes up to one batch, on a connection of its own that is dropped
/// afterwards; returns how many rows were sent.
pub async fn relay_batch(pool: &Pool, publisher: &Publisher) -> anyhow::Result<usize> {
    relay_on(&mut own_connection(pool).await?, publisher).await
}

/// Publishes up to one batch; returns how many rows were sent.
///
/// The batch's messages are all sent before any confirm is awaited (one confirm
/// round trip for the batch), and only the confirmed ones are marked published.
///
/// The transaction is opened by hand, BEGIN in the same round trip as the
/// claim, where diesel's transaction manager would spend a round trip on it. diesel
/// does not know of this transaction, so it must never reach a connection
/// anyone else uses: `conn` is the caller's own, and after an error (or if this
/// future is dropped midway) the caller drops it, which rolls the transaction back.
async fn relay_on(conn: &mut AsyncPgConnection, publisher: &Publisher) -> anyhow::Result<usize> {
    let conn: &AsyncPgConnection = conn;
    let rows = claim(conn).await?;
    if rows.is_empty() {
        SimpleAsyncConnection::batch_execute(&mut &*conn, "COMMIT").await?;
        return Ok(0);
    }
    let ids: Vec<String> = rows.iter().map(|row| row.1.to_string()).collect();
    let traceparents: Vec<String> = rows.iter().map(|row| traceparent_of(&row.3)).collect();
    let messages: Vec<Outgoing<'_>> = rows
        .iter()
        .zip(ids.iter().zip(&traceparents))
        .map(
            |((_, _, routing_key, payload), (id, traceparent))| Outgoing {
                routing_key,
                message_id: id,
                traceparent,
                payload,
            },
        )
        .collect();
    let results = publisher.publish_all(&messages).await;
    let mut published = Vec::with_capacity(rows.len());
    let mut failure = None;
    for (row, result) in rows.iter().zip(results) {
        match result {
            Ok(()) => published.push(row.0),
            Err(err) => {
                failure.get_or_insert(err);
            }
        }
    }
    let mark = async {
        let mut conn = conn;
        if published.is_empty() {
            return Ok(());
        }
        Reusable(
            diesel::update(outbox::table.filter(outbox::id.eq_any(&published))).set((
                outbox::published_at.eq(diesel::dsl::now),
                outbox::attempts.eq(outbox::attempts + 1),
            )),
        )
        .execute(&mut conn)
        .await
        .map(drop)
    };
    // Not sent alongside the marks: it could overtake them while their
    // statement is being prepared, and they would run after the commit.
    mark.await?;
    SimpleAsyncConnection::batch_execute(&mut &*conn, "COMMIT").await?;
    // Keep what was confirmed even when another publish failed.
    match failure {
        Some(err) if published.is_empty() => Err(err.into()),
        Some(err) => {
            tracing::warn!(error = %err, "some outbox rows were not confirmed; they are sent again later");
            Ok(published.len())
        }
        None => Ok(published.len()),
    }
}

/// Opens the transaction and claims up to a batch of unpublished rows until it
/// ends, in one round trip.
///
/// The transaction writes nothing but the "published" marks, so its commit need
/// not wait for the WAL to reach disk (`synchronous_commit = off`, for this
/// transaction only): a mark lost in a crash only re-sends the row, which
/// consumers deduplicate.
async fn claim(conn: &AsyncPgConnection) -> QueryResult<Vec<(i64, uuid::Uuid, String, Vec<u8>)>> {
    let begin = async {
        let mut conn = conn;
        SimpleAsyncConnection::batch_execute(&mut conn, "BEGIN; SET LOCAL synchronous_commit = off")
            .await
    };
    let rows = async {
        let mut conn = conn;
        outbox::table
            .filter(outbox::published_at.is_null())
            // Not leased to its writer, or its writer died: see [`send_leased`].
            .filter(
                outbox::relay_after
                    .is_null()
                    .or(outbox::relay_after.le(diesel::dsl::now)),
            )
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
            .load(&mut conn)
            .await
    };
    Ok(futures::try_join!(begin, rows)?.1)
}

/// The trace context a message carries in its envelope.
fn traceparent_of(payload: &[u8]) -> String {
    cadenza_queue::decode(payload)
        .map(|(envelope, _)| envelope.traceparent)
        .unwrap_or_default()
}

/// What the broker made of work sent by its writer ([`send_leased`]).
#[derive(Debug, Default)]
pub struct Sent {
    /// Confirmed by the broker: to be marked published.
    pub confirmed: Vec<uuid::Uuid>,
    /// Not taken: handed back to the relay at once.
    pub refused: Vec<uuid::Uuid>,
}

/// Publishes messages their writer leased to itself (see [`DIRECT_LEASE`]),
/// and waits for the broker's confirms. The writer may send them while its
/// COMMIT is on the way: the next stage's work then reaches the broker without
/// waiting for the commit, and the outcome is recorded by [`record_sent`] once
/// the commit is known to have succeeded.
pub async fn send_leased(publisher: &Publisher, messages: &[NewMessage]) -> Sent {
    let mut sent = Sent::default();
    if messages.is_empty() {
        return sent;
    }
    let ids: Vec<String> = messages.iter().map(|m| m.message_id.to_string()).collect();
    let traceparents: Vec<String> = messages
        .iter()
        .map(|m| traceparent_of(&m.payload))
        .collect();
    let outgoing: Vec<Outgoing<'_>> = messages
        .iter()
        .zip(ids.iter().zip(&traceparents))
        .map(|(message, (id, traceparent))| Outgoing {
            routing_key: message.routing_key,
            message_id: id,
            traceparent,
            payload: &message.payload,
        })
        .collect();
    let results = publisher.publish_all(&outgoing).await;
    let mut failure = None;
    for (message, result) in messages.iter().zip(results) {
        match result {
            Ok(()) => sent.confirmed.push(message.message_id),
            Err(err) => {
                failure.get_or_insert(err);
                sent.refused.push(message.message_id);
            }
        }
    }
    if let Some(err) = failure {
        tracing::warn!(error = %err, messages = sent.refused.len(), "publishing work at once failed; the relay takes it over");
    }
    sent
}

/// Records what [`send_leased`] did, for committed rows: confirmed ones are
/// marked published, refused ones handed back to the relay (which is woken).
pub async fn record_sent(pool: &Pool, sent: &Sent, relay_wake: &Notify) {
    if sent.confirmed.is_empty() && sent.refused.is_empty() {
        return;
    }
    let recorded = async {
        let conn = pool.get().await?;
        let conn: &AsyncPgConnection = &conn;
        futures::try_join!(
            outbox_store::mark_published(conn, &sent.confirmed),
            outbox_store::release(conn, &sent.refused),
        )?;
        anyhow::Ok(())
    }
    .await;
    if let Err(err) = recorded {
        // Confirmed rows left unmarked are sent again when their lease ends
        // (consumers deduplicate); refused ones wait for it.
        tracing::warn!(error = %err, "could not record what was published at once; the relay sends it when the lease ends");
    }
    if !sent.refused.is_empty() {
        relay_wake.notify_one();
    }
}

/// [`send_leased`] then [`record_sent`], for messages already committed.
pub async fn publish_now(
    pool: &Pool,
    publisher: &Publisher,
    messages: &[NewMessage],
    relay_wake: &Notify,
) {
    let sent = send_leased(publisher, messages).await;
    record_sent(pool, &sent, relay_wake).await;
}

/// Sets the backlog gauge: rows written but not yet published.
async fn observe_backlog(pool: &Pool) {
    let Ok(mut conn) = pool.get().await else {
        return;
    };
    let backlog: Result<i64, _> = outbox::table
        .filter(outbox::published_at.is_null())
        .count()
        .get_result(&mut conn)
        .await;
    if let Ok(backlog) = backlog {
        metrics::gauge!(OUTBOX_BACKLOG).set(backlog as f64);
    }
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
