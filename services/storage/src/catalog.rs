//! The catalog: one Postgres row per stored object (key, owner, size, SHA-256,
//! content type, created, expires, deleted). It is the authority on what may be
//! read: bytes without a live row are never served, so an upload becomes visible
//! only when its row is written, after the bytes were verified.

use cadenza_db::schema::{storage_deleted_projects, storage_objects};
use cadenza_db::{AsyncPgConnection, Pool, PooledConnection};
use chrono::{DateTime, Utc};
use diesel::dsl::sql;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Nullable, Text};
use diesel_async::{AsyncConnection, RunQueryDsl};
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = storage_objects, check_for_backend(diesel::pg::Pg))]
pub struct ObjectRecord {
    pub key: String,
    pub owner: String,
    pub project_id: Uuid,
    pub run_id: Uuid,
    pub size_bytes: i64,
    pub sha256: String,
    pub content_type: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub deleted_at: Option<DateTime<Utc>>,
}

impl ObjectRecord {
    /// Readable at `now`: not deleted, not expired.
    pub fn is_live(&self, now: DateTime<Utc>) -> bool {
        self.deleted_at.is_none() && self.expires_at.is_none_or(|at| at > now)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("the project was deleted")]
    ProjectDeleted,
    #[error("the catalog database is unavailable: {0}")]
    Pool(String),
    #[error("catalog query failed: {0}")]
    Query(#[from] diesel::result::Error),
}

/// One page of an owner's objects, with totals over all of them.
#[derive(Debug, Clone)]
pub struct OwnerObjects {
    pub objects: Vec<ObjectRecord>,
    pub next_after: Option<String>,
    pub object_count: i64,
    pub total_bytes: i64,
    pub pending_purge_bytes: i64,
}

#[derive(Clone)]
pub struct Catalog {
    pool: Pool,
}

/// Serialises writes about one project (recording an object, deleting the
/// project) so a late upload cannot slip in beside a deletion.
async fn lock_project(
    conn: &mut AsyncPgConnection,
    owner: &str,
    project_id: Uuid,
) -> QueryResult<()> {
    diesel::sql_query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
        .bind::<Text, _>(format!("cadenza-storage:{owner}/{project_id}"))
        .execute(conn)
        .await
        .map(drop)
}

impl Catalog {
    pub fn new(pool: Pool) -> Self {
        Self { pool }
    }

    pub async fn conn(&self) -> Result<PooledConnection, CatalogError> {
        self.pool
            .get()
            .await
            .map_err(|err| CatalogError::Pool(err.to_string()))
    }

    /// Whether uploads into this project are refused (it was deleted).
    pub async fn project_deleted(
        &self,
        owner: &str,
        project_id: Uuid,
    ) -> Result<bool, CatalogError> {
        let mut conn = self.conn().await?;
        let found = storage_deleted_projects::table
            .filter(storage_deleted_projects::owner.eq(owner))
            .filter(storage_deleted_projects::project_id.eq(project_id))
            .count()
            .get_result::<i64>(&mut conn)
            .await?;
        Ok(found > 0)
    }

    /// Records a verified object, replacing an earlier one under the same key
    /// (a retried stage writes the same names again).
    pub async fn record(&self, record: &ObjectRecord) -> Result<(), CatalogError> {
        let mut conn = self.conn().await?;
        conn.transaction(async |conn| -> Result<_, CatalogError> {
            lock_project(conn, &record.owner, record.project_id).await?;
            let deleted = storage_deleted_projects::table
                .filter(storage_deleted_projects::owner.eq(&record.owner))
                .filter(storage_deleted_projects::project_id.eq(record.project_id))
                .count()
                .get_result::<i64>(conn)
                .await?;
            if deleted > 0 {
                return Err(CatalogError::ProjectDeleted);
            }
            diesel::insert_into(storage_objects::table)
                .values(record)
                .on_conflict(storage_objects::key)
                .do_update()
                .set((
                    storage_objects::size_bytes.eq(record.size_bytes),
                    storage_objects::sha256.eq(&record.sha256),
                    storage_objects::content_type.eq(&record.content_type),
                    storage_objects::created_at.eq(record.created_at),
                    storage_objects::expires_at.eq(record.expires_at),
                    storage_objects::deleted_at.eq(None::<DateTime<Utc>>),
                ))
                .execute(conn)
                .await?;
            Ok(())
        })
        .await
    }

