//! The crate's one error type and its one mapping to `tonic::Status` (AIP-193).
//!
//! Every status carries a `google.rpc.ErrorInfo` with a stable reason, the service's domain and the
//! ids involved as metadata. Database and internal failures are logged here with their cause and
//! leave as an opaque `INTERNAL`: database text never reaches a client.

use std::collections::HashMap;

use crate::reason;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// `ErrorInfo.domain` of every error this service returns.
pub const ERROR_DOMAIN: &str = "crm-service";

/// The `RetryInfo` delay suggested with `UNAVAILABLE` and `RESOURCE_EXHAUSTED` (clients add
/// jittered exponential backoff on top).
const RETRY_AFTER: std::time::Duration = std::time::Duration::from_millis(200);

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What one error answer may carry. A status leaves in the response's trailers (grpc-message
/// percent-encoded, grpc-status-details-bin in base64), and clients refuse trailers that are too
/// large: tonic's client past 16 KiB, grpc-core past its 8 KiB soft and 16 KiB hard limits,
/// reporting RESOURCE_EXHAUSTED in place of the real error. An error can echo its input (the paths
/// of an update mask: 1,000 unknown ones came back as 122 KB of trailers, a 1 MiB request as 7 MB),
/// so the mapping caps everything it sends: at most [`MAX_VIOLATIONS`] field or precondition
/// violations (the message counts the rest), and each text cut at a character boundary, "…"
/// included, to the byte lengths below. With every cap reached and every character outside ASCII
/// (three bytes once percent-encoded), the largest answer is 5,497 bytes of trailers, counted as
/// HTTP/2 counts a header list (a unit test builds it and keeps it under 6 KiB).
pub const MAX_VIOLATIONS: usize = 10;
/// Bytes of the message (grpc-message, and `google.rpc.Status.message` in the details).
pub const MESSAGE_MAX_BYTES: usize = 256;
/// Bytes of a violation's description.
pub const DESCRIPTION_MAX_BYTES: usize = 128;
/// Bytes of a field path, a precondition's type or subject, and an ErrorInfo reason or key.
pub const NAME_MAX_BYTES: usize = 64;
/// Bytes of an ErrorInfo metadata value.
pub const METADATA_VALUE_MAX_BYTES: usize = 96;
/// ErrorInfo metadata entries (errors carry at most four today).
pub const MAX_METADATA_ENTRIES: usize = 8;

/// `text` cut to at most `max` bytes at a character boundary, ending in "…" when cut.
pub fn truncate(mut text: String, max: usize) -> String {
    if text.len() <= max {
        return text;
    }
    const ELLIPSIS: &str = "…";
    let mut end = max.saturating_sub(ELLIPSIS.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    text.push_str(ELLIPSIS);
    text
}

/// A piece of the request quoted in a description (an unknown update_mask path), short enough
/// that the description around it survives [`DESCRIPTION_MAX_BYTES`].
pub fn echo(input: &str) -> String {
    truncate(input.to_owned(), 48)
}

/// One field of the request that breaks the contract (becomes a `BadRequest.FieldViolation`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldViolation {
    /// Path of the field in the request, e.g. `customer.name`.
    pub field: String,
    /// What is wrong and what is allowed, for a developer.
    pub description: String,
}

/// One unmet precondition (becomes a `PreconditionFailure.Violation`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreconditionViolation {
    /// Kind of precondition, e.g. `CUSTOMER_DELETED`.
    pub kind: &'static str,
    /// What it is about, e.g. `customers/0190…`.
    pub subject: String,
    /// What is wrong and what to do about it.
    pub description: String,
}

/// A client-facing problem: stable reason, developer message, ids as metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub reason: &'static str,
    pub message: String,
    pub metadata: Vec<(&'static str, String)>,
}

