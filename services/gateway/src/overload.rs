//! Load shedding at the public door: at most `max_in_flight` calls of this
//! replica are being answered at once; one more is turned away at once with
//! RESOURCE_EXHAUSTED (`OVERLOADED`) and a RetryInfo, rather than queued behind
//! the others until every caller times out. A server-streaming call counts
//! until its stream has started (open streams are `project`'s to bound).

use std::collections::HashMap;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::sync::Semaphore;
use tonic_types::{ErrorDetails, StatusExt};

pub const DEFAULT_MAX_IN_FLIGHT: usize = 4096;
/// When a turned-away caller should try again.
const RETRY_AFTER: Duration = Duration::from_secs(1);

#[derive(Clone)]
pub struct OverloadLayer {
    slots: Arc<Semaphore>,
}

impl OverloadLayer {
    pub fn new(max_in_flight: usize) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(max_in_flight.max(1))),
        }
    }
}

impl<S> tower::Layer<S> for OverloadLayer {
    type Service = Overload<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Overload {
            inner,
            slots: self.slots.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Overload<S> {
    inner: S,
    slots: Arc<Semaphore>,
}

fn overloaded() -> tonic::Status {
    metrics::counter!("cadenza_gateway_shed_total").increment(1);
    let mut details = ErrorDetails::with_error_info(
        "OVERLOADED",
        cadenza_runtime::status::DOMAIN,
        HashMap::<String, String>::new(),
    );
    details.set_retry_info(Some(RETRY_AFTER));
    tonic::Status::with_error_details(
        tonic::Code::ResourceExhausted,
        "the service is busy; try again in a second",
        details,
    )
}

impl<S, B, ResB> tower::Service<http::Request<B>> for Overload<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<ResB>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    B: Send + 'static,
    ResB: Default + Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        match self.slots.clone().try_acquire_owned() {
            Ok(slot) => Box::pin(async move {
                let response = inner.call(request).await;
                drop(slot);
                response
            }),
            Err(_) => Box::pin(std::future::ready(Ok(overloaded().into_http()))),
        }
    }
}
