//! Erasure (docs/design.md section 5, "final when it must be"): the purger that erases deleted
//! customers, and records deleted on their own, once their retention has passed, PurgeCustomer (an
//! admin's erasure now), and the legal hold that forbids both. An erased customer is a tombstone:
//! NOT_FOUND to every call; the records its deletion kept (paid orders, ended contracts) still
//! point at it. An erased record is gone: NOT_FOUND.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::access::{Action, Caller};
use super::audit::{self, Entry};
use super::customers::Customer;
use super::idempotency::Idempotency;
use super::mutation::{self, Mutation, Operation};
use super::records::RecordKind;
use super::validate::Violations;
use super::{Clock, changed_concurrently};
use crate::error::{Error, Problem, Result};
use crate::reason;
use crate::store::{self, Store};

const REASON_MAX: usize = 1000;
/// The actor the purger's audit events name.
pub const PURGER: &str = "system:purger";

/// What erasing a customer removed and kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Erased {
    pub customer_id: Uuid,
    pub erased_records: u64,
    pub kept_records: u64,
}

/// A record deleted on its own that the purger erased once its purge_time had passed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErasedRecord {
    pub tenant: String,
    pub kind: RecordKind,
    pub id: Uuid,
    pub customer_id: Uuid,
}

/// One pass of the purger.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PurgeReport {
    /// Customers: (tenant, what was erased), in the order done.
    pub erased: Vec<(String, Erased)>,
    /// Records deleted on their own, in the order done.
    pub records: Vec<ErasedRecord>,
}

impl PurgeReport {
    /// Whether the pass did as much as a batch allows, so another pass may find more due.
    pub fn filled(&self, batch: u64) -> bool {
        self.erased.len() as u64 >= batch || self.records.len() as u64 >= batch
    }
}

fn under_hold(id: Uuid) -> Error {
    Error::failed_precondition(
        Problem::new(
            reason::LEGAL_HOLD,
            "the customer is under legal hold: an admin must lift it first",
        )
        .with("customerId", id),
    )
}

/// The purger as the audit trail names it, in `tenant`.
fn purger(tenant: &str) -> Caller {
    Caller {
        tenant: tenant.to_owned(),
        subject: PURGER.into(),
        roles: Vec::new(),
        unknown_roles: Vec::new(),
        claims: Default::default(),
        trace_id: String::new(),
    }
}

#[derive(Clone)]
pub struct Purges {
    store: Store,
    clock: Clock,
    /// An erasure committed but its checkpoint could not complete (a reader held an older
    /// snapshot): the next pass of the purger tries again.
    checkpoint_owed: Arc<AtomicBool>,
}

impl Purges {
    pub fn new(store: Store, clock: Clock) -> Self {
        Self {
            store,
            clock,
            checkpoint_owed: Arc::default(),
        }
    }

    /// After an erasure commits: clears what the database can clear online of the erased bytes
    /// (`Store::checkpoint_erasure`), or notes that it is still owed. The erasure itself stands
    /// either way, so a failure here is logged, not returned.
    async fn checkpoint_erasure(&self) {
        let done = match self.store.checkpoint_erasure().await {
            Ok(done) => done,
            Err(e) => {
                tracing::warn!(error = %e, "checkpoint after an erasure failed; retrying at the next purge pass");
                false
            }
        };
        if !done {
            tracing::warn!(
                "a reader kept the checkpoint after an erasure from completing; retrying at the next purge pass"
            );
        }
        self.checkpoint_owed.store(!done, Ordering::SeqCst);
    }

    /// Rewrites the tables erasure touches so that no file keeps erased bytes
    /// (`store::purge::rewrite`): the operator's step where even free space must hold nothing.
    pub async fn rewrite(&self) -> Result<Vec<store::purge::Rewritten>> {
        store::purge::rewrite(&self.store).await
    }

