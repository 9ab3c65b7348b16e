//! Database failures in the service's terms: which are transient (and retryable), which mean the
//! call's deadline passed, and which are bugs. Every `?` on a SeaORM result in the store goes
//! through here; the error type itself (`crate::error`) knows nothing of the database.

use sea_orm::{DbErr, RuntimeErr};

use crate::error::{Error, Problem};
use crate::reason;

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
        let classified = classify(err);
        if matches!(classified, Error::Unavailable(_)) {
            database_trouble().send_modify(|failures| *failures = failures.wrapping_add(1));
        }
        classified
    }
}

fn classify(err: DbErr) -> Error {
    if let Some(late) = statement_timeout_at_deadline(&err) {
        return late;
    }
    match &err {
        DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => Error::Unavailable(Problem::new(
            reason::DATABASE_UNAVAILABLE,
            "the database is unavailable; retry with backoff",
        )),
        DbErr::Exec(RuntimeErr::SqlxError(sqlx)) | DbErr::Query(RuntimeErr::SqlxError(sqlx)) => {
            use sea_orm::sqlx::Error as SqlxError;
            match &**sqlx {
                SqlxError::Database(db) => match db.code().as_deref() {
                    // PostgreSQL serialization failure and deadlock: the transaction was
                    // rolled back to break a conflict.
                    Some("40001") | Some("40P01") => Error::Aborted(Problem::new(
                        reason::TRANSACTION_CONFLICT,
                        "the request conflicted with a concurrent one; retry",
                    )),
                    // SQLITE_BUSY / SQLITE_LOCKED past the busy timeout; PostgreSQL
                    // lock_timeout (55P03), statement_timeout (57014), a session ended for
                    // idling in its transaction (25P03) or by an administrator or a
                    // shutdown (57P01, 57P02, 57P03).
                    Some("5") | Some("6") | Some("55P03") | Some("57014") | Some("25P03")
                    | Some("57P01") | Some("57P02") | Some("57P03") => {
                        Error::Unavailable(Problem::new(
                            reason::DATABASE_BUSY,
                            "the database is busy; retry with backoff",
                        ))
                    }
                    _ => Error::Internal(err.to_string()),
                },
                SqlxError::PoolTimedOut | SqlxError::PoolClosed | SqlxError::Io(_) => {
                    Error::Unavailable(Problem::new(
                        reason::DATABASE_UNAVAILABLE,
                        "the database is unavailable; retry with backoff",
                    ))
                }
                _ => Error::Internal(err.to_string()),
            }
        }
        _ => Error::Internal(err.to_string()),
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
