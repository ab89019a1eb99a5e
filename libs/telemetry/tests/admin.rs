//! The admin endpoint serves what the process recorded, in Prometheus text.

use tokio_util::sync::CancellationToken;

#[tokio::test]
async fn metrics_are_served_in_prometheus_text() {
    let handle = cadenza_telemetry::init_for_test();
    metrics::counter!("cadenza_test_widgets_total", "kind" => "blue").increment(3);
    metrics::histogram!("cadenza_test_duration_seconds").record(0.02);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let shutdown = CancellationToken::new();
    tokio::spawn(cadenza_telemetry::admin::serve(
        listener,
        handle,
        shutdown.clone(),
    ));

    let response = reqwest::get(format!("http://{addr}/metrics"))
        .await
        .expect("scrape");
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .expect("ascii")
            .starts_with("text/plain")
    );
    let text = response.text().await.expect("body");
    assert!(
        text.contains("cadenza_test_widgets_total{kind=\"blue\"} 3"),
        "{text}"
    );
    // Histograms have explicit buckets, not summaries.
    assert!(
        text.contains("cadenza_test_duration_seconds_bucket{le=\"0.025\"} 1"),
        "{text}"
    );
    let health = reqwest::get(format!("http://{addr}/healthz"))
        .await
        .expect("healthz");
    assert_eq!(health.text().await.expect("body"), "ok\n");
    shutdown.cancel();
}
