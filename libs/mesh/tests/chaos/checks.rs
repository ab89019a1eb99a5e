//! Every verification of a round (the SQL rows they read are in `rows`): each song
//! completed, once; each charged exactly once; one accepted result per stage,
//! stored byte for byte; gapless, ordered event logs (in the database and as
//! WatchProject streams them); and the outbox and queues drained with nothing
//! dead-lettered.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use cadenza_mesh::testing::authed;
use cadenza_proto::v1::{
    self, stage_event::Type as EventKind, usage_service_client::UsageServiceClient,
};
use diesel::QueryableByName;
use diesel::sql_types::{Array, BigInt, Text, Uuid as SqlUuid};
use diesel_async::RunQueryDsl;
use futures::StreamExt;
use uuid::Uuid;

use crate::infra::blocking;
use crate::round::{Outcome, Song};
use crate::rows::{
    AssetRow, Count, DeadLetterRow, EventRow, LedgerRow, ObjectRow, ProjectSeq, ProvenanceRow,
    RunRow, StageRow,
};
use crate::services::Sandbox;
use crate::{DRAIN_TIMEOUT, QUEUE_PREFIX, SIGNUP_CREDITS, SONG_COST, SONGS};

/// A song's six stages; `dependencies` says which each waits for.
const STAGES: [&str; 6] = [
    "lyrics",
    "composition",
    "arrangement",
    "vocals",
    "mix",
    "master",
];

fn dependencies(kind: &str) -> &'static [&'static str] {
    match kind {
        "arrangement" => &["composition"],
        "vocals" => &["lyrics", "composition"],
        "mix" => &["arrangement", "vocals"],
        "master" => &["mix"],
        _ => &[],
    }
}

impl Sandbox {
    pub(crate) async fn check_runs(
        &self,
        songs: &[Song],
        states: &BTreeMap<String, v1::RunState>,
        outcome: &mut Outcome,
    ) -> anyhow::Result<()> {
        let mut conn = self.db().await?;
        let project_ids: Vec<Uuid> = songs.iter().map(|s| s.project_id).collect();
        let runs: Vec<RunRow> = diesel::sql_query(
            "SELECT id, project_id, owner, state, error_code, error_message \
             FROM runs WHERE project_id = ANY($1)",
        )
        .bind::<Array<SqlUuid>, _>(&project_ids)
        .load(&mut conn)
        .await?;
        let stages: Vec<StageRow> = diesel::sql_query(
            "SELECT run_id, kind, state, attempt, error_code FROM stages \
             WHERE run_id = ANY($1) ORDER BY run_id, kind",
        )
        .bind::<Array<SqlUuid>, _>(songs.iter().map(|s| s.run_id).collect::<Vec<_>>())
        .load(&mut conn)
        .await?;
        outcome.retried = stages.iter().filter(|s| s.attempt > 1).count();
        for song in songs {
            let of_project: Vec<&RunRow> = runs
                .iter()
                .filter(|r| r.project_id == song.project_id)
                .collect();
            if of_project.len() != 1 {
                outcome.duplicate(format!(
                    "{} has {} runs, one was asked for",
                    song.project,
                    of_project.len()
                ));
            }
            let Some(run) = of_project.iter().find(|r| r.id == song.run_id) else {
                outcome.loss(format!(
                    "{}: run {} is not in the database",
                    song.project, song.run
                ));
                continue;
            };
            let state = states[&song.project];
            if state != v1::RunState::Succeeded || run.state != "succeeded" {
                let detail: Vec<String> = stages
                    .iter()
                    .filter(|s| s.run_id == run.id)
                    .map(|s| {
                        format!(
                            "{} {} attempt {}{}",
                            s.kind,
                            s.state,
                            s.attempt,
                            s.error_code
                                .as_deref()
                                .map(|c| format!(" ({c})"))
                                .unwrap_or_default()
                        )
                    })
                    .collect();
                outcome.loss(format!(
                    "{} did not complete: gRPC says {state:?}, the database says {} {}{}; stages: {}",
                    song.run,
                    run.state,
                    run.error_code.as_deref().unwrap_or(""),
                    run.error_message
                        .as_deref()
                        .map(|m| format!(" ({m})"))
                        .unwrap_or_default(),
                    detail.join(", ")
                ));
                continue;
            }
            for kind in STAGES {
                let stage = stages.iter().find(|s| s.run_id == run.id && s.kind == kind);
                if stage.is_none_or(|s| s.state != "succeeded") {
                    outcome.loss(format!(
                        "{}: the {kind} stage is {}",
                        song.run,
                        stage.map_or("missing", |s| s.state.as_str())
                    ));
                }
            }
        }
        Ok(())
    }

