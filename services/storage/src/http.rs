//! Serving signed URLs over plain HTTP, with Range support for audio players.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path as UrlPath, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures::TryStreamExt;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use object_store::path::Path;
use object_store::{GetOptions, GetRange, ObjectStore};

use crate::catalog::Catalog;
use crate::keys;
use crate::observe::ERRORS;
use crate::signing::UrlSigner;

/// Serves the URLs this service signs itself (local and memory backends).
#[derive(Clone)]
pub struct FileServer {
    pub store: Arc<dyn ObjectStore>,
    pub catalog: Catalog,
    pub signer: UrlSigner,
}

#[derive(Debug, serde::Deserialize)]
pub struct Signature {
    exp: i64,
    name: String,
    sig: String,
}

pub fn router(server: FileServer) -> Router {
    Router::new()
        .route("/v1/files/{*key}", get(serve_file))
        .route("/v1/gifts/{token}/{position}", get(serve_gift))
        .with_state(server)
        .layer(any_origin())
}

/// A signed URL is a capability on its own (no cookies, no credentials), so any
/// page holding one may read it: the studio fetches waveform peaks from here.
fn any_origin() -> tower_http::cors::CorsLayer {
    tower_http::cors::CorsLayer::new()
        .allow_origin(tower_http::cors::Any)
        .allow_methods([http::Method::GET, http::Method::HEAD])
        .allow_headers([header::RANGE, header::IF_NONE_MATCH])
        .expose_headers([
            header::CONTENT_RANGE,
            header::CONTENT_LENGTH,
            header::ETAG,
            header::ACCEPT_RANGES,
        ])
}

/// The same bare 403 for every refused URL: it must not say which part was wrong.
fn forbidden() -> Response {
    (StatusCode::FORBIDDEN, "forbidden\n").into_response()
}

const LATENCY: &str = "cadenza_storage_http_request_duration_seconds";

async fn serve_file(
    State(server): State<FileServer>,
    UrlPath(key): UrlPath<String>,
    Query(signature): Query<Signature>,
    headers: HeaderMap,
) -> Response {
    let started = std::time::Instant::now();
    let response = respond(&server, &key, &signature, &headers).await;
    observed(started, response)
}

/// A grant's file: `/v1/gifts/{token}/{position}?exp=..&name=..&sig=..`.
async fn serve_gift(
    State(server): State<FileServer>,
    UrlPath((token, position)): UrlPath<(String, usize)>,
    Query(signature): Query<Signature>,
    headers: HeaderMap,
) -> Response {
    let started = std::time::Instant::now();
    let response = respond_gift(&server, &token, position, &signature, &headers).await;
    observed(started, response)
}

async fn respond_gift(
    server: &FileServer,
    token: &str,
    position: usize,
    signature: &Signature,
    headers: &HeaderMap,
) -> Response {
    let now = chrono::Utc::now();
    if !crate::grants::plausible_token(token)
        || signature.exp < now.timestamp()
        || !server.signer.verify(
            &crate::gift::signed_path(token, position),
            signature.exp,
            &signature.name,
            &signature.sig,
        )
    {
        return forbidden();
    }
    // The grant is asked on every request: revoked, expired or deleted is
    // refused at once, with the same answer as a bad signature.
    let record = match server.catalog.granted(token, position, now).await {
        Ok(Some(record)) => record,
        Ok(None) => return forbidden(),
        Err(err) => {
            tracing::warn!(error = %err, "catalog unavailable");
            return StatusCode::SERVICE_UNAVAILABLE.into_response();
        }
    };
    serve(server, &record, &signature.name, headers).await
}

/// Records a response's latency and, for a failure, its kind.
fn observed(started: std::time::Instant, response: Response) -> Response {
    let status = response.status();
    metrics::histogram!(LATENCY, "status" => status.as_str().to_owned())
        .record(started.elapsed().as_secs_f64());
    if status.is_client_error() || status.is_server_error() {
        let kind = match status {
            StatusCode::FORBIDDEN => "forbidden",
            StatusCode::NOT_FOUND => "object_not_found",
            StatusCode::RANGE_NOT_SATISFIABLE => "range_not_satisfiable",
            _ => "internal",
        };
        metrics::counter!(ERRORS, "operation" => "http_get", "kind" => kind).increment(1);
    }
    response
}

async fn respond(
    server: &FileServer,
    key: &str,
    signature: &Signature,
    headers: &HeaderMap,
) -> Response {
    let now = chrono::Utc::now();
    if keys::parse_key(key).is_err()
        || signature.exp < now.timestamp()
        || !server
            .signer
            .verify(key, signature.exp, &signature.name, &signature.sig)
    {
        return forbidden();
    }
    // A deleted or expired object is gone for signed URLs too.
    let record = match server.catalog.live(key, now).await {
        Ok(Some(record)) => record,
        Ok(None) => return (StatusCode::NOT_FOUND, "not found\n").into_response(),
        Err(err) => {
            tracing::warn!(%key, error = %err, "catalog unavailable");
            return StatusCode::SERVICE_UNAVAILABLE.into_response();
        }
    };
    serve(server, &record, &signature.name, headers).await
}

