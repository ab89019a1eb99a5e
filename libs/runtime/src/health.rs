//! Readiness: `grpc.health.v1` following probes of a process's dependencies.
//!
//! A dependency is either *required* (the process cannot serve a call without
//! it: readiness follows it) or *watched* (the process serves without it, in a
//! degraded way, such as `project` queueing work in its outbox while RabbitMQ
//! is away). Every dependency, either kind, is reported as
//! `cadenza_dependency_up{dependency}` and by a log line at each change, so an
//! outage of one that does not gate readiness is still seen.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

/// A dependency check: resolves to whether the dependency answers.
pub type Probe = Arc<dyn Fn() -> Pin<Box<dyn Future<Output = bool> + Send>> + Send + Sync>;

/// Builds a probe from an async closure.
pub fn probe<F, Fut>(check: F) -> Probe
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = bool> + Send + 'static,
{
    Arc::new(move || Box::pin(check()))
}

/// One dependency of a process and how much its absence matters.
pub struct Dependency {
    name: &'static str,
    probe: Probe,
    required: bool,
}

impl Dependency {
    /// The process cannot serve without it: NOT_SERVING while it is away.
    pub fn required(name: &'static str, probe: Probe) -> Self {
        Self {
            name,
            probe,
            required: true,
        }
    }

    /// The process serves without it (degraded): reported, never NOT_SERVING.
    pub fn watched(name: &'static str, probe: Probe) -> Self {
        Self {
            name,
            probe,
            required: false,
        }
    }
}

/// The health service of one process.
#[derive(Clone)]
pub struct Health {
    reporter: HealthReporter,
    services: Vec<&'static str>,
}

/// How often readiness is re-checked.
const PROBE_INTERVAL: Duration = Duration::from_secs(2);
/// How long one probe may take before it counts as failed.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

impl Health {
    /// `services` are the fully qualified gRPC service names this process serves;
    /// the overall status (`""`) is reported too. Everything starts NOT_SERVING,
    /// registered before the server accepts a call, so no check ever sees an
    /// unknown service.
    pub async fn new(
        services: Vec<&'static str>,
    ) -> (
        Self,
        tonic_health::pb::health_server::HealthServer<impl tonic_health::pb::health_server::Health>,
    ) {
        let (reporter, server) = tonic_health::server::health_reporter();
        let health = Self { reporter, services };
        health.set(ServingStatus::NotServing).await;
        (health, server)
    }

    async fn set(&self, status: ServingStatus) {
        self.reporter.set_service_status("", status).await;
        for service in &self.services {
            self.reporter.set_service_status(*service, status).await;
        }
    }

    /// Starts NOT_SERVING, then probes `dependencies` every two seconds until
    /// `shutdown`, when it turns NOT_SERVING for good: SERVING while every
    /// required one answers.
    pub async fn track(self, dependencies: Vec<Dependency>, shutdown: CancellationToken) {
        self.set(ServingStatus::NotServing).await;
        let mut serving = None;
        let mut up: HashMap<&'static str, bool> = HashMap::new();
        loop {
            let mut failing = Vec::new();
            for dependency in &dependencies {
                let ok = tokio::time::timeout(PROBE_TIMEOUT, (dependency.probe)())
                    .await
                    .unwrap_or(false);
                report(dependency, ok, up.insert(dependency.name, ok));
                if !ok && dependency.required {
                    failing.push(dependency.name);
                }
            }
            let now_serving = failing.is_empty();
            if serving != Some(now_serving) {
                if now_serving {
                    tracing::info!("ready: every required dependency answers");
                } else {
                    tracing::warn!(failing = ?failing, "not ready: required dependencies unreachable");
                }
                self.set(if now_serving {
                    ServingStatus::Serving
                } else {
                    ServingStatus::NotServing
                })
                .await;
                serving = Some(now_serving);
            }
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(PROBE_INTERVAL) => {}
            }
        }
        self.set(ServingStatus::NotServing).await;
    }
}

/// The gauge, and a line when a dependency changes (or is first found away).
fn report(dependency: &Dependency, ok: bool, before: Option<bool>) {
    metrics::gauge!("cadenza_dependency_up", "dependency" => dependency.name).set(if ok {
        1.0
    } else {
        0.0
    });
    let name = dependency.name;
    match (before, ok) {
        (Some(false), true) => tracing::info!(dependency = name, "dependency answers again"),
        (Some(true) | None, false) if dependency.required => {
            tracing::warn!(dependency = name, "required dependency unreachable")
        }
        (Some(true) | None, false) => tracing::warn!(
            dependency = name,
            "dependency unreachable; serving without it"
        ),
        _ => {}
    }
}
