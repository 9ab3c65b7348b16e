//! Logs, traces and metrics.
//!
//! Logs go to stderr (text or JSON) filtered by `RUST_LOG`. Traces and metrics are exported over
//! OTLP/gRPC when a collector is configured (`OTEL_EXPORTER_OTLP_ENDPOINT`); metrics are also
//! served for Prometheus to scrape when `CRM_METRICS_LISTEN` is set. With neither, the OTel
//! providers are the no-op defaults and cost nothing on the hot path.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use opentelemetry::metrics::{Counter, Histogram, Meter};
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry::{KeyValue, global};
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// Instrumentation scope of every instrument and span of the service.
const SCOPE: &str = "crm-service";

/// Whether spans are exported, and whether metrics are kept: when not, the per-call work that
/// only feeds them (propagation, trace ids, measurement attributes) is skipped.
static TRACES_ON: AtomicBool = AtomicBool::new(false);
static METRICS_ON: AtomicBool = AtomicBool::new(false);

pub fn traces_enabled() -> bool {
    TRACES_ON.load(Ordering::Relaxed)
}

pub fn metrics_enabled() -> bool {
    METRICS_ON.load(Ordering::Relaxed)
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// For people.
    #[default]
    Text,
    /// One JSON object a line, for log collectors.
    Json,
}

/// What to set up.
#[derive(Debug, Clone, Default)]
pub struct TelemetryConfig {
    pub log_format: LogFormat,
    /// OTLP/gRPC collector, e.g. `http://otel-collector:4317`.
    pub otlp_endpoint: Option<String>,
    /// Keep metrics for a Prometheus scrape endpoint.
    pub prometheus: bool,
}

/// The installed providers; [`Telemetry::shutdown`] flushes what is still batched.
pub struct Telemetry {
    tracer_provider: Option<SdkTracerProvider>,
    meter_provider: Option<SdkMeterProvider>,
    registry: Option<prometheus::Registry>,
}

/// Installs logging, and tracing and metrics providers as configured. Call once, inside the Tokio
/// runtime (the OTLP exporters use tonic).
pub fn init(config: &TelemetryConfig) -> Result<Telemetry, String> {
    // Without a propagator, an incoming `traceparent` would be ignored (the global default is a
    // no-op).
    global::set_text_map_propagator(TraceContextPropagator::new());
    let resource = resource();

    let tracer_provider = match &config.otlp_endpoint {
        Some(endpoint) => {
            let exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .with_endpoint(endpoint.clone())
                .build()
                .map_err(|e| format!("cannot set up the OTLP span exporter: {e}"))?;
            let provider = SdkTracerProvider::builder()
                .with_batch_exporter(exporter)
                .with_resource(resource.clone())
                .build();
            global::set_tracer_provider(provider.clone());
            TRACES_ON.store(true, Ordering::Relaxed);
            Some(provider)
        }
        None => None,
    };

    let mut registry = None;
    let meter_provider = if config.otlp_endpoint.is_some() || config.prometheus {
        let mut builder = SdkMeterProvider::builder().with_resource(resource);
        if config.prometheus {
            let scrape = prometheus::Registry::new();
            let exporter = opentelemetry_prometheus::exporter()
                .with_registry(scrape.clone())
                .build()
                .map_err(|e| format!("cannot set up the Prometheus exporter: {e}"))?;
            builder = builder.with_reader(exporter);
            registry = Some(scrape);
        }
        if let Some(endpoint) = &config.otlp_endpoint {
            let exporter = opentelemetry_otlp::MetricExporter::builder()
                .with_tonic()
                .with_endpoint(endpoint.clone())
                .build()
                .map_err(|e| format!("cannot set up the OTLP metric exporter: {e}"))?;
            builder = builder.with_periodic_exporter(exporter);
        }
        let provider = builder.build();
        global::set_meter_provider(provider.clone());
        METRICS_ON.store(true, Ordering::Relaxed);
        Some(provider)
    } else {
        None
    };

    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let logs = if config.log_format == LogFormat::Json {
        tracing_subscriber::fmt::layer()
            .json()
            .with_current_span(true)
            .with_writer(std::io::stderr)
            .boxed()
    } else {
        tracing_subscriber::fmt::layer()
            .compact()
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .with_writer(std::io::stderr)
            .boxed()
    };
    let traces = tracer_provider
        .as_ref()
        .map(|provider| tracing_opentelemetry::layer().with_tracer(provider.tracer(SCOPE)));
    tracing_subscriber::registry()
        .with(filter)
        .with(logs)
        .with(traces)
        .try_init()
        .map_err(|e| format!("cannot install the log subscriber: {e}"))?;

    Ok(Telemetry {
        tracer_provider,
        meter_provider,
        registry,
    })
}

