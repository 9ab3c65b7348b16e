//! The tower layers every call goes through, outermost first:
//!
//! 1. [`TelemetryLayer`]: a span that continues the caller's W3C trace, and the
//!    `rpc.server.call.duration` measurement with the final status (read from the trailers for
//!    calls that stream or succeed).
//! 2. [`MetadataLimitLayer`]: a call whose metadata is over [`MAX_METADATA_BYTES`] gets
//!    `INVALID_ARGUMENT` (`METADATA_TOO_LARGE`) before anything reads its metadata (its token
//!    included).
//! 3. [`AdmissionLayer`]: a process-wide cap on calls in flight that sheds the excess at once with
//!    `RESOURCE_EXHAUSTED` (never a queue that ends at the deadline), and a cap on call deadlines
//!    that ends an over-long call with `DEADLINE_EXCEEDED`.
//!
//! Health checks and reflection pass telemetry and admission untouched: a probe must get an answer
//! from a saturated server, and the answer is about the server, not about a call. They are held to
//! the metadata limit like every call: no probe sends 16 KiB of headers.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use http::{Request, Response};
use opentelemetry::metrics::Histogram;
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tonic::Code;
use tonic::body::Body;
use tower_layer::Layer;
use tower_service::Service;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::error::{Error, Problem};
use crate::reason;
use crate::telemetry;

/// Paths that are about the server itself: never shed, never traced.
fn is_infrastructure(path: &str) -> bool {
    path.starts_with("/grpc.health.v1.") || path.starts_with("/grpc.reflection.")
}

// ---------------------------------------------------------------------------------------------
// Metadata limit

/// The largest header list a call may carry, in bytes as HTTP/2 counts it ([`header_list_size`]).
///
/// HTTP/2 refuses a header list over `SETTINGS_MAX_HEADER_LIST_SIZE` before any service sees the
/// call, and in ways gRPC clients misreport: h2 answers HTTP 431 (tonic's client reports
/// `UNKNOWN`) or ends the whole connection with GOAWAY (`RESOURCE_EXHAUSTED`, `UNAVAILABLE` or
/// `INTERNAL` depending on why, all of which invite retries of a call that can never succeed).
/// So the transport is given a far larger limit (`app::TRANSPORT_MAX_HEADER_LIST_BYTES`) and this
/// one is enforced here, with a gRPC status. 16 KiB is what hyper's HTTP/2 server accepted before,
/// so no call that was served is refused now, and it is the hard limit of grpc-core clients' own
/// metadata.
pub const MAX_METADATA_BYTES: usize = 16 * 1024;

/// HTTP/2's overhead per header field (RFC 7541 §4.1).
const FIELD_OVERHEAD: usize = 32;

/// The request's header list in bytes, as HTTP/2 counts it against `SETTINGS_MAX_HEADER_LIST_SIZE`
/// and as h2 measures it: name + value + 32 for each field, the pseudo-headers included
/// (`:method`, `:scheme`, `:authority`, `:path`, each present one; h2 rebuilds the request's URI
/// from them). Returns the size and the name of the largest field.
pub fn header_list_size<B>(request: &Request<B>) -> (usize, String) {
    let uri = request.uri();
    let pseudo = [
        (":method", Some(request.method().as_str())),
        (":scheme", uri.scheme_str()),
        (":authority", uri.authority().map(|a| a.as_str())),
        (":path", uri.path_and_query().map(|p| p.as_str())),
    ];
    let fields = pseudo
        .into_iter()
        .filter_map(|(name, value)| value.map(|v| (name, v.len())))
        .chain(
            request
                .headers()
                .iter()
                .map(|(name, value)| (name.as_str(), value.len())),
        );
    let (mut total, mut largest) = (0, (0, ""));
    for (name, value_len) in fields {
        let size = name.len() + value_len + FIELD_OVERHEAD;
        total += size;
        if size > largest.0 {
            largest = (size, name);
        }
    }
    (total, largest.1.to_owned())
}

/// Refuses calls whose metadata is over a limit, with a gRPC status.
#[derive(Clone)]
pub struct MetadataLimitLayer {
    limit: usize,
}

impl MetadataLimitLayer {
    pub fn new(limit: usize) -> Self {
        Self { limit }
    }
}

impl<S> Layer<S> for MetadataLimitLayer {
    type Service = MetadataLimit<S>;

    fn layer(&self, inner: S) -> Self::Service {
        MetadataLimit {
            inner,
            limit: self.limit,
        }
    }
}

#[derive(Clone)]
pub struct MetadataLimit<S> {
    inner: S,
    limit: usize,
}

