//! gRPC plumbing: a server layer that scopes every call in its trace context, logs
//! it and records Prometheus metrics, and a client interceptor that passes the
//! context on.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use tonic::metadata::{MetadataMap, MetadataValue};
use tracing::Instrument;

use crate::trace::{self, REQUEST_ID, TRACEPARENT, TraceContext};

/// Metric names, following Prometheus conventions (base units, `_total` counters).
pub const REQUESTS_TOTAL: &str = "cadenza_grpc_server_requests_total";
pub const REQUEST_DURATION: &str = "cadenza_grpc_server_request_duration_seconds";

/// Wraps a gRPC server: trace context, request span, metrics.
#[derive(Debug, Clone)]
pub struct GrpcTelemetryLayer {
    service: &'static str,
}

impl GrpcTelemetryLayer {
    /// `service` names the Cadenza service in metrics (`gateway`, `project`, ...).
    pub fn new(service: &'static str) -> Self {
        Self { service }
    }
}

impl<S> tower::Layer<S> for GrpcTelemetryLayer {
    type Service = GrpcTelemetry<S>;
    fn layer(&self, inner: S) -> Self::Service {
        GrpcTelemetry {
            inner,
            service: self.service,
        }
    }
}

#[derive(Debug, Clone)]
pub struct GrpcTelemetry<S> {
    inner: S,
    service: &'static str,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, B, ResB> tower::Service<http::Request<B>> for GrpcTelemetry<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<ResB>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    B: Send + 'static,
    ResB: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        // Take the service that was polled ready and leave a fresh clone behind.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let service = self.service;
        let method = request.uri().path().to_owned();
        // Labels must stay few: plain HTTP (the studio's files) shares one label.
        let grpc = request
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/grpc"));
        let mut context = context_from_headers(request.headers());
        let span = tracing::info_span!(
            "grpc",
            service,
            method = %method,
            request_id = %context.request_id,
            trace_id = %context.trace_id,
        );
        crate::otlp::adopt(&span, &mut context);
        let request_id = context.request_id.clone();
        Box::pin(
            trace::scope(context, async move {
                let started = Instant::now();
                let result = inner.call(request).await;
                let code = match &result {
                    Ok(response) => grpc_code(response.headers()),
                    Err(_) => "UNAVAILABLE",
                };
                let elapsed = started.elapsed().as_secs_f64();
                // A path no service has is the caller's choice, not a method.
                let label = match (grpc, code) {
                    (false, _) => "http".to_owned(),
                    (true, "UNIMPLEMENTED") => "unknown".to_owned(),
                    (true, _) => method.clone(),
                };
                let labels = [
                    ("service", service.to_owned()),
                    ("method", label),
                    ("code", code.to_owned()),
                ];
                metrics::counter!(REQUESTS_TOTAL, &labels).increment(1);
                metrics::histogram!(REQUEST_DURATION, &labels).record(elapsed);
                tracing::debug!(code, elapsed_ms = elapsed * 1e3, "rpc finished");
                result.map(|mut response| {
                    if let Ok(value) = http::HeaderValue::from_str(&request_id) {
                        response.headers_mut().insert(REQUEST_ID, value);
                    }
                    response
                })
            })
            .instrument(span),
        )
    }
}

/// The call's context from its headers, or a new root trace.
pub fn context_from_headers(headers: &http::HeaderMap) -> TraceContext {
    let request_id = headers.get(REQUEST_ID).and_then(|v| v.to_str().ok());
    headers
        .get(TRACEPARENT)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| TraceContext::from_traceparent(v, request_id))
        .unwrap_or_else(|| {
            let mut root = TraceContext::new_root();
            if let Some(id) = request_id.filter(|id| trace::valid_request_id(id)) {
                id.clone_into(&mut root.request_id);
            }
            root
        })
}

/// A unary error comes back "trailers-only", its status in the headers; a success
/// puts it in the trailers, which this layer does not wait for, so absent means OK.
fn grpc_code(headers: &http::HeaderMap) -> &'static str {
    let code = headers
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i32>().ok())
        .unwrap_or(0);
    code_name(tonic::Code::from_i32(code))
}

/// Upper-case gRPC code names, as used in metric labels.
pub fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code::*;
    match code {
        Ok => "OK",
        Cancelled => "CANCELLED",
        Unknown => "UNKNOWN",
        InvalidArgument => "INVALID_ARGUMENT",
        DeadlineExceeded => "DEADLINE_EXCEEDED",
        NotFound => "NOT_FOUND",
        AlreadyExists => "ALREADY_EXISTS",
        PermissionDenied => "PERMISSION_DENIED",
        ResourceExhausted => "RESOURCE_EXHAUSTED",
        FailedPrecondition => "FAILED_PRECONDITION",
        Aborted => "ABORTED",
        OutOfRange => "OUT_OF_RANGE",
        Unimplemented => "UNIMPLEMENTED",
        Internal => "INTERNAL",
        Unavailable => "UNAVAILABLE",
        DataLoss => "DATA_LOSS",
        Unauthenticated => "UNAUTHENTICATED",
    }
}

