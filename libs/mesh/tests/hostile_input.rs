//! Hostile input through the gateway: messages over the size limit are refused
//! before any service sees them, and look-alike, invisible and SQL-looking text is
//! stored and returned byte for byte, never confused with the plain spelling.

use cadenza_mesh::testing::{TestMesh, authed, register};
use cadenza_proto::v1::{
    self, auth_service_client::AuthServiceClient, project_service_client::ProjectServiceClient,
};
use tonic::Code;

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

#[tokio::test(flavor = "multi_thread")]
async fn oversized_requests_are_refused_and_confusable_text_is_kept_verbatim() {
    let mesh = TestMesh::start().await;
    let channel = mesh.channel().await;
    let mut auth = AuthServiceClient::new(channel.clone());
    let mut projects = ProjectServiceClient::new(channel.clone());

    // A message past the gateway's 256 KiB limit never reaches a service.
    let latin = register(&channel, "alice@example.com").await;
    let mut huge = project("huge");
    huge.project.as_mut().expect("project").lyrics = Some("la ".repeat(100_000));
    let err = projects
        .create_project(authed(&latin.access_token, huge))
        .await
        .expect_err("300 kB message");
    assert_eq!(err.code(), Code::OutOfRange, "{err:?}");

    // An address with a Cyrillic `а` is another account, not Alice's: it cannot
    // sign in as her, and she keeps her own.
    let cyrillic = register(&channel, "\u{0430}lice@example.com").await;
    assert_ne!(
        cyrillic.user.as_ref().expect("user").name,
        latin.user.as_ref().expect("user").name
    );
    assert_eq!(
        cyrillic.user.expect("user").email,
        "\u{0430}lice@example.com"
    );
    let err = auth
        .login(v1::LoginRequest {
            email: "\u{0430}lice@example.com".into(),
            password: "not her password at all".into(),
        })
        .await
        .expect_err("wrong password");
    assert_eq!(err.code(), Code::Unauthenticated);

    // Titles with look-alike letters, invisible joiners and a right-to-left
    // override come back byte for byte, and are told apart from plain ones.
    let tricky = [
        "P\u{0430}yP\u{0430}l receipt",
        "zero\u{200d}width\u{200b}space",
        "evil\u{202e}txt.exe",
        "'; DROP TABLE projects; --",
    ];
    for title in tricky {
        let created = projects
            .create_project(authed(&latin.access_token, project(title)))
            .await
            .expect("stored")
            .into_inner();
        let fetched = projects
            .get_project(authed(
                &latin.access_token,
                v1::GetProjectRequest { name: created.name },
            ))
            .await
            .expect("fetched")
            .into_inner();
        assert_eq!(fetched.title.as_bytes(), title.as_bytes());
    }
    let found = projects
        .list_projects(authed(
            &latin.access_token,
            v1::ListProjectsRequest {
                title_contains: "PayPal".into(),
                ..Default::default()
            },
        ))
        .await
        .expect("search")
        .into_inner();
    assert!(found.projects.is_empty(), "a Cyrillic `а` is not an `a`");
    mesh.stop().await;
}