    pub(crate) async fn check_credits(
        &self,
        token: &str,
        run_ids: &[Uuid],
        outcome: &mut Outcome,
    ) -> anyhow::Result<()> {
        let mut conn = self.db().await?;
        let runs: Vec<RunRow> = diesel::sql_query(
            "SELECT id, project_id, owner, state, error_code, error_message FROM runs WHERE id = ANY($1)",
        )
        .bind::<Array<SqlUuid>, _>(run_ids)
        .load(&mut conn)
        .await?;
        let ledger: Vec<LedgerRow> = diesel::sql_query(
            "SELECT run_id, kind, count(*) AS n, sum(amount)::bigint AS amount FROM credit_ledger \
             WHERE run_id = ANY($1) GROUP BY run_id, kind",
        )
        .bind::<Array<SqlUuid>, _>(run_ids)
        .load(&mut conn)
        .await?;
        let mut captured = 0i64;
        for run in &runs {
            let entries = |kind: &str| {
                ledger
                    .iter()
                    .find(|l| l.run_id == run.id && l.kind == kind)
                    .map_or((0, 0), |l| (l.n, l.amount))
            };
            let (reserves, reserved) = entries("reserve");
            let (captures, capture) = entries("capture");
            let (refunds, _) = entries("refund");
            captured += capture;
            if reserves != 1 || reserved != SONG_COST {
                outcome.violation(format!(
                    "run {}: {reserves} reservations of {reserved} credits, expected one of {SONG_COST}",
                    run.id
                ));
            }
            if run.state == "succeeded" {
                match (captures, refunds) {
                    (1, 0) if capture == SONG_COST => {}
                    (0, 0) => outcome.loss(format!(
                        "run {} succeeded but its reservation was never captured",
                        run.id
                    )),
                    _ => outcome.duplicate(format!(
                        "run {} settled {captures} captures ({capture} credits) and {refunds} refunds: charged more than once",
                        run.id
                    )),
                }
            }
        }
        let owners: BTreeSet<&str> = runs.iter().map(|r| r.owner.as_str()).collect();
        let [owner] = owners.into_iter().collect::<Vec<_>>()[..] else {
            bail!("the round's runs belong to several owners");
        };
        #[derive(QueryableByName)]
        struct Balance {
            #[diesel(sql_type = BigInt)]
            balance: i64,
            #[diesel(sql_type = BigInt)]
            explained: i64,
        }
        let balance: Balance = diesel::sql_query(
            "SELECT b.balance, \
               (SELECT coalesce(sum(CASE kind WHEN 'grant' THEN amount WHEN 'refund' THEN amount \
                  WHEN 'reserve' THEN -amount ELSE 0 END), 0)::bigint \
                FROM credit_ledger l WHERE l.owner = b.owner) AS explained \
             FROM credit_balances b WHERE b.owner = $1",
        )
        .bind::<Text, _>(owner)
        .get_result(&mut conn)
        .await?;
        let expected = SIGNUP_CREDITS - captured;
        let all_succeeded = runs.iter().all(|r| r.state == "succeeded");
        if all_succeeded && balance.balance != SIGNUP_CREDITS - SONGS as i64 * SONG_COST {
            outcome.violation(format!(
                "balance {} after {SONGS} songs of {SONG_COST} from {SIGNUP_CREDITS}: expected {}",
                balance.balance,
                SIGNUP_CREDITS - SONGS as i64 * SONG_COST
            ));
        } else if all_succeeded && balance.balance != expected {
            outcome.violation(format!(
                "balance {} but {SIGNUP_CREDITS} − captured {captured} = {expected}",
                balance.balance
            ));
        }
        if balance.balance != balance.explained {
            outcome.violation(format!(
                "balance {} is not what the ledger explains ({})",
                balance.balance, balance.explained
            ));
        }
        let usage = UsageServiceClient::new(self.channel.clone())
            .get_usage(authed(token, v1::GetUsageRequest {}))
            .await
            .context("GetUsage")?
            .into_inner();
        if usage.balance != balance.balance || (all_succeeded && usage.reserved != 0) {
            outcome.violation(format!(
                "GetUsage says balance {} reserved {}; the database says balance {}",
                usage.balance, usage.reserved, balance.balance
            ));
        }
        Ok(())
    }

