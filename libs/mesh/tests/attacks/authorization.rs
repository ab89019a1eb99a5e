//! Authorisation: an API key stays within its scopes, administration needs an
//! administrator's session or an explicit ADMIN key, and a demotion takes
//! effect at once.

use cadenza_auth::mesh::{AssertionSigner, Credential, Role, Scope, Service, User};
use cadenza_mesh::testing::{TestMesh, admin_token, authed, reason, register};
use cadenza_proto::v1::{
    self, admin_service_client::AdminServiceClient, api_key_service_client::ApiKeyServiceClient,
    auth_service_client::AuthServiceClient,
};
use tonic::Code;
use tonic::transport::Channel;

fn key_request(name: &str, scopes: &[v1::ApiKeyScope]) -> v1::CreateApiKeyRequest {
    v1::CreateApiKeyRequest {
        display_name: name.into(),
        scopes: scopes.iter().map(|s| *s as i32).collect(),
    }
}

async fn user_name(channel: &Channel, token: &str) -> String {
    AuthServiceClient::new(channel.clone())
        .get_current_user(authed(token, v1::GetCurrentUserRequest {}))
        .await
        .expect("current user")
        .into_inner()
        .name
}

fn grant(name: &str) -> v1::GrantCreditsRequest {
    v1::GrantCreditsRequest {
        name: name.into(),
        amount: 100,
        reason: "attack suite".into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_administrators_read_only_key_cannot_administer() {
    let mesh = TestMesh::start().await;
    let channel = mesh.channel().await;
    let admin = admin_token(&mesh, &channel, "root@example.com").await;
    let bob = register(&channel, "bob@example.com").await.access_token;
    let bob_name = user_name(&channel, &bob).await;
    let mut keys = ApiKeyServiceClient::new(channel.clone());
    let mut admin_api = AdminServiceClient::new(channel.clone());

    // The administrator's key for reading: it reads, and administers nothing.
    let reader = keys
        .create_api_key(authed(
            &admin,
            key_request(
                "dashboards",
                &[v1::ApiKeyScope::Read, v1::ApiKeyScope::Generate],
            ),
        ))
        .await
        .expect("an admin's read key")
        .into_inner()
        .secret;
    let refused = admin_api
        .grant_credits(authed(&reader, grant(&bob_name)))
        .await
        .expect_err("credits with a read key");
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
    assert_eq!(reason(&refused), "API_KEY_SCOPE");
    let refused = admin_api
        .change_role(authed(
            &reader,
            v1::ChangeRoleRequest {
                name: bob_name.clone(),
                role: v1::Role::Admin as i32,
            },
        ))
        .await
        .expect_err("a role with a read key");
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");

    // A key made for administration does what the read key could not.
    let operator = keys
        .create_api_key(authed(
            &admin,
            key_request("operations", &[v1::ApiKeyScope::Admin]),
        ))
        .await
        .expect("an admin key")
        .into_inner()
        .secret;
    admin_api
        .grant_credits(authed(&operator, grant(&bob_name)))
        .await
        .expect("credits with the admin key");

    // No one else gets such a key: not a user, and not an administrator's key.
    let refused = keys
        .create_api_key(authed(
            &bob,
            key_request("sneaky", &[v1::ApiKeyScope::Admin]),
        ))
        .await
        .expect_err("a user's admin key");
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
    assert_eq!(reason(&refused), "ADMIN_SCOPE_REFUSED");
    let refused = keys
        .create_api_key(authed(
            &operator,
            key_request("minted", &[v1::ApiKeyScope::Admin]),
        ))
        .await
        .expect_err("a key minting a key");
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");

    // The admin key's creation is in the audit log.
    let events = admin_api
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
    assert!(
        events
            .iter()
            .any(|e| e.action == "api_key.create" && e.detail.contains("admin")),
        "{events:?}"
    );
    mesh.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn project_refuses_administration_for_a_key_without_the_admin_scope() {
    // Past the gateway (as if its table were wrong): project checks the
    // credential in the assertion itself.
    let mesh = TestMesh::start().await;
    let channel = mesh.channel().await;
    let admin = admin_token(&mesh, &channel, "root@example.com").await;
    let subject = user_name(&channel, &admin)
        .await
        .trim_start_matches("users/")
        .to_owned();
    let signer = AssertionSigner::new(Service::Gateway)
        .with_link(
            Service::Project,
            mesh.mesh
                .secrets
                .of(Service::Gateway, Service::Project)
                .expect("link"),
        )
        .expect("signer");
    let list = |credential: Credential| {
        let user = User {
            subject: subject.clone(),
            role: Role::Admin,
            credential,
        };
        let mut request = tonic::Request::new(v1::ListAuditEventsRequest::default());
        let token = signer
            .sign(Service::Project, Some(&user), None)
            .expect("sign");
        request.metadata_mut().insert(
            cadenza_auth::mesh::ASSERTION_HEADER,
            token.parse().expect("ascii"),
        );
        request
    };
    let mut project = AdminServiceClient::new(
        Channel::from_shared(format!("http://{}", mesh.mesh.project_addr))
            .expect("url")
            .connect()
            .await
            .expect("project"),
    );
    let refused = project
        .list_audit_events(list(Credential::ApiKey {
            scopes: vec![Scope::Read],
        }))
        .await
        .expect_err("a read key");
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
    assert_eq!(reason(&refused), "API_KEY_SCOPE");
    project
        .list_audit_events(list(Credential::ApiKey {
            scopes: vec![Scope::Admin],
        }))
        .await
        .expect("an admin key");
    mesh.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_demoted_administrator_loses_administration_at_once() {
    let mesh = TestMesh::start().await;
    let channel = mesh.channel().await;
    let root = admin_token(&mesh, &channel, "root@example.com").await;
    let other = admin_token(&mesh, &channel, "deputy@example.com").await;
    let deputy = user_name(&channel, &other).await;
    let mut admin_api = AdminServiceClient::new(channel.clone());
    let mut providers = v1::provider_service_client::ProviderServiceClient::new(channel.clone());
    let audit = || {
        authed(
            &other,
            v1::ListAuditEventsRequest {
                page_size: 1,
                ..Default::default()
            },
        )
    };
    // While an administrator, the deputy administers.
    admin_api
        .list_audit_events(audit())
        .await
        .expect("the deputy reads the audit log");
    providers
        .get_provider_health(authed(&other, v1::GetProviderHealthRequest {}))
        .await
        .expect("the deputy sees provider health");

    admin_api
        .change_role(authed(
            &root,
            v1::ChangeRoleRequest {
                name: deputy,
                role: v1::Role::User as i32,
            },
        ))
        .await
        .expect("demote the deputy");
    // The deputy's token still says admin; the database decides.
    let refused = admin_api
        .list_audit_events(audit())
        .await
        .expect_err("demoted: the audit log");
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
    let refused = providers
        .get_provider_health(authed(&other, v1::GetProviderHealthRequest {}))
        .await
        .expect_err("demoted: provider health");
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
    assert_eq!(reason(&refused), "ADMIN_ONLY");
    mesh.stop().await;
}
