//! One round: twenty songs started (the first asked for many times with one
//! request id), a fault injected mid-stage, every song awaited, every check run;
//! and the round's outcome, a row of the summary.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use cadenza_mesh::testing::authed;
use cadenza_proto::v1::{self, auth_service_client::AuthServiceClient};
use uuid::Uuid;

use crate::faults::Fault;
use crate::infra::say;
use crate::services::Sandbox;
use crate::{IDENTICAL_REQUESTS, PASSWORD, SETTLE_TIMEOUT, SONG_SECONDS, SONGS};

pub(crate) struct Song {
    pub(crate) project: String,
    pub(crate) project_id: Uuid,
    pub(crate) run: String,
    pub(crate) run_id: Uuid,
}

#[derive(Default)]
pub(crate) struct Outcome {
    pub(crate) fault: Option<Fault>,
    pub(crate) songs: usize,
    pub(crate) completed: usize,
    pub(crate) duplicates: usize,
    pub(crate) losses: usize,
    pub(crate) retried: usize,
    pub(crate) dead_letters: usize,
    pub(crate) window: Duration,
    pub(crate) recovery: Option<Duration>,
    pub(crate) note: String,
    pub(crate) violations: Vec<String>,
}

impl Outcome {
    pub(crate) fn duplicate(&mut self, what: String) {
        self.duplicates += 1;
        self.violation(format!("duplicate: {what}"));
    }

    pub(crate) fn loss(&mut self, what: String) {
        self.losses += 1;
        self.violation(format!("loss: {what}"));
    }

    pub(crate) fn violation(&mut self, what: String) {
        say(format!("VIOLATION: {what}"));
        self.violations.push(what);
    }
}

fn uuid_of(name: &str, after: &str) -> anyhow::Result<Uuid> {
    let id = name
        .split('/')
        .skip_while(|part| *part != after)
        .nth(1)
        .with_context(|| format!("no {after} id in {name}"))?;
    Ok(Uuid::parse_str(id)?)
}

impl Sandbox {
    pub(crate) async fn round(&mut self, index: usize, fault: Fault) -> Outcome {
        let mut outcome = Outcome {
            fault: Some(fault),
            songs: SONGS,
            ..Default::default()
        };
        if let Err(err) = self.round_inner(index, fault, &mut outcome).await {
            outcome.violation(format!("round {} ({}): {err:#}", index + 1, fault.label()));
        }
        outcome
    }

    async fn round_inner(
        &mut self,
        index: usize,
        fault: Fault,
        outcome: &mut Outcome,
    ) -> anyhow::Result<()> {
        let label = format!("round {} ({})", index + 1, fault.label());
        self.supervise(&mut outcome.violations);
        let round_started = chrono::Utc::now();

        // A fresh account per round: its balance is this round's alone.
        let email = format!(
            "chaos-{}-{}@example.com",
            index + 1,
            Uuid::new_v4().simple()
        );
        let session = AuthServiceClient::new(self.channel.clone())
            .register(v1::RegisterRequest {
                email,
                password: PASSWORD.into(),
                accept_terms_version: String::new(),
            })
            .await
            .context("registering the round's account")?
            .into_inner();
        let token = session.access_token;

        let songs = self.start_songs(index, &token).await?;
        let run_ids: Vec<Uuid> = songs.iter().map(|s| s.run_id).collect();
        say(format!("{label}: {SONGS} songs started"));

        // Mid-stage: enough stages RUNNING that every worker is busy.
        let victim = match fault {
            Fault::Worker => self.service("generation-1").pid(),
            _ => None,
        };
        let (running, unacked) = self.wait_mid_stage(&run_ids, victim).await?;
        let injected = Instant::now();
        outcome.note = self.inject(fault, running, unacked).await?;
        outcome.window = injected.elapsed();
        say(format!(
            "{label}: fault over after {:.1}s ({})",
            outcome.window.as_secs_f64(),
            outcome.note
        ));

        // Every song finishes (or the deadline passes).
        let states = self
            .wait_finished(&token, &songs, &mut outcome.violations)
            .await;
        let all_finished = states.values().all(|s| is_terminal(*s));
        if all_finished {
            outcome.recovery = Some(injected.elapsed());
        }
        outcome.completed = states
            .values()
            .filter(|s| **s == v1::RunState::Succeeded)
            .count();
        say(format!(
            "{label}: {}/{SONGS} songs succeeded{}",
            outcome.completed,
            outcome
                .recovery
                .map(|r| format!(", {:.1}s after the fault", r.as_secs_f64()))
                .unwrap_or_else(|| format!(", others unfinished after {SETTLE_TIMEOUT:?}"))
        ));

        self.check_runs(&songs, &states, outcome).await?;
        self.check_credits(&token, &run_ids, outcome).await?;
        self.check_results(&run_ids, outcome).await?;
        self.check_events(&token, &songs, outcome).await?;
        self.check_drained(round_started, outcome).await?;
        self.supervise(&mut outcome.violations);
        Ok(())
    }

