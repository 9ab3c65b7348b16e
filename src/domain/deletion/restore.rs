//! RestoreCustomer: brings back a deleted customer and exactly the rows of its deletion, within
//! its retention.

use uuid::Uuid;

use super::super::access::{Action, Caller};
use super::super::audit::Entry;
use super::super::idempotency::Idempotency;
use super::super::model::customer::Customer;
use super::super::mutation::{self, Change, Mutation, Operation};
use super::{Deletions, Restored, restore_conflict};
use crate::error::{Error, Problem, Result};
use crate::reason;
use crate::store;

impl Deletions {
    pub async fn restore(
        &self,
        caller: &Caller,
        customer_id: Uuid,
        validate_only: bool,
        key: Option<Idempotency>,
    ) -> Result<Restored> {
        caller.require(Action::Restore)?;
        let mutation = Mutation::new(caller, Operation::RestoreCustomer, key.as_ref())
            .validate_only(validate_only);
        mutation::run(&self.store, &self.clock, mutation, |change| async move {
            let (tx, tenant) = (change.tx(), &caller.tenant);
            let customer = store::customers::find_for_update(tx.conn(), tenant, customer_id)
                .await?
                .ok_or_else(|| Error::not_found("customer", customer_id))?;
            self.restorable(tx.conn(), tenant, change.now, &customer)
                .await?;
            self.not_merged_away(&change, &customer).await?;
            if validate_only {
                let deletion_id = self.deletion_id(&change, customer_id).await?;
                let restored_records =
                    store::deletion::restore_records(tx.conn(), tenant, deletion_id, true).await?;
                return Ok(Restored {
                    customer,
                    restored_records,
                });
            }
            self.restore_graphs(&change, vec![customer], "")
                .await?
                .pop()
                .ok_or_else(|| Error::internal("one customer restored, none reported"))
        })
        .await
    }

    /// A customer a merge deleted comes back only with its records, by UnmergeCustomers.
    async fn not_merged_away(&self, change: &Change<'_>, customer: &Customer) -> Result<()> {
        let (conn, tenant) = (change.tx().conn(), &change.caller.tenant);
        let Some(deletion_id) = customer.deletion_id else {
            return Ok(());
        };
        match store::deletion::request_of_deletion(conn, tenant, deletion_id).await? {
            Some(request) if request.merge.is_some() => Err(Error::failed_precondition(
                Problem::new(
                    reason::DELETED_BY_MERGE,
                    "the customer was merged into another: UnmergeCustomers brings it back with \
                     the records the merge moved",
                )
                .with("customerId", customer.id)
                .with("deletionRequestId", request.id),
            )),
            _ => Ok(()),
        }
    }

    async fn deletion_id(&self, change: &Change<'_>, customer_id: Uuid) -> Result<Uuid> {
        store::deletion::deletion_id_of(change.tx().conn(), &change.caller.tenant, customer_id)
            .await?
            .ok_or_else(|| {
                Error::internal(format!("deleted customer {customer_id} has no deletion id"))
            })
    }

    /// Brings back locked, restorable customers (`restorable` said so) and exactly the rows of
    /// each one's deletion, and audits each naming `cause` (empty, or the batch): what
    /// RestoreCustomer does to one customer, and a batch's restore to a chunk of them.
    pub(crate) async fn restore_graphs(
        &self,
        change: &Change<'_>,
        customers: Vec<Customer>,
        cause: &str,
    ) -> Result<Vec<Restored>> {
        let (tx, tenant) = (change.tx(), &change.caller.tenant);
        let cause = if cause.is_empty() {
            String::new()
        } else {
            format!(" {cause}")
        };
        let mut restored = Vec::with_capacity(customers.len());
        for customer in customers {
            let deletion_id = match customer.deletion_id {
                Some(id) => id,
                None => self.deletion_id(change, customer.id).await?,
            };
            let unmarked =
                store::deletion::mark_customer_restored(tx.conn(), tenant, customer.id).await?;
            if unmarked == store::deletion::Unmarked::ExternalRefTaken {
                // A live customer took the external_ref after the check: the unique index
                // refused the row, and does not say who holds it.
                return Err(restore_conflict(customer.id, None));
            }
            let restored_records =
                store::deletion::restore_records(tx.conn(), tenant, deletion_id, false).await?;
            change
                .audit(Entry {
                    action: "customer.restore",
                    target_type: "customer",
                    target_id: customer.id,
                    customer_id: Some(customer.id),
                    summary: format!(
                        "deletion_id={deletion_id}{cause} restored={restored_records}"
                    ),
                })
                .await?;
            restored.push(Restored {
                customer: Customer {
                    delete_time: None,
                    purge_time: None,
                    deletion_id: None,
                    version: customer.version + 1,
                    ..customer
                },
                restored_records,
            });
        }
        Ok(restored)
    }

    /// Only a deleted customer can come back, while its retention lasts and while no live customer of
    /// the tenant holds its external_ref.
    pub(crate) async fn restorable(
        &self,
        conn: &impl store::Connection,
        tenant: &str,
        now: chrono::DateTime<chrono::Utc>,
        customer: &Customer,
    ) -> Result<()> {
        let customer_id = customer.id;
        if !customer.is_deleted() {
            return Err(Error::AlreadyExists(
                Problem::new(
                    reason::CUSTOMER_NOT_DELETED,
                    "the customer is live: there is nothing to restore",
                )
                .with("customerId", customer_id),
            ));
        }
        if customer.purge_time.is_some_and(|t| t <= now) {
            return Err(Error::failed_precondition(
                Problem::new(
                    reason::RETENTION_EXPIRED,
                    "the customer's retention has passed: it is being erased",
                )
                .with("customerId", customer_id),
            ));
        }
        if !customer.external_ref.is_empty()
            && let Some((holder_id, holder_name)) = store::deletion::external_ref_holder(
                conn,
                tenant,
                &customer.external_ref,
                customer_id,
            )
            .await?
        {
            return Err(restore_conflict(
                customer_id,
                Some((holder_id, &holder_name)),
            ));
        }
        Ok(())
    }
}