/// Writes the current trace context into outgoing metadata.
pub fn inject(metadata: &mut MetadataMap) {
    let context = trace::outgoing();
    if let Ok(value) = MetadataValue::try_from(context.traceparent()) {
        metadata.insert(TRACEPARENT, value);
    }
    if let Ok(value) = MetadataValue::try_from(context.request_id.as_str()) {
        metadata.insert(REQUEST_ID, value);
    }
}

/// What a client attaches to each call to prove who is calling (gRPC's "call
/// credentials"): the mesh's signed assertions, for instance. Called for every
/// call; metadata the call already carries must be left as it is, so a caller
/// acting for a user can set its own.
pub trait CallCredentials: Send + Sync {
    fn apply(&self, metadata: &mut MetadataMap) -> Result<(), tonic::Status>;
}

/// Client interceptor passing the trace context on with every call, and the
/// channel's call credentials when it has any.
#[derive(Clone, Default)]
pub struct TraceInterceptor {
    credentials: Option<std::sync::Arc<dyn CallCredentials>>,
}

impl std::fmt::Debug for TraceInterceptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TraceInterceptor")
            .field("credentials", &self.credentials.is_some())
            .finish()
    }
}

impl TraceInterceptor {
    pub fn with_credentials(credentials: Option<std::sync::Arc<dyn CallCredentials>>) -> Self {
        Self { credentials }
    }
}

impl tonic::service::Interceptor for TraceInterceptor {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        inject(request.metadata_mut());
        if let Some(credentials) = &self.credentials {
            credentials.apply(request.metadata_mut())?;
        }
        Ok(request)
    }
}

/// A channel to another service, with the trace interceptor applied.
pub type TracedChannel =
    tonic::service::interceptor::InterceptedService<tonic::transport::Channel, TraceInterceptor>;

/// Connects lazily to `url` (`http://host:port`, or `https://` with `tls`): the
/// first call dials, and a service starting before its peers does not fail.
///
/// `tls` is how the client proves itself and checks the server under mutual TLS
/// (`cadenza_runtime::tls::MeshTls` builds it from `CADENZA_TLS_*`); `None` dials
/// in plain text. An `https://` URL without `tls` (every call would fail), or
/// `tls` with an `http://` URL (tonic would quietly dial in plain text), is an
/// error here.
pub fn lazy_channel(
    url: &str,
    tls: Option<tonic::transport::ClientTlsConfig>,
) -> anyhow::Result<TracedChannel> {
    lazy_channel_with(url, tls, None)
}

/// [`lazy_channel`], each call stamped by `credentials`.
pub fn lazy_channel_with(
    url: &str,
    tls: Option<tonic::transport::ClientTlsConfig>,
    credentials: Option<std::sync::Arc<dyn CallCredentials>>,
) -> anyhow::Result<TracedChannel> {
    Ok(traced_with(endpoint(url, tls)?.connect_lazy(), credentials))
}

/// The endpoint [`lazy_channel`] dials: `url` with the timeouts, HTTP/2 windows,
/// keep-alive and TLS every internal client uses, checked the same way (an
/// `https://` URL needs `tls`, `tls` needs an `https://` URL). Client-side
/// balancing (`cadenza_runtime::balance`) builds one per replica address.
pub fn endpoint(
    url: &str,
    tls: Option<tonic::transport::ClientTlsConfig>,
) -> anyhow::Result<tonic::transport::Endpoint> {
    use anyhow::Context as _;
    let mut endpoint = tonic::transport::Endpoint::from_shared(url.to_owned())
        .with_context(|| format!("`{url}` is not a URL"))?
        .connect_timeout(std::time::Duration::from_secs(5))
        .tcp_nodelay(true)
        .http2_keep_alive_interval(std::time::Duration::from_secs(30))
        // Artifacts move between services in megabytes; the 64 KiB HTTP/2 default
        // window would limit each stream to one window per round trip.
        .initial_stream_window_size(8 << 20)
        .initial_connection_window_size(16 << 20)
        .max_frame_size(1 << 20)
        .keep_alive_while_idle(true);
    let https = endpoint.uri().scheme_str() == Some("https");
    match (tls, https) {
        (Some(tls), true) => {
            endpoint = endpoint
                .tls_config(tls)
                .with_context(|| format!("TLS settings for {url}"))?;
        }
        (None, false) => {}
        (Some(_), false) => {
            anyhow::bail!("`{url}` must be https:// when mutual TLS is configured")
        }
        (None, true) => anyhow::bail!("`{url}` is https:// but mutual TLS is not configured"),
    }
    Ok(endpoint)
}

/// `channel` with the trace interceptor applied.
pub fn traced(channel: tonic::transport::Channel) -> TracedChannel {
    tonic::service::interceptor::InterceptedService::new(channel, TraceInterceptor::default())
}

/// `channel` with the trace interceptor and these call credentials applied.
pub fn traced_with(
    channel: tonic::transport::Channel,
    credentials: Option<std::sync::Arc<dyn CallCredentials>>,
) -> TracedChannel {
    tonic::service::interceptor::InterceptedService::new(
        channel,
        TraceInterceptor::with_credentials(credentials),
    )
}
