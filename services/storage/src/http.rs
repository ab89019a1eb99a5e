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
use object_store::{GetOptions, GetRange, ObjectStore, ObjectStoreExt};

/// Serves the URLs this service signs itself (local and memory backends).
use crate::keys;
use crate::signing::UrlSigner;

#[derive(Clone)]
pub struct FileServer {
    pub store: Arc<dyn ObjectStore>,
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
        .with_state(server)
}

/// The same bare 403 for every refused URL: it must not say which part was wrong.
fn forbidden() -> Response {
    (StatusCode::FORBIDDEN, "forbidden\n").into_response()
}

async fn serve_file(
    State(server): State<FileServer>,
    UrlPath(key): UrlPath<String>,
    Query(signature): Query<Signature>,
    headers: HeaderMap,
) -> Response {
    if keys::parse_key(&key).is_err()
        || signature.exp < chrono::Utc::now().timestamp()
        || !server
            .signer
            .verify(&key, signature.exp, &signature.name, &signature.sig)
    {
        metrics::counter!("cadenza_storage_errors_total", "operation" => "http_get", "kind" => "forbidden").increment(1);
        return forbidden();
    }
    let path = Path::from(key.as_str());
    let meta = match server.store.head(&path).await {
        Ok(meta) => meta,
        Err(object_store::Error::NotFound { .. }) => {
            return (StatusCode::NOT_FOUND, "not found\n").into_response();
        }
        Err(err) => {
            tracing::error!(%key, error = %err, "reading object metadata failed");
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
    };
    let range = match headers
        .get(header::RANGE)
        .map(|v| parse_range(v, meta.size))
    {
        None => None,
        Some(Ok(range)) => Some(range),
        Some(Err(())) => {
            return Response::builder()
                .status(StatusCode::RANGE_NOT_SATISFIABLE)
                .header(header::CONTENT_RANGE, format!("bytes */{}", meta.size))
                .body(Body::empty())
                .unwrap_or_else(|_| StatusCode::RANGE_NOT_SATISFIABLE.into_response());
        }
    };
    let options = GetOptions {
        range: range.clone().map(GetRange::Bounded),
        ..GetOptions::default()
    };
    let result = match server.store.get_opts(&path, options).await {
        Ok(result) => result,
        Err(err) => {
            tracing::error!(%key, error = %err, "reading object failed");
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
    };
    let served = result.range.clone();
    let length = served.end - served.start;
    metrics::counter!("cadenza_storage_bytes_out_total").increment(length);
    let mut response = Response::builder()
        .header(header::CONTENT_TYPE, keys::content_type_for(&key))
        .header(header::CONTENT_LENGTH, length)
        .header(header::ACCEPT_RANGES, "bytes")
        .header(header::CACHE_CONTROL, "private, max-age=300")
        .header(
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{}\"", signature.name),
        );
    if let Some(tag) = meta
        .e_tag
        .as_deref()
        .and_then(|t| HeaderValue::from_str(&format!("\"{}\"", t.trim_matches('"'))).ok())
    {
        response = response.header(header::ETAG, tag);
    }
    if range.is_some() {
        response = response.status(StatusCode::PARTIAL_CONTENT).header(
            header::CONTENT_RANGE,
            format!("bytes {}-{}/{}", served.start, served.end - 1, meta.size),
        );
    }
    let body = Body::from_stream(result.into_stream().map_err(std::io::Error::other));
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
