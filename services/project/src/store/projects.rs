//! Projects: one owner each; soft-deleted rows are invisible to every query here.

use cadenza_db::schema::{projects, runs, stages};
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::Reusable;
use super::models::ProjectRow;

/// A validated project, ready to insert or to apply.
#[derive(Debug, Clone, PartialEq)]
pub struct ProjectFields {
    pub title: String,
    /// The title was made from the prompt (none was given): the owner's words,
    /// never shown on a gift page.
    pub title_derived: bool,
    pub prompt: String,
    pub duration_seconds: i32,
    pub has_vocals: bool,
    pub style_strength: f32,
    pub seed: Option<i64>,
    pub lyrics: Option<String>,
}

pub async fn insert(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    owner: &str,
    fields: &ProjectFields,
) -> QueryResult<ProjectRow> {
    diesel::insert_into(projects::table)
        .values((
            projects::id.eq(id),
            projects::owner.eq(owner),
            projects::title.eq(&fields.title),
            projects::title_derived.eq(fields.title_derived),
            projects::prompt.eq(&fields.prompt),
            projects::duration_seconds.eq(fields.duration_seconds),
            projects::has_vocals.eq(fields.has_vocals),
            projects::style_strength.eq(fields.style_strength),
            projects::seed.eq(fields.seed),
            projects::lyrics.eq(&fields.lyrics),
        ))
        .returning(ProjectRow::as_returning())
        .get_result(conn)
        .await
}

/// The owner's live project, or `None` (someone else's answers the same as missing).
pub async fn find(
    conn: &mut AsyncPgConnection,
    owner: &str,
    id: Uuid,
) -> QueryResult<Option<ProjectRow>> {
    projects::table
        .filter(projects::id.eq(id))
        .filter(projects::owner.eq(owner))
        .filter(projects::deleted_at.is_null())
        .select(ProjectRow::as_select())
        .first(conn)
        .await
        .optional()
}

/// Like [`find`], locking the row until the transaction ends. Every transaction
/// that changes a project's runs takes this lock first, so they never deadlock.
pub async fn lock(
    conn: &mut AsyncPgConnection,
    owner: &str,
    id: Uuid,
) -> QueryResult<Option<ProjectRow>> {
    projects::table
        .filter(projects::id.eq(id))
        .filter(projects::owner.eq(owner))
        .filter(projects::deleted_at.is_null())
        .select(ProjectRow::as_select())
        .for_update()
        .first(conn)
        .await
        .optional()
}

/// Locks every live project of `owner` (deleting an account).
pub async fn lock_all_of(
    conn: &mut AsyncPgConnection,
    owner: &str,
) -> QueryResult<Vec<ProjectRow>> {
    projects::table
        .filter(projects::owner.eq(owner))
        .filter(projects::deleted_at.is_null())
        .select(ProjectRow::as_select())
        .for_update()
        .load(conn)
        .await
}

/// Locks a project by id alone (for internal callers that hold its id from a run).
pub async fn lock_by_id(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<ProjectRow> {
    projects::table
        .find(id)
        .select(ProjectRow::as_select())
        .for_update()
        .first(conn)
        .await
}

/// Locks the project of a stage's run, found from the stage's id alone, so the
/// lock can be sent (pipelined) before the stage has been read. Returns the
/// project's id and its event counter, which stays as read until the lock is
/// released: only holders of the lock number events. `None` if no such stage.
pub async fn lock_of_stage(
    mut conn: &AsyncPgConnection,
    stage_id: Uuid,
) -> QueryResult<Option<(Uuid, i64)>> {
    let run_of_stage = stages::table
        .find(stage_id)
        .select(stages::run_id)
        .single_value();
    let project_of_run = runs::table
        .filter(runs::id.nullable().eq(run_of_stage))
        .select(runs::project_id)
        .single_value();
    projects::table
        .filter(projects::id.nullable().eq(project_of_run))
        .select((projects::id, projects::last_event_seq))
        .for_update()
        .first(&mut conn)
        .await
        .optional()
}

/// One page of the owner's projects, newest first, after the keyset `after`.
/// A LIKE pattern matching `text` anywhere, its wildcards taken literally.
fn contains_pattern(text: &str) -> String {
    let mut pattern = String::with_capacity(text.len() + 2);
    pattern.push('%');
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

pub async fn list(
    conn: &mut AsyncPgConnection,
    owner: &str,
    after: Option<(DateTime<Utc>, Uuid)>,
    title_contains: Option<&str>,
    limit: i64,
) -> QueryResult<Vec<ProjectRow>> {
    let mut query = projects::table
        .filter(projects::owner.eq(owner))
        .filter(projects::deleted_at.is_null())
        .order((projects::created_at.desc(), projects::id.desc()))
        .limit(limit)
        .select(ProjectRow::as_select())
        .into_boxed();
    if let Some(text) = title_contains {
        query = query.filter(projects::title.ilike(contains_pattern(text)));
    }
    if let Some((time, id)) = after {
        query = query.filter(
            projects::created_at
                .lt(time)
                .or(projects::created_at.eq(time).and(projects::id.lt(id))),
        );
    }
    query.load(conn).await
}

pub async fn update_fields(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    fields: &ProjectFields,
) -> QueryResult<ProjectRow> {
    diesel::update(projects::table.find(id))
        .set((
            projects::title.eq(&fields.title),
            projects::title_derived.eq(fields.title_derived),
            projects::prompt.eq(&fields.prompt),
            projects::duration_seconds.eq(fields.duration_seconds),
            projects::has_vocals.eq(fields.has_vocals),
            projects::style_strength.eq(fields.style_strength),
            projects::seed.eq(fields.seed),
            projects::lyrics.eq(&fields.lyrics),
            projects::updated_at.eq(diesel::dsl::now),
        ))
        .returning(ProjectRow::as_returning())
        .get_result(conn)
        .await
}

pub async fn set_state(
    mut conn: &AsyncPgConnection,
    id: Uuid,
    state: &str,
    latest_run: Option<Uuid>,
) -> QueryResult<()> {
    let target = projects::table.find(id);
    match latest_run {
        Some(run) => {
            Reusable(diesel::update(target).set((
                projects::state.eq(state),
                projects::latest_run_id.eq(run),
                projects::updated_at.eq(diesel::dsl::now),
            )))
            .execute(&mut conn)
            .await?
        }
        None => {
            Reusable(diesel::update(target).set((
                projects::state.eq(state),
                projects::updated_at.eq(diesel::dsl::now),
            )))
            .execute(&mut conn)
            .await?
        }
    };
    Ok(())
}

pub async fn soft_delete(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<()> {
    diesel::update(projects::table.find(id))
        .set(projects::deleted_at.eq(diesel::dsl::now))
        .execute(conn)
        .await
        .map(|_| ())
}

#[cfg(test)]
mod tests {
    #[test]
    fn title_search_takes_wildcards_literally() {
        assert_eq!(super::contains_pattern("50%_off\\"), "%50\\%\\_off\\\\%");
        assert_eq!(super::contains_pattern("Lo-fi"), "%Lo-fi%");
    }
}
