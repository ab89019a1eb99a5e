//! The embedded migrations apply to a real Postgres, and `schema.rs` describes
//! what they create.

use cadenza_db::schema::*;
use cadenza_db::testing::TestDatabase;
use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};

#[tokio::test(flavor = "multi_thread")]
async fn schema_matches_the_database() {
    let db = TestDatabase::create().await;
    let mut conn = AsyncPgConnection::establish(&db.url)
        .await
        .expect("connect");
    // Selecting every column diesel knows fails if any is missing or misnamed.
    macro_rules! check {
        ($($table:ident),*) => {$(
            $table::table
                .select($table::all_columns)
                .limit(0)
                .execute(&mut conn)
                .await
                .unwrap_or_else(|e| panic!("table {}: {e}", stringify!($table)));
        )*};
    }
    check!(
        projects,
        runs,
        stages,
        stage_events,
        assets,
        job_logs,
        outbox,
        idempotency_keys,
        inbox,
        storage_objects,
        storage_deleted_projects,
        users,
        refresh_tokens,
        login_failures,
        api_keys,
        audit_events,
        credit_balances,
        credit_ledger,
        share_links,
        stage_provenance,
        dead_letters
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn migrations_are_idempotent_and_concurrent_safe() {
    let db = TestDatabase::create().await;
    // Two more runners at once, as two replicas starting together: both succeed
    // and neither applies anything twice.
    let (a, b) = tokio::join!(
        cadenza_db::migrate::run_pending(&db.url),
        cadenza_db::migrate::run_pending(&db.url)
    );
    assert!(a.expect("first").is_empty());
    assert!(b.expect("second").is_empty());
}
