//! `cadenza.v1.UsageService`.

use std::collections::HashMap;

use cadenza_db::schema::{credit_ledger, runs};
use cadenza_proto::v1::{self, usage_service_server::UsageService};
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use super::Shared;
use crate::error::ApiError;
use crate::{credits, plans};

const ENTRIES: i64 = 50;

pub struct UsageApi {
    pub shared: Shared,
}

#[tonic::async_trait]
impl UsageService for UsageApi {
    async fn get_usage(
        &self,
        request: Request<v1::GetUsageRequest>,
    ) -> Result<Response<v1::Usage>, Status> {
        let owner = self.shared.caller(&request).await?;
        let mut conn = self.shared.conn().await?;
        let balance = credits::balance(&mut conn, &owner)
            .await
            .map_err(ApiError::from)?;
        let entries: Vec<(String, i64, Option<Uuid>, DateTime<Utc>)> = credit_ledger::table
            .filter(credit_ledger::owner.eq(&owner))
            .order(credit_ledger::id.desc())
            .limit(ENTRIES)
            .select((
                credit_ledger::kind,
                credit_ledger::amount,
                credit_ledger::run_id,
                credit_ledger::created_at,
            ))
            .load(&mut conn)
            .await
            .map_err(ApiError::from)?;
        // Reservations not yet captured or refunded.
        let reserved: Option<i64> = credit_ledger::table
            .filter(credit_ledger::owner.eq(&owner))
            .filter(credit_ledger::kind.eq("reserve"))
            .filter(diesel::dsl::sql::<diesel::sql_types::Bool>(
                "NOT EXISTS (SELECT 1 FROM credit_ledger s WHERE s.run_id = credit_ledger.run_id AND s.kind IN ('capture', 'refund'))",
            ))
            .select(diesel::dsl::sql::<diesel::sql_types::Nullable<diesel::sql_types::BigInt>>(
                "sum(amount)::bigint",
            ))
            .first(&mut conn)
            .await
            .map_err(ApiError::from)?;
        let now = Utc::now();
        let free_tier = self.shared.orchestrator.free_tier;
        let plan = plans::plan_of(&mut conn, &owner, false)
            .await
            .map_err(ApiError::from)?;
        let songs_today = plans::songs_today(&mut conn, &owner, now)
            .await
            .map_err(ApiError::from)?;
        let service_max = self.shared.max_duration_seconds;
        let caps = free_tier.caps_for(plan.as_deref());
        let limits = v1::UsageLimits {
            // A plan's cap never exceeds the service-wide song length; 0 is no cap.
            max_song_seconds: to_i32(match caps.map_or(0, |c| c.max_song_seconds) {
                0 => service_max,
                cap => cap.min(service_max),
            }),
            songs_per_day: to_i32(caps.map_or(0, |c| c.songs_per_day)),
            songs_today: to_i32(songs_today),
            day_reset_time: Some(cadenza_proto::timestamp(plans::utc_day(now).1)),
            credits_per_second: 1,
        };
        let run_ids: Vec<Uuid> = entries.iter().filter_map(|e| e.2).collect();
        let projects: HashMap<Uuid, Uuid> = runs::table
            .filter(runs::id.eq_any(&run_ids))
            .select((runs::id, runs::project_id))
            .load::<(Uuid, Uuid)>(&mut conn)
            .await
            .map_err(ApiError::from)?
            .into_iter()
            .collect();
        Ok(Response::new(v1::Usage {
            plan: plan_proto(plan.as_deref()) as i32,
            limits: Some(limits),
            balance,
            reserved: reserved.unwrap_or(0),
            entries: entries
                .into_iter()
                .map(|(kind, amount, run, at)| v1::CreditEntry {
                    kind,
                    amount,
                    run: run
                        .and_then(|r| projects.get(&r).map(|p| format!("projects/{p}/runs/{r}")))
                        .unwrap_or_default(),
                    create_time: Some(cadenza_proto::timestamp(at)),
                })
                .collect(),
        }))
    }
}

fn to_i32(n: u32) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// A stored plan name as the API shows it.
pub fn plan_proto(plan: Option<&str>) -> v1::Plan {
    match plan {
        Some("free") => v1::Plan::Free,
        Some("standard") => v1::Plan::Standard,
        _ => v1::Plan::Unspecified,
    }
}
