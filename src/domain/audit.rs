//! The tamper-evident audit trail: one hash chain per tenant. Each event's hash is SHA-256 over the
//! previous hash and a canonical, length-prefixed encoding of the event's fields in a fixed order,
//! so a changed field, a deleted or inserted event, or two swapped events break the chain exactly
//! where it happened. The encoding is versioned and pinned by a golden vector: changing it would
//! orphan every stored hash.

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::access::Caller;
use crate::error::Result;
use crate::store::{self, WriteTx};

pub use super::model::audit::{AuditEvent, AuditFilter};

/// The hash before the first event of a tenant.
pub const GENESIS: [u8; 32] = [0; 32];
const ENCODING_VERSION: u8 = 1;

fn field(hasher: &mut Sha256, bytes: &[u8]) {
    hasher.update((bytes.len() as u64).to_be_bytes());
    hasher.update(bytes);
}

/// The hash of `event` chained after `previous` (the event's own hash fields are ignored).
pub fn chain_hash(previous: &[u8; 32], event: &AuditEvent) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update([ENCODING_VERSION]);
    h.update(previous);
    field(&mut h, event.tenant.as_bytes());
    h.update(event.sequence.to_be_bytes());
    field(
        &mut h,
        event
            .time
            .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
            .as_bytes(),
    );
    field(&mut h, event.actor.as_bytes());
    field(&mut h, event.action.as_bytes());
    field(&mut h, event.target_type.as_bytes());
    field(&mut h, event.target_id.as_bytes());
    field(
        &mut h,
        event
            .customer_id
            .map(|id| *id.as_bytes())
            .as_ref()
            .map_or(&[][..], |b| &b[..]),
    );
    field(
        &mut h,
        event
            .request_id
            .map(|id| *id.as_bytes())
            .as_ref()
            .map_or(&[][..], |b| &b[..]),
    );
    field(&mut h, event.trace_id.as_bytes());
    field(&mut h, event.summary.as_bytes());
    h.finalize().into()
}

/// What a mutation appends to the trail: no personal data in `summary` (ids, field names, counts).
#[derive(Debug, Clone)]
pub struct Entry {
    pub action: &'static str,
    pub target_type: &'static str,
    pub target_id: Uuid,
    pub customer_id: Option<Uuid>,
    pub summary: String,
}

/// How the store links this domain's events into a tenant's chain (`chain_hash` after
/// `GENESIS`).
pub const CHAIN: store::audit::ChainRule = store::audit::ChainRule {
    genesis: GENESIS,
    link: chain_hash,
};

/// Appends `entry` to the caller's tenant chain, in the mutation's transaction.
///
/// The event is queued on the transaction and takes its place in the chain at the commit: the
/// store then locks the tenant's head row, gives the transaction's events the next sequences and
/// links them with `CHAIN` (the hash is computed by this module's rule, and only by it), writes
/// them and moves the head, and commits. The head is the tenant's critical section; everything
/// else the transaction does (its reads, its rows, the idempotency record) happens before it is
/// taken, so a tenant's writers queue only for the chain's own writes. Sequences stay in commit
/// order, without gaps.
pub async fn record(
    tx: &WriteTx,
    caller: &Caller,
    request_id: Option<Uuid>,
    time: DateTime<Utc>,
    entry: Entry,
) -> Result<()> {
    tx.note_action(entry.action);
    let event = AuditEvent {
        tenant: caller.tenant.clone(),
        // Sequence and hashes are given at the commit, under the head's lock.
        sequence: 0,
        time,
        actor: caller.subject.clone(),
        action: entry.action.to_owned(),
        target_type: entry.target_type.to_owned(),
        target_id: entry.target_id,
        customer_id: entry.customer_id,
        request_id,
        trace_id: caller.trace_id.clone(),
        summary: entry.summary,
        previous_hash: GENESIS,
        hash: GENESIS,
    };
    let outbox = super::events::outbox_all(
        &event.action,
        &event.target_type,
        event.target_id,
        event.customer_id,
        &event.summary,
    );
    tx.queue_audit(
        &caller.tenant,
        CHAIN,
        store::audit::Queued { event, outbox },
    )
}

/// Where a chain stops checking out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Break {
    pub sequence: i64,
    pub problem: String,
}

