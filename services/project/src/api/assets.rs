//! `cadenza.v1.AssetService`.

use std::pin::Pin;

use cadenza_db::schema::assets;
use cadenza_proto::names::{AssetName, ProjectOrRun};
use cadenza_proto::v1::{self, asset_service_server::AssetService};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use futures::{Stream, StreamExt};
use tonic::{Request, Response, Status};

use super::projects::{ProjectApi, decode_token_text, encode_token_text};
use super::validate;
use super::{Shared, convert};
use crate::error::{ApiError, ApiResult};
use crate::store::models::AssetRow;
use crate::store::projects;

const DEFAULT_URL_SECONDS: u32 = 3600;
const MAX_URL_SECONDS: u32 = 7 * 24 * 3600;

pub struct AssetApi {
    pub shared: Shared,
}

impl AssetApi {
    async fn asset(&self, owner: &str, name: &str) -> ApiResult<AssetRow> {
        let name = AssetName::parse(name).map_err(|e| ApiError::invalid("name", e.to_string()))?;
        let mut conn = self.shared.conn().await?;
        projects::find(&mut conn, owner, name.project)
            .await?
            .ok_or_else(|| ApiError::project_not_found(format!("projects/{}", name.project)))?;
        assets::table
            .filter(assets::id.eq(name.asset))
            .filter(assets::project_id.eq(name.project))
            .select(AssetRow::as_select())
            .first(&mut conn)
            .await
            .optional()?
            .ok_or_else(|| {
                ApiError::NotFound("ASSET_NOT_FOUND", format!("asset `{name}` does not exist"))
            })
    }
}

type ChunkStream = Pin<Box<dyn Stream<Item = Result<v1::ReadAssetResponse, Status>> + Send>>;

#[tonic::async_trait]
impl AssetService for AssetApi {
    async fn list_assets(
        &self,
        request: Request<v1::ListAssetsRequest>,
    ) -> Result<Response<v1::ListAssetsResponse>, Status> {
        let owner = self.shared.caller(&request).await?;
        let request = request.into_inner();
        let parent = ProjectOrRun::parse(&request.parent)
            .map_err(|e| ApiError::invalid("parent", e.to_string()))?;
        let size = validate::page_size(request.page_size, 50, 200)?;
        let offset: i64 = if request.page_token.is_empty() {
            0
        } else {
            decode_token_text(&request.page_token)
                .and_then(|t| t.parse().ok())
                .filter(|n: &i64| *n >= 0)
                .ok_or_else(|| ApiError::invalid("page_token", "this page token is not valid"))?
        };
        let mut conn = self.shared.conn().await?;
        projects::find(&mut conn, &owner, parent.project())
            .await
            .map_err(ApiError::from)?
            .ok_or_else(|| ApiError::project_not_found(format!("projects/{}", parent.project())))?;
        let mut query = assets::table
            .filter(assets::project_id.eq(parent.project()))
            .order((assets::created_at.asc(), assets::id.asc()))
            .offset(offset)
            .limit(size + 1)
            .select(AssetRow::as_select())
            .into_boxed();
        if let ProjectOrRun::Run(run) = parent {
            ProjectApi::resolve_run(&mut conn, &owner, parent).await?;
            query = query.filter(assets::run_id.eq(run.run));
        }
        let rows: Vec<AssetRow> = query.load(&mut conn).await.map_err(ApiError::from)?;
        let more = rows.len() as i64 > size;
        Ok(Response::new(v1::ListAssetsResponse {
            assets: rows
                .iter()
                .take(size as usize)
                .map(convert::asset)
                .collect(),
            next_page_token: if more {
                encode_token_text(&(offset + size).to_string())
            } else {
                String::new()
            },
        }))
    }

    async fn get_download_url(
        &self,
        request: Request<v1::GetDownloadUrlRequest>,
    ) -> Result<Response<v1::GetDownloadUrlResponse>, Status> {
        let owner = self.shared.caller(&request).await?;
        let request = request.into_inner();
        let seconds = match request.expire_seconds {
            0 => DEFAULT_URL_SECONDS,
            s if (60..=MAX_URL_SECONDS).contains(&s) => s,
            _ => {
                return Err(ApiError::invalid(
                    "expire_seconds",
                    format!("must be 60 to {MAX_URL_SECONDS} seconds"),
                )
                .into());
            }
        };
        let asset = self.asset(&owner, &request.name).await?;
        let signed = self
            .shared
            .storage
            .clone()
            .sign_download_url(v1::SignDownloadUrlRequest {
                key: asset.object_key,
                owner: owner.clone(),
                expire_seconds: seconds,
                download_name: asset.file_name.replace('/', "-"),
            })
            .await
            .map_err(ApiError::Storage)?
            .into_inner();
        Ok(Response::new(v1::GetDownloadUrlResponse {
            url: signed.url,
            expire_time: signed.expire_time,
        }))
    }

    type ReadAssetStream = ChunkStream;

    async fn read_asset(
        &self,
        request: Request<v1::ReadAssetRequest>,
    ) -> Result<Response<Self::ReadAssetStream>, Status> {
        let owner = self.shared.caller(&request).await?;
        let asset = self.asset(&owner, &request.get_ref().name).await?;
        let described = convert::asset(&asset);
        let upstream = self
            .shared
            .storage
            .clone()
            .get_object(v1::GetObjectRequest {
                key: asset.object_key,
                owner: owner.clone(),
                offset: 0,
                length: 0,
            })
            .await
            .map_err(ApiError::Storage)?
            .into_inner();
        let mut first = Some(described);
        let stream = upstream.filter_map(move |item| {
            let out = match item {
                Ok(chunk) if chunk.chunk.is_empty() && first.is_none() => None,
                Ok(chunk) => Some(Ok(v1::ReadAssetResponse {
                    data: chunk.chunk,
                    asset: first.take(),
                })),
                Err(status) => Some(Err(status)),
            };
            async move { out }
        });
        Ok(Response::new(Box::pin(stream)))
    }
}
