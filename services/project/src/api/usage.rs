//! `cadenza.v1.UsageService`.

use std::collections::HashMap;

use cadenza_db::schema::{credit_ledger, runs};
use cadenza_proto::v1::{self, usage_service_server::UsageService};
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use super::{Shared, caller};
use crate::credits;
use crate::error::ApiError;

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
        let owner = caller(&request)?;
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