    /// The object under `key` if it is readable at `now`.
    pub async fn live(
        &self,
        key: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<ObjectRecord>, CatalogError> {
        let mut conn = self.conn().await?;
        let record = storage_objects::table
            .find(key)
            .select(ObjectRecord::as_select())
            .first(&mut conn)
            .await
            .optional()?;
        Ok(record.filter(|r| r.is_live(now)))
    }

    /// Marks every object of a project deleted at `now` and refuses later uploads
    /// into it. Returns how many objects were newly marked; a second call marks none.
    pub async fn delete_project(
        &self,
        owner: &str,
        project_id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<u64, CatalogError> {
        let mut conn = self.conn().await?;
        conn.transaction(async |conn| -> Result<_, CatalogError> {
            lock_project(conn, owner, project_id).await?;
            diesel::insert_into(storage_deleted_projects::table)
                .values((
                    storage_deleted_projects::owner.eq(owner),
                    storage_deleted_projects::project_id.eq(project_id),
                    storage_deleted_projects::deleted_at.eq(now),
                ))
                .on_conflict_do_nothing()
                .execute(conn)
                .await?;
            let marked = diesel::update(
                storage_objects::table
                    .filter(storage_objects::owner.eq(owner))
                    .filter(storage_objects::project_id.eq(project_id))
                    .filter(storage_objects::deleted_at.is_null()),
            )
            .set(storage_objects::deleted_at.eq(now))
            .execute(conn)
            .await?;
            // Its gift grants end with it (and are forgotten a day later).
            diesel::sql_query(
                "UPDATE storage_grants SET revoked_at = $1 \
                 WHERE owner = $2 AND revoked_at IS NULL \
                 AND EXISTS (SELECT 1 FROM unnest(keys) AS k WHERE left(k, length($3)) = $3)",
            )
            .bind::<diesel::sql_types::Timestamptz, _>(now)
            .bind::<Text, _>(owner)
            .bind::<Text, _>(format!("users/{owner}/projects/{project_id}/"))
            .execute(conn)
            .await?;
            Ok(marked as u64)
        })
        .await
    }

    /// One page of `owner`'s objects after the key `after`, and totals.
    pub async fn owner_objects(
        &self,
        owner: &str,
        after: Option<&str>,
        limit: i64,
        now: DateTime<Utc>,
    ) -> Result<OwnerObjects, CatalogError> {
        let mut conn = self.conn().await?;
        let mut query = storage_objects::table
            .filter(storage_objects::owner.eq(owner))
            .select(ObjectRecord::as_select())
            .order(storage_objects::key.asc())
            .limit(limit + 1)
            .into_boxed();
        if let Some(after) = after {
            query = query.filter(storage_objects::key.gt(after.to_owned()));
        }
        let mut objects: Vec<ObjectRecord> = query.load(&mut conn).await?;
        let next_after = if objects.len() as i64 > limit {
            objects.truncate(limit as usize);
            objects.last().map(|r| r.key.clone())
        } else {
            None
        };
        let (object_count, total_bytes, pending_purge_bytes) = storage_objects::table
            .filter(storage_objects::owner.eq(owner))
            .select((
                sql::<BigInt>("count(*)"),
                sql::<Nullable<BigInt>>("sum(size_bytes)::bigint"),
                sql::<Nullable<BigInt>>(
                    "sum(size_bytes) FILTER (WHERE deleted_at IS NOT NULL OR expires_at <= ",
                )
                .bind::<diesel::sql_types::Timestamptz, _>(now)
                .sql(")::bigint"),
            ))
            .get_result::<(i64, Option<i64>, Option<i64>)>(&mut conn)
            .await?;
        Ok(OwnerObjects {
            objects,
            next_after,
            object_count,
            total_bytes: total_bytes.unwrap_or(0),
            pending_purge_bytes: pending_purge_bytes.unwrap_or(0),
        })
    }
}
