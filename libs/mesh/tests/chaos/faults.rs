//! The faults: which to inject (`CADENZA_CHAOS_FAULTS`), waiting until enough
//! stages run that one hits work mid-flight, and injecting it (SIGKILL to a
//! worker or the project service, RabbitMQ or Postgres stopped) and bringing
//! the victim back.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use diesel::sql_types::{Array, Uuid as SqlUuid};
use diesel_async::RunQueryDsl;
use uuid::Uuid;

use crate::infra::{blocking, say};
use crate::rows::Count;
use crate::services::Sandbox;
use crate::{
    MID_STAGE_RUNNING, MID_STAGE_TIMEOUT, POSTGRES_DOWN, PROJECT_DOWN, RABBITMQ_DOWN, WORKER_DOWN,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fault {
    None,
    Worker,
    Project,
    RabbitMq,
    Postgres,
}

impl Fault {
    fn parse(word: &str) -> Option<Self> {
        Some(match word.trim() {
            "none" => Self::None,
            "worker" | "generation" => Self::Worker,
            "project" => Self::Project,
            "rabbitmq" | "broker" => Self::RabbitMq,
            "postgres" | "database" => Self::Postgres,
            _ => return None,
        })
    }

    pub(crate) fn label(self) -> &'static str {
        match self {
            Self::None => "none (baseline)",
            Self::Worker => "kill -9 generation worker",
            Self::Project => "kill -9 project",
            Self::RabbitMq => "restart RabbitMQ",
            Self::Postgres => "restart Postgres",
        }
    }
}

pub(crate) fn faults_from_env() -> Vec<Fault> {
    match std::env::var("CADENZA_CHAOS_FAULTS") {
        Ok(list) if !list.trim().is_empty() => list
            .split(',')
            .map(|w| {
                Fault::parse(w).unwrap_or_else(|| {
                    panic!(
                        "CADENZA_CHAOS_FAULTS: unknown fault `{w}` (use worker, project, rabbitmq, postgres or none)"
                    )
                })
            })
            .collect(),
        _ => vec![
            Fault::Worker,
            Fault::Project,
            Fault::RabbitMq,
            Fault::Postgres,
        ],
    }
}

impl Sandbox {
    async fn running_stages(&self, run_ids: &[Uuid]) -> anyhow::Result<(i64, i64)> {
        let mut conn = self.db().await?;
        let running: Count = diesel::sql_query(
            "SELECT count(*) AS n FROM stages WHERE run_id = ANY($1) AND state = 'running'",
        )
        .bind::<Array<SqlUuid>, _>(run_ids)
        .get_result(&mut conn)
        .await?;
        let unfinished: Count = diesel::sql_query(
            "SELECT count(*) AS n FROM runs WHERE id = ANY($1) \
             AND state NOT IN ('succeeded', 'failed', 'cancelled')",
        )
        .bind::<Array<SqlUuid>, _>(run_ids)
        .get_result(&mut conn)
        .await?;
        Ok((running.n, unfinished.n))
    }

    /// Waits until enough stages run at once (and, with `busy_worker`, until the
    /// broker has handed that worker work it has not acknowledged yet).
    pub(crate) async fn wait_mid_stage(
        &self,
        run_ids: &[Uuid],
        busy_worker: Option<u32>,
    ) -> anyhow::Result<(i64, i64)> {
        let deadline = Instant::now() + MID_STAGE_TIMEOUT;
        loop {
            let (running, unfinished) = self.running_stages(run_ids).await?;
            if running >= MID_STAGE_RUNNING {
                let Some(pid) = busy_worker else {
                    return Ok((running, 0));
                };
                let unacked = blocking(|| self.rabbit.unacked_of(pid))?;
                if unacked > 0 {
                    return Ok((running, unacked));
                }
            }
            if unfinished == 0 {
                bail!(
                    "every song finished before {MID_STAGE_RUNNING} stages ran at once: no fault could hit a stage mid-flight"
                );
            }
            if Instant::now() > deadline {
                bail!("fewer than {MID_STAGE_RUNNING} stages RUNNING for {MID_STAGE_TIMEOUT:?}");
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Injects `fault` and brings the victim back; a line about what was hit.
    pub(crate) async fn inject(
        &mut self,
        fault: Fault,
        running: i64,
        unacked: i64,
    ) -> anyhow::Result<String> {
        match fault {
            Fault::None => Ok(format!("no fault; {running} stages running")),
            Fault::Worker => {
                let pid = self
                    .service("generation-1")
                    .pid()
                    .context("worker 1 runs")?;
                self.service("generation-1").kill9();
                say(format!(
                    "kill -9 generation-1 (pid {pid}) holding {unacked} unacknowledged deliveries, {running} stages running"
                ));
                tokio::time::sleep(WORKER_DOWN).await;
                let pids = self.pids.clone();
                self.service("generation-1").spawn(&pids)?;
                self.wait_serving("generation-1").await?;
                Ok(format!(
                    "worker killed holding {unacked} deliveries; {running} stages running"
                ))
            }
            Fault::Project => {
                let pid = self.service("project").pid().context("project runs")?;
                self.service("project").kill9();
                say(format!(
                    "kill -9 project (pid {pid}), {running} stages running"
                ));
                tokio::time::sleep(PROJECT_DOWN).await;
                let pids = self.pids.clone();
                self.service("project").spawn(&pids)?;
                self.wait_serving("project").await?;
                Ok(format!("{running} stages running"))
            }
            Fault::RabbitMq => {
                say(format!("stopping RabbitMQ, {running} stages running"));
                blocking(|| self.rabbit.stop())?;
                tokio::time::sleep(RABBITMQ_DOWN).await;
                blocking(|| self.rabbit.start())?;
                say("RabbitMQ started again");
                Ok(format!("{running} stages running"))
            }
            Fault::Postgres => {
                say(format!(
                    "stopping Postgres (immediate: every connection cut), {running} stages running"
                ));
                blocking(|| self.postgres.stop("immediate"))?;
                tokio::time::sleep(POSTGRES_DOWN).await;
                blocking(|| self.postgres.start())?;
                say("Postgres started again");
                Ok(format!("{running} stages running"))
            }
        }
    }
}