    /// Erases a deleted customer now. Admin only; not under legal hold.
    pub async fn purge_customer(
        &self,
        caller: &Caller,
        id: Uuid,
        validate_only: bool,
        key: Option<Idempotency>,
    ) -> Result<Erased> {
        caller.require(Action::Erase)?;
        let erased = mutation::run(&self.store, &self.clock, Mutation::new(caller, Operation::PurgeCustomer, key.as_ref()).validate_only(validate_only), |change| async move {
            let tx = change.tx();
            let customer = store::customers::find_for_update(tx.conn(), &caller.tenant, id)
                .await?
                .ok_or_else(|| Error::not_found("customer", id))?;
            if !customer.is_deleted() {
                return Err(Error::failed_precondition(
                    Problem::new(
                        reason::CUSTOMER_NOT_DELETED,
                        "only a deleted customer can be erased: its deletion must be previewed and approved first",
                    )
                    .with("customerId", id),
                ));
            }
            if customer.legal_hold {
                return Err(under_hold(id));
            }
            if validate_only {
                let (erased_records, kept_records) = store::purge::erasable_counts(tx.conn(), &caller.tenant, id).await?;
                return Ok(Erased { customer_id: id, erased_records, kept_records });
            }
            let now = change.now;
            let (erased_records, kept_records) = store::purge::erase(tx.conn(), &caller.tenant, id, now).await?;
            change.audit(Entry {
                action: "customer.purge",
                target_type: "customer",
                target_id: id,
                customer_id: Some(id),
                summary: format!("erased={erased_records} kept={kept_records} by=request"),
            })
            .await?;
            let outcome = Erased { customer_id: id, erased_records, kept_records };
                        Ok(outcome)
        })
        .await?;
        if !validate_only {
            self.checkpoint_erasure().await;
        }
        Ok(erased)
    }

    /// Sets or lifts a legal hold, moving the graph etag on (so open deletion requests go stale).
    pub async fn set_legal_hold(
        &self,
        caller: &Caller,
        id: Uuid,
        hold: bool,
        reason: String,
        key: Option<Idempotency>,
    ) -> Result<Customer> {
        caller.require(Action::Erase)?;
        let mut v = Violations::new();
        v.required_text("reason", &reason, REASON_MAX);
        v.finish()?;
        let reason = &reason;
        mutation::run(
            &self.store,
            &self.clock,
            Mutation::new(caller, Operation::SetLegalHold, key.as_ref()),
            |change| async move {
                let tx = change.tx();
                let current = store::customers::find_for_update(tx.conn(), &caller.tenant, id)
                    .await?
                    .ok_or_else(|| Error::not_found("customer", id))?;
                let next = Customer {
                    legal_hold: hold,
                    version: current.version + 1,
                    ..current.clone()
                };
                store::customers::update(tx.conn(), &caller.tenant, &next, current.version)
                    .await?
                    .or_else(|| changed_concurrently("customer", current.id))?;
                change
                    .audit(Entry {
                        action: if hold {
                            "customer.legal_hold.set"
                        } else {
                            "customer.legal_hold.lift"
                        },
                        target_type: "customer",
                        target_id: id,
                        customer_id: Some(id),
                        // The reason is a case reference written by an admin; it is kept in the trail
                        // as the grounds of the hold.
                        summary: format!("legal_hold={hold} reason={reason}"),
                    })
                    .await?;
                Ok(next)
            },
        )
        .await
    }

    /// One pass of the purger: erases up to `batch` customers whose purge_time has passed, in one
    /// transaction, then up to `batch` records deleted on their own whose purge_time has passed,
    /// in another. With `dry_run`, only reports what it would erase.
    pub async fn run_due(&self, batch: u64, dry_run: bool) -> Result<PurgeReport> {
        let now = self.clock.now();
        // Customers first: a due customer's erasure takes its deleted records with it, and the
        // records' scan leaves those out, so nothing is reported twice.
        let erased = self.erase_due_customers(now, batch, dry_run).await?;
        let records = self.erase_due_records(now, batch, dry_run).await?;
        let report = PurgeReport { erased, records };
        if !dry_run
            && (!report.erased.is_empty()
                || !report.records.is_empty()
                || self.checkpoint_owed.load(Ordering::SeqCst))
        {
            self.checkpoint_erasure().await;
        }
        Ok(report)
    }

