//! Escalation: a deletion request or batch still PENDING when the escalation time the tenant set
//! has passed (fixed at submission as its `escalate_time`) is escalated once: an audit entry, and
//! with it a DELETION_ESCALATED event on the tenant's stream for a notifier to chase the people it
//! waits for. Nothing about the request changes: it still waits for the same deciders.

use uuid::Uuid;

use super::Clock;
use super::access::Caller;
use super::audit::{self, Entry};
use super::model::deletion::RequestState;
use crate::error::Result;
use crate::store::escalation::{Due, Escalated};
use crate::store::{self, Store};

/// Who the audit trail names for an escalation.
pub const ESCALATOR: &str = "system:escalation";

fn escalator(tenant: &str) -> Caller {
    Caller {
        tenant: tenant.to_owned(),
        subject: ESCALATOR.into(),
        roles: Vec::new(),
        unknown_roles: Vec::new(),
        claims: Default::default(),
        trace_id: String::new(),
    }
}

/// What one pass escalated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EscalatedItem {
    pub tenant: String,
    /// A deletion request (`true`) or a batch.
    pub request: bool,
    pub id: Uuid,
    pub pending_seconds: i64,
}

#[derive(Clone)]
pub struct Escalations {
    store: Store,
    clock: Clock,
}

impl Escalations {
    pub fn new(store: Store, clock: Clock) -> Self {
        Self { store, clock }
    }

    /// One pass, in one transaction: escalates what is due, at most `batch` requests and `batch`
    /// batches. A request whose graph changed (it reads STALE) is marked without an event: it
    /// waits for nobody. Every replica may run it; each row is escalated once (`store::escalation`).
    pub async fn run_due(&self, batch: u64) -> Result<Vec<EscalatedItem>> {
        let now = self.clock.now();
        let tx = self.store.begin_write().await?;
        let mut escalated = Vec::new();
        for due in store::escalation::due(tx.conn(), now, batch).await? {
            let Due {
                kind, tenant, id, ..
            } = &due;
            if !store::escalation::mark(tx.conn(), tenant, *kind, *id, now).await? {
                continue;
            }
            if *kind == Escalated::Request {
                let read = store::deletion::find_request_as_read(tx.conn(), tenant, *id).await?;
                let waiting = read.is_some_and(|r| r.as_seen(now).state == RequestState::Pending);
                if !waiting {
                    continue;
                }
            }
            let pending_seconds = (now - due.create_time).num_seconds();
            let (action, target_type) = match kind {
                Escalated::Request => ("deletion_request.escalate", "deletion_request"),
                Escalated::Batch => ("deletion_batch.escalate", "deletion_batch"),
            };
            let entry = Entry {
                action,
                target_type,
                target_id: *id,
                customer_id: due.customer_id,
                summary: format!("pending_seconds={pending_seconds}"),
            };
            audit::record(&tx, &escalator(tenant), None, now, entry).await?;
            escalated.push(EscalatedItem {
                tenant: tenant.clone(),
                request: *kind == Escalated::Request,
                id: *id,
                pending_seconds,
            });
        }
        tx.commit().await?;
        Ok(escalated)
    }
}