    pub(crate) async fn check_results(
        &self,
        run_ids: &[Uuid],
        outcome: &mut Outcome,
    ) -> anyhow::Result<()> {
        let mut conn = self.db().await?;
        let succeeded: Vec<EventRow> = diesel::sql_query(
            "SELECT project_id, seq, run_id, event_type, stage_kind, attempt, message \
             FROM stage_events WHERE run_id = ANY($1) AND event_type = 'stage_succeeded'",
        )
        .bind::<Array<SqlUuid>, _>(run_ids)
        .load(&mut conn)
        .await?;
        let provenance: Vec<ProvenanceRow> = diesel::sql_query(
            "SELECT p.run_id, p.kind, p.attempt, s.attempt AS stage_attempt, p.outputs::text AS outputs \
             FROM stage_provenance p JOIN stages s ON s.id = p.stage_id WHERE p.run_id = ANY($1)",
        )
        .bind::<Array<SqlUuid>, _>(run_ids)
        .load(&mut conn)
        .await?;
        let assets: Vec<AssetRow> = diesel::sql_query(
            "SELECT run_id, stage_kind, file_name, object_key, sha256, size_bytes \
             FROM assets WHERE run_id = ANY($1)",
        )
        .bind::<Array<SqlUuid>, _>(run_ids)
        .load(&mut conn)
        .await?;
        let objects: Vec<ObjectRow> = diesel::sql_query(
            "SELECT run_id, key, sha256, size_bytes FROM storage_objects \
             WHERE run_id = ANY($1) AND deleted_at IS NULL",
        )
        .bind::<Array<SqlUuid>, _>(run_ids)
        .load(&mut conn)
        .await?;
        let runs: Vec<RunRow> = diesel::sql_query(
            "SELECT id, project_id, owner, state, error_code, error_message FROM runs WHERE id = ANY($1)",
        )
        .bind::<Array<SqlUuid>, _>(run_ids)
        .load(&mut conn)
        .await?;
        for run in runs.iter().filter(|r| r.state == "succeeded") {
            for kind in STAGES {
                let successes = succeeded
                    .iter()
                    .filter(|e| e.run_id == run.id && e.stage_kind.as_deref() == Some(kind))
                    .count();
                match successes {
                    1 => {}
                    0 => outcome.loss(format!(
                        "run {}: no stage_succeeded event for {kind}",
                        run.id
                    )),
                    n => outcome.duplicate(format!(
                        "run {}: {kind} succeeded {n} times in the event log",
                        run.id
                    )),
                }
                let recorded: Vec<&ProvenanceRow> = provenance
                    .iter()
                    .filter(|p| p.run_id == run.id && p.kind == kind)
                    .collect();
                let [record] = recorded[..] else {
                    outcome.violation(format!(
                        "run {}: {} provenance records for {kind}",
                        run.id,
                        recorded.len()
                    ));
                    continue;
                };
                if record.attempt != record.stage_attempt {
                    outcome.duplicate(format!(
                        "run {}: {kind}'s provenance is of attempt {} but the stage's result is attempt {}",
                        run.id, record.attempt, record.stage_attempt
                    ));
                }
                let accepted: BTreeSet<(String, String)> =
                    serde_json::from_str::<Vec<serde_json::Value>>(&record.outputs)?
                        .iter()
                        .map(|o| {
                            (
                                o["file_name"].as_str().unwrap_or_default().to_owned(),
                                o["sha256"].as_str().unwrap_or_default().to_owned(),
                            )
                        })
                        .collect();
                let stored: BTreeSet<(String, String)> = assets
                    .iter()
                    .filter(|a| a.run_id == run.id && a.stage_kind == kind)
                    .map(|a| (a.file_name.clone(), a.sha256.clone()))
                    .collect();
                if accepted != stored {
                    outcome.duplicate(format!(
                        "run {}: {kind}'s stored assets {stored:?} differ from its accepted result {accepted:?}",
                        run.id
                    ));
                }
            }
            // The storage catalog: exactly the accepted outputs, byte for byte.
            let catalogued: HashMap<&str, &ObjectRow> = objects
                .iter()
                .filter(|o| o.run_id == run.id)
                .map(|o| (o.key.as_str(), o))
                .collect();
            let mut expected_keys = BTreeSet::new();
            for asset in assets.iter().filter(|a| a.run_id == run.id) {
                expected_keys.insert(asset.object_key.as_str());
                match catalogued.get(asset.object_key.as_str()) {
                    None => outcome.loss(format!(
                        "run {}: {} is not in the storage catalog",
                        run.id, asset.object_key
                    )),
                    Some(object)
                        if object.sha256 != asset.sha256 || object.size_bytes != asset.size_bytes =>
                    {
                        outcome.duplicate(format!(
                        "run {}: {} was overwritten by another result (catalog sha256 {} ≠ asset {})",
                        run.id, asset.object_key, object.sha256, asset.sha256
                    ))
                    }
                    Some(_) => {}
                }
                let on_disk = fs::metadata(self.data_dir.join(&asset.object_key))
                    .map(|m| i64::try_from(m.len()).unwrap_or(-1));
                if on_disk.as_ref().ok() != Some(&asset.size_bytes) {
                    outcome.loss(format!(
                        "run {}: {} has {on_disk:?} bytes on disk, {} recorded",
                        run.id, asset.object_key, asset.size_bytes
                    ));
                }
            }
            for key in catalogued.keys().filter(|k| !expected_keys.contains(*k)) {
                outcome.duplicate(format!(
                    "run {}: storage holds {key}, which no accepted result names",
                    run.id
                ));
            }
        }
        Ok(())
    }

