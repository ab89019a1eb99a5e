//! Privacy promises: a gift page shows nothing of the prompt, its audio URLs
//! name no one and stop at once when the link is withdrawn or the song
//! deleted, and it outlives the preview it plays.

use std::time::Duration;

use cadenza_mesh::testing::{TestMesh, authed, create_project, finished_state, generate, reason};
use cadenza_proto::v1::{self, share_service_client::ShareServiceClient};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use tonic::Code;
use tonic::transport::Channel;

const PROMPT: &str = "a secret birthday song for Ada who loves sailing boats";
/// Words of the prompt that must appear nowhere on the page.
const PROMPT_WORDS: [&str; 4] = ["secret", "Ada", "sailing", "birthday"];

/// A finished song of `token`'s, titled `title` (empty: none given).
async fn finished_song(channel: &Channel, token: &str, title: &str) -> v1::Project {
    let project = create_project(
        channel,
        token,
        v1::Project {
            title: title.into(),
            prompt: PROMPT.into(),
            duration_seconds: 5,
            ..Default::default()
        },
    )
    .await;
    generate(channel, token, &project.name).await;
    assert_eq!(
        finished_state(channel, token, &project.name, Duration::from_secs(120)).await,
        v1::RunState::Succeeded
    );
    project
}

async fn share(channel: &Channel, token: &str, project: &str) -> v1::ShareLink {
    ShareServiceClient::new(channel.clone())
        .create_share_link(authed(
            token,
            v1::CreateShareLinkRequest {
                parent: project.into(),
                message: "for you".into(),
                ..Default::default()
            },
        ))
        .await
        .expect("share")
        .into_inner()
}

async fn open(channel: &Channel, token: &str) -> Result<v1::SharedSong, tonic::Status> {
    ShareServiceClient::new(channel.clone())
        .get_shared_song(v1::GetSharedSongRequest {
            token: token.into(),
        })
        .await
        .map(tonic::Response::into_inner)
}

