//! Free-tier caps and deleting an account, through the gateway against the real
//! Postgres: a free account is held to its song length and songs per day (and
//! told when the day resets), an administrator lifts the caps; a deleted
//! account's tokens, refresh tokens and keys stop at once and its email is free.

use cadenza_mesh::testing::{TEST_PASSWORD, TestMesh, authed, reason, register, usage};
use cadenza_proto::v1::{
    self, admin_service_client::AdminServiceClient, api_key_service_client::ApiKeyServiceClient,
    auth_service_client::AuthServiceClient, project_service_client::ProjectServiceClient,
};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use tonic::Code;
use tonic::transport::Channel;
use tonic_types::StatusExt;

async fn new_project(channel: &Channel, token: &str, seconds: u32) -> v1::Project {
    ProjectServiceClient::new(channel.clone())
        .create_project(authed(
            token,
            v1::CreateProjectRequest {
                project: Some(v1::Project {
                    title: "capped".into(),
                    prompt: "a short lo-fi loop".into(),
                    duration_seconds: seconds,
                    ..Default::default()
                }),
                request_id: String::new(),
            },
        ))
        .await
        .expect("create project")
        .into_inner()
}

async fn generate(channel: &Channel, token: &str, project: &str) -> Result<v1::Run, tonic::Status> {
    ProjectServiceClient::new(channel.clone())
        .generate_song(authed(
            token,
            v1::GenerateSongRequest {
                name: project.into(),
                request_id: String::new(),
            },
        ))
        .await
        .map(tonic::Response::into_inner)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_free_plan_caps_song_length_and_songs_per_day_until_an_admin_lifts_them() {
    let mut env = cadenza_config::Env::default();
    env.set("CADENZA_DEV_MODE", "true");
    env.set("CADENZA_FREE_MAX_SONG_SECONDS", "20");
    env.set("CADENZA_FREE_SONGS_PER_DAY", "2");
    let mesh = TestMesh::start_with(env).await;
    let channel = mesh.channel().await;
    let ann = register(&channel, "ann@example.com").await;
    let token = ann.access_token.clone();
    assert_eq!(ann.user.as_ref().expect("user").plan, v1::Plan::Free as i32);

    let before = usage(&channel, &token).await;
    let limits = before.limits.expect("limits");
    assert_eq!(before.plan, v1::Plan::Free as i32);
    assert_eq!((limits.max_song_seconds, limits.songs_per_day), (20, 2));
    assert_eq!(limits.songs_today, 0);
    let reset = limits.day_reset_time.expect("reset time");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64;
    assert!(
        reset.seconds > now && reset.seconds <= now + 86_400 && reset.seconds % 86_400 == 0,
        "the day resets at the next UTC midnight: {reset:?}"
    );

    // Too long for the free plan: refused before anything is created or charged.
    let long = new_project(&channel, &token, 30).await;
    let err = generate(&channel, &token, &long.name)
        .await
        .expect_err("30 s is over the free cap");
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert_eq!(reason(&err), "FREE_TIER_LIMIT");
    let violation = err
        .get_details_precondition_failure()
        .expect("a PreconditionFailure")
        .violations
        .remove(0);
    assert_eq!(violation.subject, "duration_seconds");
    assert!(err.message().contains("20 seconds"), "{}", err.message());
    assert_eq!(
        usage(&channel, &token)
            .await
            .limits
            .expect("limits")
            .songs_today,
        0
    );

    // Two songs a day, then RESOURCE_EXHAUSTED saying when to come back.
    for _ in 0..2 {
        let short = new_project(&channel, &token, 10).await;
        generate(&channel, &token, &short.name)
            .await
            .expect("within the caps");
    }
    let third = new_project(&channel, &token, 10).await;
    let err = generate(&channel, &token, &third.name)
        .await
        .expect_err("the third song of the day");
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    assert_eq!(reason(&err), "DAILY_SONG_LIMIT");
    assert!(err.get_details_quota_failure().is_some(), "QuotaFailure");
    let retry = err
        .get_details_retry_info()
        .and_then(|r| r.retry_delay)
        .expect("RetryInfo");
    assert!(
        retry.as_secs() > 0 && retry.as_secs() <= 86_400,
        "{retry:?}"
    );
    assert_eq!(
        usage(&channel, &token)
            .await
            .limits
            .expect("limits")
            .songs_today,
        2
    );

    // An administrator moves Ann to the standard plan: the caps are gone.
    register(&channel, "root@example.com").await;
    let mut conn = AsyncPgConnection::establish(&mesh.database.url)
        .await
        .expect("database");
    diesel::sql_query("UPDATE users SET role = 'admin' WHERE email = 'root@example.com'")
        .execute(&mut conn)
        .await
        .expect("make an admin");
    // Roles travel in access tokens: sign in again to hold the new one.
    let root = AuthServiceClient::new(channel.clone())
        .login(v1::LoginRequest {
            email: "root@example.com".into(),
            password: TEST_PASSWORD.into(),
        })
        .await
        .expect("admin signs in")
        .into_inner();
    let change = v1::ChangePlanRequest {
        name: ann.user.as_ref().expect("user").name.clone(),
        plan: v1::Plan::Standard as i32,
    };
    let mut admin = AdminServiceClient::new(channel.clone());
    let err = admin
        .change_plan(authed(&token, change.clone()))
        .await
        .expect_err("only admins change plans");
    assert_eq!(err.code(), Code::PermissionDenied);
    let changed = admin
        .change_plan(authed(&root.access_token, change))
        .await
        .expect("an admin changes the plan")
        .into_inner();
    assert_eq!(changed.plan, v1::Plan::Standard as i32);
    generate(&channel, &token, &third.name)
        .await
        .expect("no daily cap on the standard plan");
    generate(&channel, &token, &long.name)
        .await
        .expect("no length cap on the standard plan");
    let after = usage(&channel, &token).await;
    assert_eq!(after.plan, v1::Plan::Standard as i32);
    assert_eq!(after.limits.expect("limits").songs_per_day, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deleted_account_is_locked_out_at_once_everywhere() {
    let mesh = TestMesh::start().await;
    let channel = mesh.channel().await;
    let mut auth = AuthServiceClient::new(channel.clone());
    let mut projects = ProjectServiceClient::new(channel.clone());
    let eve = register(&channel, "eve@example.com").await;
    let token = eve.access_token.clone();
    let project = new_project(&channel, &token, 10).await;
    let key = ApiKeyServiceClient::new(channel.clone())
        .create_api_key(authed(
            &token,
            v1::CreateApiKeyRequest {
                display_name: "script".into(),
                scopes: vec![v1::ApiKeyScope::Read as i32],
            },
        ))
        .await
        .expect("api key")
        .into_inner()
        .secret;
    let other = register(&channel, "other@example.com").await;
    let kept = new_project(&channel, &other.access_token, 10).await;

    // The password is asked again; a wrong one deletes nothing.
    let err = auth
        .delete_account(authed(
            &token,
            v1::DeleteAccountRequest {
                password: "not the password".into(),
            },
        ))
        .await
        .expect_err("wrong password");
    assert_eq!(err.code(), Code::PermissionDenied);
    assert_eq!(reason(&err), "WRONG_PASSWORD");
    projects
        .get_project(authed(
            &token,
            v1::GetProjectRequest {
                name: project.name.clone(),
            },
        ))
        .await
        .expect("still there");
    // An API key cannot delete its owner's account.
    let err = auth
        .delete_account(authed(
            &key,
            v1::DeleteAccountRequest {
                password: TEST_PASSWORD.into(),
            },
        ))
        .await
        .expect_err("keys cannot delete accounts");
    assert_eq!(err.code(), Code::PermissionDenied);

    auth.delete_account(authed(
        &token,
        v1::DeleteAccountRequest {
            password: TEST_PASSWORD.into(),
        },
    ))
    .await
    .expect("delete the account");

    // The access token is still within its 15 minutes and correctly signed, but
    // names a deleted account: refused on every kind of call.
    let err = projects
        .list_projects(authed(&token, v1::ListProjectsRequest::default()))
        .await
        .expect_err("deleted user's token");
    assert_eq!(err.code(), Code::Unauthenticated, "{err:?}");
    let err = auth
        .get_current_user(authed(&token, v1::GetCurrentUserRequest {}))
        .await
        .expect_err("deleted user's token");
    assert_eq!(err.code(), Code::Unauthenticated);
    let err = projects
        .list_projects(authed(&key, v1::ListProjectsRequest::default()))
        .await
        .expect_err("deleted user's API key");
    assert_eq!(err.code(), Code::Unauthenticated, "{err:?}");
    let err = auth
        .refresh(v1::RefreshRequest {
            refresh_token: eve.refresh_token.clone(),
        })
        .await
        .expect_err("deleted user's refresh token");
    assert_eq!(err.code(), Code::Unauthenticated);
    let err = auth
        .login(v1::LoginRequest {
            email: "eve@example.com".into(),
            password: TEST_PASSWORD.into(),
        })
        .await
        .expect_err("no account to sign in to");
    assert_eq!(err.code(), Code::Unauthenticated);

    // Her projects went with her; nobody else's did.
    let mut conn = AsyncPgConnection::establish(&mesh.database.url)
        .await
        .expect("database");
    let live: Vec<Live> =
        diesel::sql_query("SELECT owner FROM projects WHERE deleted_at IS NULL ORDER BY owner")
            .load(&mut conn)
            .await
            .expect("projects");
    let other_id = other
        .user
        .as_ref()
        .expect("user")
        .name
        .replace("users/", "");
    assert_eq!(
        live.iter().map(|l| l.owner.as_str()).collect::<Vec<_>>(),
        vec![other_id.as_str()]
    );
    projects
        .get_project(authed(
            &other.access_token,
            v1::GetProjectRequest { name: kept.name },
        ))
        .await
        .expect("another user's project is untouched");
    // No email or password hash is kept; the deletion is in the audit log.
    let stored: Vec<Stored> =
        diesel::sql_query("SELECT email, password_hash FROM users WHERE deleted_at IS NOT NULL")
            .load(&mut conn)
            .await
            .expect("users");
    assert_eq!(stored.len(), 1);
    assert!(!stored[0].email.contains("eve"), "{}", stored[0].email);
    assert!(!stored[0].password_hash.starts_with("$argon2"));
    let audited: Vec<Live> = diesel::sql_query(
        "SELECT actor AS owner FROM audit_events WHERE action = 'account.delete'",
    )
    .load(&mut conn)
    .await
    .expect("audit");
    assert_eq!(audited.len(), 1);

    // The address can be registered again, as a new account.
    let again = register(&channel, "eve@example.com").await;
    assert_ne!(again.user.expect("user").name, eve.user.expect("user").name);
}

#[derive(diesel::QueryableByName)]
struct Live {
    #[diesel(sql_type = diesel::sql_types::Text)]
    owner: String,
}

#[derive(diesel::QueryableByName)]
struct Stored {
    #[diesel(sql_type = diesel::sql_types::Text)]
    email: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    password_hash: String,
}