impl Problem {
    pub fn new(reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            reason,
            message: message.into(),
            metadata: Vec::new(),
        }
    }

    pub fn with(mut self, key: &'static str, value: impl ToString) -> Self {
        self.metadata.push((key, value.to_string()));
        self
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `INVALID_ARGUMENT` + `BadRequest`: the request breaks the contract (a field too long, an
    /// unknown enum value, an undecodable message, a page token that is not ours). Retrying the same
    /// request can never succeed.
    #[error("{}", .problem.message)]
    InvalidArgument {
        problem: Problem,
        violations: Vec<FieldViolation>,
    },
    /// `UNAUTHENTICATED`: no valid bearer token. Says why (expired, bad signature…) but never
    /// echoes the token.
    #[error("{}", .0.message)]
    Unauthenticated(Problem),
    /// `PERMISSION_DENIED`: the caller is known but its roles do not allow the call, or a rule of
    /// separation of duties forbids it. Checked before the target is loaded (AIP-211), so it says
    /// nothing about whether the target exists.
    #[error("{}", .0.message)]
    PermissionDenied(Problem),
    /// `NOT_FOUND`: no such resource in the caller's tenant. A foreign tenant's id gets exactly this
    /// answer too, byte for byte.
    #[error("{resource} {id} not found")]
    NotFound { resource: &'static str, id: String },
    /// `ALREADY_EXISTS`: a unique value (external_ref) is taken by another live resource.
    #[error("{}", .0.message)]
    AlreadyExists(Problem),
    /// `FAILED_PRECONDITION`: the resource's state forbids the call (deleted customer, forbidden
    /// status transition…); the message says what to do first.
    #[error("{}", .problem.message)]
    FailedPrecondition {
        problem: Problem,
        violations: Vec<PreconditionViolation>,
    },
    /// `ABORTED`: a read-modify-write conflict (etag mismatch, AIP-154) or a transaction the database
    /// aborted to break a conflict; re-read and retry.
    #[error("{}", .0.message)]
    Aborted(Problem),
    /// `UNAVAILABLE`: a transient outage (database unreachable, pool exhausted, SQLite busy past its
    /// timeout); the same request may succeed later.
    #[error("{}", .0.message)]
    Unavailable(Problem),
    /// `RESOURCE_EXHAUSTED`: the server is at its limit of calls in flight; retry after the
    /// `RetryInfo` delay, with backoff.
    #[error("{}", .0.message)]
    ResourceExhausted(Problem),
    /// `DEADLINE_EXCEEDED`: the call's deadline (the client's, capped by the server's) passed.
    #[error("{}", .0.message)]
    DeadlineExceeded(Problem),
    /// `INTERNAL`: a bug or an unexpected database failure. Logged with its cause; the client only
    /// learns that it happened.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    pub fn invalid_field(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self::invalid_fields(vec![FieldViolation {
            field: field.into(),
            description: description.into(),
        }])
    }

    pub fn invalid_fields(violations: Vec<FieldViolation>) -> Self {
        // Each field once, in order: a thousand bad paths of one update_mask are one field.
        let mut fields: Vec<&str> = Vec::new();
        for v in &violations {
            if !fields.contains(&v.field.as_str()) {
                fields.push(&v.field);
            }
        }
        let message = match violations.as_slice() {
            [only] => format!("invalid {}: {}", only.field, only.description),
            _ => format!("invalid fields: {}", fields.join(", ")),
        };
        let fields = fields.join(",");
        let problem = Problem::new(reason::INVALID_FIELD, message).with("fields", fields);
        Self::InvalidArgument {
            problem,
            violations,
        }
    }

    pub fn not_found(resource: &'static str, id: impl ToString) -> Self {
        Self::NotFound {
            resource,
            id: id.to_string(),
        }
    }

    pub fn failed_precondition(problem: Problem) -> Self {
        Self::FailedPrecondition {
            problem,
            violations: Vec::new(),
        }
    }

    /// The stable reason a client sees in `ErrorInfo`; `None` for NOT_FOUND and INTERNAL, which
    /// carry none of their own.
    pub fn reason(&self) -> Option<&'static str> {
        match self {
            Error::InvalidArgument { problem, .. } | Error::FailedPrecondition { problem, .. } => {
                Some(problem.reason)
            }
            Error::Unauthenticated(problem)
            | Error::PermissionDenied(problem)
            | Error::AlreadyExists(problem)
            | Error::Aborted(problem)
            | Error::Unavailable(problem)
            | Error::ResourceExhausted(problem)
            | Error::DeadlineExceeded(problem) => Some(problem.reason),
            Error::NotFound { .. } | Error::Internal(_) => None,
        }
    }

    /// An internal error, with where it was raised: the log says which of the places that can
    /// fail this way did (the client only ever learns that it happened).
    #[track_caller]
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        let at = std::panic::Location::caller();
        Self::Internal(format!("{cause} (at {}:{})", at.file(), at.line()))
    }
}

