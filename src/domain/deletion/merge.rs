//! Merging a duplicate into the customer that stays, previewed: every live record of the duplicate
//! moves (whatever its state: an open order or an active contract goes on with the survivor, so
//! nothing of the duplicate blocks), the customer fields that differ are listed for the merge to
//! choose from, and a legal hold on either customer stops it.

use uuid::Uuid;

use super::super::access::{Action, Caller};
use super::super::customer_deleted;
use super::super::model::customer::{Customer, CustomerStatus, LifecycleStage};
use super::super::policy;
use super::{Blocker, DeletionPreview, Deletions, FieldConflict, MergePreview};
use crate::error::{Error, Result};
use crate::store;

impl Deletions {
    /// What merging `duplicate_id` into `survivor_id` would do. Any role; writes nothing.
    pub async fn preview_merge(
        &self,
        caller: &Caller,
        duplicate_id: Uuid,
        survivor_id: Uuid,
    ) -> Result<MergePreview> {
        caller.require(Action::Read)?;
        if duplicate_id == survivor_id {
            return Err(Error::invalid_field(
                "survivor_id",
                "is the duplicate itself: name the customer that stays",
            ));
        }
        // One snapshot: the moves, the fields and both versions are of the same moment.
        let tx = self.store.begin_read().await?;
        let (conn, tenant) = (tx.conn(), &caller.tenant);
        let duplicate = live_customer(conn, tenant, duplicate_id).await?;
        let survivor = live_customer(conn, tenant, survivor_id).await?;
        let graph = self.moves_in(conn, tenant, &duplicate).await?;
        tx.commit().await?;
        Ok(merge_preview(&duplicate, &survivor, graph))
    }
}

pub(super) async fn live_customer(
    conn: &impl store::Connection,
    tenant: &str,
    id: Uuid,
) -> Result<Customer> {
    let customer = store::customers::find(conn, tenant, id)
        .await?
        .ok_or_else(|| Error::not_found("customer", id))?;
    if customer.is_deleted() {
        return Err(customer_deleted(id));
    }
    Ok(customer)
}

/// The merge preview of two live customers, from the duplicate's graph as a deletion preview
/// counted it (its policies do not apply: every record moves).
pub fn merge_preview(
    duplicate: &Customer,
    survivor: &Customer,
    graph: DeletionPreview,
) -> MergePreview {
    MergePreview {
        duplicate_id: duplicate.id,
        survivor_id: survivor.id,
        duplicate_version: duplicate.version,
        survivor_version: survivor.version,
        move_count: graph.impacts.iter().map(|i| i.count).sum(),
        moves: graph.impacts,
        conflicts: conflicts(duplicate, survivor),
        blockers: merge_blockers(duplicate, survivor),
    }
}

/// What stops a merge: a legal hold on either customer.
pub(super) fn merge_blockers(duplicate: &Customer, survivor: &Customer) -> Vec<Blocker> {
    [duplicate, survivor]
        .into_iter()
        .filter(|c| c.legal_hold)
        .map(|c| Blocker {
            reason: policy::LEGAL_HOLD.0.to_owned(),
            relation: None,
            count: 1,
            sample_ids: vec![c.id],
            resolution: policy::LEGAL_HOLD.1.to_owned(),
        })
        .collect()
}

/// The customer fields a merge may take from the duplicate, named as in an update_mask.
pub const MERGE_FIELDS: [&str; 8] = [
    "name",
    "phone",
    "email",
    "industry",
    "owner_id",
    "lifecycle_stage",
    "status",
    "external_ref",
];

/// The fields a merge may take from the duplicate, where the two customers differ.
fn conflicts(duplicate: &Customer, survivor: &Customer) -> Vec<FieldConflict> {
    MERGE_FIELDS
        .into_iter()
        .map(|field| FieldConflict {
            field: field.to_owned(),
            duplicate_value: field_value(duplicate, field),
            survivor_value: field_value(survivor, field),
        })
        .filter(|c| c.duplicate_value != c.survivor_value)
        .collect()
}

/// A merge field's value as text (an enum as its proto value name without the prefix).
pub(super) fn field_value(c: &Customer, field: &str) -> String {
    match field {
        "name" => c.name.clone(),
        "phone" => c.phone.clone(),
        "email" => c.email.clone(),
        "industry" => c.industry.clone(),
        "owner_id" => c.owner_id.clone(),
        "lifecycle_stage" => stage_name(c.lifecycle_stage).to_owned(),
        "status" => status_name(c.status).to_owned(),
        "external_ref" => c.external_ref.clone(),
        _ => String::new(),
    }
}

