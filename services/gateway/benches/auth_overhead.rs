//! What authentication adds to a call through the gateway: the same RPC
//! (`UsageService.GetUsage`, over real HTTP/2 on loopback, client -> gateway ->
//! upstream) through two gateways that differ only in verifying the caller's
//! access token or not, measured in one run with the two interleaved.
//!
//! `cargo bench -p cadenza-gateway --bench auth_overhead`

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cadenza_auth::{TokenKeys, random_secret};
use cadenza_gateway::access::{AccessLayer, Authentication, Gate};
use cadenza_gateway::auth::Caller;
use cadenza_gateway::key_cache::KeyCache;
use cadenza_gateway::limits::{Limits, LimitsConfig};
use cadenza_gateway::proxy::Proxy;
use cadenza_proto::v1::{
    self, usage_service_client::UsageServiceClient, usage_service_server::UsageService,
    usage_service_server::UsageServiceServer,
};
use tokio::net::TcpListener;
use tonic::transport::Channel;
use tonic::{Request, Response, Status};

const SUBJECT: &str = "0190b8d2-7c1e-7cc0-a1b2-0123456789ab";
const CALLS: usize = 20_000;

/// Stands in for `project`: answers at once, so the gateway's own work shows.
struct Upstream;

#[tonic::async_trait]
impl UsageService for Upstream {
    async fn get_usage(
        &self,
        _: Request<v1::GetUsageRequest>,
    ) -> Result<Response<v1::Usage>, Status> {
        Ok(Response::new(v1::Usage {
            balance: 600,
            ..Default::default()
        }))
    }
}

async fn serve<S>(service: S) -> SocketAddr
where
    S: tonic::server::NamedService
        + tower::Service<
            http::Request<tonic::body::Body>,
            Response = http::Response<tonic::body::Body>,
            Error = std::convert::Infallible,
        > + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
    );
    addr
}

/// A gateway serving `UsageService` in front of `upstream`, admitting calls as
/// the real one does (the access layer) with `authentication`.
async fn gateway(
    upstream: SocketAddr,
    keys: &TokenKeys,
    authentication: Authentication,
) -> SocketAddr {
    let channel = cadenza_telemetry::grpc::lazy_channel(&format!("http://{upstream}"), None)
        .expect("channel");
    let unlimited = 1_000_000_000;
    let gate = Gate {
        authentication,
        keys: keys.clone(),
        dev_mode: false,
        limits: Limits::new(LimitsConfig {
            read_per_minute: unlimited,
            generate_per_minute: unlimited,
            anonymous_per_minute: unlimited,
            address_per_minute: unlimited,
        }),
        key_cache: Arc::new(KeyCache::new(Duration::from_secs(30))),
        credentials: v1::credential_service_client::CredentialServiceClient::new(channel.clone()),
        trusted_proxies: Default::default(),
    };
    let proxy = Proxy {
        mesh: cadenza_auth::mesh::AssertionSigner::new(cadenza_auth::mesh::Service::Gateway)
            .with_link(cadenza_auth::mesh::Service::Project, &random_secret())
            .expect("mesh signer"),
        auth: v1::auth_service_client::AuthServiceClient::new(channel.clone()),
        api_keys: v1::api_key_service_client::ApiKeyServiceClient::new(channel.clone()),
        admin: v1::admin_service_client::AdminServiceClient::new(channel.clone()),
        usage: v1::usage_service_client::UsageServiceClient::new(channel.clone()),
        shares: v1::share_service_client::ShareServiceClient::new(channel.clone()),
        projects: v1::project_service_client::ProjectServiceClient::new(channel.clone()),
        tracks: v1::track_service_client::TrackServiceClient::new(channel.clone()),
        assets: v1::asset_service_client::AssetServiceClient::new(channel),
    };
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(
        tonic::transport::Server::builder()
            .layer(AccessLayer::new(gate))
            .add_service(UsageServiceServer::new(proxy))
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
    );
    addr
}

async fn client(addr: SocketAddr) -> UsageServiceClient<Channel> {
    let channel = Channel::from_shared(format!("http://{addr}"))
        .expect("url")
        .tcp_nodelay(true)
        .connect()
        .await
        .expect("connect");
    UsageServiceClient::new(channel)
}

/// The time of one call, in microseconds.
async fn call(client: &mut UsageServiceClient<Channel>, token: &str) -> f64 {
    let mut request = Request::new(v1::GetUsageRequest {});
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("header"),
    );
    let started = Instant::now();
    let usage = client.get_usage(request).await.expect("call");
    let elapsed = started.elapsed();
    assert_eq!(usage.get_ref().balance, 600);
    elapsed.as_secs_f64() * 1e6
}

/// First quartile, median and third quartile.
fn quartiles(mut values: Vec<f64>) -> (f64, f64, f64) {
    values.sort_by(f64::total_cmp);
    let at = |q: f64| values[((values.len() - 1) as f64 * q).round() as usize];
    (at(0.25), at(0.5), at(0.75))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let keys = TokenKeys::with_previous(&random_secret(), &[random_secret()]).expect("keys");
    let (token, _) = keys
        .issue_with_role(SUBJECT, Some("user"), chrono::Duration::minutes(15))
        .expect("token");
    let upstream = serve(UsageServiceServer::new(Upstream)).await;
    let on = gateway(upstream, &keys, Authentication::Verify).await;
    let off = gateway(
        upstream,
        &keys,
        Authentication::Off(Caller {
            subject: SUBJECT.into(),
            role: cadenza_auth::mesh::Role::User,
            credential: cadenza_auth::mesh::Credential::Session,
        }),
    )
    .await;
    let (mut with_auth, mut without_auth) = (client(on).await, client(off).await);
    // Warm both paths (connections, allocator, caches).
    for _ in 0..1000 {
        call(&mut with_auth, &token).await;
        call(&mut without_auth, &token).await;
    }
    // One call each in turn, alternating which goes first, so drift in the
    // machine's load falls on both alike. Medians, because a loaded machine
    // stalls a few calls for milliseconds and a mean would be theirs.
    let (mut on, mut off) = (Vec::with_capacity(CALLS), Vec::with_capacity(CALLS));
    for i in 0..CALLS {
        if i % 2 == 0 {
            on.push(call(&mut with_auth, &token).await);
            off.push(call(&mut without_auth, &token).await);
        } else {
            off.push(call(&mut without_auth, &token).await);
            on.push(call(&mut with_auth, &token).await);
        }
    }
    let (on_q1, on_median, on_q3) = quartiles(on);
    let (off_q1, off_median, off_q3) = quartiles(off);
    println!(
        "GetUsage through the gateway, {CALLS} calls each, interleaved:\n  \
         auth on:  median {on_median:>6.1} µs (IQR {on_q1:.1} to {on_q3:.1})\n  \
         auth off: median {off_median:>6.1} µs (IQR {off_q1:.1} to {off_q3:.1})\n  \
         verification adds {:.1} µs per call at the median (target < 50 µs)",
        on_median - off_median
    );
}
