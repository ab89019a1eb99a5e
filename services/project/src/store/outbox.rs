//! The transactional outbox: messages written with the state change that causes
//! them, published by the relay after the commit.

use cadenza_db::schema::outbox;
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
pub async fn insert_all(mut conn: &AsyncPgConnection, messages: &[NewMessage]) -> QueryResult<()> {
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
            )
        })
        .collect();
    Reusable(diesel::insert_into(outbox::table).values(rows))
        .execute(&mut conn)
        .await
        .map(drop)
}
