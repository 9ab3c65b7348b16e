//! UnmergeCustomers: undoes a merge while its duplicate can still be restored. Exactly the
//! records the merge moved go back (with whatever edits they had since; records created under the
//! survivor after the merge stay), the duplicate comes back, and the survivor gets back each field
//! it took unless that field changed since. All of it in one transaction, or nothing.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::super::access::{Action, Caller};
use super::super::audit::Entry;
use super::super::idempotency::Idempotency;
use super::super::model::customer::Customer;
use super::super::model::deletion::{MergeTerms, MergeValues};
use super::super::mutation::{self, Change, Mutation, Operation};
use super::merge::{field_value, with_field};
use super::{Deletions, restore_conflict};
use crate::error::{Error, PreconditionViolation, Problem, Result};
use crate::reason;
use crate::store;

/// A merge undone (or that would be, with validate_only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unmerged {
    pub duplicate: Customer,
    pub survivor: Customer,
    pub moved_back_records: u64,
    pub reverted_fields: Vec<String>,
    pub kept_fields: Vec<KeptField>,
}

/// A field the survivor took and changed since: it keeps its value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeptField {
    pub field: String,
    pub value: String,
}

fn not_merged(customer_id: Uuid, why: &str) -> Error {
    Error::failed_precondition(
        Problem::new(reason::NOT_MERGED, format!("the customer {why}"))
            .with("customerId", customer_id),
    )
}

/// The survivor is deleted: it was merged or deleted in turn after this merge.
fn survivor_deleted(survivor_id: Uuid) -> Error {
    Error::failed_precondition(
        Problem::new(
            reason::CUSTOMER_DELETED,
            "the survivor of this merge is deleted (merged or deleted in turn): unmerge or restore \
             it first",
        )
        .with("customerId", survivor_id),
    )
}

/// The survivor's external_ref before the merge is now held by another live customer.
fn survivor_ref_taken(survivor_id: Uuid, holder: Uuid) -> Error {
    Error::FailedPrecondition {
        problem: Problem::new(
            reason::RESTORE_CONFLICT,
            format!(
                "the survivor's external_ref before the merge is now used by live customer \
                 {holder}: change one of them, then unmerge again"
            ),
        )
        .with("customerId", survivor_id)
        .with("field", "external_ref")
        .with("conflictingCustomerId", holder),
        violations: vec![PreconditionViolation {
            kind: reason::RESTORE_CONFLICT,
            subject: "external_ref".into(),
            description: format!("live customer {holder} of the tenant has this external_ref"),
        }],
    }
}

impl Deletions {
    pub async fn unmerge(
        &self,
        caller: &Caller,
        duplicate_id: Uuid,
        validate_only: bool,
        key: Option<Idempotency>,
    ) -> Result<Unmerged> {
        caller.require(Action::Restore)?;
        // validate_only runs every write and rolls the transaction back.
        let mutation = Mutation::new(caller, Operation::UnmergeCustomers, key.as_ref())
            .validate_only(validate_only);
        mutation::run(&self.store, &self.clock, mutation, |change| async move {
            let (terms, merge_id) = self.merge_of(&change, duplicate_id).await?;
            let (duplicate, survivor) = self.lock_merged(&change, duplicate_id, &terms).await?;
            if duplicate.deletion_id != Some(merge_id) {
                return Err(not_merged(
                    duplicate_id,
                    "changed while the unmerge began: retry",
                ));
            }
            let values = terms.values.ok_or_else(|| {
                Error::internal(format!("executed merge {merge_id} has no field values"))
            })?;
            self.undo_merge(&change, duplicate, survivor, merge_id, &values)
                .await
        })
        .await
    }

    /// The terms and the id of the merge that deleted `duplicate_id`.
    async fn merge_of(
        &self,
        change: &Change<'_>,
        duplicate_id: Uuid,
    ) -> Result<(MergeTerms, Uuid)> {
        let (conn, tenant) = (change.tx().conn(), &change.caller.tenant);
        let peek = store::customers::find(conn, tenant, duplicate_id)
            .await?
            .ok_or_else(|| Error::not_found("customer", duplicate_id))?;
        let Some(deletion_id) = peek.deletion_id.filter(|_| peek.is_deleted()) else {
            return Err(not_merged(
                duplicate_id,
                "is live: there is no merge to undo",
            ));
        };
        match store::deletion::request_of_deletion(conn, tenant, deletion_id).await? {
            Some(request) if request.merge.is_some() => Ok((
                request
                    .merge
                    .unwrap_or_else(|| unreachable!("matched as Some")),
                deletion_id,
            )),
            _ => Err(not_merged(
                duplicate_id,
                "was deleted, not merged: RestoreCustomer brings it back",
            )),
        }
    }

