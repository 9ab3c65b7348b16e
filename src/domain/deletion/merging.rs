//! A merge through approval: SubmitMergeRequest makes a deletion request of kind MERGE for the
//! duplicate, bound to both customers' graph versions; it is approved like any request; then
//! MergeCustomers moves the duplicate's live records to the survivor, gives the survivor the chosen
//! field values and soft-deletes the duplicate, in one transaction.

use uuid::Uuid;

use super::super::access::{Action, Caller};
use super::super::approval;
use super::super::audit::Entry;
use super::super::idempotency::Idempotency;
use super::super::model::customer::Customer;
use super::super::model::deletion::{MergeTerms, MergeValues};
use super::super::model::tenant_settings::TenantSettings;
use super::super::mutation::{self, Change, Mutation, Operation};
use super::super::validate::Violations;
use super::super::{chrono_duration, customer_deleted};
use super::merge::{MERGE_FIELDS, field_value, merge_blockers, with_field};
use super::{DeletionRequest, Deletions, REASON_MAX, rules};
use crate::error::{Error, PreconditionViolation, Problem, Result};
use crate::reason;
use crate::store;

/// What SubmitMergeRequest asks for.
#[derive(Debug, Clone)]
pub struct MergeAsk {
    pub duplicate_id: Uuid,
    pub survivor_id: Uuid,
    pub duplicate_etag: String,
    pub survivor_etag: String,
    pub take_fields: Vec<String>,
    pub reason: String,
}

/// A merge executed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Merged {
    pub survivor: Customer,
    pub duplicate: Customer,
    pub moved_records: u64,
    pub taken_fields: Vec<String>,
}

impl MergeAsk {
    fn validate(&self) -> Result<()> {
        let mut v = Violations::new();
        v.required_text("reason", &self.reason, REASON_MAX);
        if self.duplicate_id == self.survivor_id {
            v.add(
                "survivor_id",
                "is the duplicate itself: name the customer that stays",
            );
        }
        for (field, etag) in [
            ("duplicate_etag", &self.duplicate_etag),
            ("survivor_etag", &self.survivor_etag),
        ] {
            if etag.is_empty() {
                v.add(field, "is required: the etag PreviewMergeCustomers gave");
            }
        }
        for (at, field) in self.take_fields.iter().enumerate() {
            if !MERGE_FIELDS.contains(&field.as_str()) {
                v.add(
                    format!("take_fields[{at}]"),
                    format!(
                        "is not a mergeable field: one of {}",
                        MERGE_FIELDS.join(", ")
                    ),
                );
            } else if self.take_fields[..at].contains(field) {
                v.add(format!("take_fields[{at}]"), "names a field a second time");
            }
        }
        v.finish()
    }
}

/// An etag sent with a merge submission that is not the customer's current one.
fn merge_etag_stale(field: &str, customer: &Customer) -> Error {
    Error::FailedPrecondition {
        problem: Problem::new(
            reason::PREVIEW_STALE,
            format!("{field} is not the customer's current etag: preview the merge again"),
        )
        .with("customerId", customer.id)
        .with("currentEtag", customer.version),
        violations: vec![PreconditionViolation {
            kind: reason::PREVIEW_STALE,
            subject: format!("customers/{}", customer.id),
            description: format!("{field} is not the customer's current etag"),
        }],
    }
}

/// A legal hold on either customer.
fn merge_held(duplicate: &Customer, survivor: &Customer) -> Result<()> {
    let held = merge_blockers(duplicate, survivor);
    let Some(first) = held.first() else {
        return Ok(());
    };
    let ids: Vec<String> = held.iter().map(|b| b.sample_ids[0].to_string()).collect();
    Err(Error::FailedPrecondition {
        problem: Problem::new(
            reason::LEGAL_HOLD,
            "a customer of the merge is under legal hold: an admin must lift it first",
        )
        .with("customerIds", ids.join(",")),
        violations: held
            .iter()
            .map(|b| PreconditionViolation {
                kind: reason::LEGAL_HOLD,
                subject: format!("customers/{}", b.sample_ids[0]),
                description: first.resolution.clone(),
            })
            .collect(),
    })
}