/// Checks consecutive events (in sequence order) following `previous` at `expected_sequence`.
/// Returns the hash and next sequence to continue from, or the first break.
pub fn verify_run(
    mut previous: [u8; 32],
    mut expected_sequence: i64,
    events: &[AuditEvent],
) -> Result<([u8; 32], i64), Break> {
    for event in events {
        if event.sequence != expected_sequence {
            return Err(Break {
                sequence: expected_sequence,
                problem: format!(
                    "event {expected_sequence} is missing (found {} next)",
                    event.sequence
                ),
            });
        }
        if event.previous_hash != previous {
            return Err(Break {
                sequence: event.sequence,
                problem: "previous_hash does not match the chain".into(),
            });
        }
        if chain_hash(&previous, event) != event.hash {
            return Err(Break {
                sequence: event.sequence,
                problem: "the event's content does not match its hash".into(),
            });
        }
        previous = event.hash;
        expected_sequence += 1;
    }
    Ok((previous, expected_sequence))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(sequence: i64, previous: [u8; 32]) -> AuditEvent {
        let mut e = AuditEvent {
            tenant: "acme".into(),
            sequence,
            time: DateTime::from_timestamp(1_800_000_000, 123_456_000).unwrap(),
            actor: "alice".into(),
            action: "customer.create".into(),
            target_type: "customer".into(),
            target_id: Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0001),
            customer_id: Some(Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0001)),
            request_id: None,
            trace_id: String::new(),
            summary: "fields=name,email".into(),
            previous_hash: previous,
            hash: [0; 32],
        };
        e.hash = chain_hash(&previous, &e);
        e
    }

    #[test]
    fn the_canonical_encoding_is_pinned() {
        let hex: String = event(1, GENESIS)
            .hash
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(hex, GOLDEN);
    }

    // Pinned when the encoding was introduced; a change here orphans every stored hash.
    const GOLDEN: &str = "3de54b35d5596c099e8ead7e50062ec1df9218a60233f73484bc9480359f1f18";

    #[test]
    fn tampering_is_found_at_its_sequence() {
        let a = event(1, GENESIS);
        let b = event(2, a.hash);
        let c = event(3, b.hash);
        assert!(verify_run(GENESIS, 1, &[a.clone(), b.clone(), c.clone()]).is_ok());
        let mut edited = b.clone();
        edited.summary = "fields=phone".into();
        assert_eq!(
            verify_run(GENESIS, 1, &[a.clone(), edited, c.clone()])
                .unwrap_err()
                .sequence,
            2
        );
        assert_eq!(
            verify_run(GENESIS, 1, &[a.clone(), c.clone()])
                .unwrap_err()
                .sequence,
            2
        );
        let (mut b2, mut c2) = (b.clone(), c.clone());
        std::mem::swap(&mut b2.sequence, &mut c2.sequence);
        assert_eq!(
            verify_run(GENESIS, 1, &[a, c2, b2]).unwrap_err().sequence,
            2
        );
    }
}

/// Reading and verifying the trail (supervisors and admins).
#[derive(Clone)]
pub struct AuditLog {
    store: crate::store::Store,
    page_key: super::paging::PageTokenKey,
    clock: super::Clock,
}

/// The outcome of walking a tenant's chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verification {
    pub events_checked: i64,
    pub first_break: Option<Break>,
    pub head_sequence: i64,
    pub head_hash: [u8; 32],
}

/// Events read per query while verifying: bounded memory whatever the chain's length.
const VERIFY_BATCH: u64 = 1000;

impl AuditLog {
    pub fn new(
        store: crate::store::Store,
        page_key: super::paging::PageTokenKey,
        clock: super::Clock,
    ) -> Self {
        Self {
            store,
            page_key,
            clock,
        }
    }

