//! Slowing down password guessing: after a few failed sign-ins for one account
//! or from one address, every further attempt must wait, twice as long after
//! each failure (up to 15 minutes). Accounts that do not exist are throttled
//! exactly like those that do, so the throttle reveals nothing. State lives in
//! Postgres, so every `project` replica enforces the same limit.

use cadenza_db::schema::login_failures;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::upsert::excluded;
use diesel_async::{AsyncPgConnection, RunQueryDsl};

/// Failures allowed before waiting starts. An address is shared by everyone
/// behind one NAT, so it gets more.
const FREE_FOR_ACCOUNT: i32 = 5;
const FREE_FOR_ADDRESS: i32 = 20;
const MAX_WAIT_SECONDS: i64 = 15 * 60;
/// A failure this old no longer counts.
const FORGET_AFTER_SECONDS: i64 = 3600;

pub fn account_key(email: &str) -> String {
    format!("account:{email}")
}

pub fn address_key(address: &str) -> String {
    format!("address:{address}")
}

fn free_failures(key: &str) -> i32 {
    if key.starts_with("address:") {
        FREE_FOR_ADDRESS
    } else {
        FREE_FOR_ACCOUNT
    }
}

/// How long after the last failure the next attempt must wait.
fn wait_after(key: &str, failures: i32) -> chrono::Duration {
    let over = failures - free_failures(key);
    if over < 0 {
        return chrono::Duration::zero();
    }
    let seconds = 1i64
        .checked_shl(over.min(20) as u32)
        .unwrap_or(MAX_WAIT_SECONDS);
    chrono::Duration::seconds(seconds.min(MAX_WAIT_SECONDS))
}

/// The longest wait any of `keys` still imposes at `now`, if any.
pub async fn wait(
    conn: &mut AsyncPgConnection,
    keys: &[String],
    now: DateTime<Utc>,
) -> QueryResult<Option<std::time::Duration>> {
    let rows: Vec<(String, i32, DateTime<Utc>)> = login_failures::table
        .filter(login_failures::key.eq_any(keys))
        .select((
            login_failures::key,
            login_failures::failures,
            login_failures::last_failure_at,
        ))
        .load(conn)
        .await?;
    Ok(rows
        .into_iter()
        .filter_map(|(key, failures, last)| {
            let until = last + wait_after(&key, failures);
            (until > now).then(|| (until - now).to_std().ok()).flatten()
        })
        .max())
}

/// Counts one failure against every key.
pub async fn record_failure(
    conn: &mut AsyncPgConnection,
    keys: &[String],
    now: DateTime<Utc>,
) -> QueryResult<()> {
    let stale = now - chrono::Duration::seconds(FORGET_AFTER_SECONDS);
    for key in keys {
        diesel::insert_into(login_failures::table)
            .values((
                login_failures::key.eq(key),
                login_failures::failures.eq(1),
                login_failures::last_failure_at.eq(now),
            ))
            .on_conflict(login_failures::key)
            .do_update()
            .set((
                login_failures::failures.eq(diesel::dsl::sql::<diesel::sql_types::Int4>(
                    "CASE WHEN login_failures.last_failure_at < ",
                )
                .bind::<diesel::sql_types::Timestamptz, _>(stale)
                .sql(" THEN 1 ELSE login_failures.failures + 1 END")),
                login_failures::last_failure_at.eq(excluded(login_failures::last_failure_at)),
            ))
            .execute(conn)
            .await?;
    }
    Ok(())
}

/// A successful sign-in clears the account's count (not the address's).
pub async fn clear(conn: &mut AsyncPgConnection, key: &str) -> QueryResult<()> {
    diesel::delete(login_failures::table.find(key))
        .execute(conn)
        .await
        .map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_after_the_free_attempts_and_are_capped() {
        let account = account_key("a@example.com");
        assert_eq!(wait_after(&account, 4), chrono::Duration::zero());
        assert_eq!(wait_after(&account, 5), chrono::Duration::seconds(1));
        assert_eq!(wait_after(&account, 7), chrono::Duration::seconds(4));
        assert_eq!(
            wait_after(&account, 40),
            chrono::Duration::seconds(MAX_WAIT_SECONDS)
        );
        assert_eq!(
            wait_after(&address_key("10.0.0.1"), 19),
            chrono::Duration::zero()
        );
    }
}
