//! The transactional outbox: messages written with the state change that causes
//! them, published after the commit, by their writer at once or by the relay.

use cadenza_db::schema::outbox;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::Reusable;

/// A message about to be written.
#[derive(Debug, Clone)]
pub struct NewMessage {
    pub message_id: Uuid,
    pub exchange: String,
    pub routing_key: &'static str,
    pub payload: Vec<u8>,
}

/// Writes `messages` in one statement (a transaction writes a handful at most,
/// so the few texts are kept prepared: see [`Reusable`]).
///
/// `relay_after`, when set, keeps the relay away from the rows until then: the
/// writer publishes them itself right after its commit, and the relay sends
/// them only if the writer died first (or gave them back, [`release`]).
pub async fn insert_all(
    mut conn: &AsyncPgConnection,
    messages: &[NewMessage],
    relay_after: Option<DateTime<Utc>>,
) -> QueryResult<()> {
    if messages.is_empty() {
        return Ok(());
    }
    let rows: Vec<_> = messages
        .iter()
        .map(|message| {
            (
                outbox::message_id.eq(message.message_id),
                outbox::exchange.eq(&message.exchange),
                outbox::routing_key.eq(message.routing_key),
                outbox::payload.eq(&message.payload),
                outbox::relay_after.eq(relay_after),
            )
        })
        .collect();
    Reusable(diesel::insert_into(outbox::table).values(rows))
        .execute(&mut conn)
        .await
        .map(drop)
}

/// Marks the messages published (the broker confirmed them).
pub async fn mark_published(mut conn: &AsyncPgConnection, message_ids: &[Uuid]) -> QueryResult<()> {
    if message_ids.is_empty() {
        return Ok(());
    }
    Reusable(
        diesel::update(outbox::table.filter(outbox::message_id.eq_any(message_ids))).set((
            outbox::published_at.eq(diesel::dsl::now),
            outbox::attempts.eq(outbox::attempts + 1),
        )),
    )
    .execute(&mut conn)
    .await
    .map(drop)
}

/// Hands messages whose writer could not publish them to the relay at once,
/// instead of when their lease runs out.
pub async fn release(mut conn: &AsyncPgConnection, message_ids: &[Uuid]) -> QueryResult<()> {
    if message_ids.is_empty() {
        return Ok(());
    }
    Reusable(
        diesel::update(
            outbox::table
                .filter(outbox::message_id.eq_any(message_ids))
                .filter(outbox::published_at.is_null()),
        )
        .set(outbox::relay_after.eq(None::<DateTime<Utc>>)),
    )
    .execute(&mut conn)
    .await
    .map(drop)
}
