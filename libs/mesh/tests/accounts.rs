//! Accounts through the gateway, against the real Postgres: registering, signing
//! in, rotating refresh tokens with reuse detection, signing out, roles, key
//! rotation, and dev tokens refused outside dev mode.

use cadenza_auth::TokenKeys;
use cadenza_config::{ExposeSecret, SecretString};
use cadenza_mesh::testing::{TestMesh, authed, reason, violated_fields};
use cadenza_proto::v1::{
    self, auth_service_client::AuthServiceClient, project_service_client::ProjectServiceClient,
};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use tonic::Code;
use tonic_types::StatusExt;

const PASSWORD: &str = cadenza_mesh::testing::TEST_PASSWORD;

fn project(title: &str) -> v1::CreateProjectRequest {
    v1::CreateProjectRequest {
        project: Some(v1::Project {
            title: title.into(),
            prompt: "a calm piano piece".into(),
            duration_seconds: 10,
            ..Default::default()
        }),
        request_id: String::new(),
    }
}

async fn register(
    auth: &mut AuthServiceClient<tonic::transport::Channel>,
    email: &str,
) -> v1::Session {
    auth.register(v1::RegisterRequest {
        email: email.into(),
        password: PASSWORD.into(),
        accept_terms_version: String::new(),
    })
    .await
    .expect("register")
    .into_inner()
}

