//! The background worker: one per replica. It claims a RUNNING or RESTORING batch of any tenant
//! (a lease: a row's owner and expiry, so one replica works a batch at a time and another takes
//! it over when the owner dies), then works through its items one chunk at a time, each chunk one
//! transaction that also renews the lease. A crash loses at most the chunk in flight, which rolls
//! back and is worked again by whoever claims the batch next: no item is deleted twice, since an
//! item leaves QUEUED in the same transaction as its customer's deletion.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::super::access::Caller;
use super::super::audit::Entry;
use super::super::chrono_duration;
use super::super::deletion::{Deletions, GraphToDelete};
use super::super::model::customer::Customer;
use super::super::mutation::{self, Change, Mutation, Operation};
use super::{BatchItem, BatchState, BatchStateFilter, Batches, DeletionBatch, ItemState};
use crate::error::{Error, Result};
use crate::reason;
use crate::store;

impl Batches {
    /// This replica's worker, until the task is dropped: claims batches and works them, waiting
    /// between claims for a batch started here or for the poll interval.
    pub async fn work(self, owner: String) {
        loop {
            match self.work_one(&owner).await {
                Ok(true) => continue,
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "deletion batch worker: will retry"),
            }
            tokio::select! {
                () = self.wake.notified() => {}
                () = tokio::time::sleep(self.settings.poll_interval) => {}
            }
        }
    }

    /// Claims one batch and works it to its end; false if there was none to claim.
    pub async fn work_one(&self, owner: &str) -> Result<bool> {
        let now = self.clock.now();
        let until = now + chrono_duration(self.settings.lease);
        let working: Vec<BatchState> = BatchState::ALL
            .into_iter()
            .filter(|s| s.is_working())
            .collect();
        let working = BatchStateFilter::reading_as(&working, now);
        let Some(claimed) =
            store::batches::claim(self.store.conn(), &working, owner, until).await?
        else {
            return Ok(false);
        };
        let result = async {
            while self.work_chunk(&claimed, owner).await? {}
            Ok::<_, Error>(())
        }
        .await;
        // Whatever happened, let another replica have it at once rather than at the lease's end.
        store::batches::release(self.store.conn(), &claimed.tenant, claimed.id, owner).await?;
        result.map(|()| true)
    }

    /// One chunk of the batch's items, in one transaction; true if items remain (false: the
    /// batch is done, or no longer this worker's).
    async fn work_chunk(&self, claimed: &store::batches::Claimed, owner: &str) -> Result<bool> {
        let (tenant, id) = (claimed.tenant.as_str(), claimed.id);
        // The audit trail names who started the batch as the actor of each deletion.
        let actor = Caller {
            tenant: tenant.to_owned(),
            subject: claimed.started_by.clone(),
            roles: Vec::new(),
            unknown_roles: Vec::new(),
            claims: Default::default(),
            trace_id: String::new(),
        };
        let actor = &actor;
        let mutation = Mutation::new(actor, Operation::WorkDeletionBatch, None);
        mutation::run(&self.store, &self.clock, mutation, |change| async move {
            let until = change.now + chrono_duration(self.settings.lease);
            let conn = change.tx().conn();
            if !store::batches::renew(conn, tenant, id, owner, until).await? {
                return Ok(false);
            }
            let Some(batch) = store::batches::find_for_update(conn, tenant, id).await? else {
                return Ok(false);
            };
            let (wanted, finished) = match batch.state {
                BatchState::Running => (ItemState::Queued, BatchState::Completed),
                BatchState::Restoring => (ItemState::Deleted, BatchState::Restored),
                _ => return Ok(false),
            };
            let chunk = self.settings.chunk_size as u64;
            let items =
                store::batches::list_items(conn, tenant, id, Some(wanted), None, chunk + 1).await?;
            let more = items.len() as u64 > chunk;
            let items: Vec<BatchItem> = items.into_iter().take(chunk as usize).collect();
            let done = match wanted {
                ItemState::Queued => self.delete_items(&change, &batch, items).await?,
                _ => self.restore_items(&change, &batch, items).await?,
            };
            for item in &done {
                store::batches::update_item(conn, tenant, item).await?;
            }
            self.advance(&change, batch, if more { None } else { Some(finished) })
                .await?;
            Ok(more)
        })
        .await
    }

    /// Moves the batch's version on after a chunk, and ends it when its last item has.
    async fn advance(
        &self,
        change: &Change<'_>,
        batch: DeletionBatch,
        finished: Option<BatchState>,
    ) -> Result<()> {
        let now = change.now;
        let tenant = &change.caller.tenant;
        let mut next = DeletionBatch {
            update_time: now,
            version: batch.version + 1,
            ..batch.clone()
        };
        if let Some(state) = finished {
            next.state = state;
            match state {
                BatchState::Completed => next.finish_time = Some(now),
                _ => next.restore_finish_time = Some(now),
            }
        }
        store::batches::update(change.tx().conn(), tenant, &next, batch.version)
            .await?
            .or_else(|| Error::internal("deletion batch changed under its row lock"))?;
        if let Some(state) = finished {
            let progress = store::batches::progress(change.tx().conn(), tenant, batch.id).await?;
            let action = match state {
                BatchState::Completed => "deletion_batch.complete",
                _ => "deletion_batch.restored",
            };
            change
                .audit(Entry {
                    action,
                    target_type: "deletion_batch",
                    target_id: batch.id,
                    customer_id: None,
                    summary: format!(
                        "deleted={} stale={} blocked={} restored={} restore_failed={} \
                         deleted_records={} restored_records={}",
                        progress.deleted,
                        progress.stale,
                        progress.blocked,
                        progress.restored,
                        progress.restore_failed,
                        progress.deleted_records,
                        progress.restored_records
                    ),
                })
                .await?;
        }
        Ok(())
    }

    /// A chunk of QUEUED items: each customer deleted as DeleteCustomer would, unless a blocker
    /// appeared (BLOCKED) or its graph changed since submission (STALE). The chunk's customers are
    /// locked and their graphs counted in one go, and those still to delete are deleted together.
    async fn delete_items(
        &self,
        change: &Change<'_>,
        batch: &DeletionBatch,
        items: Vec<BatchItem>,
    ) -> Result<Vec<BatchItem>> {
        let (conn, tenant, now) = (change.tx().conn(), &change.caller.tenant, change.now);
        let mut graphs = Graphs::lock(conn, tenant, &items).await?;
        let mut done = Vec::with_capacity(items.len());
        let (mut going, mut to_delete) = (Vec::new(), Vec::new());
        for item in items {
            let (customer, counts) = graphs.take(item.customer_id);
            let Some(customer) = customer.filter(|c| !c.is_deleted()) else {
                done.push(ended(item, ItemState::Stale, now));
                continue;
            };
            let preview = Deletions::preview_of_counts(&customer, &counts);
            if !preview.blockers.is_empty() {
                // Rare: read the blockers again with their sample ids, for whoever resolves them.
                let detailed = self
                    .deletions
                    .preview_for_batch(conn, tenant, &customer)
                    .await?;
                done.push(BatchItem {
                    blockers: detailed.blockers,
                    ..ended(item, ItemState::Blocked, now)
                });
                continue;
            }
            if item.customer_version != Some(customer.version) {
                done.push(ended(item, ItemState::Stale, now));
                continue;
            }
            going.push(item);
            to_delete.push(GraphToDelete::new(customer, &preview));
        }
        let cause = format!("deletion_batch={}", batch.id);
        let deleted = self
            .deletions
            .delete_graphs(change, to_delete, &cause)
            .await?;
        for (item, deleted) in going.into_iter().zip(deleted) {
            done.push(BatchItem {
                deletion_id: deleted.customer.deletion_id,
                deleted_records: deleted.deleted_records as i64,
                ..ended(item, ItemState::Deleted, now)
            });
        }
        Ok(done)
    }

    /// A chunk of DELETED items: each customer restored as RestoreCustomer would, or
    /// RESTORE_FAILED with why. The chunk's customers are locked in one statement.
    async fn restore_items(
        &self,
        change: &Change<'_>,
        batch: &DeletionBatch,
        items: Vec<BatchItem>,
    ) -> Result<Vec<BatchItem>> {
        let (conn, tenant, now) = (change.tx().conn(), &change.caller.tenant, change.now);
        let ids: Vec<Uuid> = items.iter().map(|i| i.customer_id).collect();
        let mut customers: HashMap<Uuid, Customer> =
            store::customers::find_many_for_update(conn, tenant, &ids)
                .await?
                .into_iter()
                .map(|c| (c.id, c))
                .collect();
        let mut done = Vec::with_capacity(items.len());
        let (mut coming, mut to_restore) = (Vec::new(), Vec::new());
        for item in items {
            let customer = customers.remove(&item.customer_id);
            let problem = self
                .restore_problem(conn, tenant, now, &item, customer.as_ref())
                .await?;
            match customer.filter(|_| problem.is_none()) {
                Some(customer) => {
                    coming.push(item);
                    to_restore.push(customer);
                }
                None => done.push(restore_outcome(item, problem, 0, now)),
            }
        }
        let cause = format!("deletion_batch={}", batch.id);
        let restored = self
            .deletions
            .restore_graphs(change, to_restore, &cause)
            .await?;
        for (item, restored) in coming.into_iter().zip(restored) {
            done.push(restore_outcome(
                item,
                None,
                restored.restored_records as i64,
                now,
            ));
        }
        Ok(done)
    }

    /// Why a batch's deleted customer cannot come back now, as (reason, message); `None` if it
    /// can: the checks of RestoreCustomer, and that it is still deleted by this batch.
    pub(super) async fn restore_problem(
        &self,
        conn: &impl store::Connection,
        tenant: &str,
        now: DateTime<Utc>,
        item: &BatchItem,
        customer: Option<&Customer>,
    ) -> Result<Option<(&'static str, String)>> {
        let Some(customer) = customer else {
            return Ok(Some((
                reason::NOT_FOUND,
                "the customer has been erased".to_owned(),
            )));
        };
        if customer.is_deleted() && customer.deletion_id != item.deletion_id {
            return Ok(Some((
                reason::CUSTOMER_NOT_DELETED,
                "the customer was restored and deleted again since: restore that deletion with \
                 RestoreCustomer"
                    .to_owned(),
            )));
        }
        match self.deletions.restorable(conn, tenant, now, customer).await {
            Ok(()) => Ok(None),
            Err(e @ (Error::FailedPrecondition { .. } | Error::AlreadyExists(_))) => {
                let reason = e.reason().unwrap_or(reason::RESTORE_CONFLICT);
                Ok(Some((reason, e.to_string())))
            }
            Err(e) => Err(e),
        }
    }
}

