//! Dead letters: messages the broker gave up on (delivered too often, or
//! rejected as unreadable) arrive on `{prefix}.dead-letters`. Each is kept for
//! administrators, and dead-lettered stage work fails its stage with
//! `POISON_MESSAGE`, so a message that kills every worker ends in a clear error
//! (and a refund) instead of looping.

use std::sync::Arc;

use cadenza_db::Pool;
use cadenza_db::schema::{dead_letters, outbox, runs, stages};
use cadenza_proto::v1::{self, envelope::Body};
use cadenza_queue::consume::{Handled, Incoming};
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use tokio::sync::Notify;
use uuid::Uuid;

use crate::domain::{RunState, StageKind, StageState};
use crate::error::{ApiError, ApiResult};
use crate::orchestrator::Orchestrator;
use crate::store::{projects, runs as run_store};

/// What a dead letter holds, as far as it can be read.
struct Described {
    message_id: String,
    kind: &'static str,
    run_id: Option<Uuid>,
    stage_id: Option<Uuid>,
    work: Option<v1::StageWork>,
}

fn describe(payload: &[u8]) -> Described {
    use sha2::Digest;
    let unreadable = || Described {
        message_id: format!("sha256:{}", hex::encode(sha2::Sha256::digest(payload))),
        kind: "unreadable",
        run_id: None,
        stage_id: None,
        work: None,
    };
    let Ok((envelope, body)) = cadenza_queue::decode(payload) else {
        return unreadable();
    };
    let ids = |run: &str, stage: &str| (Uuid::parse_str(run).ok(), Uuid::parse_str(stage).ok());
    match body {
        Body::StageWork(work) => {
            let (run_id, stage_id) = ids(&work.run_id, &work.stage_id);
            Described {
                message_id: envelope.message_id,
                kind: "stage_work",
                run_id,
                stage_id,
                work: Some(work),
            }
        }
        // Broadcasts go to exclusive queues without a dead-letter exchange, so one
        // arrives here only if published by hand; it is filed with the stage
        // updates, the messages about a run's course.
        Body::RunCancelled(cancelled) => Described {
            message_id: envelope.message_id,
            kind: "stage_update",
            run_id: Uuid::parse_str(&cancelled.run_id).ok(),
            stage_id: None,
            work: None,
        },
        Body::StageUpdate(update) => {
            let (run_id, stage_id) = ids(&update.run_id, &update.stage_id);
            Described {
                message_id: envelope.message_id,
                kind: "stage_update",
                run_id,
                stage_id,
                work: None,
            }
        }
    }
}

/// Handles one delivery from the dead-letter queue.
pub async fn handle(
    pool: Pool,
    orchestrator: Orchestrator,
    relay_wake: Arc<Notify>,
    incoming: Incoming,
) -> Handled {
    let described = describe(&incoming.data);
    let reason = incoming
        .death_reason
        .clone()
        .unwrap_or_else(|| "unknown".into());
    let stored = crate::patience::until_database_answers("a dead letter", || async {
        let mut conn = pool.get().await?;
        conn.transaction(async |conn| -> ApiResult<bool> {
            record(conn, &described, &incoming, &reason).await?;
            match &described.work {
                Some(work) => orchestrator.poisoned(conn, work, &reason).await,
                None => Ok(false),
            }
        })
        .await
    })
    .await;
    match stored {
        Ok(changed) => {
            // Logged and counted once it is recorded, not at every redelivery.
            tracing::warn!(kind = described.kind, reason = %reason, run_id = ?described.run_id, "a message was dead-lettered");
            metrics::counter!("cadenza_dead_letters_total", "kind" => described.kind).increment(1);
            if changed {
                relay_wake.notify_one();
            }
            Handled::Ack
        }
        Err(err) => {
            tracing::warn!(error = %err, "recording a dead letter failed; requeueing it");
            Handled::Requeue
        }
    }
}

async fn record(
    conn: &mut AsyncPgConnection,
    described: &Described,
    incoming: &Incoming,
    reason: &str,
) -> QueryResult<()> {
    // The same message dead again (after a requeue) is the same row, dead anew.
    diesel::insert_into(dead_letters::table)
        .values((
            dead_letters::id.eq(Uuid::now_v7()),
            dead_letters::message_id.eq(&described.message_id),
            dead_letters::kind.eq(described.kind),
            dead_letters::routing_key.eq(&incoming.routing_key),
            dead_letters::reason.eq(reason),
            dead_letters::run_id.eq(described.run_id),
            dead_letters::stage_id.eq(described.stage_id),
            dead_letters::payload.eq(&incoming.data),
        ))
        .on_conflict(dead_letters::message_id)
        .do_update()
        .set((
            dead_letters::created_at.eq(Utc::now()),
            dead_letters::requeued_at.eq(None::<DateTime<Utc>>),
            dead_letters::dismissed_at.eq(None::<DateTime<Utc>>),
            dead_letters::dismiss_reason.eq(None::<String>),
            dead_letters::reason.eq(reason),
        ))
        .execute(conn)
        .await
        .map(drop)
}

