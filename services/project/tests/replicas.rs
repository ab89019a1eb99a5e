//! What one replica writes, every replica hears: the watch hub wakes on events
//! committed through any other connection, and health follows dependencies.

use std::time::Duration;

use cadenza_db::testing::TestDatabase;
use cadenza_project::watch::WatchHub;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

#[tokio::test(flavor = "multi_thread")]
async fn a_hub_hears_events_committed_by_another_replica() {
    let db = TestDatabase::create().await;
    let hub = WatchHub::new();
    let mut heard = hub.subscribe();
    let shutdown = CancellationToken::new();
    tokio::spawn(hub.clone().listen(db.url.clone(), shutdown.clone()));
    // Give the listener time to issue LISTEN; retry the notify until heard.
    let project = Uuid::new_v4();
    let mut other_replica = AsyncPgConnection::establish(&db.url)
        .await
        .expect("connect");
    let received = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            diesel::sql_query("SELECT pg_notify($1, $2)")
                .bind::<diesel::sql_types::Text, _>(cadenza_project::store::events::EVENTS_CHANNEL)
                .bind::<diesel::sql_types::Text, _>(project.to_string())
                .execute(&mut other_replica)
                .await
                .expect("notify");
            if let Ok(Ok(id)) = tokio::time::timeout(Duration::from_millis(300), heard.recv()).await
            {
                return id;
            }
        }
    })
    .await
    .expect("the hub hears the other connection's event");
    assert_eq!(received, project);

    // Not before commit: a rolled-back transaction's events are never announced.
    let rolled_back = Uuid::new_v4();
    let _ = other_replica
        .transaction::<(), diesel::result::Error, _>(async |conn| {
            diesel::sql_query("SELECT pg_notify($1, $2)")
                .bind::<diesel::sql_types::Text, _>(cadenza_project::store::events::EVENTS_CHANNEL)
                .bind::<diesel::sql_types::Text, _>(rolled_back.to_string())
                .execute(conn)
                .await?;
            Err(diesel::result::Error::RollbackTransaction)
        })
        .await;
    let marker = Uuid::new_v4();
    diesel::sql_query("SELECT pg_notify($1, $2)")
        .bind::<diesel::sql_types::Text, _>(cadenza_project::store::events::EVENTS_CHANNEL)
        .bind::<diesel::sql_types::Text, _>(marker.to_string())
        .execute(&mut other_replica)
        .await
        .expect("notify");
    loop {
        let id = tokio::time::timeout(Duration::from_secs(5), heard.recv())
            .await
            .expect("marker arrives")
            .expect("open");
        assert_ne!(id, rolled_back, "a rolled-back event was announced");
        if id == marker {
            break;
        }
    }
    shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread")]
async fn project_is_serving_while_rabbitmq_is_unreachable() {
    use tonic_health::pb::{
        HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
    };
    let db = TestDatabase::create().await;
    let mut env = cadenza_config::Env::from_pairs([
        ("CADENZA_DATABASE_URL", db.url.as_str()),
        // Nothing listens on port 1.
        ("CADENZA_AMQP_URL", "amqp://guest:guest@127.0.0.1:1/%2f"),
        ("CADENZA_STORAGE_URL", "http://127.0.0.1:1"),
    ]);
    cadenza_runtime::mesh_auth::set_random_secrets(&mut env);
    let config = cadenza_project::Config::from_env(&mut env);
    let grpc = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = grpc.local_addr().expect("addr");
    let shutdown = CancellationToken::new();
    tokio::spawn(cadenza_project::run(
        config,
        cadenza_project::Listeners {
            grpc,
            admin: None,
            health: None,
        },
        shutdown.clone(),
    ));
    let mut health = loop {
        if let Ok(channel) = tonic::transport::Channel::from_shared(format!("http://{addr}"))
            .expect("url")
            .connect()
            .await
        {
            break HealthClient::new(channel);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // Postgres answers, so it serves: the work it accepts waits in the outbox
    // (the broker is reported in `cadenza_dependency_up`, not in readiness).
    let mut check = async || {
        health
            .check(HealthCheckRequest {
                service: "cadenza.v1.ProjectService".into(),
            })
            .await
            .expect("health answers")
            .into_inner()
            .status()
    };
    tokio::time::timeout(Duration::from_secs(20), async {
        while check().await != ServingStatus::Serving {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("SERVING without the broker");
    // And stays so over several probe rounds (every 2 s).
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert_eq!(check().await, ServingStatus::Serving);
    }
    shutdown.cancel();
}
