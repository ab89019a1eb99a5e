//! A deleted project's bytes in storage: released with the deletion and, when
//! that call never reached storage, by project's reconciler afterwards, so
//! nothing a user deleted stays stored for want of a retry.

use std::time::Duration;

use cadenza_mesh::testing::{TestMesh, authed, create_project, finished_state, generate};
use cadenza_proto::v1::{self, project_service_client::ProjectServiceClient};
use diesel::sql_types::{BigInt, Bool, Uuid as SqlUuid};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

#[derive(diesel::QueryableByName, Debug, PartialEq)]
struct Release {
    /// storage still shows this many of the project's objects
    #[diesel(sql_type = BigInt)]
    visible: i64,
    /// project recorded that storage confirmed
    #[diesel(sql_type = Bool)]
    recorded: bool,
}

async fn release_of(conn: &mut AsyncPgConnection, project: Uuid) -> Release {
    diesel::sql_query(
        "SELECT (SELECT count(*) FROM storage_objects
                  WHERE project_id = $1 AND deleted_at IS NULL) AS visible,
                (SELECT objects_released_at IS NOT NULL FROM projects WHERE id = $1) AS recorded",
    )
    .bind::<SqlUuid, _>(project)
    .get_result(conn)
    .await
    .expect("release state")
}

async fn wait_released(conn: &mut AsyncPgConnection, project: Uuid, what: &str) {
    tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            let now = release_of(conn, project).await;
            if now.visible == 0 && now.recorded {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{what} within 60 s"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deleted_projects_objects_are_released_now_or_by_the_reconciler_later() {
    let mut env = cadenza_config::Env::default();
    env.set("CADENZA_DEV_MODE", "true");
    env.set("CADENZA_RECONCILE_SECONDS", "1");
    let mesh = TestMesh::start_with(env).await;
    let channel = mesh.channel().await;
    let token = mesh.token("deleter").await;
    let mut conn = AsyncPgConnection::establish(&mesh.database.url)
        .await
        .expect("database");
    let mut songs = Vec::new();
    for title in ["deleted now", "deleted while storage was away"] {
        let project = create_project(
            &channel,
            &token,
            v1::Project {
                title: title.into(),
                prompt: "a short calm piano piece".into(),
                duration_seconds: 5,
                has_vocals: false,
                ..Default::default()
            },
        )
        .await;
        generate(&channel, &token, &project.name).await;
        songs.push(project);
    }
    for project in &songs {
        assert_eq!(
            finished_state(&channel, &token, &project.name, Duration::from_secs(120)).await,
            v1::RunState::Succeeded
        );
    }
    let id = |project: &v1::Project| {
        Uuid::parse_str(project.name.trim_start_matches("projects/")).expect("project id")
    };
    let (now, later) = (id(&songs[0]), id(&songs[1]));
    let stored = release_of(&mut conn, later).await;
    assert!(stored.visible > 0 && !stored.recorded, "{stored:?}");

    // Deleted through the API: storage hears of it with the deletion.
    ProjectServiceClient::new(channel.clone())
        .delete_project(authed(
            &token,
            v1::DeleteProjectRequest {
                name: songs[0].name.clone(),
            },
        ))
        .await
        .expect("delete");
    let released = release_of(&mut conn, now).await;
    assert_eq!(
        released,
        Release {
            visible: 0,
            recorded: true
        },
        "released before DeleteProject answered"
    );

    // Deleted, but the call to storage never got through (as when storage was
    // down at that moment): the reconciler releases the objects afterwards.
    diesel::sql_query(
        "UPDATE projects SET deleted_at = now() - interval '5 minutes' WHERE id = $1",
    )
    .bind::<SqlUuid, _>(later)
    .execute(&mut conn)
    .await
    .expect("deleted without telling storage");
    wait_released(&mut conn, later, "the reconciler releases the objects").await;
    mesh.stop().await;
}