/// `c` with `field` set to `value`, as `field_value` wrote it.
pub(super) fn with_field(c: Customer, field: &str, value: &str) -> Result<Customer> {
    let unreadable = || Error::internal(format!("merge field {field} has no value {value:?}"));
    Ok(match field {
        "name" => Customer {
            name: value.to_owned(),
            ..c
        },
        "phone" => Customer {
            phone: value.to_owned(),
            ..c
        },
        "email" => Customer {
            email: value.to_owned(),
            ..c
        },
        "industry" => Customer {
            industry: value.to_owned(),
            ..c
        },
        "owner_id" => Customer {
            owner_id: value.to_owned(),
            ..c
        },
        "lifecycle_stage" => Customer {
            lifecycle_stage: [
                LifecycleStage::Lead,
                LifecycleStage::Prospect,
                LifecycleStage::Customer,
            ]
            .into_iter()
            .find(|s| stage_name(*s) == value)
            .ok_or_else(unreadable)?,
            ..c
        },
        "status" => Customer {
            status: [CustomerStatus::Active, CustomerStatus::Inactive]
                .into_iter()
                .find(|s| status_name(*s) == value)
                .ok_or_else(unreadable)?,
            ..c
        },
        "external_ref" => Customer {
            external_ref: value.to_owned(),
            ..c
        },
        _ => return Err(unreadable()),
    })
}

/// The proto's value names, without the enum's prefix.
fn stage_name(stage: LifecycleStage) -> &'static str {
    match stage {
        LifecycleStage::Lead => "LEAD",
        LifecycleStage::Prospect => "PROSPECT",
        LifecycleStage::Customer => "CUSTOMER",
    }
}

fn status_name(status: CustomerStatus) -> &'static str {
    match status {
        CustomerStatus::Active => "ACTIVE",
        CustomerStatus::Inactive => "INACTIVE",
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;
    use crate::domain::model::deletion::RelationImpact;
    use crate::domain::model::record::RecordKind;
    use crate::domain::policy::Policy;

    fn customer(name: &str, email: &str) -> Customer {
        let now = Utc::now();
        Customer {
            id: Uuid::now_v7(),
            name: name.into(),
            phone: "+44 20 7946 0000".into(),
            email: email.into(),
            industry: "retail".into(),
            owner_id: "rep-1".into(),
            lifecycle_stage: LifecycleStage::Prospect,
            status: CustomerStatus::Active,
            external_ref: String::new(),
            legal_hold: false,
            create_time: now,
            update_time: now,
            delete_time: None,
            purge_time: None,
            version: 3,
            deletion_id: None,
        }
    }

    fn graph(counts: &[(RecordKind, Option<&str>, Policy, i64)]) -> DeletionPreview {
        DeletionPreview {
            customer_id: Uuid::now_v7(),
            version: 3,
            impacts: counts
                .iter()
                .map(|(relation, state, policy, count)| RelationImpact {
                    relation: *relation,
                    state: state.map(str::to_owned),
                    policy: *policy,
                    count: *count,
                    sample_ids: Vec::new(),
                })
                .collect(),
            blockers: Vec::new(),
            warnings: Vec::new(),
            approval_required: true,
            cascade_count: 0,
            keep_count: 0,
            alternatives: Vec::new(),
            approvals_required: 1,
            admin_approval_required: false,
            approval_reasons: Vec::new(),
        }
    }

    #[test]
    fn every_live_record_moves_whatever_would_block_or_keep_a_deletion() {
        let (d, s) = (
            customer("Acme", "a@acme.example"),
            customer("Acme", "a@acme.example"),
        );
        let preview = merge_preview(
            &d,
            &s,
            graph(&[
                (RecordKind::Contact, None, Policy::Cascade, 4),
                (RecordKind::Order, Some("OPEN"), Policy::Block, 2),
                (RecordKind::Order, Some("PAID"), Policy::Keep, 3),
            ]),
        );
        assert_eq!(preview.move_count, 9);
        assert!(
            preview.blockers.is_empty(),
            "an open order moves, it does not block"
        );
        assert!(preview.conflicts.is_empty());
        assert_eq!((preview.duplicate_id, preview.survivor_id), (d.id, s.id));
    }

    #[test]
    fn differing_fields_are_listed_with_both_values_and_a_hold_on_either_blocks() {
        let d = Customer {
            status: CustomerStatus::Inactive,
            external_ref: "ERP-1".into(),
            legal_hold: true,
            ..customer("ACME Ltd", "sales@acme.example")
        };
        let s = Customer {
            legal_hold: true,
            ..customer("Acme Limited", "sales@acme.example")
        };
        let preview = merge_preview(&d, &s, graph(&[]));
        let differing: Vec<(&str, &str, &str)> = preview
            .conflicts
            .iter()
            .map(|c| {
                (
                    c.field.as_str(),
                    c.duplicate_value.as_str(),
                    c.survivor_value.as_str(),
                )
            })
            .collect();
        assert_eq!(
            differing,
            [
                ("name", "ACME Ltd", "Acme Limited"),
                ("status", "INACTIVE", "ACTIVE"),
                ("external_ref", "ERP-1", ""),
            ]
        );
        let held: Vec<Uuid> = preview.blockers.iter().map(|b| b.sample_ids[0]).collect();
        assert_eq!(held, [d.id, s.id]);
        assert!(preview.blockers.iter().all(|b| b.reason == "LEGAL_HOLD"));
    }
}
