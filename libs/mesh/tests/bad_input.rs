//! Every kind of bad input gets the right code and a message a person can act on,
//! never INTERNAL, and leaves nothing behind.

use cadenza_mesh::testing::{TestMesh, authed, reason, violated_fields as violations};
use cadenza_proto::v1::{self, project_service_client::ProjectServiceClient};
use tonic::Code;

fn project(prompt: String, duration_seconds: u32) -> v1::CreateProjectRequest {
    v1::CreateProjectRequest {
        project: Some(v1::Project {
            prompt,
            duration_seconds,
            style_strength: 0.5,
            ..Default::default()
        }),
        request_id: String::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_clear_errors_and_writes_nothing() {
    let mesh = TestMesh::start().await;
    let token = mesh.token("alice").await;
    let mut client = ProjectServiceClient::new(mesh.channel().await);

    let cases = [
        (project(String::new(), 30), "project.prompt"),
        (project("x".repeat(4000), 30), "project.prompt"),
        (project("ok".into(), 0), "project.duration_seconds"),
        (project("ok".into(), u32::MAX), "project.duration_seconds"),
        (project("ok".into(), 601), "project.duration_seconds"),
    ];
    for (request, field) in cases {
        let err = client
            .create_project(authed(&token, request))
            .await
            .expect_err("invalid");
        assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
        assert_eq!(violations(&err), [field], "{}", err.message());
        assert_eq!(reason(&err), "INVALID_ARGUMENT");
        assert!(!err.message().is_empty());
    }
    // Several problems at once are all reported.
    let mut bad = project(String::new(), 0);
    if let Some(p) = bad.project.as_mut() {
        p.style_strength = 3.0;
    }
    let err = client
        .create_project(authed(&token, bad))
        .await
        .expect_err("invalid");
    assert_eq!(violations(&err).len(), 3, "{}", err.message());

    for name in [
        "",
        "projects/",
        "projects/not-a-uuid",
        "tracks/0190b8d2-7c1e-7cc0-a1b2-0123456789ab",
        "projects/../../etc",
    ] {
        let err = client
            .get_project(authed(&token, v1::GetProjectRequest { name: name.into() }))
            .await
            .expect_err("malformed");
        assert_eq!(err.code(), Code::InvalidArgument, "{name}: {err:?}");
        assert_eq!(violations(&err), ["name"]);
    }
    let unknown = "projects/0190b8d2-7c1e-7cc0-a1b2-0123456789ab";
    let err = client
        .get_project(authed(
            &token,
            v1::GetProjectRequest {
                name: unknown.into(),
            },
        ))
        .await
        .expect_err("unknown");
    assert_eq!(err.code(), Code::NotFound);
    assert_eq!(reason(&err), "PROJECT_NOT_FOUND");
    let err = client
        .generate_song(authed(
            &token,
            v1::GenerateSongRequest {
                name: unknown.into(),
                request_id: String::new(),
            },
        ))
        .await
        .expect_err("unknown");
    assert_eq!(err.code(), Code::NotFound);

    // Nothing was written by any of the refused calls.
    let listed = client
        .list_projects(authed(
            &token,
            v1::ListProjectsRequest {
                page_size: 0,
                page_token: String::new(),
                ..Default::default()
            },
        ))
        .await
        .expect("list")
        .into_inner();
    assert!(listed.projects.is_empty(), "{:?}", listed.projects);
    let err = client
        .list_projects(authed(
            &token,
            v1::ListProjectsRequest {
                page_size: 0,
                page_token: "garbage!".into(),
                ..Default::default()
            },
        ))
        .await
        .expect_err("bad token");
    assert_eq!(violations(&err), ["page_token"]);
    mesh.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_forged_and_foreign_tokens_are_refused() {
    let mesh = TestMesh::start().await;
    let mut client = ProjectServiceClient::new(mesh.channel().await);
    let list = || v1::ListProjectsRequest {
        page_size: 0,
        page_token: String::new(),
        ..Default::default()
    };

    let err = client
        .list_projects(tonic::Request::new(list()))
        .await
        .expect_err("no token");
    assert_eq!(err.code(), Code::Unauthenticated);
    assert!(err.message().contains("Bearer"), "{}", err.message());

    let token = mesh.token("alice").await;
    let mut forged = token.clone();
    forged.replace_range(forged.len() - 4.., "AAAA");
    for bad in [forged.as_str(), "not-a-jwt", "a.b.c"] {
        let err = client
            .list_projects(authed(bad, list()))
            .await
            .expect_err("forged");
        assert_eq!(err.code(), Code::Unauthenticated, "{bad}");
    }
    // A client cannot claim an identity by sending the internal header itself.
    let mut spoofed = tonic::Request::new(list());
    spoofed
        .metadata_mut()
        .insert("x-cadenza-subject", "alice".parse().expect("ascii"));
    let err = client.list_projects(spoofed).await.expect_err("spoofed");
    assert_eq!(err.code(), Code::Unauthenticated);

    // A valid token works.
    client
        .list_projects(authed(&token, list()))
        .await
        .expect("authorised");
    mesh.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_request_id_a_hundred_times_at_once_makes_one() {
    let mesh = TestMesh::start().await;
    let token = mesh.token("bob").await;
    let channel = mesh.channel().await;

    let creates = (0..100).map(|_| {
        let mut client = ProjectServiceClient::new(channel.clone());
        let token = token.clone();
        async move {
            let mut request = project("idempotent song".into(), 20);
            request.request_id = "create-once".into();
            client
                .create_project(authed(&token, request))
                .await
                .map(|r| r.into_inner().name)
        }
    });
    let names: Vec<String> = futures::future::join_all(creates)
        .await
        .into_iter()
        .map(|r| r.expect("create"))
        .collect();
    assert!(names.iter().all(|n| n == &names[0]), "{names:?}");

    let mut client = ProjectServiceClient::new(channel.clone());
    let listed = client
        .list_projects(authed(
            &token,
            v1::ListProjectsRequest {
                page_size: 100,
                page_token: String::new(),
                ..Default::default()
            },
        ))
        .await
        .expect("list")
        .into_inner();
    assert_eq!(listed.projects.len(), 1);

    let generates = (0..100).map(|_| {
        let mut client = ProjectServiceClient::new(channel.clone());
        let (token, name) = (token.clone(), names[0].clone());
        async move {
            client
                .generate_song(authed(
                    &token,
                    v1::GenerateSongRequest {
                        name,
                        request_id: "generate-once".into(),
                    },
                ))
                .await
                .map(|r| r.into_inner().name)
        }
    });
    let runs: Vec<String> = futures::future::join_all(generates)
        .await
        .into_iter()
        .map(|r| r.expect("generate"))
        .collect();
    assert!(runs.iter().all(|r| r == &runs[0]), "{runs:?}");

    // The same key for a different request is refused, not silently merged.
    let mut other = project("a different song".into(), 20);
    other.request_id = "create-once".into();
    let err = client
        .create_project(authed(&token, other))
        .await
        .expect_err("reused key");
    assert_eq!(err.code(), Code::AlreadyExists);
    assert_eq!(reason(&err), "REQUEST_ID_REUSED");

    // Without a key, a second generation while one runs is refused clearly: a
    // two-minute song is still rendering when the second call arrives.
    let long = client
        .create_project(authed(&token, project("a long song".into(), 120)))
        .await
        .expect("create")
        .into_inner()
        .name;
    let generate = |name: &str| {
        authed(
            &token,
            v1::GenerateSongRequest {
                name: name.to_owned(),
                request_id: String::new(),
            },
        )
    };
    client
        .generate_song(generate(&long))
        .await
        .expect("the first generation");
    let err = client
        .generate_song(generate(&long))
        .await
        .expect_err("a second generation while the first runs");
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert_eq!(reason(&err), "GENERATION_IN_PROGRESS");
    mesh.stop().await;
}