    /// Both customers of the merge, locked in id order: the duplicate deleted, the survivor live.
    async fn lock_merged(
        &self,
        change: &Change<'_>,
        duplicate_id: Uuid,
        terms: &MergeTerms,
    ) -> Result<(Customer, Customer)> {
        let (conn, tenant) = (change.tx().conn(), &change.caller.tenant);
        let both = [duplicate_id, terms.survivor_id];
        let mut locked = store::customers::find_many_for_update(conn, tenant, &both).await?;
        let mut take = |id: Uuid| {
            locked
                .iter()
                .position(|c| c.id == id)
                .map(|at| locked.swap_remove(at))
                .ok_or_else(|| Error::not_found("customer", id))
        };
        let (duplicate, survivor) = (take(duplicate_id)?, take(terms.survivor_id)?);
        if survivor.is_deleted() {
            return Err(survivor_deleted(survivor.id));
        }
        Ok((duplicate, survivor))
    }

    /// The writes of an unmerge: the survivor's fields, the duplicate back, the records back.
    async fn undo_merge(
        &self,
        change: &Change<'_>,
        duplicate: Customer,
        survivor: Customer,
        merge_id: Uuid,
        values: &MergeValues,
    ) -> Result<Unmerged> {
        let (conn, tenant, now) = (change.tx().conn(), &change.caller.tenant, change.now);
        let (reverted_survivor, reverted_fields, kept_fields) =
            revert_survivor(change, &survivor, values).await?;
        // Checked after the survivor gave back what it took: the duplicate's external_ref may
        // be among it.
        self.restorable(conn, tenant, now, &duplicate).await?;
        if store::deletion::mark_customer_restored(conn, tenant, duplicate.id).await?
            == store::deletion::Unmarked::ExternalRefTaken
        {
            return Err(restore_conflict(duplicate.id, None));
        }
        let moved_back =
            store::merges::move_back(conn, tenant, merge_id, survivor.id, duplicate.id, false)
                .await?;
        change
            .audit(Entry {
                action: "customer.unmerge",
                target_type: "customer",
                target_id: duplicate.id,
                customer_id: Some(duplicate.id),
                summary: format!(
                    "duplicate_id={} survivor_id={} merge_id={merge_id} moved_back={moved_back} \
                     reverted_fields={} kept_fields={}",
                    duplicate.id,
                    survivor.id,
                    reverted_fields.len(),
                    kept_fields.len()
                ),
            })
            .await?;
        Ok(Unmerged {
            duplicate: Customer {
                delete_time: None,
                purge_time: None,
                deletion_id: None,
                version: duplicate.version + 1,
                ..duplicate
            },
            survivor: reverted_survivor,
            moved_back_records: moved_back,
            reverted_fields,
            kept_fields,
        })
    }
}

/// Writes the survivor back with each field it took reverted (where it still holds what it took)
/// and its graph version moved on: the survivor written, the fields reverted and those kept.
async fn revert_survivor(
    change: &Change<'_>,
    survivor: &Customer,
    values: &MergeValues,
) -> Result<(Customer, Vec<String>, Vec<KeptField>)> {
    let (conn, tenant) = (change.tx().conn(), &change.caller.tenant);
    let (reverted, reverted_fields, kept_fields) = revert_fields(survivor, values)?;
    let reverted = Customer {
        version: survivor.version + 1,
        update_time: change.now,
        ..reverted
    };
    if reverted_fields.iter().any(|f| f == "external_ref")
        && !reverted.external_ref.is_empty()
        && let Some((holder, _)) =
            store::deletion::external_ref_holder(conn, tenant, &reverted.external_ref, survivor.id)
                .await?
    {
        return Err(survivor_ref_taken(survivor.id, holder));
    }
    if store::customers::update(conn, tenant, &reverted, survivor.version).await?
        != store::Written::Applied
    {
        return Err(Error::internal("the survivor changed under its row lock"));
    }
    Ok((reverted, reverted_fields, kept_fields))
}

/// The survivor with each field it took reverted to its value before the merge, where it still
/// holds what it took; the fields reverted, and those kept because they changed since.
fn revert_fields(
    survivor: &Customer,
    values: &MergeValues,
) -> Result<(Customer, Vec<String>, Vec<KeptField>)> {
    let mut reverted = survivor.clone();
    let (mut reverted_fields, mut kept_fields) = (Vec::new(), Vec::new());
    for (field, taken) in &values.taken {
        let now = field_value(survivor, field);
        if &now != taken {
            kept_fields.push(KeptField {
                field: field.clone(),
                value: now,
            });
            continue;
        }
        let before = values
            .survivor_before
            .iter()
            .find(|(f, _)| f == field)
            .map(|(_, v)| v.as_str())
            .ok_or_else(|| Error::internal(format!("merge field {field} has no value before")))?;
        reverted = with_field(reverted, field, before)?;
        reverted_fields.push(field.clone());
    }
    Ok((reverted, reverted_fields, kept_fields))
}