/// `service.name` is `crm-service` unless `OTEL_SERVICE_NAME` or `OTEL_RESOURCE_ATTRIBUTES` name
/// it (the SDK reads both).
fn resource() -> Resource {
    let named = std::env::var_os("OTEL_SERVICE_NAME").is_some()
        || std::env::var("OTEL_RESOURCE_ATTRIBUTES").is_ok_and(|a| a.contains("service.name="));
    let builder = Resource::builder();
    if named {
        builder.build()
    } else {
        builder.with_service_name(SCOPE).build()
    }
}

impl Telemetry {
    /// The registry a Prometheus endpoint serves, when one was asked for.
    pub fn registry(&self) -> Option<prometheus::Registry> {
        self.registry.clone()
    }

    /// Flushes batched spans and metrics (bounded by the exporters' own timeouts).
    pub fn shutdown(self) {
        if let Some(provider) = self.tracer_provider
            && let Err(e) = provider.shutdown()
        {
            eprintln!("crm-service: flushing traces failed: {e}");
        }
        if let Some(provider) = self.meter_provider
            && let Err(e) = provider.shutdown()
        {
            eprintln!("crm-service: flushing metrics failed: {e}");
        }
    }
}

/// The trace id of the span being served, when traces are on (the caller's own trace when it sent
/// a `traceparent`).
pub fn current_trace_id() -> Option<String> {
    if !traces_enabled() {
        return None;
    }
    let context = tracing::Span::current().context();
    let span = context.span();
    let span_context = span.span_context();
    span_context
        .is_valid()
        .then(|| span_context.trace_id().to_string())
}

fn meter() -> Meter {
    global::meter(SCOPE)
}

/// `rpc.server.call.duration` (OTel semantic conventions 1.42): seconds, per method and status.
pub fn call_duration_histogram() -> Histogram<f64> {
    meter()
        .f64_histogram("rpc.server.call.duration")
        .with_unit("s")
        .with_description("Duration of gRPC calls served, from request headers to the status")
        .with_boundaries(vec![
            0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5,
            5.0, 7.5, 10.0, 30.0,
        ])
        .build()
}

/// How far the JetStream relay of customer events is behind the outbox, as the leading relay last
/// saw it: `crm.events.relay.backlog` (events committed and not yet acknowledged by JetStream,
/// summed over tenants) and `crm.events.relay.lag` (seconds since the oldest of them was
/// committed). Both 0 when caught up, and on replicas that do not lead.
pub struct RelayLag {
    events: AtomicU64,
    millis: AtomicU64,
}

impl RelayLag {
    pub fn set(&self, events: u64, lag: Duration) {
        self.events.store(events, Ordering::Relaxed);
        self.millis.store(
            lag.as_millis().min(u64::MAX as u128) as u64,
            Ordering::Relaxed,
        );
    }

    pub fn events(&self) -> u64 {
        self.events.load(Ordering::Relaxed)
    }

    pub fn lag(&self) -> Duration {
        Duration::from_millis(self.millis.load(Ordering::Relaxed))
    }
}

/// The relay's lag, its gauges registered on first use (after `init` installed the providers).
pub fn relay_lag() -> &'static RelayLag {
    static LAG: OnceLock<RelayLag> = OnceLock::new();
    static GAUGES: OnceLock<(
        opentelemetry::metrics::ObservableGauge<u64>,
        opentelemetry::metrics::ObservableGauge<f64>,
    )> = OnceLock::new();
    let lag = LAG.get_or_init(|| RelayLag {
        events: AtomicU64::new(0),
        millis: AtomicU64::new(0),
    });
    GAUGES.get_or_init(|| {
        let meter = meter();
        (
            meter
                .u64_observable_gauge("crm.events.relay.backlog")
                .with_unit("{event}")
                .with_description("Customer events committed and not yet acknowledged by JetStream")
                .with_callback(|gauge| gauge.observe(relay_lag().events(), &[]))
                .build(),
            meter
                .f64_observable_gauge("crm.events.relay.lag")
                .with_unit("s")
                .with_description(
                    "Age of the oldest customer event not yet acknowledged by JetStream",
                )
                .with_callback(|gauge| gauge.observe(relay_lag().lag().as_secs_f64(), &[]))
                .build(),
        )
    });
    lag
}

/// Counters of the deletion lifecycle, counted when the transaction that made the change commits.
struct LifecycleCounters {
    submitted: Counter<u64>,
    approved: Counter<u64>,
    rejected: Counter<u64>,
    deleted: Counter<u64>,
    restored: Counter<u64>,
    purged: Counter<u64>,
}

