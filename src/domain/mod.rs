//! The rules of the CRM: who may do what, what is valid, how customers and their records change.
//! Knows nothing of gRPC; talks to the database only through `crate::store`.

pub mod access;
pub mod audit;
pub mod customers;
pub mod deletion;
pub mod events;
pub mod export;
pub mod idempotency;
pub mod paging;
pub mod policy;
pub mod purge;
pub mod records;
pub mod request_filter;
pub mod validate;

use chrono::{DateTime, SubsecRound, Utc};
use uuid::Uuid;

use crate::error::{Error, Problem};

/// The time source of every write. Truncated to microseconds, the precision PostgreSQL keeps, so a
/// value read back equals the value written on both databases.
#[derive(Debug, Clone, Copy, Default)]
pub struct Clock;

impl Clock {
    pub fn now(&self) -> DateTime<Utc> {
        Utc::now().trunc_subsecs(6)
    }
}

/// An empty etag means "unconditional"; anything else must equal the current version.
pub(crate) fn etag_matches(etag: &str, version: i64) -> bool {
    etag.is_empty() || etag == version.to_string()
}

pub(crate) fn etag_mismatch(resource: &'static str, id: Uuid, current: &str) -> Error {
    Error::Aborted(
        Problem::new(
            "ETAG_MISMATCH",
            format!("the {resource} changed since you read it: read it again and retry with its new etag"),
        )
        .with("resource", resource)
        .with("id", id)
        .with("currentEtag", current),
    )
}

pub(crate) fn customer_deleted(id: Uuid) -> Error {
    Error::failed_precondition(
        Problem::new(
            "CUSTOMER_DELETED",
            "the customer is deleted: restore it before changing it or its records",
        )
        .with("customerId", id),
    )
}
