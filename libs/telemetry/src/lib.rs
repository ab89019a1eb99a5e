#![doc = include_str!("../README.md")]

pub mod admin;
pub mod build;
pub mod grpc;
pub mod otlp;
pub mod trace;

use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::EnvFilter;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line, for machines (the default).
    Json,
    /// Human-readable lines, for a terminal.
    Plain,
}

impl std::str::FromStr for LogFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "json" => Ok(Self::Json),
            "plain" | "text" | "pretty" => Ok(Self::Plain),
            other => Err(format!("unknown log format `{other}` (use json or plain)")),
        }
    }
}

/// Histogram buckets in seconds, from a fast RPC (1 ms) to a long render (5 min).
pub const LATENCY_BUCKETS_SECONDS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
    120.0, 300.0,
];

static PROMETHEUS: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs logging and the Prometheus recorder once per process; later calls only
/// return the existing handle.
pub fn init(format: LogFormat) -> PrometheusHandle {
    init_logging(format);
    prometheus()
}

/// Logging for tests: plain, captured by the test harness, `RUST_LOG` or `warn`.
pub fn init_for_test() -> PrometheusHandle {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn")),
        )
        .with_test_writer()
        .try_init();
    prometheus()
}

fn init_logging(format: LogFormat) {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let (json, plain) = match format {
        LogFormat::Json => (
            Some(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(true),
            ),
            None,
        ),
        LogFormat::Plain => (None, Some(tracing_subscriber::fmt::layer())),
    };
    // `try_init` fails only when a subscriber is already set: the first one wins.
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(json)
        .with(plain)
        .with(otlp::layer())
        .try_init();
}

/// The process-wide Prometheus handle, installing the recorder on first use.
pub fn prometheus() -> PrometheusHandle {
    PROMETHEUS
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets(LATENCY_BUCKETS_SECONDS)
                .unwrap_or_else(|_| PrometheusBuilder::new());
            match builder.install_recorder() {
                Ok(handle) => handle,
                // Another recorder was installed by someone else: keep ours private
                // so `/metrics` still renders what this crate records through it.
                Err(_) => PrometheusBuilder::new().build_recorder().handle(),
            }
        })
        .clone()
}
