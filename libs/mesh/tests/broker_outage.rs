//! RabbitMQ going away does not take the API with it: the mesh reaches the real
//! broker through a TCP proxy this test cuts. While it is cut, the gateway and
//! project stay SERVING (project only reports the broker as down, in
//! `cadenza_dependency_up`), a song can be requested (its work waits in the
//! outbox), and once the broker is back the song completes.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cadenza_mesh::testing::{TestMesh, authed, create_project, finished_state, generate};
use cadenza_proto::v1::{self, project_service_client::ProjectServiceClient};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::AbortHandle;
use tonic::transport::Channel;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

/// The real broker's address: `CADENZA_TEST_AMQP_URL`'s host and port, as
/// every mesh test uses, else the local default.
fn broker() -> String {
    std::env::var("CADENZA_TEST_AMQP_URL")
        .ok()
        .and_then(|url| {
            let rest = url.split_once("://")?.1;
            let authority = rest.split('/').next()?;
            Some(authority.rsplit('@').next()?.to_owned())
        })
        .unwrap_or_else(|| "127.0.0.1:5672".into())
}

/// A TCP proxy to the broker that can be cut (every link closed, new ones
/// refused) and restored.
struct Cuttable {
    addr: SocketAddr,
    open: Arc<AtomicBool>,
    links: Arc<Mutex<Vec<AbortHandle>>>,
}

impl Cuttable {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy address");
        let open = Arc::new(AtomicBool::new(true));
        let links = Arc::new(Mutex::new(Vec::new()));
        let (accepting, registry, upstream) = (open.clone(), links.clone(), broker());
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if !accepting.load(Ordering::SeqCst) {
                    continue; // dropped: the connection is closed at once
                }
                let upstream = upstream.clone();
                let link = tokio::spawn(async move {
                    if let Ok(mut broker) = TcpStream::connect(&upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut broker).await;
                    }
                });
                registry.lock().expect("links").push(link.abort_handle());
            }
        });
        Self { addr, open, links }
    }

    fn url(&self) -> String {
        format!("amqp://guest:guest@{}/%2f", self.addr)
    }

    fn cut(&self) {
        self.open.store(false, Ordering::SeqCst);
        for link in self.links.lock().expect("links").drain(..) {
            link.abort();
        }
    }

    fn restore(&self) {
        self.open.store(true, Ordering::SeqCst);
    }
}

async fn status(health: &mut HealthClient<Channel>, service: &str) -> ServingStatus {
    health
        .check(HealthCheckRequest {
            service: service.into(),
        })
        .await
        .expect("health answers")
        .into_inner()
        .status()
}

/// The samples of `cadenza_dependency_up{dependency="rabbitmq"}` in this
/// process (its services share one registry).
fn rabbitmq_up() -> Vec<f64> {
    cadenza_telemetry::prometheus()
        .render()
        .lines()
        .filter(|l| l.starts_with("cadenza_dependency_up{") && l.contains("rabbitmq"))
        .filter_map(|l| l.rsplit(' ').next()?.parse().ok())
        .collect()
}

async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    tokio::time::timeout(Duration::from_secs(30), async {
        while !done() {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{what} within 30 s"));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_api_keeps_serving_while_rabbitmq_is_away_and_the_song_completes_after() {
    // Installed first, so the services' metrics land where this test reads them.
    let _ = cadenza_telemetry::prometheus();
    let proxy = Cuttable::start().await;
    let mut env = cadenza_config::Env::default();
    env.set("CADENZA_DEV_MODE", "true");
    let mesh = TestMesh::start_on_broker(env, &proxy.url()).await;
    let channel = mesh.channel().await;
    let token = mesh.token("offline").await;
    let mut health = HealthClient::new(channel.clone());
    tokio::time::timeout(Duration::from_secs(30), async {
        while status(&mut health, "").await != ServingStatus::Serving {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await
    .expect("the gateway turns SERVING");
    wait_until("the broker is reported up", || {
        let up = rabbitmq_up();
        !up.is_empty() && up.iter().all(|v| *v == 1.0)
    })
    .await;

    proxy.cut();
    wait_until("the broker is reported down", || {
        rabbitmq_up().contains(&0.0)
    })
    .await;
    // Several probe rounds (every 2 s) later, the API still serves.
    for _ in 0..3 {
        assert_eq!(status(&mut health, "").await, ServingStatus::Serving);
        assert_eq!(
            status(&mut health, "cadenza.v1.ProjectService").await,
            ServingStatus::Serving
        );
        tokio::time::sleep(Duration::from_millis(1500)).await;
    }
    let project = create_project(
        &channel,
        &token,
        v1::Project {
            title: "made offline".into(),
            prompt: "a short calm piano piece".into(),
            duration_seconds: 5,
            has_vocals: false,
            ..Default::default()
        },
    )
    .await;
    let run = generate(&channel, &token, &project.name).await;
    assert_eq!(run.state(), v1::RunState::Queued, "accepted, waiting");
    let now = ProjectServiceClient::new(channel.clone())
        .get_project_status(authed(
            &token,
            v1::GetProjectStatusRequest {
                name: project.name.clone(),
            },
        ))
        .await
        .expect("status while the broker is away")
        .into_inner();
    assert!(
        now.stages
            .iter()
            .all(|s| s.state() != v1::StageState::Succeeded),
        "nothing ran without the broker: {now:?}"
    );

    proxy.restore();
    assert_eq!(
        finished_state(&channel, &token, &project.name, Duration::from_secs(120)).await,
        v1::RunState::Succeeded,
        "the work kept in the outbox went out once the broker was back"
    );
    wait_until("the broker is reported up again", || {
        rabbitmq_up().iter().all(|v| *v == 1.0)
    })
    .await;
    mesh.stop().await;
}
