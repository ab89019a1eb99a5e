//! Slowing down password guessing without handing attackers a way to lock
//! other people out.
//!
//! Failures are counted three ways, each forgotten an hour after its last one:
//!
//! - per (account, address): after `free_per_pair` failures (5), the next
//!   attempt for that account from that address waits 1 s, then twice as long
//!   after each further failure, up to 15 minutes. This is what stops a
//!   guesser.
//! - per address: the same after `free_per_address` failures (20, configurable:
//!   an address may be a whole office behind NAT), whichever accounts they
//!   were for. This stops one address spraying many accounts.
//! - per account, from every address: past `account_ceiling` failures (50) an
//!   attempt is slowed (answered after `slowdown`) but never refused. An
//!   attacker with many addresses gets fewer guesses, and the owner, with the
//!   right password, still signs in.
//!
//! Since no count is kept per account alone that refuses, failures against an
//! account from one address never stop its owner signing in from another.
//! Accounts that do not exist are counted exactly like those that do, so the
//! throttle reveals nothing. State lives in Postgres, so every `project`
//! replica enforces the same limits.

use std::time::Duration;

use cadenza_config::Env;
use cadenza_db::schema::login_failures;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::upsert::excluded;
use diesel_async::{AsyncPgConnection, RunQueryDsl};

const MAX_WAIT_SECONDS: i64 = 15 * 60;
/// A failure this old no longer counts.
const FORGET_AFTER_SECONDS: i64 = 3600;

/// The limits (`CADENZA_SIGNIN_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottleConfig {
    /// Failures for one account from one address before waiting starts.
    pub free_per_pair: i32,
    /// Failures from one address, for any accounts, before waiting starts.
    pub free_per_address: i32,
    /// Failures for one account, from anywhere, past which attempts are slowed.
    pub account_ceiling: i32,
    /// How long a slowed attempt is held before its answer.
    pub slowdown: Duration,
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        Self {
            free_per_pair: 5,
            free_per_address: 20,
            account_ceiling: 50,
            slowdown: Duration::from_secs(2),
        }
    }
}

impl ThrottleConfig {
    pub fn from_env(env: &mut Env) -> Self {
        let default = Self::default();
        Self {
            free_per_pair: env.bounded(
                "CADENZA_SIGNIN_FREE_PER_ACCOUNT_ADDRESS",
                default.free_per_pair,
                1..=1000,
            ),
            free_per_address: env.bounded(
                "CADENZA_SIGNIN_FREE_PER_ADDRESS",
                default.free_per_address,
                1..=1_000_000,
            ),
            account_ceiling: env.bounded(
                "CADENZA_SIGNIN_ACCOUNT_CEILING",
                default.account_ceiling,
                1..=1_000_000,
            ),
            slowdown: Duration::from_millis(env.bounded(
                "CADENZA_SIGNIN_SLOWDOWN_MS",
                default.slowdown.as_millis() as u64,
                0..=30_000,
            )),
        }
    }
}

/// The rows one sign-in attempt is counted in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    pair: String,
    address: Option<String>,
    account: String,
}

impl Attempt {
    /// An attempt for the account `email` from `address` (the gateway always
    /// names one; without, the pair is the account's own).
    pub fn new(email: &str, address: Option<&str>) -> Self {
        Self {
            pair: format!("pair:{email}|{}", address.unwrap_or("-")),
            address: address.map(|a| format!("address:{a}")),
            account: format!("account:{email}"),
        }
    }

    /// The account's row (`account:{email}`), as the audit log names it.
    pub fn account(&self) -> &str {
        &self.account
    }

    fn keys(&self) -> Vec<&str> {
        let mut keys = vec![self.pair.as_str(), self.account.as_str()];
        keys.extend(self.address.as_deref());
        keys
    }
}

/// What an attempt may do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Go ahead.
    Go,
    /// Go ahead, after this long (the account is under attack from many
    /// addresses).
    Slow(Duration),
    /// Come back after this long.
    Wait(Duration),
}

/// How long after the last failure the next attempt must wait, for a count
/// that allows `free` failures.
fn wait_after(failures: i32, free: i32) -> chrono::Duration {
    let over = failures - free;
    if over < 0 {
        return chrono::Duration::zero();
    }
    let seconds = 1i64
        .checked_shl(over.min(20) as u32)
        .unwrap_or(MAX_WAIT_SECONDS);
    chrono::Duration::seconds(seconds.min(MAX_WAIT_SECONDS))
}

/// What `attempt` may do at `now`.
pub async fn check(
    conn: &mut AsyncPgConnection,
    config: &ThrottleConfig,
    attempt: &Attempt,
    now: DateTime<Utc>,
) -> QueryResult<Verdict> {
    let rows: Vec<(String, i32, DateTime<Utc>)> = login_failures::table
        .filter(login_failures::key.eq_any(attempt.keys()))
        .select((
            login_failures::key,
            login_failures::failures,
            login_failures::last_failure_at,
        ))
        .load(conn)
        .await?;
    let forget_before = now - chrono::Duration::seconds(FORGET_AFTER_SECONDS);
    let mut wait = None;
    let mut slow = false;
    for (key, failures, last) in rows {
        if last < forget_before {
            continue;
        }
        let free = if key == attempt.pair {
            config.free_per_pair
        } else if attempt.address.as_deref() == Some(key.as_str()) {
            config.free_per_address
        } else {
            // The account's own count never refuses: it only slows.
            slow |= failures >= config.account_ceiling;
            continue;
        };
        let until = last + wait_after(failures, free);
        if until > now {
            let left = (until - now).to_std().unwrap_or_default();
            wait = Some(wait.map_or(left, |w: Duration| w.max(left)));
        }
    }
    Ok(match (wait, slow) {
        (Some(wait), _) => Verdict::Wait(wait),
        (None, true) => Verdict::Slow(config.slowdown),
        (None, false) => Verdict::Go,
    })
}

/// Counts one failure of `attempt`, in each of its rows.
pub async fn record_failure(
    conn: &mut AsyncPgConnection,
    attempt: &Attempt,
    now: DateTime<Utc>,
) -> QueryResult<()> {
    let stale = now - chrono::Duration::seconds(FORGET_AFTER_SECONDS);
    for key in attempt.keys() {
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

/// A successful sign-in clears its (account, address) count; the address's
/// and the account's counts stay (they describe others' attempts too).
pub async fn clear(conn: &mut AsyncPgConnection, attempt: &Attempt) -> QueryResult<()> {
    diesel::delete(login_failures::table.find(&attempt.pair))
        .execute(conn)
        .await
        .map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_after_the_free_attempts_and_are_capped() {
        assert_eq!(wait_after(4, 5), chrono::Duration::zero());
        assert_eq!(wait_after(5, 5), chrono::Duration::seconds(1));
        assert_eq!(wait_after(7, 5), chrono::Duration::seconds(4));
        assert_eq!(
            wait_after(40, 5),
            chrono::Duration::seconds(MAX_WAIT_SECONDS)
        );
        assert_eq!(wait_after(19, 20), chrono::Duration::zero());
    }

    #[test]
    fn an_attempt_counts_for_its_pair_its_address_and_its_account() {
        let attempt = Attempt::new("a@example.com", Some("203.0.113.4"));
        assert_eq!(
            attempt.keys(),
            [
                "pair:a@example.com|203.0.113.4",
                "account:a@example.com",
                "address:203.0.113.4"
            ]
        );
        let elsewhere = Attempt::new("a@example.com", Some("198.51.100.8"));
        assert_ne!(
            attempt.pair, elsewhere.pair,
            "another address, another pair"
        );
    }
}
