//! Forgetting for real: what a deleted project or account leaves behind is
//! removed once the retention window (`CADENZA_DELETED_RETENTION_DAYS`, 30 by
//! default) has passed.
//!
//! Deleting hides at once; this sweep removes. For a project: its row (title,
//! prompt, lyrics) and with it its runs, stages, stage events, assets, job logs,
//! provenance and share links (foreign keys cascade), plus the dead letters of
//! its runs and the idempotency keys that point at it. For an account (already
//! tombstoned at deletion: its email and password hash replaced, its email gone
//! from the audit log and the sign-in throttle): its refresh tokens, API keys and
//! idempotency keys. The account's row stays as an anonymous id, so the credit
//! ledger and the audit log keep naming a subject that no longer says who.
//! Stale sign-in throttle rows (which name the email typed) go after a day, and
//! stage work the relay sent (its payload carries the prompt) once it is older
//! than the window.
//!
//! The sweep claims its work with `FOR UPDATE SKIP LOCKED`, in batches, so
//! every replica may run it at once. The bytes in storage follow storage's own
//! purge (`CADENZA_STORAGE_PURGE_AFTER_DAYS`).

use std::time::Duration;

use cadenza_db::Pool;
use cadenza_db::schema::{
    api_keys, dead_letters, idempotency_keys, login_failures, outbox, projects, refresh_tokens,
    runs, users,
};
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, RunQueryDsl};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::error::ApiResult;

pub const RETENTION_VARIABLE: &str = "CADENZA_DELETED_RETENTION_DAYS";
pub const DEFAULT_RETENTION_DAYS: i64 = 30;
/// Projects or accounts removed per transaction.
const BATCH: i64 = 50;
/// Sign-in throttle rows this old no longer count (an hour) and are removed.
const STALE_THROTTLE: chrono::Duration = chrono::Duration::days(1);

/// What one sweep removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PurgeReport {
    pub projects: u64,
    pub accounts: u64,
    pub throttle_rows: u64,
}

/// Removes everything deleted before `now - retention`, batch by batch.
pub async fn sweep(
    pool: &Pool,
    retention: chrono::Duration,
    now: DateTime<Utc>,
) -> ApiResult<PurgeReport> {
    let cutoff = now - retention;
    let mut report = PurgeReport::default();
    loop {
        let purged = purge_projects(pool, cutoff).await?;
        report.projects += purged;
        if purged < BATCH as u64 {
            break;
        }
    }
    loop {
        let purged = purge_accounts(pool, cutoff, now).await?;
        report.accounts += purged;
        if purged < BATCH as u64 {
            break;
        }
    }
    let mut conn = pool.get().await?;
    // Stage work the relay sent is kept a day for inspection; its payload
    // carries the song's prompt and lyrics, so nothing sent before the
    // window's start outlives it.
    diesel::delete(
        outbox::table
            .filter(outbox::published_at.is_not_null())
            .filter(outbox::created_at.lt(cutoff)),
    )
    .execute(&mut conn)
    .await?;
    report.throttle_rows = diesel::delete(
        login_failures::table.filter(login_failures::last_failure_at.lt(now - STALE_THROTTLE)),
    )
    .execute(&mut conn)
    .await? as u64;
    Ok(report)
}

