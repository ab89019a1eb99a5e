//! Trace export over OTLP (gRPC), on only when `OTEL_EXPORTER_OTLP_ENDPOINT` is
//! set. Spans are the `tracing` spans the services already make (one per gRPC
//! call, one per queue message handled); their trace and parent ids come from
//! Cadenza's own trace context ([`crate::trace`]), so the spans of one song, from
//! the gateway through `project`, RabbitMQ and `generation` to `storage`, make up
//! one trace. Service name: `OTEL_SERVICE_NAME`, else the binary's name.

use std::sync::OnceLock;
use std::time::Duration;

use opentelemetry::trace::{
    SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState, TracerProvider,
};
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::Layer;
use tracing_subscriber::registry::LookupSpan;

use crate::trace::TraceContext;

pub const ENDPOINT: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";
const SERVICE_NAME: &str = "OTEL_SERVICE_NAME";

static PROVIDER: OnceLock<SdkTracerProvider> = OnceLock::new();

/// Whether spans are being exported (the endpoint was set and the exporter built).
pub fn enabled() -> bool {
    PROVIDER.get().is_some()
}

fn service_name() -> String {
    std::env::var(SERVICE_NAME)
        .ok()
        .filter(|name| !name.is_empty())
        .or_else(|| {
            std::env::current_exe()
                .ok()?
                .file_stem()
                .map(|stem| stem.to_string_lossy().into_owned())
        })
        .unwrap_or_else(|| "cadenza".into())
}

/// The export layer, when `OTEL_EXPORTER_OTLP_ENDPOINT` names a collector. Needs
/// a Tokio runtime (the batch exporter sends from it). A bad endpoint is logged
/// to stderr and tracing goes on without export: traces are not worth a crash.
pub fn layer<S>() -> Option<impl Layer<S>>
where
    S: tracing::Subscriber + for<'span> LookupSpan<'span>,
{
    let endpoint = std::env::var(ENDPOINT)
        .ok()
        .filter(|e| !e.trim().is_empty())?;
    let exporter = match opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint.trim())
        .with_timeout(Duration::from_secs(5))
        .build()
    {
        Ok(exporter) => exporter,
        Err(err) => {
            eprintln!("{ENDPOINT}={endpoint}: cannot export traces there: {err}");
            return None;
        }
    };
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(
            opentelemetry_sdk::Resource::builder()
                .with_service_name(service_name())
                .build(),
        )
        .build();
    let tracer = provider.tracer("cadenza");
    PROVIDER.set(provider).ok()?;
    Some(tracing_opentelemetry::layer().with_tracer(tracer))
}

/// Sends the spans still buffered; call once before the process exits.
pub fn shutdown() {
    if let Some(provider) = PROVIDER.get()
        && let Err(err) = provider.shutdown()
    {
        eprintln!("flushing traces at exit failed: {err}");
    }
}

/// Makes `span` the child of the span `context` names, and `context` name `span`
/// from now on, so calls and messages sent within it become its children. Does
/// nothing while export is off (log lines carry the trace id either way).
pub fn adopt(span: &tracing::Span, context: &mut TraceContext) {
    if !enabled() {
        return;
    }
    let (Ok(trace_id), Ok(span_id)) = (
        TraceId::from_hex(&context.trace_id),
        SpanId::from_hex(&context.span_id),
    ) else {
        return;
    };
    let parent = SpanContext::new(
        trace_id,
        span_id,
        TraceFlags::SAMPLED,
        true,
        TraceState::default(),
    );
    if span
        .set_parent(opentelemetry::Context::new().with_remote_span_context(parent))
        .is_err()
    {
        return;
    }
    let own = span.context().span().span_context().span_id();
    if own != SpanId::INVALID {
        context.span_id = own.to_string();
    }
}
