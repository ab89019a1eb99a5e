//! The lifecycle sweep: purges the bytes and rows of objects whose project was
//! deleted more than the grace period ago, and of expired previews.
//!
//! Each batch claims its rows with `FOR UPDATE SKIP LOCKED` inside one
//! transaction, deletes the bytes, then the rows, and commits. Two replicas
//! sweeping at once take disjoint batches; a sweep that dies halfway leaves its
//! rows (still unreadable) for the next one, which finds the bytes already gone
//! and carries on. Running it twice purges nothing twice.

use std::sync::Arc;
use std::time::Duration;

use cadenza_db::schema::storage_objects;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, RunQueryDsl};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use tokio_util::sync::CancellationToken;

use crate::catalog::Catalog;

/// Rows claimed per transaction: small enough that a slow object store does not
/// hold locks for long.
const BATCH: i64 = 64;

#[derive(Debug, Clone, Copy)]
pub struct LifecycleConfig {
    /// How long a deleted project's bytes are kept before the purge.
    pub purge_after: chrono::Duration,
    /// How long previews stay readable; `None` keeps them.
    pub preview_ttl: Option<chrono::Duration>,
    /// How often the sweep runs.
    pub sweep_every: Duration,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepReport {
    pub purged_objects: u64,
    pub purged_bytes: u64,
}

/// No live grant names the object: an expired object a gift page still plays
/// is kept until the grant ends.
fn not_granted(
    now: DateTime<Utc>,
) -> diesel::expression::SqlLiteral<
    diesel::sql_types::Bool,
    impl diesel::query_builder::QueryFragment<diesel::pg::Pg>,
> {
    diesel::dsl::sql::<diesel::sql_types::Bool>(
        "NOT EXISTS (SELECT 1 FROM storage_grants g WHERE storage_objects.key = ANY(g.keys) \
         AND g.revoked_at IS NULL AND (g.expires_at IS NULL OR g.expires_at > ",
    )
    .bind::<diesel::sql_types::Timestamptz, _>(now)
    .sql("))")
}

/// Purges everything due at `now`, batch by batch, until nothing is left.
pub async fn sweep(
    catalog: &Catalog,
    store: &Arc<dyn ObjectStore>,
    purge_after: chrono::Duration,
    now: DateTime<Utc>,
) -> anyhow::Result<SweepReport> {
    let deleted_before = now - purge_after;
    let mut report = SweepReport::default();
    loop {
        let mut conn = catalog.conn().await?;
        let batch = conn
            .transaction(async |conn| -> Result<_, anyhow::Error> {
                let due: Vec<(String, i64)> = storage_objects::table
                    .filter(
                        storage_objects::deleted_at
                            .le(deleted_before)
                            .or(storage_objects::expires_at.le(now).and(not_granted(now))),
                    )
                    .select((storage_objects::key, storage_objects::size_bytes))
                    .order(storage_objects::key.asc())
                    .limit(BATCH)
                    .for_update()
                    .skip_locked()
                    .load(conn)
                    .await?;
                for (key, _) in &due {
                    match store.delete(&Path::from(key.as_str())).await {
                        Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                        Err(err) => return Err(anyhow::anyhow!("purging {key}: {err}")),
                    }
                }
                let keys: Vec<&str> = due.iter().map(|(k, _)| k.as_str()).collect();
                diesel::delete(storage_objects::table.filter(storage_objects::key.eq_any(&keys)))
                    .execute(conn)
                    .await?;
                let bytes: i64 = due.iter().map(|(_, size)| size).sum();
                Ok((due.len() as u64, bytes.max(0) as u64))
            })
            .await?;
        report.purged_objects += batch.0;
        report.purged_bytes += batch.1;
        if batch.0 < BATCH as u64 {
            return Ok(report);
        }
    }
}

/// Sweeps every `config.sweep_every` until `shutdown`.
pub async fn run(
    catalog: Catalog,
    store: Arc<dyn ObjectStore>,
    config: LifecycleConfig,
    shutdown: CancellationToken,
) {
    loop {
        let now = Utc::now();
        if let Err(err) = catalog
            .forget_ended_grants(now - crate::grants::FORGET_AFTER)
            .await
        {
            tracing::warn!(error = %err, "forgetting ended grants failed; will retry");
        }
        match sweep(&catalog, &store, config.purge_after, now).await {
            Ok(report) => {
                metrics::counter!("cadenza_storage_purged_objects_total")
                    .increment(report.purged_objects);
                metrics::counter!("cadenza_storage_purged_bytes_total")
                    .increment(report.purged_bytes);
                if report.purged_objects > 0 {
                    tracing::info!(
                        objects = report.purged_objects,
                        bytes = report.purged_bytes,
                        "lifecycle sweep purged objects"
                    );
                }
            }
            Err(err) => {
                metrics::counter!("cadenza_storage_errors_total", "operation" => "sweep", "kind" => "sweep_failed")
                    .increment(1);
                tracing::warn!(error = %err, "lifecycle sweep failed; will retry");
            }
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(config.sweep_every) => {}
        }
    }
}
