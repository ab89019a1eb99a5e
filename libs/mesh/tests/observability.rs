//! What an operator sees, with the four services as four real processes (as in
//! production, each with its own metrics registry and log stream): after one song
//! made through the gateway, every service's `/metrics` has the metrics the
//! dashboard and alerts read, with values that follow from that song; the song's
//! trace id (sent by the caller in `traceparent`) is in the JSON logs of all four
//! services, and their spans, exported over OTLP to a collector this test runs,
//! form that one trace; every service reports its build through `VersionService`.
//! A second song, cancelled mid-mix, is counted as cancelled, not failed.
//!
//! The binaries are the workspace's own (`cargo build --bins`, which `make test`
//! and `cargo test --workspace` do); a missing one fails the test and says so.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cadenza_db::testing::TestDatabase;
use cadenza_mesh::testing::{
    authed, create_project, finished_state, generate as generate_song, wait_until_mixing,
};
use cadenza_proto::v1::{self, project_service_client::ProjectServiceClient};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
    trace_service_server::{TraceService, TraceServiceServer},
};
use tonic::transport::Channel;

const AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

/// One exported span, as the collector received it.
#[derive(Debug, Clone)]
struct ExportedSpan {
    service: String,
    name: String,
    trace_id: String,
    parent_span_id: String,
}

