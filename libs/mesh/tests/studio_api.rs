//! What the studio's pages ask of the API: finding projects by title, and a
//! status that says where to follow the live events from.

use cadenza_mesh::testing::{TestMesh, authed};
use cadenza_proto::v1::{self, project_service_client::ProjectServiceClient};
use futures::StreamExt;
use tonic::Code;

#[tokio::test(flavor = "multi_thread")]
async fn projects_are_found_by_title_and_the_status_says_where_events_go_on() {
    let mesh = TestMesh::start().await;
    let channel = mesh.channel().await;
    let token = mesh.token("finder").await;
    let mut projects = ProjectServiceClient::new(channel.clone());
    let mut names = Vec::new();
    for title in ["Summer Song", "100% pure", "winter_tale", "Endless summer"] {
        let project = projects
            .create_project(authed(
                &token,
                v1::CreateProjectRequest {
                    project: Some(v1::Project {
                        title: title.into(),
                        prompt: "a song".into(),
                        duration_seconds: 5,
                        ..Default::default()
                    }),
                    request_id: String::new(),
                },
            ))
            .await
            .expect("create")
            .into_inner();
        names.push(project.name);
    }
    let mut find = async |text: &str, page_size: i32, page_token: String| {
        projects
            .list_projects(authed(
                &token,
                v1::ListProjectsRequest {
                    page_size,
                    page_token,
                    title_contains: text.into(),
                },
            ))
            .await
            .map(tonic::Response::into_inner)
    };
    let titles = |response: &v1::ListProjectsResponse| {
        response
            .projects
            .iter()
            .map(|p| p.title.clone())
            .collect::<Vec<_>>()
    };
    // Ignoring case, newest first, paginated within the filter.
    let first = find("SUMMER", 1, String::new()).await.expect("search");
    assert_eq!(titles(&first), ["Endless summer"]);
    let second = find("SUMMER", 1, first.next_page_token.clone())
        .await
        .expect("next page");
    assert_eq!(titles(&second), ["Summer Song"]);
    assert!(second.next_page_token.is_empty());
    // Wildcards are plain characters.
    assert_eq!(
        titles(&find("%", 10, String::new()).await.expect("%")),
        ["100% pure"]
    );
    assert_eq!(
        titles(&find("_", 10, String::new()).await.expect("_")),
        ["winter_tale"]
    );
    assert_eq!(
        titles(&find("", 10, String::new()).await.expect("all")).len(),
        4
    );
    let err = find(&"x".repeat(101), 10, String::new())
        .await
        .expect_err("too long");
    assert_eq!(err.code(), Code::InvalidArgument);

    // Status, then watch from its last event: the next event is newer.
    let status = |name: String| v1::GetProjectStatusRequest { name };
    let before = projects
        .get_project_status(authed(&token, status(names[0].clone())))
        .await
        .expect("status")
        .into_inner();
    assert_eq!(before.last_event_id, 0, "never generated: no events");
    projects
        .generate_song(authed(
            &token,
            v1::GenerateSongRequest {
                name: names[0].clone(),
                request_id: String::new(),
            },
        ))
        .await
        .expect("generate");
    let now = projects
        .get_project_status(authed(&token, status(names[0].clone())))
        .await
        .expect("status")
        .into_inner();
    assert!(now.last_event_id > 0, "the run's first events exist");
    let mut events = projects
        .watch_project(authed(
            &token,
            v1::WatchProjectRequest {
                name: names[0].clone(),
                after_event_id: now.last_event_id,
            },
        ))
        .await
        .expect("watch")
        .into_inner();
    let next = tokio::time::timeout(std::time::Duration::from_secs(120), events.next())
        .await
        .expect("an event arrives")
        .expect("stream open")
        .expect("event");
    assert_eq!(next.event_id, now.last_event_id + 1);
}