/// The two customers of a merge, locked in id order; both must be live.
async fn lock_pair(
    change: &Change<'_>,
    duplicate_id: Uuid,
    survivor_id: Uuid,
) -> Result<(Customer, Customer)> {
    let (conn, tenant) = (change.tx().conn(), &change.caller.tenant);
    let mut locked =
        store::customers::find_many_for_update(conn, tenant, &[duplicate_id, survivor_id]).await?;
    let mut take = |id: Uuid| -> Result<Customer> {
        let at = locked
            .iter()
            .position(|c| c.id == id)
            .ok_or_else(|| Error::not_found("customer", id))?;
        let customer = locked.swap_remove(at);
        if customer.is_deleted() {
            return Err(customer_deleted(id));
        }
        Ok(customer)
    };
    Ok((take(duplicate_id)?, take(survivor_id)?))
}

impl Deletions {
    /// SubmitMergeRequest: a PENDING request of kind MERGE for the duplicate.
    pub async fn submit_merge(
        &self,
        caller: &Caller,
        ask: MergeAsk,
        key: Option<Idempotency>,
    ) -> Result<DeletionRequest> {
        caller.require(Action::SubmitDeletion)?;
        ask.validate()?;
        let ask = &ask;
        let mutation = Mutation::new(caller, Operation::SubmitMergeRequest, key.as_ref());
        mutation::run(&self.store, &self.clock, mutation, |change| async move {
            let (duplicate, survivor) = lock_pair(&change, ask.duplicate_id, ask.survivor_id).await?;
            self.record_unrecorded_lapses(&change, &duplicate).await?;
            if ask.duplicate_etag != duplicate.etag() {
                return Err(merge_etag_stale("duplicate_etag", &duplicate));
            }
            if ask.survivor_etag != survivor.etag() {
                return Err(merge_etag_stale("survivor_etag", &survivor));
            }
            merge_held(&duplicate, &survivor)?;
            super::requests::not_queued(&change, &duplicate).await?;
            let mut preview = self
                .moves_in(change.tx().conn(), &caller.tenant, &duplicate)
                .await?;
            // A merge moves every live record: what would block or keep a deletion does not apply.
            preview.blockers.clear();
            preview.alternatives.clear();
            let settings = self.tenant_settings(&change).await?;
            let preview = with_merge_requirement(preview, &settings, &duplicate);
            let request = DeletionRequest {
                merge: Some(MergeTerms {
                    survivor_id: survivor.id,
                    survivor_version: survivor.version,
                    take_fields: ask.take_fields.clone(),
                    values: None,
                }),
                ..self.pending_request(&change, duplicate.id, &ask.reason, preview, &settings)
            };
            store::deletion::insert_request(change.tx().conn(), &caller.tenant, &request).await?;
            change
                .audit(Entry {
                    action: "deletion_request.submit",
                    target_type: "deletion_request",
                    target_id: request.id,
                    customer_id: Some(duplicate.id),
                    summary: format!(
                        "kind=MERGE survivor_id={} preview_etag={} survivor_etag={} moves={} take_fields={}",
                        survivor.id,
                        duplicate.version,
                        survivor.version,
                        request.preview.impacts.iter().map(|i| i.count).sum::<i64>(),
                        ask.take_fields.len()
                    ),
                })
                .await?;
            Ok(request)
        })
        .await
    }

    /// MergeCustomers: executes an APPROVED request of kind MERGE.
    pub async fn merge(
        &self,
        caller: &Caller,
        request_id: Uuid,
        key: Option<Idempotency>,
    ) -> Result<Merged> {
        if !caller.may(Action::ActOnOwnDeletion) {
            caller.require(Action::ActOnAnyDeletion)?;
        }
        let mutation = Mutation::new(caller, Operation::MergeCustomers, key.as_ref());
        mutation::run(&self.store, &self.clock, mutation, |change| async move {
            let locked = self.lock_request(&change, request_id).await?;
            if let Err(refusal) =
                rules::may_merge(&locked.request, caller, change.now, locked.graph_version())
            {
                return Err(self.refuse(&change, &locked.request, refusal).await);
            }
            let (Some(duplicate), Some(survivor)) = (locked.customer, locked.survivor) else {
                return Err(Error::internal(
                    "a merge bound to its customers found one gone",
                ));
            };
            merge_held(&duplicate, &survivor)?;
            self.execute_merge(&change, locked.request, duplicate, survivor)
                .await
        })
        .await
    }