impl Orchestrator {
    /// Fails the stage dead-lettered `work` was for, if it still waits for that
    /// attempt. Returns whether anything changed.
    pub async fn poisoned(
        &self,
        conn: &mut AsyncPgConnection,
        work: &v1::StageWork,
        reason: &str,
    ) -> ApiResult<bool> {
        let (Ok(stage_id), Ok(run_id)) = (
            Uuid::parse_str(&work.stage_id),
            Uuid::parse_str(&work.run_id),
        ) else {
            return Ok(false);
        };
        let run = match run_store::get(conn, run_id).await {
            Ok(run) => run,
            Err(diesel::result::Error::NotFound) => return Ok(false),
            Err(err) => return Err(err.into()),
        };
        projects::lock_by_id(conn, run.project_id).await?;
        let run = run_store::get(conn, run_id).await?;
        let Some(stage) = run_store::lock_stages(conn, run.id)
            .await?
            .into_iter()
            .find(|s| s.id == stage_id)
        else {
            return Ok(false);
        };
        let waiting = matches!(
            StageState::parse(&stage.state),
            Some(StageState::Queued | StageState::Running)
        ) && u32::try_from(stage.attempt).ok() == Some(work.attempt)
            && RunState::parse(&run.state).is_some_and(|s| !s.is_terminal());
        let Some(kind) = StageKind::parse(&stage.kind).filter(|_| waiting) else {
            return Ok(false);
        };
        self.on_failed(
            conn,
            &run,
            &stage,
            kind,
            v1::StageFailed {
                error_code: "POISON_MESSAGE".into(),
                message: format!(
                    "the {} stage's work could not be processed ({reason}); an administrator can inspect it",
                    kind.as_str()
                ),
                retryable: false,
            },
        )
        .await?;
        Ok(true)
    }
}

/// A dead letter as administrators see it (its bytes only by size).
#[derive(Debug, Queryable, Selectable)]
#[diesel(table_name = dead_letters, check_for_backend(diesel::pg::Pg))]
struct Letter {
    id: Uuid,
    kind: String,
    reason: String,
    run_id: Option<Uuid>,
    payload: Vec<u8>,
    created_at: DateTime<Utc>,
    requeued_at: Option<DateTime<Utc>>,
    dismissed_at: Option<DateTime<Utc>>,
    dismiss_reason: Option<String>,
}

/// `project_id` and `stage_kind` are those of the run and stage the letter
/// names, when they still exist.
fn proto(letter: Letter, project_id: Option<Uuid>, stage_kind: Option<&str>) -> v1::DeadLetter {
    v1::DeadLetter {
        name: format!("deadLetters/{}", letter.id),
        kind: letter.kind,
        reason: letter.reason,
        run: match (project_id, letter.run_id) {
            (Some(project), Some(run)) => format!("projects/{project}/runs/{run}"),
            _ => String::new(),
        },
        stage_kind: stage_kind
            .and_then(StageKind::parse)
            .map_or(v1::StageKind::Unspecified, StageKind::proto) as i32,
        size_bytes: letter.payload.len() as i64,
        create_time: Some(cadenza_proto::timestamp(letter.created_at)),
        requeue_time: letter.requeued_at.map(cadenza_proto::timestamp),
        dismiss_time: letter.dismissed_at.map(cadenza_proto::timestamp),
        dismiss_reason: letter.dismiss_reason.unwrap_or_default(),
    }
}

/// Dead letters with the project of their run and the kind of their stage, in
/// one query.
#[diesel::dsl::auto_type]
fn with_context() -> _ {
    let letter: diesel::dsl::AsSelect<Letter, diesel::pg::Pg> = Letter::as_select();
    dead_letters::table
        .left_join(runs::table.on(runs::id.nullable().eq(dead_letters::run_id)))
        .left_join(stages::table.on(stages::id.nullable().eq(dead_letters::stage_id)))
        .select((letter, runs::project_id.nullable(), stages::kind.nullable()))
}

type WithContext = (Letter, Option<Uuid>, Option<String>);

