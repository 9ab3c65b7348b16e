//! The rules of the CRM: who may do what, what is valid, how customers and their records change.
//! Knows nothing of gRPC; talks to the database only through `crate::store`.

pub mod access;
pub mod approval;
pub mod audit;
pub mod batches;
pub mod customers;
pub mod deletion;
pub mod duplicates;
pub mod escalation;
pub mod events;
pub mod export;
pub mod idempotency;
mod inbox;
pub mod model;
pub mod mutation;
pub mod paging;
pub mod policy;
pub mod purge;
pub mod records;
pub mod tenant_settings;
pub mod validate;

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, SubsecRound, Utc};
use uuid::Uuid;

use crate::error::{Error, Problem};
use crate::reason;

/// The time source of every write and of every rule that depends on time (expiry, retention).
/// Truncated to microseconds, the precision PostgreSQL keeps, so a value read back equals the
/// value written on both databases. The server runs on the system's clock; tests move an
/// adjustable one forward instead of rewriting timestamps in the database.
#[derive(Debug, Clone, Default)]
pub struct Clock {
    /// Microseconds this clock runs ahead of the system's, shared by every clone; `None` for the
    /// system's clock.
    ahead: Option<Arc<AtomicI64>>,
}

impl Clock {
    pub fn system() -> Self {
        Self::default()
    }

    /// A clock that [`Clock::advance`] moves forward, with every clone of it.
    pub fn adjustable() -> Self {
        Self {
            ahead: Some(Arc::new(AtomicI64::new(0))),
        }
    }

    /// Moves an adjustable clock forward; the system's clock cannot be moved, and asking is a bug
    /// in the test that does.
    pub fn advance(&self, by: std::time::Duration) {
        let ahead = self
            .ahead
            .as_ref()
            .expect("only a Clock::adjustable() can be advanced");
        let micros = i64::try_from(by.as_micros()).unwrap_or(i64::MAX);
        ahead.fetch_add(micros, Ordering::Relaxed);
    }

    pub fn now(&self) -> DateTime<Utc> {
        let now = Utc::now().trunc_subsecs(6);
        match &self.ahead {
            None => now,
            Some(ahead) => now + chrono::Duration::microseconds(ahead.load(Ordering::Relaxed)),
        }
    }
}

/// A span of the std kind as chrono's, saturating: a setting too long for chrono means "never".
pub(crate) fn chrono_duration(d: std::time::Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

/// An empty etag means "unconditional"; anything else must equal the current version.
pub(crate) fn etag_matches(etag: &str, version: i64) -> bool {
    etag.is_empty() || etag == version.to_string()
}

/// A conditional write whose etag is not the resource's current one. The client may hold an
/// older version or an etag that was never this resource's (a typo, another resource's, a
/// garbled header): the message quotes both etags, so the client can tell which, and
/// `currentEtag` carries the current one for a retry.
pub(crate) fn etag_mismatch(resource: &'static str, id: Uuid, sent: &str, current: &str) -> Error {
    // Etags are versions: a smaller number is a version this resource had.
    let older = matches!(
        (sent.parse::<i64>(), current.parse::<i64>()),
        (Ok(sent), Ok(current)) if sent >= 1 && sent < current
    );
    let changed = if older {
        format!(" (an older version of the {resource})")
    } else {
        String::new()
    };
    Error::Aborted(
        Problem::new(
            reason::ETAG_MISMATCH,
            format!(
                "etag {:?} does not match the {resource}'s current etag {current:?}{changed}: \
                 read the {resource} again (or use the current etag) and retry",
                crate::error::echo(sent)
            ),
        )
        .with("resource", resource)
        .with("id", id)
        .with("currentEtag", current),
    )
}

/// A conditional update that found its row at another version than the one read under the
/// row's lock: another write got there first.
pub(crate) fn changed_concurrently(resource: &'static str, id: Uuid) -> Error {
    Error::Aborted(
        Problem::new(
            reason::ETAG_MISMATCH,
            format!(
                "the {resource} changed while this write was applied: read it again and retry \
                 with its new etag"
            ),
        )
        .with("resource", resource)
        .with("id", id)
        .with("currentEtag", "unknown"),
    )
}

pub(crate) fn customer_deleted(id: Uuid) -> Error {
    Error::failed_precondition(
        Problem::new(
            reason::CUSTOMER_DELETED,
            "the customer is deleted: restore it before changing it or its records",
        )
        .with("customerId", id),
    )
}