    pub async fn list(
        &self,
        caller: &Caller,
        filter: AuditFilter,
        page_size: i32,
        page_token: &str,
    ) -> Result<super::paging::Page<AuditEvent>> {
        caller.require(super::access::Action::ReadAudit)?;
        let limit = super::paging::page_size("page_size", page_size)?;
        let mut v = super::validate::Violations::new();
        if let Some(action) = &filter.action {
            v.text("action", action, 64);
        }
        v.finish()?;
        let parts = [
            "ListAuditEvents".to_owned(),
            filter
                .customer_id
                .map(|c| c.to_string())
                .unwrap_or_default(),
            filter.action.clone().unwrap_or_default(),
            filter
                .start_time
                .map(|t| t.to_rfc3339())
                .unwrap_or_default(),
            filter.end_time.map(|t| t.to_rfc3339()).unwrap_or_default(),
        ];
        let fingerprint = super::paging::QueryFingerprint::of(
            &parts.iter().map(String::as_str).collect::<Vec<_>>(),
        );
        let now = self.clock.now().timestamp();
        // The cursor is a sequence number, sealed in the token's id slot.
        let after = if page_token.is_empty() {
            0
        } else {
            self.page_key
                .open("page_token", page_token, &caller.tenant, fingerprint, now)?
                .as_u128() as i64
        };
        let mut items =
            store::audit::list(self.store.conn(), &caller.tenant, &filter, after, limit + 1)
                .await?;
        let next_page_token = if items.len() as u64 > limit {
            items.truncate(limit as usize);
            items.last().map(|last| {
                self.page_key.seal(
                    &caller.tenant,
                    fingerprint,
                    Uuid::from_u128(last.sequence as u128),
                    now,
                )
            })
        } else {
            None
        };
        Ok(super::paging::Page {
            items,
            next_page_token,
        })
    }

    pub async fn verify(&self, caller: &Caller) -> Result<Verification> {
        caller.require(super::access::Action::ReadAudit)?;
        let tenant = &caller.tenant;
        // The head first: events appended while we walk lie beyond it and are not judged.
        let (head_sequence, head_hash) = store::audit::head(self.store.conn(), tenant)
            .await?
            .unwrap_or((0, GENESIS));
        let (checked, last_hash, mut first_break) = self.walk(tenant, head_sequence).await?;
        if first_break.is_none() && last_hash != head_hash {
            first_break = Some(Break {
                sequence: head_sequence,
                problem: "the last event does not match the chain's recorded head".into(),
            });
        }
        if first_break.is_none() {
            first_break = self.beyond_head(tenant, head_sequence).await?;
        }
        Ok(Verification {
            events_checked: checked,
            first_break,
            head_sequence,
            head_hash,
        })
    }

    /// Walks the chain from its first event to `head_sequence` in batches: how many events
    /// linked, the hash of the last one, and the first break.
    async fn walk(
        &self,
        tenant: &str,
        head_sequence: i64,
    ) -> Result<(i64, [u8; 32], Option<Break>)> {
        let all = AuditFilter::default();
        let (mut previous, mut expected, mut checked) = (GENESIS, 1i64, 0i64);
        while expected <= head_sequence {
            let batch =
                store::audit::list(self.store.conn(), tenant, &all, expected - 1, VERIFY_BATCH)
                    .await?;
            let batch: Vec<AuditEvent> = batch
                .into_iter()
                .filter(|e| e.sequence <= head_sequence)
                .collect();
            if batch.is_empty() {
                let missing = Break {
                    sequence: expected,
                    problem: format!("event {expected} is missing"),
                };
                return Ok((checked, previous, Some(missing)));
            }
            match verify_run(previous, expected, &batch) {
                Ok((hash, next)) => {
                    checked += next - expected;
                    previous = hash;
                    expected = next;
                }
                Err(b) => {
                    checked += b.sequence - expected;
                    return Ok((checked, previous, Some(b)));
                }
            }
        }
        Ok((checked, previous, None))
    }

    /// Events past the head read at the start were appended since (and their transactions moved
    /// the head with them) or were put there by hand: read how far the events go, then the head
    /// again. An event the head does not cover is not part of the chain, however well it links,
    /// and it is listed like any other, so it must not pass as valid.
    async fn beyond_head(&self, tenant: &str, head_sequence: i64) -> Result<Option<Break>> {
        let conn = self.store.conn();
        let last = store::audit::last_sequence(conn, tenant).await?;
        if last <= head_sequence {
            return Ok(None);
        }
        let (current_head, _) = store::audit::head(conn, tenant)
            .await?
            .unwrap_or((0, GENESIS));
        Ok((last > current_head).then(|| Break {
            sequence: current_head + 1,
            problem: format!(
                "events up to {last} lie beyond the chain's recorded head ({current_head})"
            ),
        }))
    }
}
