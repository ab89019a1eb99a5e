//! Gift pages and the studio's files, through the gateway with real HTTP: a
//! finished song shared by link plays signed out and reveals nothing private;
//! revoked, expired and unknown links say which; the studio's files come from
//! the gateway's own port with the right caching.

use std::time::Duration;

use cadenza_mesh::testing::{
    TestMesh, authed, create_project, finished_state, generate, reason, register, violated_fields,
};
use cadenza_proto::v1::{
    self, project_service_client::ProjectServiceClient, share_service_client::ShareServiceClient,
};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use tonic::Code;

const SONG_TIMEOUT: Duration = Duration::from_secs(180);

/// The share links of `parent` as `token` sees them.
async fn links(
    shares: &mut ShareServiceClient<tonic::transport::Channel>,
    token: &str,
    parent: &str,
) -> Result<Vec<v1::ShareLink>, tonic::Status> {
    let request = v1::ListShareLinksRequest {
        parent: parent.into(),
    };
    Ok(shares
        .list_share_links(authed(token, request))
        .await?
        .into_inner()
        .share_links)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_shared_song_plays_signed_out_until_its_link_is_revoked_or_expires() {
    let mesh = TestMesh::start().await;
    let channel = mesh.channel().await;
    let mut projects = ProjectServiceClient::new(channel.clone());
    let mut shares = ShareServiceClient::new(channel.clone());
    let owner = register(&channel, "gift-giver@example.com").await;
    let token = owner.access_token.clone();
    let project = create_project(
        &channel,
        &token,
        v1::Project {
            title: "For Grandma".into(),
            prompt: "PRIVATE PROMPT: a warm folk song".into(),
            duration_seconds: 8,
            ..Default::default()
        },
    )
    .await;
    let create = |message: &str| v1::CreateShareLinkRequest {
        parent: project.name.clone(),
        run: String::new(),
        message: message.into(),
        expire_days: 0,
        request_id: String::new(),
    };
    let err = shares
        .create_share_link(authed(&token, create("")))
        .await
        .expect_err("nothing finished yet");
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert_eq!(reason(&err), "NO_COMPLETED_SONG");

    generate(&channel, &token, &project.name).await;
    assert_eq!(
        finished_state(&channel, &token, &project.name, SONG_TIMEOUT).await,
        v1::RunState::Succeeded
    );
    let link = shares
        .create_share_link(authed(&token, create("Happy birthday! <3")))
        .await
        .expect("share")
        .into_inner();
    assert_eq!(link.token.len(), 32);
    assert!(link.run.starts_with(&format!("{}/runs/", project.name)));

    // One request_id, sent ten times at once: one link, the same to every caller.
    let keyed = v1::CreateShareLinkRequest {
        request_id: "gift-for-grandma-1".into(),
        ..create("From all of us")
    };
    let answers = futures::future::join_all((0..10).map(|_| {
        let (mut shares, request, token) = (shares.clone(), keyed.clone(), token.clone());
        async move { shares.create_share_link(authed(&token, request)).await }
    }))
    .await;
    let keyed_links: Vec<v1::ShareLink> = answers
        .into_iter()
        .map(|answer| answer.expect("keyed share").into_inner())
        .collect();
    assert!(
        keyed_links.iter().all(|l| l == &keyed_links[0]),
        "every retry gets the first link: {keyed_links:?}"
    );
    let listed = links(&mut shares, &token, &project.name)
        .await
        .expect("list");
    assert_eq!(
        listed.len(),
        2,
        "the first link and one keyed link: {listed:?}"
    );
    // The same key for a different request is refused; a bad key is named.
    let err = shares
        .create_share_link(authed(
            &token,
            v1::CreateShareLinkRequest {
                message: "Something else".into(),
                ..keyed.clone()
            },
        ))
        .await
        .expect_err("key reused");
    assert_eq!(err.code(), Code::AlreadyExists);
    assert_eq!(reason(&err), "REQUEST_ID_REUSED");
    let err = shares
        .create_share_link(authed(
            &token,
            v1::CreateShareLinkRequest {
                request_id: "x".repeat(129),
                expire_days: -1,
                ..keyed.clone()
            },
        ))
        .await
        .expect_err("bad key and expiry");
    assert_eq!(err.code(), Code::InvalidArgument);
    let mut fields = violated_fields(&err);
    fields.sort();
    assert_eq!(fields, ["expire_days", "request_id"], "{err:?}");

    // Anyone, with no credential at all.
    let song = shares
        .get_shared_song(v1::GetSharedSongRequest {
            token: link.token.clone(),
        })
        .await
        .expect("the gift page, signed out")
        .into_inner();
    assert_eq!(song.title, "For Grandma");
    assert_eq!(song.message, "Happy birthday! <3");
    assert!(song.ai_generated);
    assert!((song.duration_seconds - 8.0).abs() < 1e-9);
    let shown = format!("{song:?}");
    assert!(!shown.contains("PRIVATE PROMPT") && !shown.contains("gift-giver"));

    let http = reqwest::Client::new();
    let master = http.get(&song.audio_url).send().await.expect("master");
    assert_eq!(master.status(), 200);
    let bytes = master.bytes().await.expect("master bytes");
    assert!(bytes.starts_with(b"RIFF") && &bytes[8..12] == b"WAVE");
    let preview = http.get(&song.preview_url).send().await.expect("preview");
    assert_eq!(preview.status(), 200);
    assert!(!preview.bytes().await.expect("preview bytes").is_empty());
    // The page's script reads the peaks from another origin: CORS allows it.
    let peaks = http
        .get(&song.peaks_url)
        .header("origin", "https://studio.example")
        .send()
        .await
        .expect("peaks");
    assert_eq!(peaks.headers()["access-control-allow-origin"], "*");
    let peaks: serde_json::Value =
        serde_json::from_slice(&peaks.bytes().await.expect("peaks")).expect("peaks json");
    assert!(peaks["data"].as_array().is_some_and(|d| !d.is_empty()));

    // Another user can neither list nor revoke it.
    let stranger = register(&channel, "stranger@example.com").await;
    let err = shares
        .revoke_share_link(authed(
            &stranger.access_token,
            v1::RevokeShareLinkRequest {
                name: link.name.clone(),
            },
        ))
        .await
        .expect_err("not theirs");
    assert_eq!(err.code(), Code::NotFound);
    let err = links(&mut shares, &stranger.access_token, &project.name)
        .await
        .expect_err("not theirs");
    assert_eq!(err.code(), Code::NotFound);
    let listed = links(&mut shares, &token, &project.name)
        .await
        .expect("list");
    assert_eq!(
        listed,
        vec![keyed_links[0].clone(), link.clone()],
        "newest first"
    );

    // Revoked: the page says so; revoking again changes nothing.
    let revoked = shares
        .revoke_share_link(authed(
            &token,
            v1::RevokeShareLinkRequest {
                name: link.name.clone(),
            },
        ))
        .await
        .expect("revoke")
        .into_inner();
    let first_revoke = revoked.revoke_time.expect("revoke time");
    let again = shares
        .revoke_share_link(authed(
            &token,
            v1::RevokeShareLinkRequest {
                name: link.name.clone(),
            },
        ))
        .await
        .expect("revoke twice")
        .into_inner();
    assert_eq!(again.revoke_time, Some(first_revoke));
    let err = shares
        .get_shared_song(v1::GetSharedSongRequest {
            token: link.token.clone(),
        })
        .await
        .expect_err("revoked");
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert_eq!(reason(&err), "SHARE_LINK_REVOKED");

    // Expired: a second link, aged past its end in the database.
    let dated = shares
        .create_share_link(authed(
            &token,
            v1::CreateShareLinkRequest {
                expire_days: 7,
                ..create("")
            },
        ))
        .await
        .expect("share for a week")
        .into_inner();
    assert!(dated.expire_time.is_some());
    let mut conn = AsyncPgConnection::establish(&mesh.database.url)
        .await
        .expect("database");
    diesel::sql_query(format!(
        "UPDATE share_links SET expires_at = now() - interval '1 second' WHERE token = '{}'",
        dated.token
    ))
    .execute(&mut conn)
    .await
    .expect("age the link");
    let err = shares
        .get_shared_song(v1::GetSharedSongRequest {
            token: dated.token.clone(),
        })
        .await
        .expect_err("expired");
    assert_eq!(reason(&err), "SHARE_LINK_EXPIRED");

    // Unknown and malformed tokens, and links of a deleted project: not found.
    for token in ["A".repeat(32), "../../etc/passwd".into(), String::new()] {
        let err = shares
            .get_shared_song(v1::GetSharedSongRequest { token })
            .await
            .expect_err("no such link");
        assert_eq!(err.code(), Code::NotFound);
    }
    let live = shares
        .create_share_link(authed(&token, create("")))
        .await
        .expect("share")
        .into_inner();
    projects
        .delete_project(authed(
            &token,
            v1::DeleteProjectRequest {
                name: project.name.clone(),
            },
        ))
        .await
        .expect("delete project");
    let err = shares
        .get_shared_song(v1::GetSharedSongRequest { token: live.token })
        .await
        .expect_err("project deleted");
    assert_eq!(err.code(), Code::NotFound);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_gateway_serves_the_studio_with_caching_that_fits_each_file() {
    let site = tempfile::tempdir().expect("site");
    std::fs::create_dir(site.path().join("assets")).expect("assets dir");
    std::fs::write(
        site.path().join("index.html"),
        "<!doctype html><title>Cadenza</title>",
    )
    .expect("index");
    std::fs::write(
        site.path().join("assets/app-3f9a.js"),
        "console.log('studio')",
    )
    .expect("asset");
    let mut env = cadenza_config::Env::default();
    env.set("CADENZA_DEV_MODE", "true");
    env.set("CADENZA_WEB_DIR", site.path().display().to_string());
    env.set("CADENZA_WEB_MEDIA_SOURCES", "https://media.example.com");
    let mesh = TestMesh::start_with(env).await;
    let base = mesh.mesh.gateway_url();
    let http = reqwest::Client::new();

    let page = http.get(format!("{base}/")).send().await.expect("page");
    assert_eq!(page.status(), 200);
    assert!(
        page.headers()["content-type"]
            .to_str()
            .unwrap_or("")
            .starts_with("text/html")
    );
    assert_eq!(page.headers()["cache-control"], "no-cache");
    assert_eq!(page.headers()["referrer-policy"], "no-referrer");
    let policy = page.headers()["content-security-policy"]
        .to_str()
        .expect("ascii")
        .to_owned();
    for directive in [
        "script-src 'self';",
        "object-src 'none';",
        "media-src 'self' https://media.example.com;",
        "connect-src 'self' https://media.example.com;",
    ] {
        assert!(policy.contains(directive), "{directive} in {policy}");
    }
    assert!(page.text().await.expect("body").contains("<title>Cadenza"));

    let asset = http
        .get(format!("{base}/assets/app-3f9a.js"))
        .send()
        .await
        .expect("asset");
    assert_eq!(asset.status(), 200);
    assert_eq!(
        asset.headers()["cache-control"],
        "public, max-age=31536000, immutable"
    );

    // Routes of the single-page app get the page; a missing asset does not.
    for path in ["/s/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "/projects/x"] {
        let deep = http
            .get(format!("{base}{path}"))
            .send()
            .await
            .expect("deep link");
        assert_eq!(deep.status(), 200, "{path}");
        assert!(deep.text().await.expect("body").contains("<title>Cadenza"));
    }
    let missing = http
        .get(format!("{base}/assets/gone-0000.js"))
        .send()
        .await
        .expect("missing asset");
    assert_eq!(missing.status(), 404);
    assert_ne!(
        missing
            .headers()
            .get("cache-control")
            .map(|v| v.to_str().unwrap_or("")),
        Some("public, max-age=31536000, immutable")
    );

    // gRPC still answers on the same port.
    let channel = mesh.channel().await;
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    health
        .check(tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        })
        .await
        .expect("gRPC beside the files");
}
