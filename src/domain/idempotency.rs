//! Idempotent mutations (AIP-155). The key is checked and the first answer stored inside the
//! mutation's own transaction, so a retry either sees the committed first answer or waits for it.
//! Keys are per tenant; a key reused by another caller or with other arguments is an error.

use serde::{Serialize, de::DeserializeOwned};
use uuid::Uuid;

use super::access::Caller;
use crate::error::{Error, Problem, Result};
use crate::reason;
use crate::store::{self, WriteTx};

/// A client's `request_id` and a digest of the request it came with (operation and arguments).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Idempotency {
    pub request_id: Uuid,
    pub fingerprint: [u8; 32],
}

fn reused(key: &Idempotency) -> Error {
    Error::InvalidArgument {
        problem: Problem::new(
            reason::REQUEST_ID_REUSED,
            "request_id was already used for a different request: use a new request_id for new arguments",
        )
        .with("requestId", key.request_id),
        violations: vec![crate::error::FieldViolation {
            field: "request_id".into(),
            description: "was already used with other arguments".into(),
        }],
    }
}

/// The stored answer of a request already done with this key, if any.
pub async fn replay<T: DeserializeOwned>(
    tx: &WriteTx,
    caller: &Caller,
    key: Option<&Idempotency>,
    operation: &str,
) -> Result<Option<T>> {
    let Some(key) = key else { return Ok(None) };
    // Wait for a duplicate in flight, so that what follows sees its committed answer.
    store::idempotency::lock(tx.conn(), &caller.tenant, key.request_id).await?;
    let Some(stored) = store::idempotency::find(tx.conn(), &caller.tenant, key.request_id).await?
    else {
        return Ok(None);
    };
    if stored.subject != caller.subject
        || stored.operation != operation
        || stored.fingerprint != key.fingerprint
    {
        return Err(reused(key));
    }
    serde_json::from_str(&stored.response)
        .map(Some)
        .map_err(|e| Error::internal(format!("stored idempotent response unreadable: {e}")))
}

/// Stores the answer of this request under its key, in the request's transaction.
pub async fn remember<T: Serialize>(
    tx: &WriteTx,
    caller: &Caller,
    key: Option<&Idempotency>,
    operation: &str,
    answer: &T,
) -> Result<()> {
    let Some(key) = key else { return Ok(()) };
    let response = serde_json::to_string(answer).map_err(Error::internal)?;
    let stored = store::idempotency::insert(
        tx.conn(),
        &caller.tenant,
        key.request_id,
        &caller.subject,
        operation,
        &key.fingerprint,
        &response,
    )
    .await?;
    match stored {
        store::idempotency::Stored::Stored => Ok(()),
        // A duplicate committed first while this request ran: the caller retries and replays it.
        store::idempotency::Stored::AlreadyStored => Err(Error::Aborted(Problem::new(
            reason::REQUEST_ID_IN_FLIGHT,
            "a request with this request_id is in flight; retry",
        ))),
    }
}

/// Runs `attempt` again when it lost a race to a duplicate of itself: the second run replays the
/// first one's answer. Transaction conflicts the database broke (deadlock, serialization) are
/// retried the same way, a bounded number of times. (`REQUEST_ID_IN_FLIGHT` is what
/// [`remember`] returns when a concurrent request with the same key committed first:
/// PostgreSQL; SQLite's single writer never gets there.)
pub async fn retry_in_flight<T, F, Fut>(mut attempt: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    const ATTEMPTS: usize = 3;
    for _ in 1..ATTEMPTS {
        match attempt().await {
            Err(Error::Aborted(p))
                if p.reason == reason::REQUEST_ID_IN_FLIGHT
                    || p.reason == reason::TRANSACTION_CONFLICT =>
            {
                continue;
            }
            other => return other,
        }
    }
    attempt().await
}
