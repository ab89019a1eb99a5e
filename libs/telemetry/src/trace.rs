//! Trace context (W3C `traceparent`) and request ids, carried through a task.
//!
//! A server layer sets the context for the duration of one call; code inside the call
//! (gRPC clients, AMQP publishers) reads it with [`current`] and writes it onward, so
//! the same trace id shows up in the logs of every service a request touches.

use rand::Rng;

/// gRPC metadata / AMQP header carrying the trace context.
pub const TRACEPARENT: &str = "traceparent";
/// gRPC metadata carrying the request id.
pub const REQUEST_ID: &str = "x-request-id";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceContext {
    /// 32 lower-case hex digits.
    pub trace_id: String,
    /// 16 lower-case hex digits: the caller's span.
    pub span_id: String,
    /// Caller-supplied or generated request id.
    pub request_id: String,
}

impl TraceContext {
    /// A new trace, for work that did not come from a traced caller.
    pub fn new_root() -> Self {
        let mut rng = rand::rng();
        Self {
            trace_id: format!("{:032x}", rng.random::<u128>()),
            span_id: format!("{:016x}", rng.random::<u64>()),
            request_id: uuid::Uuid::new_v4().to_string(),
        }
    }

    /// Parses `00-{trace}-{span}-{flags}`; anything malformed yields `None`.
    pub fn from_traceparent(value: &str, request_id: Option<&str>) -> Option<Self> {
        let mut parts = value.trim().split('-');
        let (version, trace, span, flags) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        let hex = |s: &str, len: usize| s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit());
        if version != "00" || !hex(trace, 32) || !hex(span, 16) || !hex(flags, 2) {
            return None;
        }
        if trace.bytes().all(|b| b == b'0') || span.bytes().all(|b| b == b'0') {
            return None;
        }
        Some(Self {
            trace_id: trace.to_ascii_lowercase(),
            span_id: span.to_ascii_lowercase(),
            request_id: request_id
                .filter(|r| valid_request_id(r))
                .map(str::to_owned)
                .unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
        })
    }

    /// The same trace with a new span id, for an outgoing call.
    pub fn child(&self) -> Self {
        Self {
            trace_id: self.trace_id.clone(),
            span_id: format!("{:016x}", rand::rng().random::<u64>()),
            request_id: self.request_id.clone(),
        }
    }

    pub fn traceparent(&self) -> String {
        format!("00-{}-{}-01", self.trace_id, self.span_id)
    }
}

/// Request ids are echoed into logs: keep them short and printable.
pub fn valid_request_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
}

tokio::task_local! {
    static CURRENT: TraceContext;
}

/// The context of the call this task is serving, if any.
pub fn current() -> Option<TraceContext> {
    CURRENT.try_with(Clone::clone).ok()
}

/// The current context, or a new root when the task serves no traced call.
pub fn current_or_new() -> TraceContext {
    current().unwrap_or_else(TraceContext::new_root)
}

/// The context to send with a call or message from here: while spans are
/// exported, the current span is the parent the receiver names (its id is the
/// context's, see [`crate::otlp::adopt`]); otherwise a new span id as before.
pub fn outgoing() -> TraceContext {
    let context = current_or_new();
    if crate::otlp::enabled() {
        context
    } else {
        context.child()
    }
}

/// Runs `future` with `context` as the current trace context.
pub async fn scope<F: std::future::Future>(context: TraceContext, future: F) -> F::Output {
    CURRENT.scope(context, future).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_round_trips() {
        let root = TraceContext::new_root();
        let parsed = TraceContext::from_traceparent(&root.traceparent(), Some("req-1"))
            .expect("own traceparent parses");
        assert_eq!(parsed.trace_id, root.trace_id);
        assert_eq!(parsed.request_id, "req-1");
        let child = root.child();
        assert_eq!(child.trace_id, root.trace_id);
        assert_ne!(child.span_id, root.span_id);
    }

    #[test]
    fn malformed_traceparents_are_ignored() {
        for bad in [
            "",
            "00-abc-def-01",
            "01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "00-00000000000000000000000000000000-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331",
        ] {
            assert!(TraceContext::from_traceparent(bad, None).is_none(), "{bad}");
        }
        let ok = TraceContext::from_traceparent(
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            Some("bad id with spaces"),
        )
        .expect("valid");
        assert_ne!(ok.request_id, "bad id with spaces");
    }

    #[tokio::test]
    async fn scope_sets_the_current_context() {
        assert!(current().is_none());
        let ctx = TraceContext::new_root();
        let seen = scope(ctx.clone(), async { current() }).await;
        assert_eq!(seen, Some(ctx));
    }
}
