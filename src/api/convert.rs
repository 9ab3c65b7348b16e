//! Conversions shared by the adapters: caller, ids, enums, timestamps, idempotency keys.

use chrono::{DateTime, Utc};
use prost::Message;
use sha2::{Digest, Sha256};
use tonic::{Request, Status};
use uuid::Uuid;

use crate::domain::access::Caller;
use crate::domain::idempotency::Idempotency;
use crate::domain::mutation::Operation;
use crate::error::{Error, Problem, Result};
use crate::reason;

/// The caller the auth interceptor verified. Absent only if a service was mounted without it.
pub fn caller<T>(request: &Request<T>) -> Result<Caller, Status> {
    request
        .extensions()
        .get::<Caller>()
        .cloned()
        .ok_or_else(|| {
            Error::Unauthenticated(Problem::new(
                reason::MISSING_TOKEN,
                "send authorization: Bearer <token>",
            ))
            .into()
        })
}

pub fn timestamp(time: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: time.timestamp(),
        nanos: time.timestamp_subsec_nanos() as i32,
    }
}

pub fn optional_timestamp(time: Option<DateTime<Utc>>) -> Option<prost_types::Timestamp> {
    time.map(timestamp)
}

/// A client timestamp, truncated to microseconds (what the databases keep).
pub fn from_timestamp(field: &str, ts: &prost_types::Timestamp) -> Result<DateTime<Utc>> {
    if !(0..1_000_000_000).contains(&ts.nanos) {
        return Err(Error::invalid_field(
            field,
            "nanos must be between 0 and 999,999,999",
        ));
    }
    let micros_as_nanos = (ts.nanos / 1000) * 1000;
    DateTime::from_timestamp(ts.seconds, micros_as_nanos as u32)
        .filter(|t| (1..=9999).contains(&chrono::Datelike::year(t)))
        .ok_or_else(|| Error::invalid_field(field, "must be between years 1 and 9999"))
}

/// A proto enum field: `None` for UNSPECIFIED (0), `INVALID_ARGUMENT` for a number the contract
/// does not define.
pub fn enum_field<E: TryFrom<i32>>(field: &str, value: i32) -> Result<Option<E>> {
    if value == 0 {
        return Ok(None);
    }
    E::try_from(value)
        .map(Some)
        .map_err(|_| Error::invalid_field(field, format!("{value} is not a defined value")))
}

/// The idempotency key of a mutation: its `request_id` (a UUID, or empty for none) and a digest of
/// the operation and its arguments. `arguments` is the request with `request_id` cleared, encoded
/// by us, so that the digest does not depend on how the client encoded it.
pub fn idempotency_key(
    request_id: &str,
    operation: Operation,
    arguments: &impl Message,
) -> Result<Option<Idempotency>> {
    if request_id.is_empty() {
        return Ok(None);
    }
    let request_id = Uuid::try_parse(request_id)
        .map_err(|_| Error::invalid_field("request_id", "must be a UUID (AIP-155)"))?;
    let mut hasher = Sha256::new();
    hasher.update(operation.fingerprint_label().as_bytes());
    hasher.update([0]);
    hasher.update(arguments.encode_to_vec());
    Ok(Some(Idempotency {
        request_id,
        fingerprint: hasher.finalize().into(),
    }))
}

/// Runs a mutation to its end even if the client goes away: dropping a request's future mid-
/// transaction can leave a PostgreSQL connection inside the transaction (sqlx #4393), so the
/// transaction lives in its own task and always commits or rolls back. The task keeps the call's
/// deadline, which bounds its statements on PostgreSQL.
pub async fn detached<T, F>(work: F) -> Result<T>
where
    F: Future<Output = Result<T>> + Send + 'static,
    T: Send + 'static,
{
    crate::call::spawn(work)
        .await
        .map_err(|e| Error::internal(format!("mutation task failed: {e}")))?
}

/// An optional id field: empty is `None`, anything else must be a UUID.
pub fn optional_id(field: &str, value: &str) -> Result<Option<uuid::Uuid>> {
    if value.is_empty() {
        Ok(None)
    } else {
        crate::domain::validate::parse_id(field, value).map(Some)
    }
}
