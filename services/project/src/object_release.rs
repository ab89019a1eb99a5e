//! A deleted project's objects in `storage`: released (hidden at once, purged
//! after storage's grace period) right after the deletion commits, and, when
//! storage could not be reached then, by the reconciler until it answers. A
//! project is marked `objects_released_at` once storage has confirmed, so a
//! user's deleted bytes never stay for want of a retry.

use cadenza_db::Pool;
use cadenza_db::schema::projects;
use cadenza_proto::v1::{self, storage_service_client::StorageServiceClient};
use cadenza_telemetry::grpc::TracedChannel;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::error::ApiResult;

/// The reconciler leaves a deletion this long to the call made with it.
const GRACE: chrono::Duration = chrono::Duration::minutes(1);
/// Deleted projects released in one reconciler pass; the next takes the rest.
const BATCH: i64 = 50;

/// Asks storage to delete `project_id`'s objects, and records that it did.
/// Returns whether storage confirmed; a failure is logged and left to the
/// reconciler.
pub async fn release(
    pool: &Pool,
    storage: &StorageServiceClient<TracedChannel>,
    owner: &str,
    project_id: Uuid,
) -> bool {
    let deleted = storage
        .clone()
        .delete_project_objects(v1::DeleteProjectObjectsRequest {
            owner: owner.to_owned(),
            project_id: project_id.to_string(),
        })
        .await;
    if let Err(err) = deleted {
        tracing::warn!(%project_id, error = %err, "deleting project objects failed; the reconciler will try again");
        return false;
    }
    let marked = async {
        let mut conn = pool.get().await.map_err(|e| e.to_string())?;
        mark_released(&mut conn, project_id, Utc::now())
            .await
            .map_err(|e| e.to_string())
    };
    if let Err(err) = marked.await {
        // Storage's deletion is idempotent: the reconciler asks once more.
        tracing::warn!(%project_id, error = %err, "recording released objects failed");
    }
    true
}

/// Calls [`release_pending`] every `every` (the reconciler's beat) until
/// `shutdown`. Every replica does: storage's deletion is idempotent.
pub async fn run(
    pool: Pool,
    storage: StorageServiceClient<TracedChannel>,
    every: std::time::Duration,
    shutdown: CancellationToken,
) {
    let mut ticks = tokio::time::interval(every);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = ticks.tick() => {}
        }
        if let Err(err) = release_pending(&pool, &storage, Utc::now()).await {
            tracing::warn!(error = %err, "looking for deleted projects' objects failed; trying again later");
        }
    }
}

/// Releases the objects of projects deleted more than `GRACE` (a minute) ago whose
/// release storage has not confirmed. Returns how many it released.
pub async fn release_pending(
    pool: &Pool,
    storage: &StorageServiceClient<TracedChannel>,
    now: DateTime<Utc>,
) -> ApiResult<usize> {
    let pending = {
        let mut conn = pool.get().await?;
        unreleased(&mut conn, now - GRACE).await?
    };
    let mut released = 0;
    for (project_id, owner) in pending {
        if release(pool, storage, &owner, project_id).await {
            tracing::info!(%project_id, "released a deleted project's objects on a later try");
            released += 1;
        } else {
            // Storage is away: the rest would fail alike; next pass.
            break;
        }
    }
    Ok(released)
}

async fn unreleased(
    conn: &mut AsyncPgConnection,
    deleted_before: DateTime<Utc>,
) -> QueryResult<Vec<(Uuid, String)>> {
    projects::table
        .filter(projects::deleted_at.lt(deleted_before))
        .filter(projects::objects_released_at.is_null())
        .order(projects::deleted_at.asc())
        .limit(BATCH)
        .select((projects::id, projects::owner))
        .load(conn)
        .await
}

async fn mark_released(
    conn: &mut AsyncPgConnection,
    project_id: Uuid,
    at: DateTime<Utc>,
) -> QueryResult<()> {
    diesel::update(projects::table.find(project_id))
        .set(projects::objects_released_at.eq(at))
        .execute(conn)
        .await
        .map(drop)
}