    /// The writes of a merge whose rules hold: the moves, the duplicate deleted, the survivor's
    /// fields, the request EXECUTED, one audit entry.
    async fn execute_merge(
        &self,
        change: &Change<'_>,
        request: DeletionRequest,
        duplicate: Customer,
        survivor: Customer,
    ) -> Result<Merged> {
        let (conn, tenant, now) = (change.tx().conn(), &change.caller.tenant, change.now);
        let terms = request
            .merge
            .clone()
            .ok_or_else(|| Error::internal("a merge without terms"))?;
        let merge_id = Uuid::now_v7();
        let moved =
            store::merges::move_records(conn, tenant, merge_id, duplicate.id, survivor.id).await?;
        // The duplicate goes first: the survivor may take its external_ref, which the unique
        // index lets only one live customer hold.
        let retention = self.tenant_settings(change).await?.retention;
        let purge_time = now + chrono_duration(retention);
        store::deletion::mark_customer_deleted(
            conn,
            tenant,
            duplicate.id,
            merge_id,
            now,
            purge_time,
        )
        .await?;
        let (merged_survivor, values) =
            take_fields(&survivor, &duplicate, &terms.take_fields, now)?;
        if store::customers::update(conn, tenant, &merged_survivor, survivor.version).await?
            != store::Written::Applied
        {
            return Err(Error::internal("the survivor changed under its row lock"));
        }
        let executed = DeletionRequest {
            merge: Some(MergeTerms {
                values: Some(values),
                ..terms.clone()
            }),
            ..request.executed(now, merge_id)
        };
        self.save(change, &executed).await?;
        change
            .audit(merge_entry(&duplicate, &survivor, &executed, moved))
            .await?;
        Ok(Merged {
            survivor: merged_survivor,
            duplicate: Customer {
                delete_time: Some(now),
                purge_time: Some(purge_time),
                deletion_id: Some(merge_id),
                version: duplicate.version + 1,
                ..duplicate
            },
            moved_records: moved,
            taken_fields: terms.take_fields,
        })
    }
}

/// The one audit entry of a merge: ids and counts.
fn merge_entry(
    duplicate: &Customer,
    survivor: &Customer,
    executed: &DeletionRequest,
    moved: u64,
) -> Entry {
    let (merge_id, taken) = (
        executed.deletion_id.unwrap_or_default(),
        executed.merge.as_ref().map_or(0, |m| m.take_fields.len()),
    );
    Entry {
        action: "customer.merge",
        target_type: "customer",
        target_id: duplicate.id,
        customer_id: Some(duplicate.id),
        summary: format!(
            "duplicate_id={} survivor_id={} merge_id={merge_id} deletion_request={} moved={moved} \
             taken_fields={taken}",
            duplicate.id, survivor.id, executed.id
        ),
    }
}

/// The survivor with the duplicate's values in `fields` and its graph version moved on (records
/// arrived even when no field changes), and the values before and after for an unmerge.
fn take_fields(
    survivor: &Customer,
    duplicate: &Customer,
    fields: &[String],
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(Customer, MergeValues)> {
    let mut merged = Customer {
        version: survivor.version + 1,
        update_time: now,
        ..survivor.clone()
    };
    let mut values = MergeValues::default();
    for field in fields {
        let taken = field_value(duplicate, field);
        values
            .survivor_before
            .push((field.clone(), field_value(survivor, field)));
        values.taken.push((field.clone(), taken.clone()));
        merged = with_field(merged, field, &taken)?;
    }
    Ok((merged, values))
}

/// A merge's preview with what the tenant's two-person rule asks of merging `duplicate` away.
fn with_merge_requirement(
    preview: super::DeletionPreview,
    settings: &TenantSettings,
    duplicate: &Customer,
) -> super::DeletionPreview {
    let needs = approval::for_merge(&settings.two_person, duplicate.key_account);
    super::DeletionPreview {
        approvals_required: needs.approvals,
        admin_approval_required: needs.admin_required,
        approval_reasons: needs.reasons,
        ..preview
    }
}
