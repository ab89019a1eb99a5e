//! Queries over the project service's tables. Every function takes the connection
//! (or transaction) it runs in, so callers decide what is atomic.
//!
//! Functions that take `&AsyncPgConnection` (a shared reference) can be run
//! side by side on one connection (`futures::try_join!`): diesel-async then
//! pipelines them, sending each statement as its future is first polled, without
//! waiting for the answer to the one before; Postgres still runs them one after
//! another, in the order sent. A transaction that needs several statements pays
//! one round trip for them instead of one each.

use diesel::QueryResult;
use diesel::pg::Pg;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};

pub mod events;
pub mod models;
pub mod outbox;
pub mod projects;
pub mod runs;

/// A statement whose prepared form is kept and reused, keyed by its SQL text.
///
/// diesel marks every UPDATE and every raw SQL query as unsafe to cache (a
/// changeset with optional fields can produce many texts), and diesel-async then
/// prepares such a statement anew on every execution: one round trip more per
/// statement, taken while holding the connection's statement cache, so it also
/// stalls a pipeline. A statement without a static query id is cached under its
/// SQL text and bind types, so reusing it is correct; the only cost is one cache
/// entry per distinct text. Wrap only statements with few texts: a changeset's
/// handful of column sets, a fixed raw query, a multi-row insert of the few rows
/// one transaction writes; never one whose text can grow without bound with its
/// input (an IN list, a VALUES list of a caller's arbitrary length).
#[derive(Debug, Clone, Copy)]
pub struct Reusable<Q>(pub Q);

impl<Q: QueryFragment<Pg>> QueryFragment<Pg> for Reusable<Q> {
    fn walk_ast<'b>(&'b self, pass: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        self.0.walk_ast(pass)
    }

    // Hidden in diesel's docs (it is meant for connection implementations), but
    // a trait method all the same: should it go, this stops compiling instead of
    // silently changing what is cached.
    fn is_safe_to_cache_prepared(&self, _backend: &Pg) -> QueryResult<bool> {
        Ok(true)
    }
}

impl<Q> QueryId for Reusable<Q> {
    type QueryId = ();
    // No static id: the cache key is the SQL text.
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<Q: Query> Query for Reusable<Q> {
    type SqlType = Q::SqlType;
}