impl<S, B> Service<Request<B>> for MetadataLimit<S>
where
    S: Service<Request<B>, Response = Response<Body>> + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Response<Body>, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let (size, largest) = header_list_size(&request);
        if size <= self.limit {
            return Box::pin(self.inner.call(request));
        }
        tracing::info!(
            metadata_bytes = size,
            limit = self.limit,
            largest_header = %crate::error::echo(&largest),
            "call refused: its metadata is over the limit"
        );
        // INVALID_ARGUMENT, not RESOURCE_EXHAUSTED: the same call can never succeed, and clients
        // and retry policies read RESOURCE_EXHAUSTED as overload worth retrying (the mapping
        // would add RetryInfo to it).
        let status = tonic::Status::from(Error::InvalidArgument {
            problem: Problem::new(
                reason::METADATA_TOO_LARGE,
                format!(
                    "the call's metadata is {size} bytes, over the limit of {} bytes (each header \
                     counted as name + value + 32 bytes); the largest header is {}: send a \
                     smaller token or fewer headers",
                    self.limit,
                    crate::error::echo(&largest),
                ),
            )
            .with("limitBytes", self.limit)
            .with("metadataBytes", size)
            .with("largestHeader", largest),
            violations: Vec::new(),
        });
        Box::pin(async move { Ok(status.into_http()) })
    }
}

// ---------------------------------------------------------------------------------------------
// Admission

/// Caps calls in flight across every connection of the process, and call deadlines.
#[derive(Clone)]
pub struct AdmissionLayer {
    permits: Arc<Semaphore>,
    limit: usize,
    max_call_duration: Duration,
}

impl AdmissionLayer {
    pub fn new(max_concurrent_calls: usize, max_call_duration: Duration) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(max_concurrent_calls)),
            limit: max_concurrent_calls,
            max_call_duration,
        }
    }
}

