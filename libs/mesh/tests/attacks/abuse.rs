//! Abuse that must not take the service down or lock people out: forged
//! client addresses, password guessing, piles of open streams, bursts of
//! sign-ins, more calls than a replica can answer.

use std::time::Duration;

use cadenza_mesh::testing::{
    TEST_PASSWORD, TestMesh, admin_token, authed, create_project, reason, register,
};
use cadenza_proto::v1::{self, auth_service_client::AuthServiceClient};
use tonic::Code;
use tonic::transport::Channel;
use tonic_types::StatusExt;

/// A mesh behind a trusted proxy on 127.0.0.1: tests choose each call's
/// client address with `X-Forwarded-For`, as a load balancer would write it.
async fn behind_a_proxy(extra: &[(&str, &str)]) -> TestMesh {
    let mut env = cadenza_config::Env::default();
    env.set("CADENZA_DEV_MODE", "true");
    env.set("CADENZA_TRUSTED_PROXIES", "127.0.0.1/32");
    for (key, value) in extra {
        env.set(key, *value);
    }
    TestMesh::start_with(env).await
}

fn from<T>(address: &str, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert("x-forwarded-for", address.parse().expect("ascii"));
    request
}

fn login(email: &str, password: &str) -> v1::LoginRequest {
    v1::LoginRequest {
        email: email.into(),
        password: password.into(),
    }
}

async fn sign_in(
    channel: &Channel,
    address: &str,
    email: &str,
    password: &str,
) -> Result<v1::Session, tonic::Status> {
    AuthServiceClient::new(channel.clone())
        .login(from(address, login(email, password)))
        .await
        .map(tonic::Response::into_inner)
}