/// One batch of projects deleted before `cutoff`, removed with what hangs off them.
async fn purge_projects(pool: &Pool, cutoff: DateTime<Utc>) -> ApiResult<u64> {
    let mut conn = pool.get().await?;
    conn.transaction(async |conn| -> ApiResult<u64> {
        let due: Vec<Uuid> = projects::table
            .filter(projects::deleted_at.lt(cutoff))
            .select(projects::id)
            .order(projects::deleted_at.asc())
            .limit(BATCH)
            .for_update()
            .skip_locked()
            .load(conn)
            .await?;
        if due.is_empty() {
            return Ok(0);
        }
        let run_ids: Vec<Uuid> = runs::table
            .filter(runs::project_id.eq_any(&due))
            .select(runs::id)
            .load(conn)
            .await?;
        // No foreign key leads here from a project: the dead letters (their
        // payloads carry the prompt) and the idempotency keys of its creates.
        diesel::delete(dead_letters::table.filter(dead_letters::run_id.eq_any(&run_ids)))
            .execute(conn)
            .await?;
        let resources: Vec<Uuid> = due.iter().chain(&run_ids).copied().collect();
        diesel::delete(
            idempotency_keys::table.filter(idempotency_keys::resource_id.eq_any(&resources)),
        )
        .execute(conn)
        .await?;
        // Runs, stages, events, assets, job logs, provenance and share links
        // go with the project (ON DELETE CASCADE).
        let purged = diesel::delete(projects::table.filter(projects::id.eq_any(&due)))
            .execute(conn)
            .await?;
        Ok(purged as u64)
    })
    .await
}

/// One batch of accounts deleted before `cutoff`: their credentials and
/// idempotency keys removed, the row kept as an anonymous id.
async fn purge_accounts(pool: &Pool, cutoff: DateTime<Utc>, now: DateTime<Utc>) -> ApiResult<u64> {
    let mut conn = pool.get().await?;
    conn.transaction(async |conn| -> ApiResult<u64> {
        let due: Vec<Uuid> = users::table
            .filter(users::deleted_at.lt(cutoff))
            .filter(users::purged_at.is_null())
            .select(users::id)
            .limit(BATCH)
            .for_update()
            .skip_locked()
            .load(conn)
            .await?;
        if due.is_empty() {
            return Ok(0);
        }
        let subjects: Vec<String> = due.iter().map(Uuid::to_string).collect();
        diesel::delete(refresh_tokens::table.filter(refresh_tokens::user_id.eq_any(&due)))
            .execute(conn)
            .await?;
        diesel::delete(api_keys::table.filter(api_keys::user_id.eq_any(&due)))
            .execute(conn)
            .await?;
        diesel::delete(idempotency_keys::table.filter(idempotency_keys::owner.eq_any(&subjects)))
            .execute(conn)
            .await?;
        let purged = diesel::update(users::table.filter(users::id.eq_any(&due)))
            .set(users::purged_at.eq(now))
            .execute(conn)
            .await?;
        Ok(purged as u64)
    })
    .await
}

/// Sweeps every `every` until `shutdown`.
pub async fn run(
    pool: Pool,
    retention: chrono::Duration,
    every: Duration,
    shutdown: CancellationToken,
) {
    loop {
        match sweep(&pool, retention, Utc::now()).await {
            Ok(report) if report != PurgeReport::default() => {
                metrics::counter!("cadenza_purged_projects_total").increment(report.projects);
                metrics::counter!("cadenza_purged_accounts_total").increment(report.accounts);
                tracing::info!(
                    projects = report.projects,
                    accounts = report.accounts,
                    throttle_rows = report.throttle_rows,
                    "purged what was deleted past the retention window"
                );
            }
            Ok(_) => {}
            Err(err) => tracing::warn!(error = %err, "the purge sweep failed; will retry"),
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
    }
}

/// At an account's deletion, in its transaction: its email leaves the audit
/// log (a failed sign-in names `account:{email}`; it becomes the account's
/// anonymous `account:deleted-{id}`) and the sign-in throttle at once.
pub async fn forget_email(
    conn: &mut diesel_async::AsyncPgConnection,
    id: Uuid,
    email: &str,
) -> QueryResult<()> {
    use cadenza_db::schema::audit_events;
    diesel::update(audit_events::table.filter(audit_events::target.eq(format!("account:{email}"))))
        .set(audit_events::target.eq(format!("account:deleted-{id}")))
        .execute(conn)
        .await?;
    diesel::delete(
        login_failures::table.filter(
            login_failures::key
                .eq(format!("account:{email}"))
                .or(login_failures::key.like(format!("pair:{}|%", like_escape(email)))),
        ),
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// `text` with LIKE's wildcards taken literally.
fn like_escape(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}
