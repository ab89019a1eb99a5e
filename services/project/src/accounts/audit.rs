//! The audit log: one row per sensitive action. Recording an action that
//! already happened never fails it (a failed write is logged); an action made
//! in a transaction can instead write its entry in that transaction.

use cadenza_db::schema::audit_events;
use chrono::Utc;
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use tonic::Request;
use uuid::Uuid;

/// The caller's address as the gateway determined it, from the call's verified
/// assertion (never from a header a client could set).
pub fn client_address<T>(request: &Request<T>) -> Option<String> {
    request
        .extensions()
        .get::<cadenza_auth::mesh::Assertion>()
        .and_then(|assertion| assertion.client_address)
        .map(|ip| ip.to_string())
}

/// One sensitive action.
pub struct Event<'a> {
    pub actor: &'a str,
    pub action: &'a str,
    pub target: &'a str,
    pub client_address: Option<&'a str>,
    pub detail: Option<&'a str>,
}

/// Records an action that already happened; a failed write is logged.
pub async fn record(conn: &mut AsyncPgConnection, event: Event<'_>) {
    if let Err(err) = write(conn, &event).await {
        tracing::error!(action = event.action, target = event.target, error = %err, "writing the audit log failed");
    }
}

/// Writes the entry in the caller's transaction, failing it if the entry
/// cannot be written: for an action that must not happen unrecorded.
pub async fn write(conn: &mut AsyncPgConnection, event: &Event<'_>) -> QueryResult<()> {
    diesel::insert_into(audit_events::table)
        .values((
            audit_events::id.eq(Uuid::now_v7()),
            audit_events::actor.eq(event.actor),
            audit_events::action.eq(event.action),
            audit_events::target.eq(event.target),
            audit_events::client_address.eq(event.client_address),
            audit_events::detail.eq(event.detail),
            audit_events::created_at.eq(Utc::now()),
        ))
        .execute(conn)
        .await
        .map(drop)
}
