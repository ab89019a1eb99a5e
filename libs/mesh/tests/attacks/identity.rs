//! Identity inside the mesh: `project` and `storage` believe only assertions
//! signed by a service they trust, never a header naming a user, and the
//! public gateway describes only the public API.

use cadenza_auth::mesh::{AssertionSigner, Credential, Role, Service, User};
use cadenza_config::SecretString;
use cadenza_mesh::testing::{TestMesh, authed, create_project, reason, register};
use cadenza_proto::v1::{
    self, project_service_client::ProjectServiceClient,
    storage_service_client::StorageServiceClient,
};
use tonic::Code;
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;

/// A plain connection to an internal port, as a pod inside the cluster (or the
/// generation container, parsing a hosted provider's output) would open one.
async fn direct(addr: std::net::SocketAddr) -> Channel {
    Channel::from_shared(format!("http://{addr}"))
        .expect("url")
        .connect()
        .await
        .expect("the internal port accepts connections")
}

/// A signer for `caller` whose calls to `audience` are signed with `secret`.
fn signer(caller: Service, audience: Service, secret: &SecretString) -> AssertionSigner {
    AssertionSigner::new(caller)
        .with_link(audience, secret)
        .expect("signer")
}

/// The mesh's real secret of the link `caller` → `callee`.
fn link(mesh: &TestMesh, caller: Service, callee: Service) -> SecretString {
    mesh.mesh
        .secrets
        .of(caller, callee)
        .expect("a link of the mesh")
        .clone()
}

fn session_of(subject: &str) -> User {
    User {
        subject: subject.into(),
        role: Role::User,
        credential: Credential::Session,
    }
}

/// `message` carrying an assertion for `audience` signed by `signer`.
fn asserted<T>(
    signer: &AssertionSigner,
    audience: Service,
    user: Option<&User>,
    message: T,
) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    let token = signer.sign(audience, user, None).expect("sign");
    request.metadata_mut().insert(
        cadenza_auth::mesh::ASSERTION_HEADER,
        MetadataValue::try_from(token).expect("ascii"),
    );
    request
}

fn list_projects() -> v1::ListProjectsRequest {
    v1::ListProjectsRequest {
        page_size: 50,
        ..Default::default()
    }
}

fn titles(response: v1::ListProjectsResponse) -> Vec<String> {
    response.projects.into_iter().map(|p| p.title).collect()
}

