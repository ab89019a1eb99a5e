//! What a gift page gets of a shared song: a public title and fresh URLs of
//! its audio, through a storage grant (see `cadenza_storage::grants`).
//!
//! The page learns nothing derived from the prompt: a title made from the
//! prompt is replaced by a neutral one, and the file names follow the public
//! title. The URLs name neither the owner nor the project, live minutes, and
//! stop working at once when the link is revoked (the grant with it) or the
//! song deleted.

use cadenza_proto::v1::{self, GrantedObject, PutGrantRequest, RevokeGrantRequest};
use chrono::{DateTime, Utc};
use tonic::Code;
use uuid::Uuid;

use super::Shared;
use crate::error::{ApiError, ApiResult};
use crate::store::models::AssetRow;

/// How long a gift page's audio URLs live; the page asks again for more.
pub const PAGE_URL_SECONDS: u32 = 900;
/// What a gift page calls a song whose title came from its prompt.
pub const NEUTRAL_TITLE: &str = "A song for you";

/// The title a gift page shows.
pub fn public_title(title: &str, derived: bool) -> String {
    if derived {
        NEUTRAL_TITLE.to_owned()
    } else {
        title.to_owned()
    }
}

/// The file name a browser saves: the public title, made safe, with the
/// asset's extension.
fn download_name(public_title: &str, file_name: &str) -> String {
    let safe: String = public_title
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let safe = safe.trim_matches('-');
    let ext = file_name.rsplit('.').next().unwrap_or("bin");
    if safe.is_empty() {
        format!("song.{ext}")
    } else {
        format!("{safe}.{ext}")
    }
}

/// The audio a gift page plays: master, preview and peaks, when the run has them.
fn page_assets(assets: &[AssetRow]) -> Vec<&AssetRow> {
    ["master", "preview", "peaks"]
        .iter()
        .filter_map(|kind| assets.iter().find(|a| a.kind == *kind))
        .collect()
}

/// A share link's grant in storage, renewed, and the page's URLs from it.
pub struct PageUrls {
    pub audio: String,
    pub preview: String,
    pub peaks: String,
}

/// Creates or renews the grant `link` (a share link's id) on the run's page
/// assets and returns fresh URLs. A preview that is gone degrades to the
/// master; a revoked grant is SHARE_LINK_REVOKED; storage away is UNAVAILABLE.
pub async fn grant(
    shared: &Shared,
    link: Uuid,
    owner: &str,
    assets: &[AssetRow],
    public_title: &str,
    expires_at: Option<DateTime<Utc>>,
) -> ApiResult<PageUrls> {
    let page = page_assets(assets);
    if page.is_empty() {
        return Err(gone());
    }
    let objects = page
        .iter()
        .map(|asset| GrantedObject {
            key: asset.object_key.clone(),
            download_name: if asset.kind == "peaks" {
                "peaks.json".into()
            } else {
                download_name(public_title, &asset.file_name)
            },
        })
        .collect();
    let answer = shared
        .storage
        .clone()
        .put_grant(PutGrantRequest {
            grant_id: link.to_string(),
            owner: owner.to_owned(),
            objects,
            expire_time: expires_at.map(cadenza_proto::timestamp),
            url_seconds: PAGE_URL_SECONDS,
        })
        .await
        .map_err(|status| match status.code() {
            Code::FailedPrecondition => ApiError::FailedPrecondition(
                "SHARE_LINK_REVOKED",
                "the sender has withdrawn this link".into(),
            ),
            Code::NotFound => gone(),
            _ => ApiError::Storage(status),
        })?
        .into_inner();
    let url_of = |kind: &str| {
        page.iter()
            .position(|a| a.kind == kind)
            .and_then(|i| answer.urls.get(i))
            .cloned()
            .unwrap_or_default()
    };
    let audio = url_of("master");
    if audio.is_empty() {
        return Err(gone());
    }
    let preview = Some(url_of("preview"))
        .filter(|url| !url.is_empty())
        .unwrap_or_else(|| audio.clone());
    Ok(PageUrls {
        preview,
        peaks: url_of("peaks"),
        audio,
    })
}

/// Revokes a share link's grant in storage: its URLs stop working at once.
/// Storage away is UNAVAILABLE, and the link is not revoked until it answers.
pub async fn revoke(shared: &Shared, link: Uuid, owner: &str) -> ApiResult<()> {
    shared
        .storage
        .clone()
        .revoke_grant(RevokeGrantRequest {
            grant_id: link.to_string(),
            owner: owner.to_owned(),
        })
        .await
        .map_err(ApiError::Storage)?;
    Ok(())
}

fn gone() -> ApiError {
    ApiError::NotFound(
        "SHARE_LINK_NOT_FOUND",
        "no song is shared at this address".into(),
    )
}

/// The song a gift page describes (URLs filled in by [`grant`]).
pub fn song(
    public_title: String,
    message: String,
    duration_seconds: i32,
    created_at: DateTime<Utc>,
    urls: PageUrls,
) -> v1::SharedSong {
    v1::SharedSong {
        title: public_title,
        message,
        ai_generated: true,
        duration_seconds: f64::from(duration_seconds),
        create_time: Some(cadenza_proto::timestamp(created_at)),
        audio_url: urls.audio,
        preview_url: urls.preview,
        peaks_url: urls.peaks,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_title_from_the_prompt_is_never_public() {
        assert_eq!(public_title("a secret song for Ada…", true), NEUTRAL_TITLE);
        assert_eq!(public_title("Happy Birthday", false), "Happy Birthday");
        assert_eq!(
            download_name(NEUTRAL_TITLE, "master.wav"),
            "A-song-for-you.wav"
        );
        assert_eq!(download_name("Été", "preview.mp3"), "t.mp3");
        assert_eq!(download_name("!!!", "master.wav"), "song.wav");
    }
}
