//! DeleteCustomer: executes an approved request in one transaction, with set-based updates and
//! one deletion id for everything it deletes.

use uuid::Uuid;

use super::super::access::{Action, Caller};
use super::super::audit::Entry;
use super::super::chrono_duration;
use super::super::idempotency::Idempotency;
use super::super::model::customer::Customer;
use super::super::mutation::{self, Change, Mutation, Operation};
use super::super::policy;
use super::rules;
use super::{Deleted, DeletionRequest, Deletions, blocked};
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
            let (customer, request) = self.lock_request(&change, request_id).await?;
            let now = change.now;
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
            self.soft_delete(&change, customer, request, preview.keep_count)
                .await
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
        kept: i64,
    ) -> Result<Deleted> {
        let cause = format!("deletion_request={}", request.id);
        let deleted = self.delete_graph(change, customer, kept, &cause).await?;
        let deletion_id = deleted
            .customer
            .deletion_id
            .ok_or_else(|| Error::internal("a deleted customer has no deletion id"))?;
        self.save(change, &request.executed(change.now, deletion_id))
            .await?;
        Ok(deleted)
    }

    /// Soft-deletes the customer and the records the policy table cascades under one new
    /// deletion id, and audits it naming `cause` (the request or batch): what DeleteCustomer does,
    /// and what a batch does to each of its customers. The customer is locked and has no blocker.
    pub(crate) async fn delete_graph(
        &self,
        change: &Change<'_>,
        customer: Customer,
        kept: i64,
        cause: &str,
    ) -> Result<Deleted> {
        let (tx, now, tenant) = (change.tx(), change.now, &change.caller.tenant);
        let customer_id = customer.id;
        let deletion_id = Uuid::now_v7();
        let purge_time = now + chrono_duration(self.settings.retention);
        let deleted_records = store::deletion::cascade(
            tx.conn(),
            tenant,
            customer_id,
            &policy::cascading(),
            deletion_id,
            now,
            purge_time,
        )
        .await?;
        store::deletion::mark_customer_deleted(
            tx.conn(),
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
                    "deletion_id={deletion_id} {cause} cascaded={deleted_records} kept={kept}"
                ),
            })
            .await?;
        let customer = Customer {
            delete_time: Some(now),
            purge_time: Some(purge_time),
            deletion_id: Some(deletion_id),
            version: customer.version + 1,
            ..customer
        };
        Ok(Deleted {
            customer,
            deleted_records,
        })
    }
}
