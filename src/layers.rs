//! The tower layers every call goes through, outermost first:
//!
//! 1. [`TelemetryLayer`]: a span that continues the caller's W3C trace, and the
//!    `rpc.server.call.duration` measurement with the final status (read from the trailers for
//!    calls that stream or succeed).
//! 2. [`AdmissionLayer`]: a process-wide cap on calls in flight that sheds the excess at once with
//!    `RESOURCE_EXHAUSTED` (never a queue that ends at the deadline), and a cap on call deadlines
//!    that ends an over-long call with `DEADLINE_EXCEEDED`.
//!
//! Health checks and reflection pass both untouched: a probe must get an answer from a saturated
//! server, and the answer is about the server, not about a call.

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
use crate::telemetry;

/// Paths that are about the server itself: never shed, never traced.
fn is_infrastructure(path: &str) -> bool {
    path.starts_with("/grpc.health.v1.") || path.starts_with("/grpc.reflection.")
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
                    "SERVER_OVERLOADED",
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