    async fn erase_due_customers(
        &self,
        now: DateTime<Utc>,
        batch: u64,
        dry_run: bool,
    ) -> Result<Vec<(String, Erased)>> {
        let mut erased = Vec::new();
        if dry_run {
            for (tenant, id) in store::purge::due(self.store.conn(), now, batch, false).await? {
                let (erased_records, kept_records) =
                    store::purge::erasable_counts(self.store.conn(), &tenant, id).await?;
                erased.push((
                    tenant,
                    Erased {
                        customer_id: id,
                        erased_records,
                        kept_records,
                    },
                ));
            }
            return Ok(erased);
        }
        let tx = self.store.begin_write().await?;
        for (tenant, id) in store::purge::due(tx.conn(), now, batch, true).await? {
            let (erased_records, kept_records) =
                store::purge::erase(tx.conn(), &tenant, id, now).await?;
            audit::record(
                &tx,
                &purger(&tenant),
                None,
                now,
                Entry {
                    action: "customer.purge",
                    target_type: "customer",
                    target_id: id,
                    customer_id: Some(id),
                    summary: format!("erased={erased_records} kept={kept_records} by=retention"),
                },
            )
            .await?;
            erased.push((
                tenant,
                Erased {
                    customer_id: id,
                    erased_records,
                    kept_records,
                },
            ));
        }
        tx.commit().await?;
        Ok(erased)
    }

    /// Erases up to `batch` records deleted on their own whose purge_time has passed (all kinds
    /// together), in one transaction: each row goes for good, with a `<kind>.purge` audit event
    /// (ids only) and the stored idempotent answers that name it. The customer's etag stays: the
    /// record was already deleted, so its live graph (what a deletion preview counts) is the same.
    async fn erase_due_records(
        &self,
        now: DateTime<Utc>,
        batch: u64,
        dry_run: bool,
    ) -> Result<Vec<ErasedRecord>> {
        if dry_run {
            return self.due_records(now, batch).await;
        }
        let mut erased: Vec<ErasedRecord> = Vec::new();
        let left = |erased: &Vec<ErasedRecord>| batch.saturating_sub(erased.len() as u64);
        let tx = self.store.begin_write().await?;
        for kind in RecordKind::ALL {
            if left(&erased) == 0 {
                break;
            }
            let due = store::purge::due_records(tx.conn(), kind, now, left(&erased), true).await?;
            for (tenant, id, customer_id) in due {
                if !store::purge::erase_record(tx.conn(), &tenant, kind, id).await? {
                    continue;
                }
                audit::record(
                    &tx,
                    &purger(&tenant),
                    None,
                    now,
                    Entry {
                        action: kind.purge_action(),
                        target_type: kind.name(),
                        target_id: id,
                        customer_id: Some(customer_id),
                        summary: "by=retention".into(),
                    },
                )
                .await?;
                erased.push(ErasedRecord {
                    tenant,
                    kind,
                    id,
                    customer_id,
                });
            }
        }
        // Stored answers of request ids name the records: they go with them.
        let mut by_tenant: BTreeMap<&str, Vec<Uuid>> = BTreeMap::new();
        for record in &erased {
            by_tenant.entry(&record.tenant).or_default().push(record.id);
        }
        for (tenant, ids) in by_tenant {
            store::purge::drop_answers_naming(tx.conn(), tenant, &ids).await?;
        }
        tx.commit().await?;
        Ok(erased)
    }

    /// What `erase_due_records` would erase, up to `batch`, without locking or erasing.
    async fn due_records(&self, now: DateTime<Utc>, batch: u64) -> Result<Vec<ErasedRecord>> {
        let mut due: Vec<ErasedRecord> = Vec::new();
        for kind in RecordKind::ALL {
            let left = batch.saturating_sub(due.len() as u64);
            if left == 0 {
                break;
            }
            let found =
                store::purge::due_records(self.store.conn(), kind, now, left, false).await?;
            due.extend(
                found
                    .into_iter()
                    .map(|(tenant, id, customer_id)| ErasedRecord {
                        tenant,
                        kind,
                        id,
                        customer_id,
                    }),
            );
        }
        Ok(due)
    }
}