#[tokio::test(flavor = "multi_thread")]
async fn people_register_sign_in_and_rotate_their_sessions() {
    let mesh = TestMesh::start().await;
    let channel = mesh.channel().await;
    let mut auth = AuthServiceClient::new(channel.clone());
    let mut projects = ProjectServiceClient::new(channel);

    let session = auth
        .register(v1::RegisterRequest {
            email: "  Alice@Example.COM ".into(),
            password: PASSWORD.into(),
            accept_terms_version: "2026-11-01".into(),
        })
        .await
        .expect("register")
        .into_inner();
    let user = session.user.clone().expect("user");
    assert_eq!(user.email, "alice@example.com");
    assert_eq!(user.role, v1::Role::User as i32);
    assert_eq!(user.accepted_terms_version, "2026-11-01");
    assert!(user.terms_accept_time.is_some());
    assert!(session.refresh_token.starts_with("cdz_rt_"));

    // The access token works on the public API, as the new user.
    let me = auth
        .get_current_user(authed(&session.access_token, v1::GetCurrentUserRequest {}))
        .await
        .expect("current user")
        .into_inner();
    assert_eq!(me.name, user.name);
    let created = projects
        .create_project(authed(&session.access_token, project("first song")))
        .await
        .expect("create as a registered user")
        .into_inner();
    assert_eq!(created.title, "first song");

    // One mailbox, one account, whatever the case.
    let err = auth
        .register(v1::RegisterRequest {
            email: "ALICE@example.com".into(),
            password: PASSWORD.into(),
            accept_terms_version: String::new(),
        })
        .await
        .expect_err("duplicate");
    assert_eq!(err.code(), Code::AlreadyExists);
    let err = auth
        .register(v1::RegisterRequest {
            email: "not an address".into(),
            password: "short".into(),
            accept_terms_version: "1999-01-01".into(),
        })
        .await
        .expect_err("invalid");
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(
        violated_fields(&err),
        ["email", "password", "accept_terms_version"]
    );

    // Signing in: a wrong password and an unknown address are indistinguishable.
    let signed_in = auth
        .login(v1::LoginRequest {
            email: "alice@EXAMPLE.com".into(),
            password: PASSWORD.into(),
        })
        .await
        .expect("login")
        .into_inner();
    assert_eq!(signed_in.user.expect("user").name, user.name);
    let wrong_password = auth
        .login(v1::LoginRequest {
            email: "alice@example.com".into(),
            password: "a long but wrong passphrase".into(),
        })
        .await
        .expect_err("wrong password");
    let unknown = auth
        .login(v1::LoginRequest {
            email: "nobody@example.com".into(),
            password: PASSWORD.into(),
        })
        .await
        .expect_err("unknown address");
    assert_eq!(wrong_password.code(), Code::Unauthenticated);
    assert_eq!(
        (unknown.code(), unknown.message()),
        (wrong_password.code(), wrong_password.message())
    );

    // Refreshing rotates the refresh token.
    let renewed = auth
        .refresh(v1::RefreshRequest {
            refresh_token: session.refresh_token.clone(),
        })
        .await
        .expect("refresh")
        .into_inner();
    assert_ne!(renewed.refresh_token, session.refresh_token);
    auth.get_current_user(authed(&renewed.access_token, v1::GetCurrentUserRequest {}))
        .await
        .expect("the renewed access token works");

    // The spent token presented again: the whole family is revoked, including the
    // token it was exchanged for.
    let replay = auth
        .refresh(v1::RefreshRequest {
            refresh_token: session.refresh_token.clone(),
        })
        .await
        .expect_err("replayed refresh token");
    assert_eq!(replay.code(), Code::Unauthenticated);
    assert_eq!(reason(&replay), "REFRESH_TOKEN_REUSED");
    let after_theft = auth
        .refresh(v1::RefreshRequest {
            refresh_token: renewed.refresh_token.clone(),
        })
        .await
        .expect_err("the family is revoked");
    assert_eq!(after_theft.code(), Code::Unauthenticated);

    // The other sign-in's family is untouched: it still refreshes, until it
    // signs out.
    let signed_in = auth
        .refresh(v1::RefreshRequest {
            refresh_token: signed_in.refresh_token.clone(),
        })
        .await
        .expect("the other sign-in still refreshes")
        .into_inner();
    auth.logout(v1::LogoutRequest {
        refresh_token: signed_in.refresh_token.clone(),
    })
    .await
    .expect("logout");
    auth.logout(v1::LogoutRequest {
        refresh_token: signed_in.refresh_token.clone(),
    })
    .await
    .expect("logout is idempotent");
    let err = auth
        .refresh(v1::RefreshRequest {
            refresh_token: signed_in.refresh_token,
        })
        .await
        .expect_err("signed out");
    assert_eq!(err.code(), Code::Unauthenticated);
    let err = auth
        .refresh(v1::RefreshRequest {
            refresh_token: "cdz_rt_made-up".into(),
        })
        .await
        .expect_err("made-up token");
    assert_eq!(reason(&err), "REFRESH_TOKEN_INVALID");

    // Input that looks like SQL is only ever data.
    let odd = register(&mut auth, "robert');drop/**/table/**/users;--@example.com").await;
    let me = auth
        .get_current_user(authed(&odd.access_token, v1::GetCurrentUserRequest {}))
        .await
        .expect("odd user")
        .into_inner();
    assert_eq!(me.email, "robert');drop/**/table/**/users;--@example.com");
    auth.login(v1::LoginRequest {
        email: "alice@example.com".into(),
        password: PASSWORD.into(),
    })
    .await
    .expect("the users table is still there");
    mesh.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn outside_dev_mode_only_signed_in_accounts_get_in_and_viewers_only_read() {
    let old_secret = cadenza_auth::random_secret();
    let secret = cadenza_auth::random_secret();
    let mut env = cadenza_config::Env::default();
    env.set("CADENZA_DEV_MODE", "false");
    env.set("CADENZA_JWT_SECRET", secret.expose_secret());
    env.set("CADENZA_JWT_PREVIOUS_SECRETS", old_secret.expose_secret());
    env.set(
        "CADENZA_URL_SIGNING_KEY",
        cadenza_auth::random_secret().expose_secret(),
    );
    let mesh = TestMesh::start_with(env).await;
    let channel = mesh.channel().await;
    let mut auth = AuthServiceClient::new(channel.clone());
    let mut projects = ProjectServiceClient::new(channel.clone());

    // No dev tokens to be had, and one minted with the real key is still refused.
    let err = v1::dev_service_client::DevServiceClient::new(channel)
        .issue_dev_token(v1::IssueDevTokenRequest::default())
        .await
        .expect_err("no dev service");
    assert_eq!(err.code(), Code::Unimplemented);
    let keys = TokenKeys::new(&secret).expect("keys");
    let (dev_token, _) = keys
        .issue("dev", chrono::Duration::minutes(5))
        .expect("role-less token");
    let err = projects
        .list_projects(authed(&dev_token, v1::ListProjectsRequest::default()))
        .await
        .expect_err("dev token outside dev mode");
    assert_eq!(err.code(), Code::Unauthenticated);

    // Tokens signed with the previous key still verify after a rotation.
    let rotated_out = TokenKeys::new(&old_secret).expect("old keys");
    let (old_token, _) = rotated_out
        .issue_with_role("someone", Some("user"), chrono::Duration::minutes(5))
        .expect("old token");
    projects
        .list_projects(authed(&old_token, v1::ListProjectsRequest::default()))
        .await
        .expect("a token of the previous key");
    let stranger = TokenKeys::new(&SecretString::from(
        "an entirely different secret of enough length",
    ))
    .expect("keys");
    let (foreign, _) = stranger
        .issue_with_role("someone", Some("admin"), chrono::Duration::minutes(5))
        .expect("foreign token");
    let err = projects
        .list_projects(authed(&foreign, v1::ListProjectsRequest::default()))
        .await
        .expect_err("a token of another key");
    assert_eq!(err.code(), Code::Unauthenticated);

    // A viewer reads but cannot create.
    register(&mut auth, "viewer@example.com").await;
    let mut conn = AsyncPgConnection::establish(&mesh.database.url)
        .await
        .expect("database");
    diesel::sql_query("UPDATE users SET role = 'viewer' WHERE email = 'viewer@example.com'")
        .execute(&mut conn)
        .await
        .expect("make a viewer");
    let viewer = auth
        .login(v1::LoginRequest {
            email: "viewer@example.com".into(),
            password: PASSWORD.into(),
        })
        .await
        .expect("viewer login")
        .into_inner();
    assert_eq!(viewer.user.expect("user").role, v1::Role::Viewer as i32);
    projects
        .list_projects(authed(
            &viewer.access_token,
            v1::ListProjectsRequest::default(),
        ))
        .await
        .expect("a viewer reads");
    let err = projects
        .create_project(authed(&viewer.access_token, project("not allowed")))
        .await
        .expect_err("a viewer cannot create");
    assert_eq!(err.code(), Code::PermissionDenied);
    assert_eq!(reason(&err), "VIEWER_READ_ONLY");
    mesh.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_burst_from_one_user_is_limited_without_slowing_another() {
    let mut env = cadenza_config::Env::default();
    env.set("CADENZA_DEV_MODE", "true");
    // A burst of one creation, then one every 12 seconds.
    env.set("CADENZA_RATE_GENERATE_PER_MINUTE", "5");
    let mesh = TestMesh::start_with(env).await;
    let mut projects = ProjectServiceClient::new(mesh.channel().await);
    let (alice, bob) = (mesh.token("alice").await, mesh.token("bob").await);
    projects
        .create_project(authed(&alice, project("one")))
        .await
        .expect("within the burst");
    let err = projects
        .create_project(authed(&alice, project("two")))
        .await
        .expect_err("over the limit");
    assert_eq!(err.code(), Code::ResourceExhausted);
    assert_eq!(reason(&err), "RATE_LIMITED");
    let wait = err
        .get_details_retry_info()
        .and_then(|info| info.retry_delay)
        .expect("a RetryInfo saying when to come back");
    assert!(wait > std::time::Duration::ZERO);
    assert!(err.message().contains("try again in"), "{}", err.message());
    projects
        .create_project(authed(&bob, project("bob's")))
        .await
        .expect("another user is not slowed");
    projects
        .list_projects(authed(&alice, v1::ListProjectsRequest::default()))
        .await
        .expect("reads have their own bucket");
    mesh.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn failed_sign_ins_slow_down_per_account_and_address_without_revealing_it_exists() {
    let mesh = TestMesh::start().await;
    let mut auth = AuthServiceClient::new(mesh.channel().await);
    register(&mut auth, "target@example.com").await;
    register(&mut auth, "neighbour@example.com").await;
    let attempt = |email: &str, password: &str| v1::LoginRequest {
        email: email.into(),
        password: password.into(),
    };
    // Five free failures for an account from this address, existing or not.
    for email in ["target@example.com", "ghost@example.com"] {
        for _ in 0..5 {
            let err = auth
                .login(attempt(email, "not the passphrase"))
                .await
                .expect_err("wrong password");
            assert_eq!(err.code(), Code::Unauthenticated, "{email}");
        }
        // Then even the right password must wait, and the answer says how long.
        let err = auth
            .login(attempt(email, PASSWORD))
            .await
            .expect_err("throttled");
        assert_eq!(err.code(), Code::ResourceExhausted, "{email}: {err:?}");
        assert_eq!(reason(&err), "LOGIN_THROTTLED");
        let wait = err
            .get_details_retry_info()
            .and_then(|info| info.retry_delay)
            .expect("retry info");
        assert!(wait > std::time::Duration::ZERO && wait <= std::time::Duration::from_secs(1));
    }
    // The address has more room: a neighbour behind the same address signs in.
    auth.login(attempt("neighbour@example.com", PASSWORD))
        .await
        .expect("another account from the same address");
    // After the wait, the right password works again and clears the count.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    auth.login(attempt("target@example.com", PASSWORD))
        .await
        .expect("after the wait");
    auth.login(attempt("target@example.com", PASSWORD))
        .await
        .expect("the count was cleared");
    mesh.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn api_keys_act_for_their_owner_within_their_scopes_until_revoked() {
    let mut env = cadenza_config::Env::default();
    env.set("CADENZA_DEV_MODE", "true");
    // No caching, so a revocation shows at once.
    env.set("CADENZA_API_KEY_CACHE_SECONDS", "0");
    let mesh = TestMesh::start_with(env).await;
    let channel = mesh.channel().await;
    let mut auth = AuthServiceClient::new(channel.clone());
    let mut keys = v1::api_key_service_client::ApiKeyServiceClient::new(channel.clone());
    let mut projects = ProjectServiceClient::new(channel);
    let alice = register(&mut auth, "keys@example.com").await;
    let mallory = register(&mut auth, "mallory@example.com").await;

    let create = |name: &str, scopes: &[v1::ApiKeyScope]| v1::CreateApiKeyRequest {
        display_name: name.into(),
        scopes: scopes.iter().map(|s| *s as i32).collect(),
    };
    let reader = keys
        .create_api_key(authed(
            &alice.access_token,
            create("ci reader", &[v1::ApiKeyScope::Read]),
        ))
        .await
        .expect("create a read key")
        .into_inner();
    let reader_key = reader.api_key.clone().expect("key");
    assert!(
        reader
            .secret
            .starts_with(&format!("{}_", reader_key.prefix))
    );
    let writer = keys
        .create_api_key(authed(
            &alice.access_token,
            create("batch", &[v1::ApiKeyScope::Read, v1::ApiKeyScope::Generate]),
        ))
        .await
        .expect("create a generate key")
        .into_inner();
    let err = keys
        .create_api_key(authed(&alice.access_token, create("", &[])))
        .await
        .expect_err("no name, no scopes");
    assert_eq!(violated_fields(&err), ["display_name", "scopes"]);

    // Listing shows prefixes, never secrets.
    let listed = keys
        .list_api_keys(authed(&alice.access_token, v1::ListApiKeysRequest {}))
        .await
        .expect("list")
        .into_inner();
    assert_eq!(listed.api_keys.len(), 2);
    let rendered = format!("{listed:?}");
    assert!(!rendered.contains(&reader.secret) && !rendered.contains(&writer.secret));

    // A key acts for its owner, within its scopes.
    let made = projects
        .create_project(authed(&writer.secret, project("made by a key")))
        .await
        .expect("a generate key creates")
        .into_inner();
    let seen = projects
        .get_project(authed(
            &alice.access_token,
            v1::GetProjectRequest {
                name: made.name.clone(),
            },
        ))
        .await
        .expect("the owner sees what her key made")
        .into_inner();
    assert_eq!(seen.title, "made by a key");
    projects
        .list_projects(authed(&reader.secret, v1::ListProjectsRequest::default()))
        .await
        .expect("a read key reads");
    let err = projects
        .create_project(authed(&reader.secret, project("not with a read key")))
        .await
        .expect_err("a read key cannot create");
    assert_eq!(err.code(), Code::PermissionDenied);
    assert_eq!(reason(&err), "API_KEY_SCOPE");
    let err = keys
        .create_api_key(authed(
            &writer.secret,
            create("minted", &[v1::ApiKeyScope::Read]),
        ))
        .await
        .expect_err("a key cannot mint keys");
    assert_eq!(reason(&err), "SESSION_REQUIRED");
    let listed = keys
        .list_api_keys(authed(&alice.access_token, v1::ListApiKeysRequest {}))
        .await
        .expect("list")
        .into_inner();
    let used = listed
        .api_keys
        .iter()
        .find(|k| k.prefix == reader_key.prefix)
        .expect("reader listed");
    assert!(used.last_use_time.is_some(), "last use recorded");

    // Another user cannot revoke it (NOT_FOUND); the owner can, and it stops working.
    let err = keys
        .revoke_api_key(authed(
            &mallory.access_token,
            v1::RevokeApiKeyRequest {
                name: reader_key.name.clone(),
            },
        ))
        .await
        .expect_err("foreign key");
    assert_eq!(err.code(), Code::NotFound);
    let revoked = keys
        .revoke_api_key(authed(
            &alice.access_token,
            v1::RevokeApiKeyRequest {
                name: reader_key.name.clone(),
            },
        ))
        .await
        .expect("revoke")
        .into_inner();
    assert!(revoked.revoke_time.is_some());
    let err = projects
        .list_projects(authed(&reader.secret, v1::ListProjectsRequest::default()))
        .await
        .expect_err("revoked");
    assert_eq!(err.code(), Code::Unauthenticated);
    // A guess at a live key's secret: its prefix is real, so the lookup finds
    // the key and only the secret's comparison can refuse it.
    let live_prefix = writer
        .api_key
        .as_ref()
        .expect("the writer key")
        .prefix
        .clone();
    let guessed = format!("{live_prefix}_{}", "A".repeat(43));
    assert_ne!(guessed, writer.secret);
    let err = projects
        .list_projects(authed(&guessed, v1::ListProjectsRequest::default()))
        .await
        .expect_err("a guessed secret");
    assert_eq!(err.code(), Code::Unauthenticated);
    projects
        .list_projects(authed(&writer.secret, v1::ListProjectsRequest::default()))
        .await
        .expect("the real secret of the same key works");
    mesh.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn admins_change_roles_and_read_an_audit_log_without_secrets() {
    let mesh = TestMesh::start().await;
    let channel = mesh.channel().await;
    let mut auth = AuthServiceClient::new(channel.clone());
    let mut admin_api = v1::admin_service_client::AdminServiceClient::new(channel.clone());
    let mut projects = ProjectServiceClient::new(channel);
    register(&mut auth, "root@example.com").await;
    let bob = register(&mut auth, "bob@example.com").await;
    let bob_name = bob.user.clone().expect("user").name;
    let mut conn = AsyncPgConnection::establish(&mesh.database.url)
        .await
        .expect("database");
    diesel::sql_query("UPDATE users SET role = 'admin' WHERE email = 'root@example.com'")
        .execute(&mut conn)
        .await
        .expect("make an admin");
    let root = auth
        .login(v1::LoginRequest {
            email: "root@example.com".into(),
            password: PASSWORD.into(),
        })
        .await
        .expect("admin login")
        .into_inner();

    let change = |role: v1::Role| v1::ChangeRoleRequest {
        name: bob_name.clone(),
        role: role as i32,
    };
    let err = admin_api
        .change_role(authed(&bob.access_token, change(v1::Role::Admin)))
        .await
        .expect_err("a user is not an admin");
    assert_eq!(err.code(), Code::PermissionDenied);
    let changed = admin_api
        .change_role(authed(&root.access_token, change(v1::Role::Viewer)))
        .await
        .expect("an admin changes a role")
        .into_inner();
    assert_eq!(changed.role, v1::Role::Viewer as i32);
    // The new role holds from the next refresh.
    let renewed = auth
        .refresh(v1::RefreshRequest {
            refresh_token: bob.refresh_token.clone(),
        })
        .await
        .expect("refresh")
        .into_inner();
    let err = projects
        .create_project(authed(&renewed.access_token, project("now a viewer")))
        .await
        .expect_err("viewer");
    assert_eq!(err.code(), Code::PermissionDenied);

    // Credits granted by an admin, never by anyone else.
    let grant = v1::GrantCreditsRequest {
        name: bob_name.clone(),
        amount: 40,
        reason: "support ticket 42".into(),
    };
    let err = admin_api
        .grant_credits(authed(&renewed.access_token, grant.clone()))
        .await
        .expect_err("not an admin");
    assert_eq!(err.code(), Code::PermissionDenied);
    let granted = admin_api
        .grant_credits(authed(&root.access_token, grant))
        .await
        .expect("grant")
        .into_inner();
    assert_eq!(granted.balance, 600 + 40, "sign-up credits plus the grant");
    let err = admin_api
        .grant_credits(authed(
            &root.access_token,
            v1::GrantCreditsRequest {
                name: "users/not-a-uuid".into(),
                amount: 0,
                reason: String::new(),
            },
        ))
        .await
        .expect_err("bad grant");
    assert_eq!(violated_fields(&err), ["amount", "reason", "name"]);

    auth.login(v1::LoginRequest {
        email: "bob@example.com".into(),
        password: "a wrong guess at it".into(),
    })
    .await
    .expect_err("wrong password");
    let log = admin_api
        .list_audit_events(authed(
            &root.access_token,
            v1::ListAuditEventsRequest::default(),
        ))
        .await
        .expect("audit log")
        .into_inner();
    let actions: Vec<&str> = log.audit_events.iter().map(|e| e.action.as_str()).collect();
    for expected in [
        "account.register",
        "session.login",
        "role.change",
        "session.login_failed",
    ] {
        assert!(
            actions.contains(&expected),
            "{expected} missing from {actions:?}"
        );
    }
    assert_eq!(actions[0], "session.login_failed", "newest first");
    let role_change = log
        .audit_events
        .iter()
        .find(|e| e.action == "role.change")
        .expect("role change");
    assert_eq!(role_change.target, bob_name);
    assert_eq!(role_change.client_address, "127.0.0.1");
    let rendered = format!("{log:?}");
    assert!(!rendered.contains(PASSWORD) && !rendered.contains("a wrong guess"));
    assert!(!rendered.contains(&bob.refresh_token) && !rendered.contains(&root.access_token));
    let page = admin_api
        .list_audit_events(authed(
            &root.access_token,
            v1::ListAuditEventsRequest {
                page_size: 1,
                page_token: String::new(),
                actor: "anonymous".into(),
            },
        ))
        .await
        .expect("filtered")
        .into_inner();
    assert_eq!(page.audit_events.len(), 1);
    assert_eq!(page.audit_events[0].actor, "anonymous");
    mesh.stop().await;
}