    pub(crate) async fn check_events(
        &self,
        token: &str,
        songs: &[Song],
        outcome: &mut Outcome,
    ) -> anyhow::Result<()> {
        let mut conn = self.db().await?;
        let project_ids: Vec<Uuid> = songs.iter().map(|s| s.project_id).collect();
        let events: Vec<EventRow> = diesel::sql_query(
            "SELECT project_id, seq, run_id, event_type, stage_kind, attempt, message \
             FROM stage_events WHERE project_id = ANY($1) ORDER BY project_id, seq",
        )
        .bind::<Array<SqlUuid>, _>(&project_ids)
        .load(&mut conn)
        .await?;
        let last: Vec<ProjectSeq> =
            diesel::sql_query("SELECT id, last_event_seq FROM projects WHERE id = ANY($1)")
                .bind::<Array<SqlUuid>, _>(&project_ids)
                .load(&mut conn)
                .await?;
        let stages: Vec<StageRow> = diesel::sql_query(
            "SELECT run_id, kind, state, attempt, error_code FROM stages WHERE run_id = ANY($1)",
        )
        .bind::<Array<SqlUuid>, _>(songs.iter().map(|s| s.run_id).collect::<Vec<_>>())
        .load(&mut conn)
        .await?;
        let mut codes: BTreeMap<String, usize> = BTreeMap::new();
        for song in songs {
            let log: Vec<&EventRow> = events
                .iter()
                .filter(|e| e.project_id == song.project_id)
                .collect();
            let numbers: Vec<i64> = log.iter().map(|e| e.seq).collect();
            let expected: Vec<i64> = (1..=numbers.len() as i64).collect();
            let recorded = last
                .iter()
                .find(|p| p.id == song.project_id)
                .map_or(-1, |p| p.last_event_seq);
            if numbers != expected || recorded != numbers.len() as i64 {
                outcome.loss(format!(
                    "{}: event numbers are not 1..={} without gaps (last_event_seq {recorded}): {numbers:?}",
                    song.project,
                    numbers.len()
                ));
            }
            // Why stages were retried, from the retry events' messages.
            for event in &log {
                if event.event_type == "stage_queued" && event.attempt > 1 {
                    let code = event
                        .message
                        .split_once("failed (")
                        .and_then(|(_, rest)| rest.split_once(')'))
                        .map_or("?", |(code, _)| code);
                    *codes.entry(code.to_owned()).or_default() += 1;
                }
            }
            if let Err(problem) = check_order(&log, &stages, song.run_id) {
                outcome.violation(format!(
                    "{}: event log out of order: {problem}",
                    song.project
                ));
            }
            // And the same log as a client reads it, from the beginning.
            match self.watch_all(token, &song.project).await {
                Ok(ids) => {
                    let wanted: Vec<i64> = (1..=numbers.len() as i64).collect();
                    if ids != wanted {
                        outcome.loss(format!(
                            "{}: WatchProject from 0 gave event ids {ids:?}, expected 1..={}",
                            song.project,
                            numbers.len()
                        ));
                    }
                }
                Err(err) => outcome.violation(format!("{}: WatchProject: {err:#}", song.project)),
            }
        }
        if !codes.is_empty() {
            let codes: Vec<String> = codes.iter().map(|(c, n)| format!("{c}×{n}")).collect();
            outcome.note = format!("{}; retries: {}", outcome.note, codes.join(" "));
        }
        Ok(())
    }