impl From<Error> for Status {
    fn from(err: Error) -> Self {
        let (code, problem, violations, preconditions) = match err {
            Error::InvalidArgument {
                problem,
                violations,
            } => (Code::InvalidArgument, problem, violations, Vec::new()),
            Error::Unauthenticated(p) => (Code::Unauthenticated, p, Vec::new(), Vec::new()),
            Error::PermissionDenied(p) => (Code::PermissionDenied, p, Vec::new(), Vec::new()),
            Error::NotFound { resource, id } => {
                let problem = Problem::new(reason::NOT_FOUND, format!("{resource} {id} not found"))
                    .with("resource", resource)
                    .with("id", &id);
                (Code::NotFound, problem, Vec::new(), Vec::new())
            }
            Error::AlreadyExists(p) => (Code::AlreadyExists, p, Vec::new(), Vec::new()),
            Error::FailedPrecondition {
                problem,
                violations,
            } => (Code::FailedPrecondition, problem, Vec::new(), violations),
            Error::Aborted(p) => (Code::Aborted, p, Vec::new(), Vec::new()),
            Error::Unavailable(p) => {
                tracing::warn!(reason = p.reason, "request failed on a transient outage");
                (Code::Unavailable, p, Vec::new(), Vec::new())
            }
            Error::ResourceExhausted(p) => (Code::ResourceExhausted, p, Vec::new(), Vec::new()),
            Error::DeadlineExceeded(p) => (Code::DeadlineExceeded, p, Vec::new(), Vec::new()),
            Error::Internal(cause) => {
                tracing::error!(%cause, "internal error");
                let problem = Problem::new(reason::INTERNAL, "internal error");
                (Code::Internal, problem, Vec::new(), Vec::new())
            }
        };
        // Everything below is capped (see MAX_VIOLATIONS): the answer must reach the client.
        let omitted = violations.len().saturating_sub(MAX_VIOLATIONS)
            + preconditions.len().saturating_sub(MAX_VIOLATIONS);
        let message = if omitted == 0 {
            truncate(problem.message, MESSAGE_MAX_BYTES)
        } else {
            let more = format!(" (and {omitted} more)");
            truncate(problem.message, MESSAGE_MAX_BYTES - more.len()) + &more
        };
        let name = |text: &str| truncate(text.to_owned(), NAME_MAX_BYTES);
        let metadata: HashMap<String, String> = problem
            .metadata
            .into_iter()
            .take(MAX_METADATA_ENTRIES)
            .map(|(k, v)| (name(k), truncate(v, METADATA_VALUE_MAX_BYTES)))
            .collect();
        let mut details = ErrorDetails::new();
        details.set_error_info(name(problem.reason), ERROR_DOMAIN, metadata);
        if matches!(code, Code::ResourceExhausted | Code::Unavailable) {
            details.set_retry_info(Some(RETRY_AFTER));
        }
        for v in violations.into_iter().take(MAX_VIOLATIONS) {
            details.add_bad_request_violation(
                truncate(v.field, NAME_MAX_BYTES),
                truncate(v.description, DESCRIPTION_MAX_BYTES),
            );
        }
        for v in preconditions.into_iter().take(MAX_VIOLATIONS) {
            details.add_precondition_failure_violation(
                name(v.kind),
                truncate(v.subject, NAME_MAX_BYTES),
                truncate(v.description, DESCRIPTION_MAX_BYTES),
            );
        }
        Status::with_error_details(code, message, details)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The header list a status leaves in, as HTTP/2 counts it (name + value + 32 per field).
    fn trailer_bytes(status: Status) -> usize {
        let response = status.into_http::<()>();
        response
            .headers()
            .iter()
            .map(|(name, value)| name.as_str().len() + value.len() + 32)
            .sum()
    }

    /// Four-byte characters: percent-encoding makes each of their bytes three.
    fn huge() -> String {
        "𝄞".repeat(1_000)
    }

    #[test]
    fn truncation_cuts_at_a_character_boundary_and_says_so() {
        assert_eq!(truncate("short".into(), 10), "short");
        assert_eq!(truncate("exactly ten".into(), 11), "exactly ten");
        for (text, max) in [
            ("é".repeat(200), 128),
            ("𝄞".repeat(50), 64),
            ("abc".repeat(50), 20),
        ] {
            let cut = truncate(text.clone(), max);
            assert!(cut.len() <= max, "{} > {max}", cut.len());
            assert!(cut.ends_with('…'));
            assert!(text.starts_with(cut.trim_end_matches('…')));
        }
        assert_eq!(echo(&"x".repeat(1000)).len(), 48);
    }

    #[test]
    fn the_largest_possible_answers_stay_under_6_kib_of_trailers() {
        let keys = [
            "k0", "k1", "k2", "k3", "k4", "k5", "k6", "k7", "k8", "k9", "k10", "k11",
        ];
        let mut problem = Problem::new(reason::INVALID_FIELD, huge());
        for key in keys {
            problem = problem.with(key, huge());
        }
        let invalid = Error::InvalidArgument {
            problem: problem.clone(),
            violations: (0..1_000)
                .map(|_| FieldViolation {
                    field: huge(),
                    description: huge(),
                })
                .collect(),
        };
        let failed = Error::FailedPrecondition {
            problem: problem.clone(),
            violations: (0..1_000)
                .map(|_| PreconditionViolation {
                    kind: reason::CUSTOMER_HAS_BLOCKERS,
                    subject: huge(),
                    description: huge(),
                })
                .collect(),
        };
        for error in [invalid, failed, Error::ResourceExhausted(problem)] {
            let bytes = trailer_bytes(Status::from(error));
            assert!(bytes < 6 * 1024, "{bytes} bytes");
        }
    }

    #[test]
    fn a_capped_answer_names_the_first_violations_and_counts_the_rest() {
        let violations = (0..1000)
            .map(|i| FieldViolation {
                field: "update_mask".into(),
                description: format!("{} is not a field of Customer", echo(&format!("p{i}"))),
            })
            .collect();
        let status = Status::from(Error::invalid_fields(violations));
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(
            status.message(),
            "invalid fields: update_mask (and 990 more)"
        );
        let details = status.get_error_details();
        let listed = &details.bad_request().unwrap().field_violations;
        assert_eq!(listed.len(), MAX_VIOLATIONS);
        assert_eq!(listed[0].description, "p0 is not a field of Customer");
        assert_eq!(
            details.error_info().unwrap().metadata["fields"],
            "update_mask"
        );
    }
}
