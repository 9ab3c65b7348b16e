//! Telemetry, through the real binary (exporters are process-wide): a span per call that
//! continues the caller's W3C trace, exported over OTLP to a fake collector; the trace id in the
//! audit trail; `rpc.server.call.duration` and the lifecycle counters over OTLP and on the
//! Prometheus endpoint; JSON logs.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crm_service::proto::crm::v1 as pb;
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::{Db, figure, new_customer};
use crate::process::{ServerProcess, fresh_database};

#[derive(Clone, Default)]
struct Collector {
    spans: Arc<Mutex<Vec<opentelemetry_proto::tonic::trace::v1::Span>>>,
    metrics: Arc<Mutex<Vec<opentelemetry_proto::tonic::metrics::v1::Metric>>>,
}

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut spans = self.spans.lock().unwrap();
        for resource in request.into_inner().resource_spans {
            for scope in resource.scope_spans {
                spans.extend(scope.spans);
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

#[tonic::async_trait]
impl MetricsService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        let mut metrics = self.metrics.lock().unwrap();
        for resource in request.into_inner().resource_metrics {
            for scope in resource.scope_metrics {
                metrics.extend(scope.metrics);
            }
        }
        Ok(tonic::Response::new(ExportMetricsServiceResponse::default()))
    }
}

async fn start_collector() -> (SocketAddr, Collector) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let collector = Collector::default();
    let server = tonic::transport::Server::builder()
        .add_service(TraceServiceServer::new(collector.clone()))
        .add_service(MetricsServiceServer::new(collector.clone()))
        .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener));
    tokio::spawn(server);
    (addr, collector)
}

async fn scrape(addr: SocketAddr) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: test\r\n\r\n")
        .await
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    response
}

/// The value of the first sample line that starts with `name{` and contains every label given.
fn sample(metrics: &str, name: &str, labels: &[&str]) -> Option<f64> {
    metrics
        .lines()
        .filter(|line| {
            line.starts_with(&format!("{name}{{")) || line.starts_with(&format!("{name} "))
        })
        .find(|line| labels.iter().all(|label| line.contains(label)))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
}

async fn wait_for<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let started = Instant::now();
    loop {
        if let Some(found) = check() {
            return found;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_are_traced_measured_and_counted() {
    let (otlp, collector) = start_collector().await;
    let (url, _) = fresh_database(Db::Sqlite).await.unwrap();
    let server = ServerProcess::start(
        Db::Sqlite,
        &url,
        None,
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{otlp}")),
            ("OTEL_BSP_SCHEDULE_DELAY", "100".into()),
            ("OTEL_METRIC_EXPORT_INTERVAL", "300".into()),
            ("CRM_METRICS_LISTEN", "127.0.0.1:0".into()),
            ("CRM_LOG_FORMAT", "json".into()),
        ],
    )
    .await;
    let app = server.app().await;

    // A caller in the middle of its own trace.
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let parent_span = "00f067aa0ba902b7";
    let mut request = tonic::Request::new(new_customer("Traced Ltd"));
    request.metadata_mut().insert(
        "traceparent",
        format!("00-{trace_id}-{parent_span}-01").parse().unwrap(),
    );
    let customer = app
        .customers()
        .create_customer(request)
        .await
        .unwrap()
        .into_inner()
        .customer
        .unwrap();
    // A call without one, and one that fails.
    let untraced = app.create_customer("Untraced Ltd").await;
    let missing = app
        .customers()
        .get_customer(pb::GetCustomerRequest {
            customer_id: uuid::Uuid::now_v7().to_string(),
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), tonic::Code::NotFound);
    // The lifecycle, for the counters: submit, approve, delete, restore.
    app.delete_customer(&customer.id).await;
    app.customers_as("acme", "sup-1", &["supervisor"])
        .restore_customer(pb::RestoreCustomerRequest {
            customer_id: customer.id.clone(),
            ..Default::default()
        })
        .await
        .expect("restore");

    // The server span continues the caller's trace, as a child of the caller's span.
    let span = wait_for("the CreateCustomer span", || {
        collector
            .spans
            .lock()
            .unwrap()
            .iter()
            .find(|s| hex(&s.trace_id) == trace_id)
            .cloned()
    })
    .await;
    assert_eq!(span.name, "crm.v1.CustomerService/CreateCustomer");
    assert_eq!(hex(&span.parent_span_id), parent_span);
    assert_eq!(span.kind, 2, "SPAN_KIND_SERVER");

    // The audit trail carries the trace id: the caller's, or the server's own trace's.
    let events = app
        .audit()
        .list_audit_events(pb::ListAuditEventsRequest {
            page_size: 100,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .audit_events;
    let created = |id: &str| {
        events
            .iter()
            .find(|e| e.action == "customer.create" && e.target_id == id)
            .unwrap_or_else(|| panic!("create event of {id}"))
            .trace_id
            .clone()
    };
    assert_eq!(created(&customer.id), trace_id);
    let own_trace = created(&untraced.id);
    assert_eq!(own_trace.len(), 32, "a trace id of the server's own trace");
    wait_for("the span of the untraced call", || {
        collector
            .spans
            .lock()
            .unwrap()
            .iter()
            .any(|s| hex(&s.trace_id) == own_trace)
            .then_some(())
    })
    .await;

    // Prometheus: the call-duration histogram per method and status, and the counters.
    let metrics_addr = server.metrics_addr.expect("the metrics address is printed");
    let text = scrape(metrics_addr).await;
    let calls = |method: &str, code: &str| {
        sample(
            &text,
            "rpc_server_call_duration_seconds_count",
            &[
                &format!("rpc_method=\"{method}\""),
                &format!("rpc_response_status_code=\"{code}\""),
                "rpc_system_name=\"grpc\"",
            ],
        )
        .unwrap_or(0.0)
    };
    assert!(
        calls("crm.v1.CustomerService/CreateCustomer", "OK") >= 2.0,
        "{text}"
    );
    assert_eq!(
        calls("crm.v1.CustomerService/GetCustomer", "NOT_FOUND"),
        1.0,
        "{text}"
    );
    assert!(
        text.contains("error_type=\"NOT_FOUND\""),
        "failed calls carry error.type"
    );
    for (counter, expected) in [
        ("crm_deletion_requests_submitted_total", 1.0),
        ("crm_deletion_requests_approved_total", 1.0),
        ("crm_customers_deleted_total", 1.0),
        ("crm_customers_restored_total", 1.0),
    ] {
        assert_eq!(
            sample(&text, counter, &[]),
            Some(expected),
            "{counter} in\n{text}"
        );
    }

    // OTLP metrics: the same histogram, in seconds.
    let unit = wait_for("rpc.server.call.duration over OTLP", || {
        collector
            .metrics
            .lock()
            .unwrap()
            .iter()
            .find(|m| m.name == "rpc.server.call.duration")
            .map(|m| m.unit.clone())
    })
    .await;
    assert_eq!(unit, "s");

    // JSON logs: every line of the log is a JSON object.
    let log = server.log();
    let lines: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(!lines.is_empty());
    for line in &lines {
        let value: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("log line is not JSON ({e}): {line}"));
        assert!(value.get("level").is_some() && value.get("timestamp").is_some());
    }
    figure(format_args!(
        "telemetry: {} spans and {} metric exports collected over OTLP; {} JSON log lines",
        collector.spans.lock().unwrap().len(),
        collector.metrics.lock().unwrap().len(),
        lines.len()
    ));
}