fn lifecycle_counters() -> &'static LifecycleCounters {
    static COUNTERS: OnceLock<LifecycleCounters> = OnceLock::new();
    COUNTERS.get_or_init(|| {
        let meter = meter();
        let counter = |name: &'static str, description: &'static str| {
            meter
                .u64_counter(name)
                .with_description(description)
                .build()
        };
        LifecycleCounters {
            submitted: counter(
                "crm.deletion_requests.submitted",
                "Deletion requests submitted",
            ),
            approved: counter(
                "crm.deletion_requests.approved",
                "Deletion requests approved",
            ),
            rejected: counter(
                "crm.deletion_requests.rejected",
                "Deletion requests rejected",
            ),
            deleted: counter("crm.customers.deleted", "Customers soft-deleted"),
            restored: counter("crm.customers.restored", "Customers restored"),
            purged: counter(
                "crm.customers.purged",
                "Customers erased after their retention (or on demand)",
            ),
        }
    })
}

/// Counts the audited actions of a transaction that has just committed.
pub fn count_committed(actions: &[&'static str]) {
    let counters = lifecycle_counters();
    for action in actions {
        let counter = match *action {
            "deletion_request.submit" => &counters.submitted,
            "deletion_request.approve" => &counters.approved,
            "deletion_request.reject" => &counters.rejected,
            "customer.delete" => &counters.deleted,
            "customer.restore" => &counters.restored,
            "customer.purge" => &counters.purged,
            _ => continue,
        };
        counter.add(1, &[]);
    }
}

/// The attributes of one call's measurement.
pub fn call_attributes(method: &str, code: tonic::Code) -> Vec<KeyValue> {
    let name = code_name(code);
    let mut attributes = vec![
        KeyValue::new("rpc.system.name", "grpc"),
        KeyValue::new("rpc.method", method.to_owned()),
        KeyValue::new("rpc.response.status_code", name),
    ];
    if code != tonic::Code::Ok {
        attributes.push(KeyValue::new("error.type", name));
    }
    attributes
}

/// The canonical name of a status code, as semantic conventions and grpcurl spell it.
pub fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code::*;
    match code {
        Ok => "OK",
        Cancelled => "CANCELLED",
        Unknown => "UNKNOWN",
        InvalidArgument => "INVALID_ARGUMENT",
        DeadlineExceeded => "DEADLINE_EXCEEDED",
        NotFound => "NOT_FOUND",
        AlreadyExists => "ALREADY_EXISTS",
        PermissionDenied => "PERMISSION_DENIED",
        ResourceExhausted => "RESOURCE_EXHAUSTED",
        FailedPrecondition => "FAILED_PRECONDITION",
        Aborted => "ABORTED",
        OutOfRange => "OUT_OF_RANGE",
        Unimplemented => "UNIMPLEMENTED",
        Internal => "INTERNAL",
        Unavailable => "UNAVAILABLE",
        DataLoss => "DATA_LOSS",
        Unauthenticated => "UNAUTHENTICATED",
    }
}

/// Serves `GET /metrics` (Prometheus text format) on `listener` until the task is dropped. A
/// deliberately small HTTP/1 responder: one request per connection, no keep-alive.
pub async fn serve_metrics(listener: TcpListener, registry: prometheus::Registry) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let registry = registry.clone();
        tokio::spawn(async move {
            let _ = tokio::time::timeout(Duration::from_secs(10), answer_scrape(stream, &registry))
                .await;
        });
    }
}

async fn answer_scrape(
    mut stream: TcpStream,
    registry: &prometheus::Registry,
) -> std::io::Result<()> {
    let mut request = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < 8192 {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        request.extend_from_slice(&buf[..n]);
    }
    let line = request.split(|b| *b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut parts = line.split_whitespace();
    let (status, content_type, body) = match (parts.next(), parts.next()) {
        (Some("GET"), Some(path)) if path == "/metrics" || path.starts_with("/metrics?") => {
            let mut body = Vec::new();
            use prometheus::Encoder;
            let encoder = prometheus::TextEncoder::new();
            match encoder.encode(&registry.gather(), &mut body) {
                Ok(()) => ("200 OK", encoder.format_type().to_owned(), body),
                Err(e) => (
                    "500 Internal Server Error",
                    "text/plain".to_owned(),
                    e.to_string().into_bytes(),
                ),
            }
        }
        _ => (
            "404 Not Found",
            "text/plain".to_owned(),
            b"metrics are at /metrics\n".to_vec(),
        ),
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(&body).await?;
    stream.shutdown().await
}