/// A page of dead letters, newest first.
pub async fn list(
    conn: &mut AsyncPgConnection,
    size: i64,
    after: Option<(DateTime<Utc>, Uuid)>,
) -> ApiResult<(Vec<v1::DeadLetter>, Option<(DateTime<Utc>, Uuid)>)> {
    let mut query = with_context()
        .order((dead_letters::created_at.desc(), dead_letters::id.desc()))
        .limit(size + 1)
        .into_boxed();
    if let Some((time, id)) = after {
        query = query.filter(
            dead_letters::created_at
                .lt(time)
                .or(dead_letters::created_at
                    .eq(time)
                    .and(dead_letters::id.lt(id))),
        );
    }
    let mut rows: Vec<WithContext> = query.load(conn).await?;
    let next = if rows.len() as i64 > size {
        rows.truncate(size as usize);
        rows.last()
            .map(|(letter, ..)| (letter.created_at, letter.id))
    } else {
        None
    };
    Ok((
        rows.into_iter()
            .map(|(letter, project, kind)| proto(letter, project, kind.as_deref()))
            .collect(),
        next,
    ))
}

/// Publishes a dead letter again (through the outbox, so it is not lost) and
/// marks it requeued.
pub async fn requeue(
    conn: &mut AsyncPgConnection,
    exchange: &str,
    name: &str,
) -> ApiResult<v1::DeadLetter> {
    let id = parse_name(name)?;
    let exchange = exchange.to_owned();
    conn.transaction(async move |conn| -> ApiResult<v1::DeadLetter> {
        let (routing_key, payload): (String, Vec<u8>) = dead_letters::table
            .find(id)
            .select((dead_letters::routing_key, dead_letters::payload))
            .for_update()
            .first(conn)
            .await
            .optional()?
            .ok_or_else(|| not_found(name))?;
        diesel::insert_into(outbox::table)
            .values((
                outbox::message_id.eq(Uuid::new_v4()),
                outbox::exchange.eq(&exchange),
                outbox::routing_key.eq(&routing_key),
                outbox::payload.eq(&payload),
            ))
            .execute(conn)
            .await?;
        diesel::update(dead_letters::table.find(id))
            .set(dead_letters::requeued_at.eq(Utc::now()))
            .execute(conn)
            .await?;
        one(conn, id).await
    })
    .await
}

/// Marks a dead letter dismissed, in the caller's transaction: it no longer
/// counts as pending. Dismissing one twice keeps the first reason (a retried
/// call changes nothing); one already requeued is refused, as it is not pending.
/// Returns the letter and whether this call dismissed it.
pub async fn dismiss(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    name: &str,
    reason: &str,
) -> ApiResult<(v1::DeadLetter, bool)> {
    let (requeued_at, dismissed_at): (Option<DateTime<Utc>>, Option<DateTime<Utc>>) =
        dead_letters::table
            .find(id)
            .select((dead_letters::requeued_at, dead_letters::dismissed_at))
            .for_update()
            .first(conn)
            .await
            .optional()?
            .ok_or_else(|| not_found(name))?;
    if requeued_at.is_some() {
        return Err(ApiError::FailedPrecondition(
            "DEAD_LETTER_REQUEUED",
            format!("`{name}` was requeued and is no longer pending; there is nothing to dismiss"),
        ));
    }
    let dismissing = dismissed_at.is_none();
    if dismissing {
        diesel::update(dead_letters::table.find(id))
            .set((
                dead_letters::dismissed_at.eq(Utc::now()),
                dead_letters::dismiss_reason.eq(reason),
            ))
            .execute(conn)
            .await?;
    }
    Ok((one(conn, id).await?, dismissing))
}

/// Dead letters neither requeued nor dismissed: what an administrator still has
/// to look at (`cadenza_dead_letters_pending`).
pub async fn pending(conn: &mut AsyncPgConnection) -> QueryResult<i64> {
    dead_letters::table
        .filter(dead_letters::requeued_at.is_null())
        .filter(dead_letters::dismissed_at.is_null())
        .count()
        .get_result(conn)
        .await
}

/// The id in `deadLetters/{id}`.
pub fn parse_name(name: &str) -> ApiResult<Uuid> {
    name.strip_prefix("deadLetters/")
        .and_then(|id| Uuid::parse_str(id).ok())
        .ok_or_else(|| ApiError::invalid("name", "must be `deadLetters/{id}`"))
}

fn not_found(name: &str) -> ApiError {
    ApiError::NotFound("DEAD_LETTER_NOT_FOUND", format!("`{name}` does not exist"))
}

async fn one(conn: &mut AsyncPgConnection, id: Uuid) -> ApiResult<v1::DeadLetter> {
    let (letter, project, kind): WithContext = with_context()
        .filter(dead_letters::id.eq(id))
        .first(conn)
        .await?;
    Ok(proto(letter, project, kind.as_deref()))
}