fn ended(item: BatchItem, state: ItemState, now: DateTime<Utc>) -> BatchItem {
    BatchItem {
        state,
        update_time: now,
        ..item
    }
}

/// A DELETED item as a restore leaves it: RESTORED, or RESTORE_FAILED with why.
pub(super) fn restore_outcome(
    item: BatchItem,
    problem: Option<(&'static str, String)>,
    restored_records: i64,
    now: DateTime<Utc>,
) -> BatchItem {
    match problem {
        None => BatchItem {
            restored_records,
            ..ended(item, ItemState::Restored, now)
        },
        Some((reason, message)) => BatchItem {
            restore_reason: reason.to_owned(),
            restore_problem: message,
            ..ended(item, ItemState::RestoreFailed, now)
        },
    }
}

/// A chunk's customers, locked in one statement, and their graphs' counts, read in one
/// statement per table: what each item's deletion re-checks, without a round trip per customer.
struct Graphs {
    customers: HashMap<Uuid, Customer>,
    counts: HashMap<Uuid, Vec<store::deletion::StateCount>>,
}

impl Graphs {
    async fn lock(
        conn: &impl store::Connection,
        tenant: &str,
        items: &[BatchItem],
    ) -> Result<Self> {
        let ids: Vec<Uuid> = items.iter().map(|i| i.customer_id).collect();
        let customers = store::customers::find_many_for_update(conn, tenant, &ids)
            .await?
            .into_iter()
            .map(|c| (c.id, c))
            .collect();
        let counts = store::deletion::state_counts_of(conn, tenant, &ids).await?;
        Ok(Self { customers, counts })
    }

    /// The customer (if it still exists) and its counts.
    fn take(&mut self, id: Uuid) -> (Option<Customer>, Vec<store::deletion::StateCount>) {
        (
            self.customers.remove(&id),
            self.counts.remove(&id).unwrap_or_default(),
        )
    }
}