    async fn start_songs(&self, round: usize, token: &str) -> anyhow::Result<Vec<Song>> {
        let mut songs = Vec::with_capacity(SONGS);
        for i in 0..SONGS {
            let project = self
                .projects()
                .create_project(authed(
                    token,
                    v1::CreateProjectRequest {
                        project: Some(v1::Project {
                            title: format!("chaos {} song {}", round + 1, i + 1),
                            prompt: format!(
                                "an upbeat pop song about surviving storm number {}",
                                i + 1
                            ),
                            duration_seconds: SONG_SECONDS,
                            has_vocals: true,
                            seed: Some(1_000 * (round as u64 + 1) + i as u64),
                            ..Default::default()
                        }),
                        request_id: String::new(),
                    },
                ))
                .await
                .context("CreateProject")?
                .into_inner();
            let request = v1::GenerateSongRequest {
                name: project.name.clone(),
                request_id: Uuid::new_v4().to_string(),
            };
            let copies = if i == 0 { IDENTICAL_REQUESTS } else { 1 };
            let answers = futures::future::join_all((0..copies).map(|_| {
                let mut client = self.projects();
                let request = authed(token, request.clone());
                async move { client.generate_song(request).await }
            }))
            .await;
            let mut runs = BTreeSet::new();
            for answer in answers {
                runs.insert(answer.context("GenerateSong")?.into_inner().name);
            }
            if runs.len() != 1 {
                bail!(
                    "{copies} identical GenerateSong calls (one request_id) made {} runs: {runs:?}",
                    runs.len()
                );
            }
            let run = runs.pop_first().unwrap_or_default();
            songs.push(Song {
                project_id: uuid_of(&project.name, "projects")?,
                run_id: uuid_of(&run, "runs")?,
                project: project.name,
                run,
            });
        }
        Ok(songs)
    }

    /// Polls every song's status through the gateway until each has finished or
    /// the deadline passes; the last state seen of each.
    async fn wait_finished(
        &mut self,
        token: &str,
        songs: &[Song],
        violations: &mut Vec<String>,
    ) -> BTreeMap<String, v1::RunState> {
        let deadline = Instant::now() + SETTLE_TIMEOUT;
        let mut states: BTreeMap<String, v1::RunState> = songs
            .iter()
            .map(|s| (s.project.clone(), v1::RunState::Unspecified))
            .collect();
        let mut errors = 0usize;
        let mut stray = BTreeSet::new();
        loop {
            let mut projects = self.projects();
            for song in songs {
                if is_terminal(states[&song.project]) {
                    continue;
                }
                match projects
                    .get_project_status(authed(
                        token,
                        v1::GetProjectStatusRequest {
                            name: song.project.clone(),
                        },
                    ))
                    .await
                {
                    Ok(status) => {
                        let status = status.into_inner();
                        if status.run != song.run && stray.insert(song.project.clone()) {
                            violations.push(format!(
                                "{}: its latest run is {} instead of {}",
                                song.project, status.run, song.run
                            ));
                        }
                        states.insert(song.project.clone(), status.state());
                    }
                    Err(_) => errors += 1,
                }
            }
            if states.values().all(|s| is_terminal(*s)) || Instant::now() > deadline {
                break;
            }
            self.supervise(violations);
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        if errors > 0 {
            say(format!(
                "(status calls refused or failed while recovering: {errors})"
            ));
        }
        states
    }
}

fn is_terminal(state: v1::RunState) -> bool {
    matches!(
        state,
        v1::RunState::Succeeded | v1::RunState::Failed | v1::RunState::Cancelled
    )
}
