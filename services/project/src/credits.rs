//! Credits: what a song costs, reserving it with the run, and settling it once.
//!
//! Every change to a balance is one ledger row in the same transaction as the
//! change, so the ledger always explains the balance. A run's reservation is
//! captured when it completes and refunded when it fails or is cancelled; the
//! unique `(run_id, kind)` makes settling twice (a redelivered report, a retry)
//! change nothing, and no path charges for a song that did not arrive.

use cadenza_db::schema::{credit_balances, credit_ledger};
use chrono::Utc;
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::domain::RunState;
use crate::error::{ApiError, ApiResult};

/// Whether generation costs credits (off in dev mode unless configured).
#[derive(Debug, Clone, Copy)]
pub struct CreditPolicy {
    pub enforced: bool,
}

/// One credit per second of song; vocals cost half as much again.
pub fn cost(duration_seconds: i32, has_vocals: bool) -> i64 {
    let seconds = i64::from(duration_seconds.max(0));
    if has_vocals {
        (seconds * 3 + 1) / 2
    } else {
        seconds
    }
}

async fn entry(
    conn: &mut AsyncPgConnection,
    owner: &str,
    run_id: Option<Uuid>,
    kind: &str,
    amount: i64,
    actor: &str,
) -> QueryResult<bool> {
    let inserted = diesel::insert_into(credit_ledger::table)
        .values((
            credit_ledger::id.eq(Uuid::now_v7()),
            credit_ledger::owner.eq(owner),
            credit_ledger::run_id.eq(run_id),
            credit_ledger::kind.eq(kind),
            credit_ledger::amount.eq(amount),
            credit_ledger::actor.eq(actor),
            credit_ledger::created_at.eq(Utc::now()),
        ))
        .on_conflict_do_nothing()
        .execute(conn)
        .await?;
    Ok(inserted == 1)
}

async fn add(conn: &mut AsyncPgConnection, owner: &str, amount: i64) -> QueryResult<()> {
    diesel::insert_into(credit_balances::table)
        .values((
            credit_balances::owner.eq(owner),
            credit_balances::balance.eq(amount),
            credit_balances::updated_at.eq(Utc::now()),
        ))
        .on_conflict(credit_balances::owner)
        .do_update()
        .set((
            credit_balances::balance.eq(credit_balances::balance + amount),
            credit_balances::updated_at.eq(Utc::now()),
        ))
        .execute(conn)
        .await
        .map(drop)
}

/// Adds `amount` to `owner`'s balance (sign-up grants, admin grants).
pub async fn grant(
    conn: &mut AsyncPgConnection,
    owner: &str,
    amount: i64,
    actor: &str,
) -> QueryResult<()> {
    entry(conn, owner, None, "grant", amount, actor).await?;
    add(conn, owner, amount).await
}

pub async fn balance(conn: &mut AsyncPgConnection, owner: &str) -> QueryResult<i64> {
    Ok(credit_balances::table
        .find(owner)
        .select(credit_balances::balance)
        .first(conn)
        .await
        .optional()?
        .unwrap_or(0))
}

/// Takes `amount` from the balance for `run_id`, or refuses with a QuotaFailure.
pub async fn reserve(
    conn: &mut AsyncPgConnection,
    owner: &str,
    run_id: Uuid,
    amount: i64,
) -> ApiResult<()> {
    let taken = diesel::update(
        credit_balances::table
            .find(owner)
            .filter(credit_balances::balance.ge(amount)),
    )
    .set((
        credit_balances::balance.eq(credit_balances::balance - amount),
        credit_balances::updated_at.eq(Utc::now()),
    ))
    .execute(conn)
    .await?;
    if taken == 0 {
        let has = balance(conn, owner).await?;
        return Err(ApiError::QuotaExceeded {
            subject: owner.to_owned(),
            description: format!("this song costs {amount} credits and {has} are left"),
        });
    }
    entry(conn, owner, Some(run_id), "reserve", amount, owner).await?;
    Ok(())
}

/// Captures or refunds a run's reservation as its final state says; a run
/// without a reservation (credits off) or already settled changes nothing.
pub async fn settle(
    conn: &mut AsyncPgConnection,
    owner: &str,
    run_id: Uuid,
    state: RunState,
) -> QueryResult<()> {
    let reserved: Option<i64> = credit_ledger::table
        .filter(credit_ledger::run_id.eq(run_id))
        .filter(credit_ledger::kind.eq("reserve"))
        .select(credit_ledger::amount)
        .first(conn)
        .await
        .optional()?;
    let Some(amount) = reserved else {
        return Ok(());
    };
    let settled = credit_ledger::table
        .filter(credit_ledger::run_id.eq(run_id))
        .filter(credit_ledger::kind.eq_any(["capture", "refund"]))
        .count()
        .get_result::<i64>(conn)
        .await?;
    if settled > 0 {
        return Ok(());
    }
    if state == RunState::Succeeded {
        entry(conn, owner, Some(run_id), "capture", amount, "cadenza").await?;
    } else if entry(conn, owner, Some(run_id), "refund", amount, "cadenza").await? {
        add(conn, owner, amount).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::cost;

    #[test]
    fn songs_cost_by_length_and_vocals() {
        assert_eq!(cost(10, false), 10);
        assert_eq!(cost(10, true), 15);
        assert_eq!(cost(5, true), 8);
    }
}
