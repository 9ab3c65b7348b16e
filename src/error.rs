//! The crate's one error type and its one mapping to `tonic::Status` (AIP-193).
//!
//! Every status carries a `google.rpc.ErrorInfo` with a stable reason, the service's domain and the
//! ids involved as metadata. Database and internal failures are logged here with their cause and
//! leave as an opaque `INTERNAL`: database text never reaches a client.

use std::collections::HashMap;

use sea_orm::{DbErr, RuntimeErr};
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// `ErrorInfo.domain` of every error this service returns.
pub const ERROR_DOMAIN: &str = "crm-service";

/// The `RetryInfo` delay suggested with `UNAVAILABLE` and `RESOURCE_EXHAUSTED` (clients add
/// jittered exponential backoff on top).
const RETRY_AFTER: std::time::Duration = std::time::Duration::from_millis(200);

pub type Result<T, E = Error> = std::result::Result<T, E>;

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
        let message = match violations.as_slice() {
            [only] => format!("invalid {}: {}", only.field, only.description),
            many => format!(
                "invalid fields: {}",
                many.iter()
                    .map(|v| v.field.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        let fields = violations
            .iter()
            .map(|v| v.field.as_str())
            .collect::<Vec<_>>()
            .join(",");
        let problem = Problem::new("INVALID_FIELD", message).with("fields", fields);
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

    pub fn internal(cause: impl std::fmt::Display) -> Self {
        Self::Internal(cause.to_string())
    }
}

/// Counts the calls that failed because the database was unreachable or busy. The database watch
/// (`app`) subscribes and checks at once when it moves, so readiness turns NOT_SERVING within a
/// second of an outage that calls have met, not at its next periodic check. A watch channel, not
/// a `Notify`: every watcher (one per server in this process) sees every change, none is lost
/// while a watcher is busy checking.
pub fn database_trouble() -> &'static tokio::sync::watch::Sender<u64> {
    static TROUBLE: std::sync::OnceLock<tokio::sync::watch::Sender<u64>> =
        std::sync::OnceLock::new();
    TROUBLE.get_or_init(|| tokio::sync::watch::Sender::new(0))
}

impl From<DbErr> for Error {
    /// Classifies a database failure: transient ones (pool timeout, lost connection, SQLite busy,
    /// serialization failure or deadlock) become retryable codes, everything else `INTERNAL`.
    /// Constraint violations that mean something to a client are translated where the statement is
    /// issued (the store knows which constraint it risks); any that reach this point are bugs.
    fn from(err: DbErr) -> Self {
        let classified = Self::classify(err);
        if matches!(classified, Self::Unavailable(_)) {
            database_trouble().send_modify(|failures| *failures = failures.wrapping_add(1));
        }
        classified
    }
}

impl Error {
    fn classify(err: DbErr) -> Self {
        if let Some(late) = statement_timeout_at_deadline(&err) {
            return late;
        }
        match &err {
            DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => Self::Unavailable(Problem::new(
                "DATABASE_UNAVAILABLE",
                "the database is unavailable; retry with backoff",
            )),
            DbErr::Exec(RuntimeErr::SqlxError(sqlx))
            | DbErr::Query(RuntimeErr::SqlxError(sqlx)) => {
                use sea_orm::sqlx::Error as SqlxError;
                match &**sqlx {
                    SqlxError::Database(db) => match db.code().as_deref() {
                        // PostgreSQL serialization failure and deadlock: the transaction was
                        // rolled back to break a conflict.
                        Some("40001") | Some("40P01") => Self::Aborted(Problem::new(
                            "TRANSACTION_CONFLICT",
                            "the request conflicted with a concurrent one; retry",
                        )),
                        // SQLITE_BUSY / SQLITE_LOCKED past the busy timeout; PostgreSQL
                        // lock_timeout (55P03), statement_timeout (57014), a session ended for
                        // idling in its transaction (25P03) or by an administrator or a
                        // shutdown (57P01, 57P02, 57P03).
                        Some("5") | Some("6") | Some("55P03") | Some("57014") | Some("25P03")
                        | Some("57P01") | Some("57P02") | Some("57P03") => {
                            Self::Unavailable(Problem::new(
                                "DATABASE_BUSY",
                                "the database is busy; retry with backoff",
                            ))
                        }
                        _ => Self::Internal(err.to_string()),
                    },
                    SqlxError::PoolTimedOut | SqlxError::PoolClosed | SqlxError::Io(_) => {
                        Self::Unavailable(Problem::new(
                            "DATABASE_UNAVAILABLE",
                            "the database is unavailable; retry with backoff",
                        ))
                    }
                    _ => Self::Internal(err.to_string()),
                }
            }
            _ => Self::Internal(err.to_string()),
        }
    }
}

/// A statement cancelled by the statement timeout that `Store::begin_write` cuts to the call's
/// deadline, once that deadline has passed: the caller's deadline, not a busy database, stopped
/// the work, so the call ends DEADLINE_EXCEEDED.
fn statement_timeout_at_deadline(err: &DbErr) -> Option<Error> {
    let (DbErr::Exec(RuntimeErr::SqlxError(sqlx)) | DbErr::Query(RuntimeErr::SqlxError(sqlx))) =
        err
    else {
        return None;
    };
    let sea_orm::sqlx::Error::Database(db) = &**sqlx else {
        return None;
    };
    if db.code().as_deref() != Some("57014") {
        return None;
    }
    crate::call::past_deadline()
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
                let problem = Problem::new("NOT_FOUND", format!("{resource} {id} not found"))
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
                let problem = Problem::new("INTERNAL", "internal error");
                (Code::Internal, problem, Vec::new(), Vec::new())
            }
        };
        let metadata: HashMap<String, String> = problem
            .metadata
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
        let mut details = ErrorDetails::new();
        details.set_error_info(problem.reason, ERROR_DOMAIN, metadata);
        if matches!(code, Code::ResourceExhausted | Code::Unavailable) {
            details.set_retry_info(Some(RETRY_AFTER));
        }
        for v in violations {
            details.add_bad_request_violation(v.field, v.description);
        }
        for v in preconditions {
            details.add_precondition_failure_violation(v.kind, v.subject, v.description);
        }
        Status::with_error_details(code, problem.message, details)
    }
}