/// The bytes of a catalogued object, whole or the range asked for.
async fn serve(
    server: &FileServer,
    record: &crate::catalog::ObjectRecord,
    name: &str,
    headers: &HeaderMap,
) -> Response {
    let key = record.key.as_str();
    let size = record.size_bytes as u64;
    // The content's own checksum: the same bytes always carry the same tag.
    let etag = format!("\"{}\"", record.sha256);
    if headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|tag| tag.trim() == etag || tag.trim() == "*")
        })
    {
        return Response::builder()
            .status(StatusCode::NOT_MODIFIED)
            .header(header::ETAG, &etag)
            .body(Body::empty())
            .unwrap_or_else(|_| StatusCode::NOT_MODIFIED.into_response());
    }
    let path = Path::from(key);
    let range = match headers.get(header::RANGE).map(|v| parse_range(v, size)) {
        None => None,
        Some(Ok(range)) => Some(range),
        Some(Err(())) => {
            return Response::builder()
                .status(StatusCode::RANGE_NOT_SATISFIABLE)
                .header(header::CONTENT_RANGE, format!("bytes */{size}"))
                .body(Body::empty())
                .unwrap_or_else(|_| StatusCode::RANGE_NOT_SATISFIABLE.into_response());
        }
    };
    let options = GetOptions {
        range: Some(GetRange::Bounded(range.clone().unwrap_or(0..size))),
        ..GetOptions::default()
    };
    let result = match server.store.get_opts(&path, options).await {
        Ok(result) => result,
        Err(err) => {
            tracing::error!(%key, error = %err, "reading a catalogued object failed");
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
    };
    let served = result.range.clone();
    let length = served.end - served.start;
    metrics::counter!("cadenza_storage_bytes_out_total").increment(length);
    let mut response = Response::builder()
        .header(header::CONTENT_TYPE, &record.content_type)
        .header(header::CONTENT_LENGTH, length)
        .header(header::ACCEPT_RANGES, "bytes")
        .header(header::CACHE_CONTROL, "private, max-age=300")
        .header(
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{name}\""),
        )
        .header(header::ETAG, etag);
    if range.is_some() {
        response = response.status(StatusCode::PARTIAL_CONTENT).header(
            header::CONTENT_RANGE,
            format!("bytes {}-{}/{size}", served.start, served.end - 1),
        );
    }
    let body =
        Body::from_stream(crate::download::payload_stream(result).map_err(std::io::Error::other));
    response
        .body(body)
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

/// One range of `bytes=a-b`, `bytes=a-` or `bytes=-n`, as a half-open interval.
fn parse_range(value: &HeaderValue, size: u64) -> Result<std::ops::Range<u64>, ()> {
    let spec = value.to_str().map_err(|_| ())?.trim();
    let spec = spec.strip_prefix("bytes=").ok_or(())?;
    if spec.contains(',') || size == 0 {
        return Err(());
    }
    let (start, end) = spec.split_once('-').ok_or(())?;
    let (start, end) = match (start.trim(), end.trim()) {
        ("", suffix) => {
            let n: u64 = suffix.parse().map_err(|_| ())?;
            if n == 0 {
                return Err(());
            }
            (size.saturating_sub(n), size - 1)
        }
        (start, "") => (start.parse().map_err(|_| ())?, size - 1),
        (start, end) => {
            let start: u64 = start.parse().map_err(|_| ())?;
            let end: u64 = end.parse().map_err(|_| ())?;
            (start, end.min(size - 1))
        }
    };
    if start > end || start >= size {
        return Err(());
    }
    Ok(start..end + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(v: &str, size: u64) -> Result<std::ops::Range<u64>, ()> {
        parse_range(&HeaderValue::from_str(v).expect("ascii"), size)
    }

    #[test]
    fn parses_single_ranges() {
        assert_eq!(range("bytes=0-99", 1000), Ok(0..100));
        assert_eq!(range("bytes=900-", 1000), Ok(900..1000));
        assert_eq!(range("bytes=-100", 1000), Ok(900..1000));
        assert_eq!(range("bytes=990-5000", 1000), Ok(990..1000));
        assert_eq!(range("bytes=1000-", 1000), Err(()));
        assert_eq!(range("bytes=5-1", 1000), Err(()));
        assert_eq!(range("items=0-1", 1000), Err(()));
        assert_eq!(range("bytes=0-1,5-6", 1000), Err(()));
    }
}
