//! Plans: the free tier's caps on song length and songs per day.
//!
//! Credits pay for songs; the free tier's caps keep one free account from taking
//! the workers for itself. They apply to accounts on the `free` plan only (dev
//! subjects have no account and no plan). Days are UTC days, so every user's
//! count starts again at the same, stated time.

use cadenza_db::schema::{runs, users};
use chrono::{DateTime, Days, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::error::{ApiError, ApiResult};

/// The free plan's caps; a zero means none.
#[derive(Debug, Clone, Copy, Default)]
pub struct FreeTier {
    pub max_song_seconds: u32,
    pub songs_per_day: u32,
}

/// The start of `now`'s UTC day and the start of the next.
pub fn utc_day(now: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
    let start = now
        .date_naive()
        .and_hms_opt(0, 0, 0)
        .expect("midnight exists")
        .and_utc();
    (start, start + Days::new(1))
}

/// The plan of the account `owner` names; `None` for subjects without one.
/// With `lock`, the account row stays locked until the transaction ends, so
/// two songs started at once by one user are counted one after the other.
pub async fn plan_of(
    conn: &mut AsyncPgConnection,
    owner: &str,
    lock: bool,
) -> QueryResult<Option<String>> {
    let Ok(id) = Uuid::parse_str(owner) else {
        return Ok(None);
    };
    let query = users::table
        .find(id)
        .filter(users::deleted_at.is_null())
        .select(users::plan);
    if lock {
        query.for_update().first(conn).await.optional()
    } else {
        query.first(conn).await.optional()
    }
}

async fn songs_since(
    conn: &mut AsyncPgConnection,
    owner: &str,
    since: DateTime<Utc>,
) -> QueryResult<i64> {
    runs::table
        .filter(runs::owner.eq(owner))
        .filter(runs::created_at.ge(since))
        .count()
        .get_result(conn)
        .await
}

/// Songs `owner` started since the current UTC day began.
pub async fn songs_today(
    conn: &mut AsyncPgConnection,
    owner: &str,
    now: DateTime<Utc>,
) -> QueryResult<u32> {
    let count = songs_since(conn, owner, utc_day(now).0).await?;
    Ok(u32::try_from(count).unwrap_or(u32::MAX))
}

impl FreeTier {
    /// The caps that apply to an account on `plan` (`None` for none).
    pub fn caps_for(&self, plan: Option<&str>) -> Option<Self> {
        (plan == Some("free")).then_some(*self)
    }

    /// Refuses a song the owner's plan does not allow; call inside the
    /// transaction that creates the run (it locks the account row).
    pub async fn admit(
        &self,
        conn: &mut AsyncPgConnection,
        owner: &str,
        duration_seconds: i32,
        now: DateTime<Utc>,
    ) -> ApiResult<()> {
        if plan_of(conn, owner, true).await?.as_deref() != Some("free") {
            return Ok(());
        }
        let max = self.max_song_seconds;
        if max > 0 && i64::from(duration_seconds) > i64::from(max) {
            return Err(ApiError::PlanLimit {
                field: "duration_seconds",
                description: format!(
                    "the free plan makes songs of up to {max} seconds; this one asks for {duration_seconds}"
                ),
            });
        }
        let per_day = self.songs_per_day;
        if per_day == 0 {
            return Ok(());
        }
        let (start, next) = utc_day(now);
        if songs_since(conn, owner, start).await? >= i64::from(per_day) {
            let wait = (next - now).to_std().unwrap_or_default();
            return Err(ApiError::DailyQuota {
                subject: owner.to_owned(),
                description: format!(
                    "the free plan makes {per_day} songs a day; more can be made from {} UTC",
                    next.format("%Y-%m-%d %H:%M")
                ),
                retry_after: wait,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn a_utc_day_runs_from_midnight_to_midnight() {
        let now = Utc.with_ymd_and_hms(2026, 11, 26, 23, 59, 59).unwrap();
        let (start, next) = utc_day(now);
        assert_eq!(start, Utc.with_ymd_and_hms(2026, 11, 26, 0, 0, 0).unwrap());
        assert_eq!(next, Utc.with_ymd_and_hms(2026, 11, 27, 0, 0, 0).unwrap());
        let midnight = Utc.with_ymd_and_hms(2026, 11, 27, 0, 0, 0).unwrap();
        assert_eq!(utc_day(midnight).0, midnight);
    }
}
