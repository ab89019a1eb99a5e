//! Client-side balancing against real servers: two replicas of the version
//! service on 127.0.0.1 and 127.0.0.2 (the same port), a name the test's
//! resolver answers for, and calls counted by the replica that answered.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cadenza_proto::v1::{self, version_service_client::VersionServiceClient};
use cadenza_runtime::MeshTls;
use cadenza_runtime::balance::{Resolver, balanced_channel};
use cadenza_telemetry::grpc::TracedChannel;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

const REFRESH: Duration = Duration::from_millis(50);

/// What the test's DNS answers: a list of addresses, or a failure.
#[derive(Clone, Default)]
struct FakeDns(Arc<Mutex<Option<Vec<SocketAddr>>>>);

impl FakeDns {
    fn answer(&self, addrs: &[SocketAddr]) {
        *self.0.lock().expect("dns") = Some(addrs.to_vec());
    }

    fn fail(&self) {
        *self.0.lock().expect("dns") = None;
    }

    fn resolver(&self) -> Resolver {
        let answers = self.0.clone();
        Arc::new(move |_host, _port| {
            let answer = answers.lock().expect("dns").clone();
            Box::pin(async move {
                answer.ok_or_else(|| std::io::Error::other("temporary failure in name resolution"))
            })
        })
    }
}

/// Two replicas, `a` on 127.0.0.1 and `b` on 127.0.0.2, on one port.
async fn replicas(tls: &MeshTls, shutdown: &CancellationToken) -> (SocketAddr, SocketAddr) {
    let first = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1");
    let port = first.local_addr().expect("addr").port();
    let second = TcpListener::bind(("127.0.0.2", port))
        .await
        .expect("bind 127.0.0.2 (Linux routes all of 127/8 to loopback)");
    let addrs = (
        first.local_addr().expect("addr"),
        second.local_addr().expect("addr"),
    );
    for (name, listener) in [("a", first), ("b", second)] {
        let server = cadenza_runtime::grpc_server(None, tls)
            .expect("server")
            .add_service(cadenza_runtime::version_service(name));
        let stop = shutdown.clone().cancelled_owned();
        tokio::spawn(async move {
            server
                .serve_with_incoming_shutdown(
                    tonic::transport::server::TcpIncoming::from(listener),
                    stop,
                )
                .await
                .expect("serve");
        });
    }
    addrs
}

/// `calls` calls, counted by the replica that answered.
async fn spread(channel: &TracedChannel, calls: usize) -> BTreeMap<String, usize> {
    let mut client = VersionServiceClient::new(channel.clone());
    let mut counts = BTreeMap::new();
    for _ in 0..calls {
        let call = client.get_version(v1::GetVersionRequest {});
        let info = tokio::time::timeout(Duration::from_secs(5), call)
            .await
            .expect("a call within 5 s")
            .expect("call")
            .into_inner();
        *counts.entry(info.service).or_default() += 1;
    }
    counts
}

async fn settle() {
    tokio::time::sleep(REFRESH * 6).await;
}

async fn follows_the_resolver(tls: MeshTls, host: &str) {
    let shutdown = CancellationToken::new();
    let (a, b) = replicas(&tls, &shutdown).await;
    let dns = FakeDns::default();
    dns.answer(&[a, b]);
    let url = format!("{}://{host}:{}", tls.scheme(), a.port());
    let channel = balanced_channel(
        &url,
        tls.client_config(),
        REFRESH,
        dns.resolver(),
        shutdown.clone(),
        None,
    )
    .expect("balanced channel");

    let counts = spread(&channel, 200).await;
    assert!(
        counts.get("a").copied().unwrap_or(0) > 10 && counts.get("b").copied().unwrap_or(0) > 10,
        "both replicas should get calls: {counts:?}"
    );

    // `b` leaves the name: every call goes to `a`, though `b` still serves.
    dns.answer(&[a]);
    settle().await;
    let counts = spread(&channel, 100).await;
    assert_eq!(counts, BTreeMap::from([("a".to_owned(), 100)]));

    // DNS failing, then answering nothing, keeps `a`.
    dns.fail();
    settle().await;
    assert_eq!(spread(&channel, 20).await.get("a"), Some(&20));
    dns.answer(&[]);
    settle().await;
    assert_eq!(spread(&channel, 20).await.get("a"), Some(&20));

    // `b` comes back.
    dns.answer(&[a, b]);
    settle().await;
    let counts = spread(&channel, 200).await;
    assert!(
        counts.get("b").copied().unwrap_or(0) > 10,
        "b should get calls again: {counts:?}"
    );
    shutdown.cancel();
}

#[tokio::test]
async fn calls_spread_over_the_resolved_replicas_and_follow_changes() {
    follows_the_resolver(MeshTls::plain(), "replicas.test").await;
}

/// Under mutual TLS each replica is dialled by address, and its certificate,
/// which names only the service, still verifies.
#[tokio::test]
async fn replicas_dialled_by_address_verify_against_the_service_name() {
    let dir = tempfile::tempdir().expect("temp dir");
    let ca_key = rcgen::KeyPair::generate().expect("key");
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("ca");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).expect("ca cert");
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let key = rcgen::KeyPair::generate().expect("key");
    let mut params =
        rcgen::CertificateParams::new(vec!["cadenza-version-headless".to_owned()]).expect("params");
    params.extended_key_usages = vec![
        rcgen::ExtendedKeyUsagePurpose::ServerAuth,
        rcgen::ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let cert = params.signed_by(&key, &issuer).expect("cert");
    let path = |name: &str| dir.path().join(name);
    std::fs::write(path("ca.crt"), ca.pem()).expect("write");
    std::fs::write(path("tls.crt"), cert.pem()).expect("write");
    std::fs::write(path("tls.key"), key.serialize_pem()).expect("write");
    let tls = MeshTls::load(cadenza_runtime::tls::TlsFiles {
        cert: path("tls.crt"),
        key: path("tls.key"),
        ca: path("ca.crt"),
    })
    .map_err(|errors| format!("{errors:?}"))
    .expect("TLS");
    follows_the_resolver(tls, "cadenza-version-headless").await;
}