/// The subject of a registered account (its user id), as its session names it.
async fn subject_of(channel: &Channel, token: &str) -> String {
    v1::auth_service_client::AuthServiceClient::new(channel.clone())
        .get_current_user(authed(token, v1::GetCurrentUserRequest {}))
        .await
        .expect("current user")
        .into_inner()
        .name
        .trim_start_matches("users/")
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_valid_token_with_a_forged_identity_header_and_address_acts_only_for_its_owner() {
    let mesh = TestMesh::start().await;
    let channel = mesh.channel().await;
    let alice = register(&channel, "alice@example.com").await.access_token;
    let bob = register(&channel, "bob@example.com").await.access_token;
    create_project(
        &channel,
        &bob,
        v1::Project {
            title: "bob's secret song".into(),
            prompt: "a quiet song".into(),
            duration_seconds: 10,
            ..Default::default()
        },
    )
    .await;
    let bob_subject = subject_of(&channel, &bob).await;

    // Alice's own token, with every header that once named a caller or an
    // address set to Bob and a made-up address.
    let mut forged = authed(&alice, list_projects());
    for (header, value) in [
        ("x-cadenza-subject", bob_subject.as_str()),
        ("x-cadenza-client-address", "198.51.100.9"),
        ("x-forwarded-for", "198.51.100.9"),
        ("x-real-ip", "198.51.100.9"),
    ] {
        forged
            .metadata_mut()
            .insert(header, value.parse().expect("ascii"));
    }
    let listed = ProjectServiceClient::new(channel.clone())
        .list_projects(forged)
        .await
        .expect("alice's own list");
    assert_eq!(
        titles(listed.into_inner()),
        Vec::<String>::new(),
        "alice sees none of bob's projects"
    );

    // A sign-in with a forged address is recorded with the address the
    // gateway saw.
    let mut login = tonic::Request::new(v1::LoginRequest {
        email: "alice@example.com".into(),
        password: cadenza_mesh::testing::TEST_PASSWORD.into(),
    });
    for header in ["x-cadenza-client-address", "x-forwarded-for"] {
        login
            .metadata_mut()
            .insert(header, "198.51.100.9".parse().expect("ascii"));
    }
    v1::auth_service_client::AuthServiceClient::new(channel.clone())
        .login(login)
        .await
        .expect("login");
    let admin = cadenza_mesh::testing::admin_token(&mesh, &channel, "ops@example.com").await;
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
    let logins: Vec<&str> = events
        .iter()
        .filter(|e| e.action == "session.login")
        .map(|e| e.client_address.as_str())
        .collect();
    assert!(!logins.is_empty(), "sign-ins are audited: {events:?}");
    assert!(
        logins.iter().all(|address| *address == "127.0.0.1"),
        "the audit log records the address the gateway saw, not one the client wrote: {logins:?}"
    );
    mesh.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn project_refuses_everyone_but_the_gateway_whatever_they_claim() {
    let mesh = TestMesh::start().await;
    let channel = mesh.channel().await;
    let alice = register(&channel, "alice@example.com").await.access_token;
    create_project(
        &channel,
        &alice,
        v1::Project {
            title: "alice's song".into(),
            prompt: "a bright song".into(),
            duration_seconds: 10,
            ..Default::default()
        },
    )
    .await;
    let subject = subject_of(&channel, &alice).await;
    let alice_user = session_of(&subject);
    let mut project = ProjectServiceClient::new(direct(mesh.mesh.project_addr).await);

    // The header that used to be believed.
    let mut bare = tonic::Request::new(list_projects());
    bare.metadata_mut()
        .insert("x-cadenza-subject", subject.parse().expect("ascii"));
    let refused = project.list_projects(bare).await.expect_err("bare header");
    assert_eq!(refused.code(), Code::Unauthenticated, "{refused:?}");

    // An assertion signed with a secret of the intruder's own.
    let forger = signer(
        Service::Gateway,
        Service::Project,
        &cadenza_auth::random_secret(),
    );
    let refused = project
        .list_projects(asserted(
            &forger,
            Service::Project,
            Some(&alice_user),
            list_projects(),
        ))
        .await
        .expect_err("forged assertion");
    assert_eq!(refused.code(), Code::Unauthenticated, "{refused:?}");

    // Everything generation holds (generation parses hosted providers'
    // output: the likeliest place for an intruder), used to pose as the
    // gateway: the secret the gateway signs generation's calls with, and
    // generation's own towards storage. Project holds neither.
    for held in [
        link(&mesh, Service::Gateway, Service::Generation),
        link(&mesh, Service::Generation, Service::Storage),
    ] {
        let posing = signer(Service::Gateway, Service::Project, &held);
        let refused = project
            .list_projects(asserted(
                &posing,
                Service::Project,
                Some(&alice_user),
                list_projects(),
            ))
            .await
            .expect_err("generation's secrets");
        assert_eq!(refused.code(), Code::Unauthenticated, "{refused:?}");
    }

    // The gateway's real secret for project, in an assertion meant for
    // generation.
    let gateway_secret = link(&mesh, Service::Gateway, Service::Project);
    let misaddressed = signer(Service::Gateway, Service::Generation, &gateway_secret);
    let refused = project
        .list_projects(asserted(
            &misaddressed,
            Service::Generation,
            Some(&alice_user),
            list_projects(),
        ))
        .await
        .expect_err("another audience");
    assert_eq!(refused.code(), Code::Unauthenticated, "{refused:?}");

    // The one thing the intruder lacks supplied: the same call is answered.
    let gateway = signer(Service::Gateway, Service::Project, &gateway_secret);
    let answered = project
        .list_projects(asserted(
            &gateway,
            Service::Project,
            Some(&alice_user),
            list_projects(),
        ))
        .await
        .expect("the gateway's assertion is believed");
    assert_eq!(titles(answered.into_inner()), ["alice's song"]);
    mesh.stop().await;
}

fn stat(owner: &str, key: &str) -> v1::StatObjectRequest {
    v1::StatObjectRequest {
        owner: owner.into(),
        key: key.into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storage_takes_owner_named_requests_only_from_project_and_generation() {
    let mesh = TestMesh::start().await;
    let channel = mesh.channel().await;
    let token = mesh.token("carol").await;
    let project = create_project(
        &channel,
        &token,
        v1::Project {
            title: "carol's song".into(),
            prompt: "a short song".into(),
            duration_seconds: 5,
            ..Default::default()
        },
    )
    .await;
    cadenza_mesh::testing::generate(&channel, &token, &project.name).await;
    let state = cadenza_mesh::testing::finished_state(
        &channel,
        &token,
        &project.name,
        std::time::Duration::from_secs(120),
    )
    .await;
    assert_eq!(state, v1::RunState::Succeeded);
    let mut storage = StorageServiceClient::new(direct(mesh.mesh.storage_addr).await);
    let project_signer = signer(
        Service::Project,
        Service::Storage,
        &link(&mesh, Service::Project, Service::Storage),
    );
    let listed = storage
        .list_owner_objects(asserted(
            &project_signer,
            Service::Storage,
            None,
            v1::ListOwnerObjectsRequest {
                owner: "carol".into(),
                ..Default::default()
            },
        ))
        .await
        .expect("project lists an owner's objects")
        .into_inner();
    let key = listed
        .objects
        .first()
        .expect("the song's objects")
        .key
        .clone();

    // No assertion, whatever the owner field says.
    let refused = storage
        .stat_object(stat("carol", &key))
        .await
        .expect_err("no assertion");
    assert_eq!(refused.code(), Code::Unauthenticated, "{refused:?}");
    // The gateway's real secret: the gateway never calls storage, which does
    // not hold it.
    let gateway = signer(
        Service::Gateway,
        Service::Storage,
        &link(&mesh, Service::Gateway, Service::Project),
    );
    let refused = storage
        .stat_object(asserted(
            &gateway,
            Service::Storage,
            None,
            stat("carol", &key),
        ))
        .await
        .expect_err("the gateway's assertion");
    assert_eq!(refused.code(), Code::Unauthenticated, "{refused:?}");
    // generation reads and writes objects, but never deletes a project's.
    let generation = signer(
        Service::Generation,
        Service::Storage,
        &link(&mesh, Service::Generation, Service::Storage),
    );
    let delete = v1::DeleteProjectObjectsRequest {
        owner: "carol".into(),
        project_id: project.name.trim_start_matches("projects/").into(),
    };
    let refused = storage
        .delete_project_objects(asserted(
            &generation,
            Service::Storage,
            None,
            delete.clone(),
        ))
        .await
        .expect_err("generation deleting");
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
    assert_eq!(reason(&refused), "MESH_CALLER_REFUSED");
    let seen = storage
        .stat_object(asserted(
            &generation,
            Service::Storage,
            None,
            stat("carol", &key),
        ))
        .await
        .expect("generation reads an object")
        .into_inner();
    assert_eq!(seen.key, key, "nothing was deleted");
    mesh.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_public_gateway_describes_only_the_public_api() {
    use tonic_reflection::pb::v1::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
    };
    let mesh = TestMesh::start().await;
    let ask = |port: std::net::SocketAddr, request: MessageRequest| async move {
        let mut client = ServerReflectionClient::new(direct(port).await);
        let mut responses = client
            .server_reflection_info(futures::stream::iter([ServerReflectionRequest {
                host: String::new(),
                message_request: Some(request),
            }]))
            .await
            .expect("reflection")
            .into_inner();
        // An unknown symbol or file is an error status, or an error message.
        match responses.message().await {
            Ok(answer) => answer.and_then(|r| r.message_response),
            Err(status) => {
                assert_eq!(status.code(), Code::NotFound, "{status:?}");
                None
            }
        }
    };
    let Some(MessageResponse::ListServicesResponse(list)) = ask(
        mesh.mesh.gateway_addr,
        MessageRequest::ListServices(String::new()),
    )
    .await
    else {
        panic!("no service list");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    assert!(
        names.contains(&"cadenza.v1.ProjectService".to_owned()),
        "{names:?}"
    );
    for internal in ["cadenza.v1.StorageService", "cadenza.v1.CredentialService"] {
        assert!(
            !names.contains(&internal.to_owned()),
            "{internal} listed: {names:?}"
        );
        let answer = ask(
            mesh.mesh.gateway_addr,
            MessageRequest::FileContainingSymbol(internal.into()),
        )
        .await;
        assert!(
            matches!(answer, None | Some(MessageResponse::ErrorResponse(_))),
            "the gateway described {internal}: {answer:?}"
        );
    }
    let answer = ask(
        mesh.mesh.gateway_addr,
        MessageRequest::FileByFilename("cadenza/v1/internal_queue.proto".into()),
    )
    .await;
    assert!(
        matches!(answer, None | Some(MessageResponse::ErrorResponse(_))),
        "the gateway handed out the queue envelope's file: {answer:?}"
    );
    // The same questions are answered for a public service: the refusals
    // above are about what is internal, not about reflection failing.
    let answer = ask(
        mesh.mesh.gateway_addr,
        MessageRequest::FileContainingSymbol("cadenza.v1.ProjectService".into()),
    )
    .await;
    assert!(
        matches!(answer, Some(MessageResponse::FileDescriptorResponse(_))),
        "{answer:?}"
    );
    mesh.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dev_token_never_acts_for_a_registered_account() {
    let secret = cadenza_auth::random_secret();
    let mut env = cadenza_config::Env::default();
    env.set("CADENZA_DEV_MODE", "true");
    env.set(
        "CADENZA_JWT_SECRET",
        cadenza_config::ExposeSecret::expose_secret(&secret),
    );
    let mesh = TestMesh::start_with(env).await;
    let channel = mesh.channel().await;
    let victim = register(&channel, "victim@example.com").await.access_token;
    create_project(
        &channel,
        &victim,
        v1::Project {
            title: "the victim's song".into(),
            prompt: "a private song".into(),
            duration_seconds: 10,
            ..Default::default()
        },
    )
    .await;
    let subject = subject_of(&channel, &victim).await;

    // Asking the dev service for the account's name.
    let refused = v1::dev_service_client::DevServiceClient::new(channel.clone())
        .issue_dev_token(v1::IssueDevTokenRequest {
            subject: subject.clone(),
            ttl_seconds: 0,
        })
        .await
        .expect_err("a dev token for an account");
    assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
    // A role-less token minted with the real key: what a dev token is.
    let keys = cadenza_auth::TokenKeys::new(&secret).expect("keys");
    let (minted, _) = keys
        .issue(&subject, chrono::Duration::minutes(5))
        .expect("a dev token");
    let refused = ProjectServiceClient::new(channel.clone())
        .list_projects(authed(&minted, list_projects()))
        .await
        .expect_err("a minted dev token for an account");
    assert_eq!(refused.code(), Code::Unauthenticated, "{refused:?}");
    // Past the gateway: project refuses a dev credential naming an account.
    let gateway = signer(
        Service::Gateway,
        Service::Project,
        &link(&mesh, Service::Gateway, Service::Project),
    );
    let posing = User {
        subject: subject.clone(),
        role: Role::User,
        credential: Credential::DevToken,
    };
    let refused = ProjectServiceClient::new(direct(mesh.mesh.project_addr).await)
        .list_projects(asserted(
            &gateway,
            Service::Project,
            Some(&posing),
            list_projects(),
        ))
        .await
        .expect_err("project");
    assert_eq!(refused.code(), Code::Unauthenticated, "{refused:?}");
    // Dev tokens for other names still work.
    let dev = mesh.token("someone-else").await;
    ProjectServiceClient::new(channel.clone())
        .list_projects(authed(&dev, list_projects()))
        .await
        .expect("a dev name");
    mesh.stop().await;
}