    /// WatchProject from the start until the run finished: the event ids seen.
    async fn watch_all(&self, token: &str, project: &str) -> anyhow::Result<Vec<i64>> {
        let mut stream = self
            .projects()
            .watch_project(authed(
                token,
                v1::WatchProjectRequest {
                    name: project.into(),
                    after_event_id: 0,
                },
            ))
            .await?
            .into_inner();
        let mut ids = Vec::new();
        tokio::time::timeout(Duration::from_secs(20), async {
            while let Some(event) = stream.next().await {
                let event = event?;
                ids.push(event.event_id);
                if event.r#type() == EventKind::RunFinished {
                    break;
                }
            }
            anyhow::Ok(())
        })
        .await
        .context("the stream did not reach the run's end within 20 s")??;
        Ok(ids)
    }

    /// The outbox and every queue empty, and nothing dead-lettered.
    pub(crate) async fn check_drained(
        &self,
        round_started: chrono::DateTime<chrono::Utc>,
        outcome: &mut Outcome,
    ) -> anyhow::Result<()> {
        let deadline = Instant::now() + DRAIN_TIMEOUT;
        loop {
            let mut conn = self.db().await?;
            let unpublished: Count =
                diesel::sql_query("SELECT count(*) AS n FROM outbox WHERE published_at IS NULL")
                    .get_result(&mut conn)
                    .await?;
            let dead: Vec<DeadLetterRow> = diesel::sql_query(
                "SELECT kind, reason, payload FROM dead_letters WHERE created_at >= $1",
            )
            .bind::<diesel::sql_types::Timestamptz, _>(round_started)
            .load(&mut conn)
            .await?;
            let queues = blocking(|| self.rabbit.queues())?;
            let busy: Vec<&(String, i64)> = queues.iter().filter(|(_, n)| *n != 0).collect();
            let ours = [
                format!("{QUEUE_PREFIX}.stage-work"),
                format!("{QUEUE_PREFIX}.stage-updates"),
                format!("{QUEUE_PREFIX}.dead-letters"),
            ];
            let missing: Vec<&String> = ours
                .iter()
                .filter(|q| !queues.iter().any(|(name, _)| name == *q))
                .collect();
            let settled = unpublished.n == 0 && busy.is_empty() && missing.is_empty();
            let timed_out = Instant::now() > deadline;
            if (settled || timed_out) && !dead.is_empty() {
                outcome.dead_letters = dead.len();
                outcome.violation(format!(
                        "{} messages were dead-lettered in this round (the broker gave up on them; \
                         each pages an operator and its stage had to be rendered again or failed): {}",
                        dead.len(),
                        describe_dead_letters(&dead)
                    ));
            }
            if settled {
                return Ok(());
            }
            if timed_out {
                if unpublished.n > 0 {
                    outcome.loss(format!("{} outbox rows never published", unpublished.n));
                }
                for (queue, n) in busy {
                    outcome.loss(format!("{n} messages left in queue {queue}"));
                }
                if !missing.is_empty() {
                    outcome.violation(format!("queues missing from the broker: {missing:?}"));
                }
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

/// "stage_update/delivery_limit: completed×3 heartbeat×20, ..."
fn describe_dead_letters(dead: &[DeadLetterRow]) -> String {
    use v1::stage_update::Update;
    let mut groups: BTreeMap<String, BTreeMap<&'static str, usize>> = BTreeMap::new();
    for letter in dead {
        let what = match cadenza_queue::decode(&letter.payload) {
            Ok((_, v1::envelope::Body::StageUpdate(update))) => match update.update {
                Some(Update::Started(_)) => "started",
                Some(Update::Progress(_)) => "progress",
                Some(Update::Completed(_)) => "completed",
                Some(Update::Failed(_)) => "failed",
                Some(Update::Heartbeat(_)) => "heartbeat",
                None => "empty",
            },
            Ok((_, v1::envelope::Body::StageWork(_))) => "work",
            Ok(_) => "other",
            Err(_) => "unreadable",
        };
        *groups
            .entry(format!("{}/{}", letter.kind, letter.reason))
            .or_default()
            .entry(what)
            .or_default() += 1;
    }
    groups
        .iter()
        .map(|(group, counts)| {
            let counts: Vec<String> = counts.iter().map(|(w, n)| format!("{w}×{n}")).collect();
            format!("{group}: {}", counts.join(" "))
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// The order a run's events must keep: created first, finished last and once;
/// each stage queued before it starts and starts before it succeeds (in its
/// final attempt), first queued only after its dependencies succeeded, and
/// nothing about it after it succeeded.
fn check_order(log: &[&EventRow], stages: &[StageRow], run_id: Uuid) -> Result<(), String> {
    let of_run: Vec<&&EventRow> = log.iter().filter(|e| e.run_id == run_id).collect();
    // (`RunQueryDsl::first` is in scope: the slice method by its full name.)
    if <[_]>::first(&of_run).map(|e| e.event_type.as_str()) != Some("run_created") {
        return Err("the first event is not run_created".into());
    }
    let finished: Vec<usize> = of_run
        .iter()
        .enumerate()
        .filter(|(_, e)| e.event_type == "run_finished")
        .map(|(i, _)| i)
        .collect();
    if finished != [of_run.len() - 1] {
        return Err(format!(
            "run_finished at positions {finished:?} of {} events",
            of_run.len()
        ));
    }
    let position = |kind: &str, ty: &str, attempt: Option<i32>| {
        of_run.iter().position(|e| {
            e.stage_kind.as_deref() == Some(kind)
                && e.event_type == ty
                && attempt.is_none_or(|a| e.attempt == a)
        })
    };
    for kind in STAGES {
        let Some(stage) = stages.iter().find(|s| s.run_id == run_id && s.kind == kind) else {
            continue;
        };
        if stage.state != "succeeded" {
            continue;
        }
        let final_attempt = Some(stage.attempt);
        let queued = position(kind, "stage_queued", final_attempt)
            .ok_or(format!("{kind} attempt {} was never queued", stage.attempt))?;
        let succeeded =
            position(kind, "stage_succeeded", None).ok_or(format!("{kind} never succeeded"))?;
        if succeeded < queued {
            return Err(format!(
                "{kind} succeeded before its final attempt was queued"
            ));
        }
        if let Some(started) = position(kind, "stage_started", final_attempt)
            && !(queued < started && started < succeeded)
        {
            return Err(format!(
                "{kind}: queued at {queued}, started at {started}, succeeded at {succeeded}"
            ));
        }
        let first_queued = position(kind, "stage_queued", None).unwrap_or(queued);
        for dep in dependencies(kind) {
            let dep_done = position(dep, "stage_succeeded", None)
                .ok_or(format!("{dep} (needed by {kind}) never succeeded"))?;
            if dep_done > first_queued {
                return Err(format!("{kind} was queued before {dep} succeeded"));
            }
        }
        if let Some(after) = of_run
            .iter()
            .skip(succeeded + 1)
            .find(|e| e.stage_kind.as_deref() == Some(kind))
        {
            return Err(format!(
                "{kind} has a {} event (attempt {}) after it succeeded",
                after.event_type, after.attempt
            ));
        }
    }
    Ok(())
}