impl<S> Layer<S> for AdmissionLayer {
    type Service = Admission<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Admission {
            inner,
            layer: self.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Admission<S> {
    inner: S,
    layer: AdmissionLayer,
}

impl<S, B> Service<Request<B>> for Admission<S>
where
    S: Service<Request<B>, Response = Response<Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Response<Body>, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        if is_infrastructure(request.uri().path()) {
            let future = self.inner.call(request);
            return Box::pin(future);
        }
        let Ok(permit) = self.layer.permits.clone().try_acquire_owned() else {
            let status = tonic::Status::from(Error::ResourceExhausted(
                Problem::new(
                    reason::SERVER_OVERLOADED,
                    format!(
                        "the server is serving its limit of {} calls; retry with backoff",
                        self.layer.limit
                    ),
                )
                .with("maxConcurrentCalls", self.layer.limit),
            ));
            return Box::pin(async move { Ok(status.into_http()) });
        };
        let asked = request
            .headers()
            .get("grpc-timeout")
            .and_then(|v| v.to_str().ok())
            .and_then(crate::call::parse_grpc_timeout);
        let deadline = crate::call::Deadline::starting_now(asked, self.layer.max_call_duration);
        let future = self.inner.call(request);
        Box::pin(async move {
            let outcome =
                tokio::time::timeout_at(deadline.at, crate::call::with_deadline(deadline, future))
                    .await;
            drop(permit);
            match outcome {
                Ok(response) => response,
                Err(_) => Ok(tonic::Status::from(deadline.exceeded()).into_http()),
            }
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Telemetry

/// A span per call (continuing the caller's `traceparent`) and the call-duration histogram.
#[derive(Clone)]
pub struct TelemetryLayer {
    duration: Histogram<f64>,
}

impl TelemetryLayer {
    pub fn new() -> Self {
        Self {
            duration: telemetry::call_duration_histogram(),
        }
    }
}

impl Default for TelemetryLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl<S> Layer<S> for TelemetryLayer {
    type Service = Telemetry<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Telemetry {
            inner,
            duration: self.duration.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Telemetry<S> {
    inner: S,
    duration: Histogram<f64>,
}

struct HeaderExtractor<'a>(&'a http::HeaderMap);

impl opentelemetry::propagation::Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

impl<S, B> Service<Request<B>> for Telemetry<S>
where
    S: Service<Request<B>, Response = Response<Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = Response<ObservedBody>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Response<ObservedBody>, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let started = Instant::now();
        let method = request.uri().path().trim_start_matches('/').to_owned();
        let span = if is_infrastructure(request.uri().path()) {
            tracing::Span::none()
        } else {
            let span = tracing::info_span!(
                "grpc",
                otel.name = %method,
                otel.kind = "server",
                rpc.system.name = "grpc",
                rpc.method = %method,
                rpc.response.status_code = tracing::field::Empty,
                trace_id = tracing::field::Empty,
            );
            if telemetry::traces_enabled() {
                let parent = opentelemetry::global::get_text_map_propagator(|propagator| {
                    propagator.extract(&HeaderExtractor(request.headers()))
                });
                let _ = span.set_parent(parent);
                if let Some(trace_id) = span.in_scope(telemetry::current_trace_id) {
                    span.record("trace_id", trace_id);
                }
            }
            span
        };
        let future = span.in_scope(|| self.inner.call(request));
        let recorder = CallRecorder {
            started,
            method,
            duration: self.duration.clone(),
            span: span.clone(),
            recorded: false,
        };
        Box::pin(
            async move {
                let response = future.await?;
                let (parts, body) = response.into_parts();
                let mut observed = ObservedBody {
                    inner: body,
                    recorder: Some(recorder),
                };
                // A status in the headers (a trailers-only response: every error a handler
                // returns) is final; otherwise it comes in the trailers.
                if let Some(code) = header_code(&parts.headers)
                    && let Some(mut recorder) = observed.recorder.take()
                {
                    recorder.finish(code);
                }
                Ok(Response::from_parts(parts, observed))
            }
            .instrument(span),
        )
    }
}

fn header_code(headers: &http::HeaderMap) -> Option<Code> {
    headers
        .get("grpc-status")
        .map(|v| Code::from_bytes(v.as_bytes()))
}

/// Records a call once, with its final status; a call whose response is dropped before its status
/// was sent (the client went away) counts as `CANCELLED`.
struct CallRecorder {
    started: Instant,
    method: String,
    duration: Histogram<f64>,
    span: tracing::Span,
    recorded: bool,
}

impl CallRecorder {
    fn finish(&mut self, code: Code) {
        if self.recorded {
            return;
        }
        self.recorded = true;
        let seconds = self.started.elapsed().as_secs_f64();
        if telemetry::metrics_enabled() {
            self.duration
                .record(seconds, &telemetry::call_attributes(&self.method, code));
        }
        let name = telemetry::code_name(code);
        self.span.record("rpc.response.status_code", name);
        match code {
            Code::Internal | Code::Unknown | Code::DataLoss => {
                tracing::error!(parent: &self.span, code = name, seconds, "call failed")
            }
            // UNAVAILABLE is logged with its reason where the error is mapped (error.rs).
            Code::ResourceExhausted | Code::DeadlineExceeded => {
                tracing::warn!(parent: &self.span, code = name, seconds, "call not served")
            }
            _ => tracing::debug!(parent: &self.span, code = name, seconds, "call served"),
        }
    }
}

impl Drop for CallRecorder {
    fn drop(&mut self) {
        self.finish(Code::Cancelled);
    }
}

/// The response body, watched for the trailers that carry a streamed or successful call's status.
pub struct ObservedBody {
    inner: Body,
    recorder: Option<CallRecorder>,
}

impl http_body::Body for ObservedBody {
    type Data = Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, tonic::Status>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(trailers) = frame.trailers_ref()
                    && let Some(mut recorder) = this.recorder.take()
                {
                    recorder.finish(header_code(trailers).unwrap_or(Code::Unknown));
                }
            }
            Poll::Ready(Some(Err(status))) => {
                if let Some(mut recorder) = this.recorder.take() {
                    recorder.finish(status.code());
                }
            }
            Poll::Ready(None) => {
                if let Some(mut recorder) = this.recorder.take() {
                    recorder.finish(Code::Ok);
                }
            }
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_list_is_counted_as_http2_counts_it() {
        let request = Request::builder()
            .method("POST")
            .uri("http://127.0.0.1:50051/crm.v1.CustomerService/GetCustomer")
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .header("authorization", "Bearer abc")
            .header("x-many", "1")
            .header("x-many", "22")
            .body(())
            .unwrap();
        let fields = [
            (":method", "POST"),
            (":scheme", "http"),
            (":authority", "127.0.0.1:50051"),
            (":path", "/crm.v1.CustomerService/GetCustomer"),
            ("content-type", "application/grpc"),
            ("te", "trailers"),
            ("authorization", "Bearer abc"),
            ("x-many", "1"),
            ("x-many", "22"),
        ];
        let expected: usize = fields.iter().map(|(n, v)| n.len() + v.len() + 32).sum();
        assert_eq!(header_list_size(&request), (expected, ":path".to_owned()));
    }
}
