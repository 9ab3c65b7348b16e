//! DeleteCustomer: executes an approved request in one transaction, with set-based updates and
//! one deletion id for everything it deletes.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::super::access::{Action, Caller};
use super::super::audit::Entry;
use super::super::chrono_duration;
use super::super::idempotency::Idempotency;
use super::super::model::customer::Customer;
use super::super::mutation::{self, Change, Mutation, Operation};
use super::super::policy;
use super::rules;
use super::{Deleted, DeletionPreview, DeletionRequest, Deletions, blocked};
use crate::error::{Error, Result};
use crate::store;

impl Deletions {
    pub async fn delete(
        &self,
        caller: &Caller,
        customer_id: Uuid,
        request_id: Uuid,
        etag: String,
        key: Option<Idempotency>,
    ) -> Result<Deleted> {
        if !caller.may(Action::ActOnOwnDeletion) {
            caller.require(Action::ActOnAnyDeletion)?;
        }
        if etag.is_empty() {
            return Err(Error::invalid_field(
                "etag",
                "is required: the customer's etag as previewed and approved",
            ));
        }
        let etag = &etag;
        let mutation = Mutation::new(caller, Operation::DeleteCustomer, key.as_ref());
        mutation::run(&self.store, &self.clock, mutation, |change| async move {
            let locked = self.lock_request(&change, request_id).await?;
            let (customer, request, now) = (locked.customer, locked.request, change.now);
            let customer = match rules::may_execute(
                &request,
                caller,
                now,
                customer_id,
                customer.as_ref(),
                etag,
            ) {
                Ok(customer) => customer.clone(),
                Err(refusal) => return Err(self.refuse(&change, &request, refusal).await),
            };
            // The graph is the approved one, but a rule may still have changed (a legal hold).
            let preview = self
                .preview_in(change.tx().conn(), &caller.tenant, &customer, false)
                .await?;
            if !preview.blockers.is_empty() {
                return Err(blocked(&preview));
            }
            self.soft_delete(&change, customer, request, &preview).await
        })
        .await
    }

    /// The customer and the records the policy table cascades, soft-deleted under one new
    /// deletion id, and the request EXECUTED: the write of an executable request.
    async fn soft_delete(
        &self,
        change: &Change<'_>,
        customer: Customer,
        request: DeletionRequest,
        preview: &DeletionPreview,
    ) -> Result<Deleted> {
        let cause = format!("deletion_request={}", request.id);
        let graph = GraphToDelete::new(customer, preview);
        let deleted = self
            .delete_graphs(change, vec![graph], &cause)
            .await?
            .pop()
            .ok_or_else(|| Error::internal("one graph deleted, none reported"))?;
        let deletion_id = deleted
            .customer
            .deletion_id
            .ok_or_else(|| Error::internal("a deleted customer has no deletion id"))?;
        self.save(change, &request.executed(change.now, deletion_id))
            .await?;
        Ok(deleted)
    }

    /// Soft-deletes each customer and the records the policy table cascades, each under a new
    /// deletion id of its own, and audits each naming `cause` (the request or batch): what
    /// DeleteCustomer does to one customer, and a batch to a chunk of them, with one UPDATE per
    /// table for the lot. The customers are locked and have no blocker.
    pub(crate) async fn delete_graphs(
        &self,
        change: &Change<'_>,
        graphs: Vec<GraphToDelete>,
        cause: &str,
    ) -> Result<Vec<Deleted>> {
        let (tx, now, tenant) = (change.tx(), change.now, &change.caller.tenant);
        let retention = self.policies.effective_in(change).await?.retention;
        let purge_time = now + chrono_duration(retention);
        let deletions: Vec<(Uuid, Uuid)> = graphs
            .iter()
            .map(|g| (g.customer.id, Uuid::now_v7()))
            .collect();
        let cascaded = store::deletion::cascade(
            tx.conn(),
            tenant,
            &deletions,
            &policy::cascading(),
            now,
            purge_time,
        )
        .await?;
        // The counts were read under the customers' row locks, which every record write takes
        // first: the update must have met exactly them.
        let previewed: u64 = graphs.iter().map(|g| g.cascading).sum();
        if cascaded != previewed {
            return Err(Error::internal(format!(
                "{cascaded} records cascaded where the locked graphs counted {previewed}"
            )));
        }
        let mut deleted = Vec::with_capacity(graphs.len());
        for (graph, (_, deletion_id)) in graphs.into_iter().zip(deletions) {
            deleted.push(mark_deleted(change, graph, deletion_id, purge_time, cause).await?);
        }
        Ok(deleted)
    }
}

/// The customer of `graph` marked deleted under `deletion_id` (its records already are), and
/// audited naming `cause`.
async fn mark_deleted(
    change: &Change<'_>,
    graph: GraphToDelete,
    deletion_id: Uuid,
    purge_time: DateTime<Utc>,
    cause: &str,
) -> Result<Deleted> {
    let (now, tenant, customer_id) = (change.now, &change.caller.tenant, graph.customer.id);
    store::deletion::mark_customer_deleted(
        change.tx().conn(),
        tenant,
        customer_id,
        deletion_id,
        now,
        purge_time,
    )
    .await?;
    change
        .audit(Entry {
            action: "customer.delete",
            target_type: "customer",
            target_id: customer_id,
            customer_id: Some(customer_id),
            summary: format!(
                "deletion_id={deletion_id} {cause} cascaded={} kept={}",
                graph.cascading, graph.kept
            ),
        })
        .await?;
    Ok(Deleted {
        customer: Customer {
            delete_time: Some(now),
            purge_time: Some(purge_time),
            deletion_id: Some(deletion_id),
            version: graph.customer.version + 1,
            ..graph.customer
        },
        deleted_records: graph.cascading,
    })
}

/// A locked customer about to be deleted, with what its preview (read under the lock) counted.
pub(crate) struct GraphToDelete {
    customer: Customer,
    cascading: u64,
    kept: i64,
}

impl GraphToDelete {
    pub(crate) fn new(customer: Customer, preview: &DeletionPreview) -> Self {
        Self {
            customer,
            cascading: preview.cascade_count.max(0) as u64,
            kept: preview.keep_count,
        }
    }
}