fn has_retry_info(status: &tonic::Status) -> bool {
    status
        .get_details_retry_info()
        .and_then(|info| info.retry_delay)
        .is_some()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_addresses_count_only_from_trusted_proxies() {
    let mesh = behind_a_proxy(&[]).await;
    let channel = mesh.channel().await;
    register(&channel, "alice@example.com").await;
    // The client wrote 6.6.6.6; the proxy appended the address it saw.
    sign_in(
        &channel,
        "6.6.6.6, 198.51.100.20",
        "alice@example.com",
        TEST_PASSWORD,
    )
    .await
    .expect("sign in");
    let admin = admin_token(&mesh, &channel, "ops@example.com").await;
    let events = v1::admin_service_client::AdminServiceClient::new(channel.clone())
        .list_audit_events(authed(
            &admin,
            v1::ListAuditEventsRequest {
                page_size: 100,
                ..Default::default()
            },
        ))
        .await
        .expect("audit log")
        .into_inner()
        .audit_events;
    let addresses: Vec<&str> = events
        .iter()
        .filter(|e| e.action == "session.login" && e.target != "users/")
        .map(|e| e.client_address.as_str())
        .collect();
    assert!(
        addresses.contains(&"198.51.100.20"),
        "the proxy's hop is the client: {addresses:?}"
    );
    assert!(
        !addresses.contains(&"6.6.6.6"),
        "what the client wrote never counts: {addresses:?}"
    );
    mesh.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guessing_one_password_from_one_address_locks_out_no_one() {
    let mesh = behind_a_proxy(&[("CADENZA_SIGNIN_FREE_PER_ADDRESS", "10")]).await;
    let channel = mesh.channel().await;
    register(&channel, "victim@example.com").await;
    register(&channel, "bystander@example.com").await;
    let (home, attacker, elsewhere) = ("198.51.100.1", "203.0.113.66", "192.0.2.44");
    sign_in(&channel, home, "victim@example.com", TEST_PASSWORD)
        .await
        .expect("the victim's usual sign-in");

    // 200 guesses from one address at one account.
    let (mut wrong, mut throttled) = (0, 0);
    for guess in 0..200 {
        match sign_in(
            &channel,
            attacker,
            "victim@example.com",
            &format!("guess {guess:04}"),
        )
        .await
        {
            Ok(_) => panic!("a guess signed in"),
            Err(status) if status.code() == Code::Unauthenticated => wrong += 1,
            Err(status) => {
                assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
                assert_eq!(reason(&status), "LOGIN_THROTTLED");
                assert!(has_retry_info(&status), "{status:?}");
                throttled += 1;
            }
        }
    }
    assert!(wrong <= 6, "at most the free guesses were checked: {wrong}");
    assert!(throttled >= 194, "the rest were throttled: {throttled}");

    // Another user from another address: untouched.
    sign_in(&channel, elsewhere, "bystander@example.com", TEST_PASSWORD)
        .await
        .expect("a bystander signs in at once");
    // The victim, from home: still signs in.
    sign_in(&channel, home, "victim@example.com", TEST_PASSWORD)
        .await
        .expect("the victim is not locked out");

    // Spraying other accounts from the attacker's address engages its own
    // limit: a fresh account is refused from there, and only from there.
    let mut refused_fresh = None;
    for n in 0..15 {
        let email = format!("sprayed{n}@example.com");
        if let Err(status) = sign_in(&channel, attacker, &email, "not the password").await
            && status.code() == Code::ResourceExhausted
        {
            refused_fresh = Some(n);
            break;
        }
    }
    assert!(
        refused_fresh.is_some(),
        "the per-address throttle engaged while spraying"
    );
    sign_in(&channel, elsewhere, "bystander@example.com", TEST_PASSWORD)
        .await
        .expect("other addresses go on");
    mesh.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_guessed_at_from_many_addresses_is_slowed_not_locked() {
    let mesh = behind_a_proxy(&[
        ("CADENZA_SIGNIN_ACCOUNT_CEILING", "10"),
        ("CADENZA_SIGNIN_SLOWDOWN_MS", "100"),
    ])
    .await;
    let channel = mesh.channel().await;
    register(&channel, "target@example.com").await;
    for n in 0..15 {
        let status = sign_in(
            &channel,
            &format!("203.0.113.{}", n + 1),
            "target@example.com",
            "a wrong password",
        )
        .await
        .expect_err("a wrong password");
        assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    }
    // Past the ceiling: a wrong password from a new address is still only
    // wrong, and the right one from a new address signs in.
    let status = sign_in(
        &channel,
        "198.51.100.99",
        "target@example.com",
        "wrong again",
    )
    .await
    .expect_err("wrong");
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    sign_in(
        &channel,
        "198.51.100.100",
        "target@example.com",
        TEST_PASSWORD,
    )
    .await
    .expect("the owner signs in, slowed but not refused");
    mesh.stop().await;
}

fn watch(token: &str, project: &str) -> tonic::Request<v1::WatchProjectRequest> {
    authed(
        token,
        v1::WatchProjectRequest {
            name: project.into(),
            after_event_id: 0,
        },
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_watch_streams_are_bounded_per_user() {
    let mut env = cadenza_config::Env::default();
    env.set("CADENZA_DEV_MODE", "true");
    env.set("CADENZA_WATCH_STREAMS_PER_USER", "2");
    let mesh = TestMesh::start_with(env).await;
    let channel = mesh.channel().await;
    let (alice, bob) = (mesh.token("alice").await, mesh.token("bob").await);
    let song = |title: &str| v1::Project {
        title: title.into(),
        prompt: "a quiet song".into(),
        duration_seconds: 10,
        ..Default::default()
    };
    let mine = create_project(&channel, &alice, song("mine")).await.name;
    let bobs = create_project(&channel, &bob, song("bob's")).await.name;
    let mut projects = v1::project_service_client::ProjectServiceClient::new(channel.clone());
    let first = projects
        .watch_project(watch(&alice, &mine))
        .await
        .expect("first stream");
    let second = projects
        .watch_project(watch(&alice, &mine))
        .await
        .expect("second stream");
    let refused = projects
        .watch_project(watch(&alice, &mine))
        .await
        .expect_err("a third stream");
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    assert_eq!(reason(&refused), "TOO_MANY_STREAMS");
    assert!(has_retry_info(&refused), "{refused:?}");
    // Another user is not held back by alice's streams.
    let bobs_stream = projects
        .watch_project(watch(&bob, &bobs))
        .await
        .expect("bob watches");
    // Closing a stream gives its place back.
    drop(first);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let third = loop {
        match projects.watch_project(watch(&alice, &mine)).await {
            Ok(stream) => break stream,
            Err(status) => {
                assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "a closed stream never gave its place back"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    // Open streams would hold the mesh's graceful shutdown.
    drop((second, bobs_stream, third));
    mesh.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_sign_ins_at_once_stay_within_the_hashing_budget() {
    let mut env = cadenza_config::Env::default();
    env.set("CADENZA_DEV_MODE", "true");
    // Two hashes at a time.
    env.set("CADENZA_PASSWORD_HASHING_MEMORY_MB", "38");
    let mesh = TestMesh::start_with(env).await;
    let channel = mesh.channel().await;
    register(&channel, "crowd@example.com").await;
    let attempts = (0..100).map(|_| {
        let channel = channel.clone();
        async move {
            AuthServiceClient::new(channel)
                .login(login("crowd@example.com", TEST_PASSWORD))
                .await
        }
    });
    let answers = futures::future::join_all(attempts).await;
    let mut signed_in = 0;
    for answer in answers {
        match answer {
            Ok(_) => signed_in += 1,
            Err(status) => {
                assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
                assert_eq!(reason(&status), "PASSWORD_HASHING_BUSY");
                assert!(has_retry_info(&status), "{status:?}");
            }
        }
    }
    assert!(
        signed_in >= 2,
        "the budget still signs people in: {signed_in}"
    );
    mesh.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_sheds_calls_past_its_in_flight_limit() {
    let mut env = cadenza_config::Env::default();
    env.set("CADENZA_DEV_MODE", "true");
    env.set("CADENZA_GATEWAY_MAX_IN_FLIGHT", "2");
    let mesh = TestMesh::start_with(env).await;
    let channel = mesh.channel().await;
    register(&channel, "busy@example.com").await;
    // Sign-ins take a password hash each: twenty at once overlap.
    let attempts = (0..20).map(|_| {
        let channel = channel.clone();
        async move {
            AuthServiceClient::new(channel)
                .login(login("busy@example.com", TEST_PASSWORD))
                .await
        }
    });
    let answers = futures::future::join_all(attempts).await;
    let shed: Vec<&tonic::Status> = answers.iter().filter_map(|a| a.as_ref().err()).collect();
    assert!(!shed.is_empty(), "twenty at once exceed two in flight");
    for status in &shed {
        assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
        assert_eq!(reason(status), "OVERLOADED");
        assert!(has_retry_info(status), "{status:?}");
    }
    assert!(answers.iter().any(Result::is_ok), "some are answered");
    mesh.stop().await;
}
