//! The web studio's built files (`web/dist`), served beside the gRPC-web API on
//! the same origin, so a browser needs no CORS to reach the API.
//!
//! Every path that is not a file gets `index.html`: the studio routes in the
//! browser, so `/projects/{id}` and gift pages `/s/{token}` open directly.

use std::convert::Infallible;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use http::{HeaderValue, header};
use tower::{Layer, Service, ServiceExt};
use tower_http::compression::CompressionLayer;
use tower_http::services::{ServeDir, ServeFile};

/// Files under `/assets/` carry a content hash in their names (Vite), so they
/// never change; everything else is asked for again on every visit.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";
const REVALIDATE: &str = "no-cache";

/// Where the studio's audio and waveforms may come from besides its own
/// origin, by default: signed URLs name storage's public address or an S3
/// endpoint, which the gateway does not know.
pub const DEFAULT_MEDIA_SOURCES: &str = "https: http:";

/// The Content-Security-Policy of every studio response. Scripts and styles
/// come only from the studio's own files (the build inlines none), so injected
/// markup can run nothing; `media` (CSP sources) is where audio and waveform
/// peaks may be fetched from.
pub fn content_security_policy(media: &str) -> String {
    format!(
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
         media-src 'self' {media}; connect-src 'self' {media}; object-src 'none'; \
         base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    )
}

/// Checks `CADENZA_WEB_MEDIA_SOURCES`: space-separated CSP sources, each a
/// scheme (`https:`) or an origin (`https://media.example.com`), so nothing can
/// smuggle another directive into the header.
pub fn parse_media_sources(value: &str) -> Result<String, String> {
    let sources: Vec<&str> = value.split_whitespace().collect();
    if sources.is_empty() {
        return Err("name at least one source, such as `https:`".into());
    }
    for source in &sources {
        let plain = source
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ":/.-+[]".contains(c));
        let scheme_only = source.len() > 1
            && source.ends_with(':')
            && !source[..source.len() - 1].contains([':', '/']);
        // Exactly `scheme://authority`: no path, not even `/`.
        let origin = source.parse::<http::Uri>().is_ok_and(|u| {
            matches!(u.scheme_str(), Some("http" | "https"))
                && u.authority().is_some_and(|a| {
                    !a.host().is_empty()
                        && *source == format!("{}://{a}", u.scheme_str().unwrap_or_default())
                })
        });
        if !plain || !(scheme_only || origin) {
            return Err(format!(
                "`{source}` is neither a scheme (`https:`) nor an origin (`https://host[:port]`)"
            ));
        }
    }
    Ok(sources.join(" "))
}

/// The studio's files under `dir`, with caching and safety headers; `media`
/// as for [`content_security_policy`].
pub fn router(dir: &Path, media: &str) -> axum::Router {
    let pages = ServeDir::new(dir)
        .append_index_html_on_directories(true)
        .fallback(ServeFile::new(dir.join("index.html")));
    // A missing asset is a 404, never the page in its place (which would then be
    // cached for a year under the asset's name).
    axum::Router::new()
        .nest_service("/assets", ServeDir::new(dir.join("assets")))
        .fallback_service(pages)
        .layer(axum::middleware::from_fn_with_state(
            Policy(
                HeaderValue::from_str(&content_security_policy(media))
                    .unwrap_or_else(|_| HeaderValue::from_static("default-src 'self'")),
            ),
            headers,
        ))
        .layer(CompressionLayer::new())
}

#[derive(Clone)]
struct Policy(HeaderValue);

async fn headers(State(Policy(policy)): State<Policy>, request: Request, next: Next) -> Response {
    let hashed = request.uri().path().starts_with("/assets/");
    let mut response = next.run(request).await;
    let cache = if hashed && response.status().is_success() {
        IMMUTABLE
    } else {
        REVALIDATE
    };
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // A gift page's address is its secret: never send it on as a referrer.
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::CONTENT_SECURITY_POLICY, policy);
    response
}

/// Puts the studio's files beside the API: gRPC and gRPC-web requests go to the
/// services (through tonic-web's translation), everything else to the files.
///
/// tonic-web answers any plain HTTP/1.1 request with 400, so the files must be
/// split off before it rather than behind it.
#[derive(Clone)]
pub struct StudioLayer {
    files: Option<axum::Router>,
}

impl StudioLayer {
    /// `None` serves the API alone, as before there was a studio.
    pub fn new(files: Option<axum::Router>) -> Self {
        Self { files }
    }
}

impl<S> Layer<S> for StudioLayer {
    type Service = Studio<tonic_web::GrpcWebService<S>>;

    fn layer(&self, inner: S) -> Self::Service {
        Studio {
            api: tonic_web::GrpcWebLayer::new().layer(inner),
            files: self.files.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Studio<S> {
    api: S,
    files: Option<axum::Router>,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

fn is_api_call<B>(request: &http::Request<B>) -> bool {
    request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/grpc"))
}

impl<S, B> Service<http::Request<B>> for Studio<S>
where
    S: Service<http::Request<B>, Response = http::Response<tonic::body::Body>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.api.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        match &self.files {
            Some(files) if !is_api_call(&request) => {
                let files = files.clone();
                Box::pin(async move {
                    let response = files.oneshot(request).await?;
                    Ok(response.map(tonic::body::Body::new))
                })
            }
            _ => {
                // Call the service that was polled ready; leave a fresh clone behind.
                let clone = self.api.clone();
                let mut api = std::mem::replace(&mut self.api, clone);
                Box::pin(api.call(request))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_sources_are_schemes_or_origins_and_nothing_else() {
        assert_eq!(
            parse_media_sources("  https:   https://media.example.com:8443 ").as_deref(),
            Ok("https: https://media.example.com:8443")
        );
        assert_eq!(parse_media_sources("http:").as_deref(), Ok("http:"));
        for bad in [
            "",
            "   ",
            ":",
            "https://media.example.com/path",
            "https://media.example.com/",
            "ftp://files.example.com",
            "https: 'unsafe-inline'",
            "https:; script-src *",
            "*",
            "media.example.com",
        ] {
            assert!(parse_media_sources(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn the_policy_lets_scripts_come_only_from_the_studio_itself() {
        let policy = content_security_policy("https://media.example.com");
        assert!(policy.contains("script-src 'self';"), "{policy}");
        assert!(policy.contains("object-src 'none'"), "{policy}");
        assert!(
            policy.contains("media-src 'self' https://media.example.com;"),
            "{policy}"
        );
        assert!(HeaderValue::from_str(&policy).is_ok());
    }
}