/// GET `url` as a browser would: the status and the Content-Disposition.
async fn fetch(url: &str) -> (u16, String) {
    let response = reqwest::get(url).await.expect("storage answers");
    let disposition = response
        .headers()
        .get("content-disposition")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    (response.status().as_u16(), disposition)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gift_page_shows_nothing_of_the_prompt_and_its_urls_name_no_one() {
    let mesh = TestMesh::start().await;
    let channel = mesh.channel().await;
    let owner = "owner-7f3a";
    let token = mesh.token(owner).await;
    let untitled = finished_song(&channel, &token, "").await;
    let link = share(&channel, &token, &untitled.name).await;
    let song = open(&channel, &link.token).await.expect("the gift page");

    assert_eq!(
        song.title, "A song for you",
        "a title made from the prompt stays private"
    );
    let project_id = untitled.name.trim_start_matches("projects/");
    let page = format!("{song:?}");
    for word in PROMPT_WORDS {
        assert!(!page.contains(word), "the page shows `{word}`: {page}");
    }
    for url in [&song.audio_url, &song.preview_url, &song.peaks_url] {
        assert!(!url.is_empty(), "{song:?}");
        for private in [owner, project_id, "users/", "projects/"] {
            assert!(!url.contains(private), "{url} names `{private}`");
        }
        let (status, disposition) = fetch(url).await;
        assert_eq!(status, 200, "{url}");
        for word in PROMPT_WORDS {
            assert!(
                !disposition.contains(word),
                "the saved file is named after the prompt: {disposition}"
            );
        }
    }

    // The owner's own title is theirs to show.
    let titled = finished_song(&channel, &token, "Happy Sailing").await;
    let link = share(&channel, &token, &titled.name).await;
    assert_eq!(
        open(&channel, &link.token).await.expect("page").title,
        "Happy Sailing"
    );
    mesh.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gift_urls_stop_at_once_when_the_link_is_withdrawn_or_the_song_deleted() {
    let mesh = TestMesh::start().await;
    let channel = mesh.channel().await;
    let token = mesh.token("giver").await;
    let song = finished_song(&channel, &token, "Withdrawn").await;
    let link = share(&channel, &token, &song.name).await;
    let page = open(&channel, &link.token).await.expect("page");
    assert_eq!(fetch(&page.audio_url).await.0, 200);
    ShareServiceClient::new(channel.clone())
        .revoke_share_link(authed(
            &token,
            v1::RevokeShareLinkRequest {
                name: link.name.clone(),
            },
        ))
        .await
        .expect("revoke");
    assert_eq!(
        fetch(&page.audio_url).await.0,
        403,
        "a URL handed out before the revocation still played"
    );
    let refused = open(&channel, &link.token).await.expect_err("revoked page");
    assert_eq!(reason(&refused), "SHARE_LINK_REVOKED");

    let other = finished_song(&channel, &token, "Deleted").await;
    let link = share(&channel, &token, &other.name).await;
    let page = open(&channel, &link.token).await.expect("page");
    assert_eq!(fetch(&page.preview_url).await.0, 200);
    v1::project_service_client::ProjectServiceClient::new(channel.clone())
        .delete_project(authed(
            &token,
            v1::DeleteProjectRequest {
                name: other.name.clone(),
            },
        ))
        .await
        .expect("delete");
    assert_eq!(
        fetch(&page.preview_url).await.0,
        403,
        "a deleted song's URL still played"
    );
    let refused = open(&channel, &link.token).await.expect_err("deleted song");
    assert_eq!(refused.code(), Code::NotFound, "{refused:?}");
    mesh.stop().await;
}

/// Makes `project`'s preview expire now, as its lifetime would have.
async fn expire_preview(database_url: &str, project: &str) {
    let mut conn = AsyncPgConnection::establish(database_url)
        .await
        .expect("database");
    let expired = diesel::sql_query(
        "UPDATE storage_objects SET expires_at = now() - interval '1 minute' \
         WHERE project_id = $1::uuid AND key LIKE '%preview%'",
    )
    .bind::<diesel::sql_types::Text, _>(project.trim_start_matches("projects/"))
    .execute(&mut conn)
    .await
    .expect("expire the preview");
    assert_eq!(expired, 1, "the song has one preview");
}

async fn sweep(mesh: &TestMesh) {
    let pool = cadenza_db::build_pool(&cadenza_db::DbConfig::new(
        &mesh.database.url,
        "privacy-test-sweep",
    ))
    .expect("pool");
    let backend =
        cadenza_storage::backend::Backend::local(mesh.data_dir()).expect("the local store");
    cadenza_storage::lifecycle::sweep(
        &cadenza_storage::catalog::Catalog::new(pool),
        &backend.store,
        chrono::Duration::days(30),
        chrono::Utc::now(),
    )
    .await
    .expect("sweep");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gift_outlives_its_preview_and_degrades_when_one_is_gone() {
    let mesh = TestMesh::start().await;
    let channel = mesh.channel().await;
    let token = mesh.token("keeper").await;

    // Shared, then its preview's lifetime ends and the sweep runs: the live
    // link keeps it.
    let shared = finished_song(&channel, &token, "Kept").await;
    let link = share(&channel, &token, &shared.name).await;
    expire_preview(&mesh.database.url, &shared.name).await;
    sweep(&mesh).await;
    let page = open(&channel, &link.token).await.expect("page");
    assert_ne!(
        page.preview_url, page.audio_url,
        "the preview is still there"
    );
    assert_eq!(
        fetch(&page.preview_url).await.0,
        200,
        "the preview outlived its lifetime"
    );

    // Never shared while its preview lived: the preview is purged, and the
    // page shared later plays the master instead of failing.
    let late = finished_song(&channel, &token, "Late").await;
    expire_preview(&mesh.database.url, &late.name).await;
    sweep(&mesh).await;
    let link = share(&channel, &token, &late.name).await;
    let page = open(&channel, &link.token)
        .await
        .expect("a page, not an error");
    assert_eq!(
        page.preview_url, page.audio_url,
        "the master stands in for the preview"
    );
    assert_eq!(fetch(&page.preview_url).await.0, 200);
    mesh.stop().await;
}

/// Every row of every table of `database_url` holding `needle` in any text,
/// array or binary column, as `table.column` (one entry per column found).
async fn rows_holding(database_url: &str, needle: &str) -> Vec<String> {
    #[derive(diesel::QueryableByName)]
    struct Column {
        #[diesel(sql_type = diesel::sql_types::Text)]
        table_name: String,
        #[diesel(sql_type = diesel::sql_types::Text)]
        column_name: String,
        #[diesel(sql_type = diesel::sql_types::Text)]
        data_type: String,
    }
    #[derive(diesel::QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let mut conn = AsyncPgConnection::establish(database_url)
        .await
        .expect("database");
    let columns: Vec<Column> = diesel::sql_query(
        "SELECT table_name::text, column_name::text, data_type::text \
         FROM information_schema.columns c JOIN information_schema.tables t USING (table_schema, table_name) \
         WHERE table_schema = 'public' AND t.table_type = 'BASE TABLE' \
         AND data_type IN ('text', 'character varying', 'bytea', 'ARRAY', 'jsonb', 'json')",
    )
    .load(&mut conn)
    .await
    .expect("columns");
    assert!(
        columns.len() > 30,
        "the scan sees the schema: {}",
        columns.len()
    );
    let mut found = Vec::new();
    for column in columns {
        let test = match column.data_type.as_str() {
            // Protobuf payloads keep strings as their UTF-8 bytes.
            "bytea" => format!(
                "position(convert_to($1, 'UTF8') in \"{}\") > 0",
                column.column_name
            ),
            _ => format!("\"{}\"::text LIKE '%' || $1 || '%'", column.column_name),
        };
        let count: Count = diesel::sql_query(format!(
            "SELECT count(*) AS n FROM \"{}\" WHERE {test}",
            column.table_name
        ))
        .bind::<diesel::sql_types::Text, _>(needle)
        .get_result(&mut conn)
        .await
        .expect("scan");
        if count.n > 0 {
            found.push(format!(
                "{}.{} ({} rows)",
                column.table_name, column.column_name, count.n
            ));
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_account_leaves_no_email_or_prompt_after_the_retention_window() {
    let mut env = cadenza_config::Env::default();
    env.set("CADENZA_DEV_MODE", "true");
    env.set("CADENZA_DELETED_RETENTION_DAYS", "0");
    let mesh = TestMesh::start_with(env).await;
    let channel = mesh.channel().await;
    let email = "purge-me@example.com";
    let session = cadenza_mesh::testing::register(&channel, email).await;
    let mut auth = v1::auth_service_client::AuthServiceClient::new(channel.clone());
    // A failed sign-in: the email lands in the audit log and the throttle.
    auth.login(v1::LoginRequest {
        email: email.into(),
        password: "not the password at all".into(),
    })
    .await
    .expect_err("a wrong password");
    let song = |title: &str, marker: &str| v1::Project {
        title: title.into(),
        prompt: format!("{marker}-PROMPT a gentle song"),
        lyrics: Some(format!("{marker}-LYRICS la la la")),
        duration_seconds: 5,
        has_vocals: true,
        ..Default::default()
    };
    let doomed = create_project(
        &channel,
        &session.access_token,
        song("PURGE-MARKER-TITLE", "PURGE-MARKER"),
    )
    .await;
    generate(&channel, &session.access_token, &doomed.name).await;
    assert_eq!(
        finished_state(
            &channel,
            &session.access_token,
            &doomed.name,
            Duration::from_secs(120)
        )
        .await,
        v1::RunState::Succeeded
    );
    ShareServiceClient::new(channel.clone())
        .create_share_link(authed(
            &session.access_token,
            v1::CreateShareLinkRequest {
                parent: doomed.name.clone(),
                message: "PURGE-MARKER-MESSAGE".into(),
                ..Default::default()
            },
        ))
        .await
        .expect("share");
    // Someone else's song, which must survive: it shows the scan finds things.
    let other = cadenza_mesh::testing::register(&channel, "stays@example.com").await;
    create_project(&channel, &other.access_token, song("Kept", "KEEP-MARKER")).await;

    auth.delete_account(authed(
        &session.access_token,
        v1::DeleteAccountRequest {
            password: cadenza_mesh::testing::TEST_PASSWORD.into(),
        },
    ))
    .await
    .expect("delete the account");
    // At once: the email is gone from everywhere.
    assert_eq!(
        rows_holding(&mesh.database.url, email).await,
        Vec::<String>::new()
    );

    // Deleted, not yet purged: the song is hidden but still there.
    assert!(
        !rows_holding(&mesh.database.url, "PURGE-MARKER")
            .await
            .is_empty()
    );
    let pool = cadenza_db::build_pool(&cadenza_db::DbConfig::new(&mesh.database.url, "purge-test"))
        .expect("pool");
    let report = cadenza_project::purge::sweep(&pool, chrono::Duration::zero(), chrono::Utc::now())
        .await
        .expect("purge");
    assert_eq!((report.projects, report.accounts), (1, 1), "{report:?}");
    assert_eq!(
        rows_holding(&mesh.database.url, "PURGE-MARKER").await,
        Vec::<String>::new(),
        "the deleted account's titles, prompts, lyrics and messages are gone"
    );
    assert_eq!(
        rows_holding(&mesh.database.url, email).await,
        Vec::<String>::new()
    );
    assert!(
        !rows_holding(&mesh.database.url, "KEEP-MARKER")
            .await
            .is_empty(),
        "the other user's song stays"
    );
    mesh.stop().await;
}