/// An OTLP trace collector keeping every span it is sent.
#[derive(Clone, Default)]
struct Collector {
    spans: Arc<Mutex<Vec<ExportedSpan>>>,
}

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
        let mut spans = self.spans.lock().expect("spans");
        for resource in request.into_inner().resource_spans {
            let service = resource
                .resource
                .iter()
                .flat_map(|r| &r.attributes)
                .find(|kv| kv.key == "service.name")
                .and_then(|kv| kv.value.as_ref())
                .map(|v| format!("{:?}", v.value))
                .unwrap_or_default();
            for scope in resource.scope_spans {
                for span in scope.spans {
                    spans.push(ExportedSpan {
                        service: service.clone(),
                        name: span.name,
                        trace_id: hex(&span.trace_id),
                        parent_span_id: hex(&span.parent_span_id),
                    });
                }
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

/// A port nobody listens on right now (the OS's choice).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Where cargo put this workspace's binaries: beside the test's `deps/` folder.
fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target directory");
    let path = dir.join(name);
    assert!(
        path.is_file(),
        "{} is missing: build the services first (`cargo build --bins`)",
        path.display()
    );
    path
}

/// One service process, logging JSON into a file; killed when dropped.
struct Service {
    name: &'static str,
    child: Child,
    log: PathBuf,
    admin: u16,
    grpc: u16,
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Service {
    fn start(
        name: &'static str,
        dir: &Path,
        common: &HashMap<&str, String>,
        own: &[(&str, String)],
        grpc: u16,
        admin: u16,
    ) -> Self {
        let log = dir.join(format!("{name}.log"));
        let file = std::fs::File::create(&log).expect("log file");
        let mut command = Command::new(binary(&format!("cadenza-{name}")));
        command
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(common.iter().map(|(k, v)| (*k, v.as_str())))
            .envs(own.iter().map(|(k, v)| (*k, v.as_str())))
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("log file"))
            .stderr(file);
        let child = command.spawn().expect("start the service");
        Self {
            name,
            child,
            log,
            admin,
            grpc,
        }
    }

    fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    async fn channel(&self) -> Channel {
        Channel::from_shared(format!("http://127.0.0.1:{}", self.grpc))
            .expect("url")
            .connect()
            .await
            .expect("connect")
    }

    async fn metrics(&self) -> String {
        reqwest::get(format!("http://127.0.0.1:{}/metrics", self.admin))
            .await
            .and_then(reqwest::Response::error_for_status)
            .unwrap_or_else(|err| panic!("scraping {}: {err}", self.name))
            .text()
            .await
            .expect("metrics body")
    }
}

/// Waits until the gRPC health of `service` says SERVING.
async fn wait_serving(service: &mut Service) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(Some(status)) = service.child.try_wait() {
            panic!(
                "{} exited ({status}) while starting:\n{}",
                service.name,
                service.logs()
            );
        }
        if let Ok(channel) = Channel::from_shared(format!("http://127.0.0.1:{}", service.grpc))
            .expect("url")
            .connect()
            .await
        {
            let answer = tonic_health::pb::health_client::HealthClient::new(channel)
                .check(tonic_health::pb::HealthCheckRequest::default())
                .await;
            if answer.is_ok_and(|a| {
                a.into_inner().status()
                    == tonic_health::pb::health_check_response::ServingStatus::Serving
            }) {
                return;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} did not become ready:\n{}",
            service.name,
            service.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The value of the sample named exactly `series` (name and labels, as rendered),
/// summed over every sample whose line starts with it.
fn sample(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .filter(|line| !line.starts_with('#') && line.starts_with(series))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Whether a sample of `name` carries every one of `labels`.
fn has(metrics: &str, name: &str, labels: &[&str]) -> bool {
    metrics.lines().any(|line| {
        line.starts_with(name) && !line.starts_with('#') && labels.iter().all(|l| line.contains(l))
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_logs_and_versions_of_four_real_processes_follow_one_song() {
    let db = TestDatabase::create().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let prefix = format!("obs-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let ports: HashMap<&str, (u16, u16)> = ["gateway", "project", "generation", "storage"]
        .into_iter()
        .map(|name| (name, (free_port(), free_port())))
        .collect();
    let url = |name: &str| format!("http://127.0.0.1:{}", ports[name].0);
    let storage_http = free_port();
    let collector = Collector::default();
    let collector_addr = {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("collector port");
        let addr = listener.local_addr().expect("collector address");
        let service = TraceServiceServer::new(collector.clone());
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
        );
        addr
    };
    let common: HashMap<&str, String> = HashMap::from([
        ("CADENZA_DEV_MODE", "true".to_owned()),
        // Separate processes: the gateway verifies what project signs.
        (
            "CADENZA_JWT_SECRET",
            "observability-test-secret-of-at-least-32-bytes".to_owned(),
        ),
        ("CADENZA_DATABASE_URL", db.url.clone()),
        ("CADENZA_AMQP_URL", AMQP_URL.to_owned()),
        ("CADENZA_QUEUE_PREFIX", prefix.clone()),
        ("CADENZA_QUEUE_EXPIRES_SECONDS", "600".to_owned()),
        ("CADENZA_PROJECT_URL", url("project")),
        ("CADENZA_GENERATION_URL", url("generation")),
        ("CADENZA_STORAGE_URL", url("storage")),
        ("CADENZA_RECONCILE_SECONDS", "1".to_owned()),
        ("CADENZA_LOG_FORMAT", "json".to_owned()),
        (
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            format!("http://{collector_addr}"),
        ),
        // Batches leave every 100 ms instead of every 5 s.
        ("OTEL_BSP_SCHEDULE_DELAY", "100".to_owned()),
        // Every call's line (debug in the gRPC layer) carries its trace id.
        (
            "RUST_LOG",
            "info,cadenza_telemetry=debug,lapin=warn".to_owned(),
        ),
    ]);
    let addr = |port: u16| format!("127.0.0.1:{port}");
    let secrets = cadenza_mesh::MeshSecrets::random();
    let mut services = Vec::new();
    for (name, grpc_var, admin_var) in [
        (
            "storage",
            "CADENZA_STORAGE_ADDR",
            "CADENZA_STORAGE_ADMIN_ADDR",
        ),
        (
            "project",
            "CADENZA_PROJECT_ADDR",
            "CADENZA_PROJECT_ADMIN_ADDR",
        ),
        (
            "generation",
            "CADENZA_GENERATION_ADDR",
            "CADENZA_GENERATION_ADMIN_ADDR",
        ),
        (
            "gateway",
            "CADENZA_GATEWAY_ADDR",
            "CADENZA_GATEWAY_ADMIN_ADDR",
        ),
    ] {
        let (grpc, admin) = ports[name];
        let links = secrets.variables(name.parse().expect("a service"));
        let mut own = vec![
            (grpc_var, addr(grpc)),
            (admin_var, addr(admin)),
            ("CADENZA_WEB_DIR", String::new()),
        ];
        own.extend(links.iter().map(|(k, v)| (k.as_str(), v.clone())));
        if name == "storage" {
            own.push(("CADENZA_STORAGE_HTTP_ADDR", addr(storage_http)));
            own.push((
                "CADENZA_DATA_DIR",
                dir.path().join("data").display().to_string(),
            ));
        }
        services.push(Service::start(name, dir.path(), &common, &own, grpc, admin));
    }
    for service in &mut services {
        wait_serving(service).await;
    }
    let by_name = |name: &str| services.iter().find(|s| s.name == name).expect("service");

    // Every service says which build it is.
    for service in &services {
        let info = v1::version_service_client::VersionServiceClient::new(service.channel().await)
            .get_version(v1::GetVersionRequest {})
            .await
            .expect("version")
            .into_inner();
        assert_eq!(
            (info.service.as_str(), info.version.as_str()),
            (service.name, env!("CARGO_PKG_VERSION"))
        );
        assert!(!info.git_commit.is_empty() && !info.build_time.is_empty());
    }

    // One song, its first call carrying a trace the caller chose.
    let gateway = by_name("gateway").channel().await;
    let token = v1::dev_service_client::DevServiceClient::new(gateway.clone())
        .issue_dev_token(v1::IssueDevTokenRequest {
            subject: "observer".into(),
            ttl_seconds: 0,
        })
        .await
        .expect("dev token")
        .into_inner()
        .token;
    let mut projects = ProjectServiceClient::new(gateway.clone());
    let project = projects
        .create_project(authed(
            &token,
            v1::CreateProjectRequest {
                project: Some(v1::Project {
                    title: "observed".into(),
                    prompt: "a short lo-fi song".into(),
                    duration_seconds: 5,
                    has_vocals: true,
                    ..Default::default()
                }),
                ..Default::default()
            },
        ))
        .await
        .expect("create")
        .into_inner();
    let mut generate = authed(
        &token,
        v1::GenerateSongRequest {
            name: project.name.clone(),
            ..Default::default()
        },
    );
    generate.metadata_mut().insert(
        "traceparent",
        format!("00-{TRACE_ID}-00f067aa0ba902b7-01")
            .parse()
            .expect("header"),
    );
    projects.generate_song(generate).await.expect("generate");
    assert_eq!(
        finished_state(&gateway, &token, &project.name, Duration::from_secs(120)).await,
        v1::RunState::Succeeded
    );
    // One reconciler beat (1 s) for the queue gauges.
    tokio::time::sleep(Duration::from_secs(2)).await;

    // The trace id of the song is in the logs of all four services.
    for service in &services {
        let logs = service.logs();
        let traced = logs.lines().filter(|line| line.contains(TRACE_ID)).count();
        assert!(
            traced > 0,
            "no log line of {} carries the song's trace id:\n{logs}",
            service.name
        );
        for line in logs.lines().filter(|l| l.starts_with('{')) {
            serde_json::from_str::<serde_json::Value>(line)
                .unwrap_or_else(|err| panic!("{}: not JSON ({err}): {line}", service.name));
        }
    }

    // Their spans, exported over OTLP, make one trace: the caller's span is the
    // gateway's parent, and every service has spans in it.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let song: Vec<ExportedSpan> = loop {
        let song: Vec<ExportedSpan> = collector
            .spans
            .lock()
            .expect("spans")
            .iter()
            .filter(|s| s.trace_id == TRACE_ID)
            .cloned()
            .collect();
        let services_seen = ["gateway", "project", "generation", "storage"]
            .iter()
            .filter(|name| {
                song.iter()
                    .any(|s| s.service.contains(&format!("cadenza-{name}")))
            })
            .count();
        if services_seen == 4 || tokio::time::Instant::now() > deadline {
            break song;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    for name in ["gateway", "project", "generation", "storage"] {
        assert!(
            song.iter()
                .any(|s| s.service.contains(&format!("cadenza-{name}"))),
            "no span of cadenza-{name} in the song's trace: {song:#?}"
        );
    }
    assert!(
        song.iter().any(
            |s| s.service.contains("cadenza-gateway") && s.parent_span_id == "00f067aa0ba902b7"
        ),
        "the gateway's span is the caller's child: {song:#?}"
    );
    assert!(
        song.iter().filter(|s| s.name == "stage").count() >= 6,
        "a span per stage: {song:#?}"
    );

    // Each service's own metrics, with values that follow from one song.
    let scraped: HashMap<&str, String> = {
        let mut scraped = HashMap::new();
        for service in &services {
            scraped.insert(service.name, service.metrics().await);
        }
        scraped
    };
    let output = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../test-output/metrics");
    if std::fs::create_dir_all(&output).is_ok() {
        for (name, text) in &scraped {
            let _ = std::fs::write(output.join(format!("{name}.prom")), text);
        }
    }
    for (name, text) in &scraped {
        assert!(
            has(
                text,
                "cadenza_build_info",
                &[&format!("service=\"{name}\"")]
            ),
            "{name}: build info"
        );
        assert!(
            text.contains("# TYPE cadenza_grpc_server_request_duration_seconds histogram"),
            "{name}: the RPC latency is a histogram with buckets"
        );
    }
    // Each service reports the dependencies it probes as up.
    for (name, dependencies) in [
        ("gateway", &["project"][..]),
        ("project", &["postgres", "rabbitmq"]),
        ("generation", &["rabbitmq"]),
        ("storage", &["object_store", "postgres"]),
    ] {
        for dependency in dependencies {
            let label = format!("dependency=\"{dependency}\"");
            let up = scraped[name].lines().any(|line| {
                line.starts_with("cadenza_dependency_up{")
                    && line.contains(&label)
                    && line.ends_with(" 1")
            });
            assert!(up, "{name}: {dependency} up:\n{}", scraped[name]);
        }
    }
    let gateway_metrics = &scraped["gateway"];
    assert_eq!(
        sample(
            gateway_metrics,
            "cadenza_grpc_server_requests_total{service=\"gateway\",method=\"/cadenza.v1.ProjectService/GenerateSong\",code=\"OK\"}"
        ),
        1.0,
        "{gateway_metrics}"
    );
    assert!(has(
        gateway_metrics,
        "cadenza_grpc_server_request_duration_seconds_bucket",
        &[
            "method=\"/cadenza.v1.ProjectService/CreateProject\"",
            "le=\"0.005\""
        ]
    ));

    let generation = &scraped["generation"];
    let stages_done = sample(generation, "cadenza_stages_total{");
    assert_eq!(stages_done, 6.0, "six stages ran once each:\n{generation}");
    for kind in [
        "lyrics",
        "composition",
        "arrangement",
        "vocals",
        "mix",
        "master",
    ] {
        assert!(
            has(
                generation,
                "cadenza_stage_duration_seconds_count",
                &[&format!("kind=\"{kind}\""), "provider=\"builtin\""]
            ),
            "{kind} duration:\n{generation}"
        );
    }
    assert_eq!(
        sample(generation, "cadenza_provider_up{provider=\"builtin\"}"),
        1.0
    );

    let project_metrics = &scraped["project"];
    assert_eq!(
        sample(project_metrics, "cadenza_stage_queue_wait_seconds_count{"),
        6.0,
        "every stage waited in the queue once:\n{project_metrics}"
    );
    assert_eq!(
        sample(project_metrics, "cadenza_outbox_backlog_messages"),
        0.0
    );
    assert_eq!(
        sample(
            project_metrics,
            "cadenza_queue_messages{queue=\"stage-work\"}"
        ),
        0.0
    );
    assert_eq!(
        sample(
            project_metrics,
            "cadenza_queue_consumers{queue=\"stage-work\"}"
        ),
        1.0,
        "one generation process consumes the work"
    );
    assert_eq!(sample(project_metrics, "cadenza_dead_letters_pending"), 0.0);
    assert!(sample(project_metrics, "cadenza_db_pool_max_connections") >= 1.0);
    assert!(has(
        project_metrics,
        "cadenza_db_pool_connections",
        &["state=\"idle\""]
    ));

    let storage = &scraped["storage"];
    assert!(
        sample(storage, "cadenza_storage_bytes_in_total") > 100_000.0,
        "a song's audio went in:\n{storage}"
    );
    assert!(has(
        storage,
        "cadenza_db_pool_connections",
        &["state=\"in_use\""]
    ));

    // A song cancelled mid-mix: the attempt its worker stops counts as
    // `cancelled`, not `failed` (which the failure-ratio alert reads).
    let long = create_project(
        &gateway,
        &token,
        v1::Project {
            title: "cancelled".into(),
            prompt: "slow ambient drone".into(),
            duration_seconds: 600,
            ..Default::default()
        },
    )
    .await;
    generate_song(&gateway, &token, &long.name).await;
    wait_until_mixing(&gateway, &token, &long.name).await;
    projects
        .cancel_generation(authed(
            &token,
            v1::CancelGenerationRequest {
                name: long.name.clone(),
            },
        ))
        .await
        .expect("cancel");
    let generation = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            let text = by_name("generation").metrics().await;
            if has(&text, "cadenza_stages_total", &["outcome=\"cancelled\""]) {
                return text;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("the stopped mix is counted");
    assert!(
        has(
            &generation,
            "cadenza_stages_total",
            &[
                "kind=\"mix\"",
                "provider=\"builtin\"",
                "outcome=\"cancelled\""
            ]
        ),
        "{generation}"
    );
    assert!(
        !has(&generation, "cadenza_stages_total", &["outcome=\"failed\""]),
        "no attempt failed:\n{generation}"
    );
    assert!(
        has(
            &generation,
            "cadenza_provider_call_duration_seconds_count",
            &["kind=\"mix\"", "outcome=\"cancelled\""]
        ),
        "the engine's call is counted as cancelled:\n{generation}"
    );

    drop(services);
    // The queues go when unused (CADENZA_QUEUE_EXPIRES_SECONDS); the database now.
    drop(db);
}
