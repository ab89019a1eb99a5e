//! The gateway's public surface: gRPC-web with CORS for browsers, health,
//! reflection, and request ids.

use std::time::Duration;

use cadenza_mesh::testing::TestMesh;
use cadenza_proto::v1;
use prost::Message;

/// A gRPC-web request body: one uncompressed data frame.
fn grpc_web_frame(message: &impl Message) -> Vec<u8> {
    let payload = message.encode_to_vec();
    let mut frame = vec![0u8];
    frame.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    frame.extend_from_slice(&payload);
    frame
}

/// The trailers frame (flag 0x80) of a gRPC-web response body, as text.
fn trailers(body: &[u8]) -> String {
    let mut rest = body;
    while rest.len() >= 5 {
        let len = u32::from_be_bytes([rest[1], rest[2], rest[3], rest[4]]) as usize;
        let (flag, frame) = (rest[0], &rest[5..5 + len.min(rest.len() - 5)]);
        if flag & 0x80 != 0 {
            return String::from_utf8_lossy(frame).into_owned();
        }
        rest = &rest[5 + len.min(rest.len() - 5)..];
    }
    String::new()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browsers_get_real_status_codes_over_grpc_web() {
    let mesh = TestMesh::start().await;
    let url = format!(
        "{}/cadenza.v1.ProjectService/ListProjects",
        mesh.mesh.gateway_url()
    );
    let http = reqwest::Client::new();

    let preflight = http
        .request(reqwest::Method::OPTIONS, &url)
        .header("origin", "http://localhost:5173")
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "content-type,x-grpc-web,authorization",
        )
        .send()
        .await
        .expect("preflight");
    assert!(preflight.status().is_success(), "{}", preflight.status());
    let allowed = preflight.headers()["access-control-allow-headers"]
        .to_str()
        .expect("ascii")
        .to_ascii_lowercase();
    for header in ["content-type", "x-grpc-web", "authorization"] {
        assert!(allowed.contains(header), "{header} not allowed: {allowed}");
    }

    let request = v1::ListProjectsRequest {
        page_size: 0,
        page_token: String::new(),
        ..Default::default()
    };
    let unauthenticated = http
        .post(&url)
        .header("origin", "http://localhost:5173")
        .header("content-type", "application/grpc-web+proto")
        .header("x-grpc-web", "1")
        .body(grpc_web_frame(&request))
        .send()
        .await
        .expect("grpc-web call");
    let headers = unauthenticated.headers().clone();
    let exposed = headers["access-control-expose-headers"]
        .to_str()
        .expect("ascii")
        .to_ascii_lowercase();
    for header in ["grpc-status", "grpc-message", "grpc-status-details-bin"] {
        assert!(exposed.contains(header), "{header} not exposed: {exposed}");
    }
    assert_eq!(
        headers["access-control-allow-origin"],
        "http://localhost:5173"
    );
    assert_eq!(
        headers["grpc-status"], "16",
        "UNAUTHENTICATED reaches the browser"
    );
    assert!(headers.contains_key("grpc-status-details-bin"));

    let token = mesh.token("webby").await;
    let ok = http
        .post(&url)
        .header("content-type", "application/grpc-web+proto")
        .header("authorization", format!("Bearer {token}"))
        .body(grpc_web_frame(&request))
        .send()
        .await
        .expect("grpc-web call");
    assert_eq!(ok.status(), 200);
    let body = ok.bytes().await.expect("body");
    assert!(
        trailers(&body).contains("grpc-status:0"),
        "{:?}",
        trailers(&body)
    );

    // Both calls were counted by method and code.
    let metrics = cadenza_telemetry::prometheus().render();
    for code in ["UNAUTHENTICATED", "OK"] {
        let line = metrics
            .lines()
            .find(|l| {
                l.starts_with("cadenza_grpc_server_requests_total{")
                    && l.contains("service=\"gateway\"")
                    && l.contains("method=\"/cadenza.v1.ProjectService/ListProjects\"")
                    && l.contains(&format!("code=\"{code}\""))
            })
            .unwrap_or_else(|| panic!("no {code} count in:\n{metrics}"));
        let count: f64 = line
            .rsplit(' ')
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or(0.0);
        assert!(count >= 1.0, "{line}");
    }
    mesh.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_reflection_and_request_ids() {
    use tonic_health::pb::{
        HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
    };
    let mesh = TestMesh::start().await;
    let channel = mesh.channel().await;

    // Serving once project (and through it Postgres and RabbitMQ) answers.
    let mut health = HealthClient::new(channel.clone());
    let serving = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let status = health
                .check(HealthCheckRequest {
                    service: "cadenza.v1.ProjectService".into(),
                })
                .await
                .map(|r| r.into_inner().status());
            if matches!(status, Ok(ServingStatus::Serving)) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await;
    assert!(serving.is_ok(), "the gateway never reported SERVING");

    use tonic_reflection::pb::v1::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
    };
    let mut reflection = ServerReflectionClient::new(channel.clone());
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = reflection
        .server_reflection_info(futures::stream::iter([request]))
        .await
        .expect("reflection")
        .into_inner();
    let Some(MessageResponse::ListServicesResponse(list)) = responses
        .message()
        .await
        .expect("response")
        .and_then(|r| r.message_response)
    else {
        panic!("no service list");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    assert!(
        names.contains(&"cadenza.v1.ProjectService".to_owned()),
        "{names:?}"
    );

    // A caller's request id comes back, for correlating with the logs.
    let token = mesh.token("ids").await;
    let mut projects = v1::project_service_client::ProjectServiceClient::new(channel);
    let mut request = cadenza_mesh::testing::authed(
        &token,
        v1::ListProjectsRequest {
            page_size: 0,
            page_token: String::new(),
            ..Default::default()
        },
    );
    request
        .metadata_mut()
        .insert("x-request-id", "test-request-42".parse().expect("ascii"));
    let response = projects.list_projects(request).await.expect("list");
    assert_eq!(
        response
            .metadata()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok()),
        Some("test-request-42")
    );
    mesh.stop().await;
}
