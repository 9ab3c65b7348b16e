//! The deletion lifecycle (docs/design.md section 4): preview, the approval state machine, delete
//! and restore.
//!
//! - `rules`: the state machine as pure functions (who may decide, cancel or execute a request,
//!   and when it has lapsed), unit-tested without a database;
//! - `preview`: what a deletion would do, from the policy table;
//! - `requests`: submit, read, approve, reject, cancel;
//! - `execute`: DeleteCustomer, the one transaction that soft-deletes the customer and its graph;
//! - `restore`: RestoreCustomer.
//!
//! Every transition runs in one write transaction (`domain::mutation::run`) that first locks the
//! customer's row (the lock every record write takes to bump the graph version), then the
//! request's row: always in that order, so transitions and record writes of one customer queue
//! instead of deadlocking. A request is bound to the graph version its preview saw; any write to
//! the graph since turns it STALE.

mod execute;
mod merge;
mod merging;
mod preview;
mod recycle_bin;
mod requests;
mod restore;
pub mod rules;
mod unmerge;

pub(crate) use execute::GraphToDelete;
pub use merging::{MergeAsk, Merged};
pub use preview::build_preview;
pub(crate) use requests::policy_summary;
pub use unmerge::{KeptField, Unmerged};

use std::time::Duration;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::Clock;
use super::model::customer::Customer;
use super::model::tenant_settings::TenantSettings;
use super::paging::PageTokenKey;
use super::tenant_settings::TenantPolicies;
use crate::error::{Error, PreconditionViolation, Problem};
use crate::reason;
use crate::store::Store;

pub use super::model::deletion::{
    Blocker, DeletionPreview, DeletionRequest, FieldConflict, MergePreview, PipelineWarning,
    RelationImpact, RequestState, StoredRequest,
};

/// How many sample ids a preview shows per relation and state.
pub const SAMPLE_IDS: u64 = 10;
const REASON_MAX: usize = 1000;

/// The process-wide lifecycle settings: the defaults of a tenant's `TenantSettings`.
#[derive(Debug, Clone, Copy)]
pub struct LifecycleSettings {
    /// How long a request may wait for approval and then for execution.
    pub request_ttl: Duration,
    /// How long a deleted customer, or a record deleted on its own, can be restored before it is
    /// erased.
    pub retention: Duration,
}

impl Default for LifecycleSettings {
    fn default() -> Self {
        Self {
            request_ttl: Duration::from_secs(72 * 3600),
            retention: Duration::from_secs(30 * 24 * 3600),
        }
    }
}

/// A customer deleted by DeleteCustomer, and how many records went with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deleted {
    pub customer: Customer,
    pub deleted_records: u64,
}

/// A customer brought back (or that would be, with validate_only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Restored {
    pub customer: Customer,
    pub restored_records: u64,
}

fn blocked(preview: &DeletionPreview) -> Error {
    let violations = preview
        .blockers
        .iter()
        .map(|b| PreconditionViolation {
            kind: reason::CUSTOMER_HAS_BLOCKERS,
            subject: match b.relation {
                Some(kind) => format!("{}:{}", kind.name(), b.reason),
                None => format!("customer:{}", b.reason),
            },
            description: format!("{} ({} record(s)): {}", b.reason, b.count, b.resolution),
        })
        .collect();
    let reasons: Vec<&str> = preview.blockers.iter().map(|b| b.reason.as_str()).collect();
    Error::FailedPrecondition {
        problem: Problem::new(
            reason::CUSTOMER_HAS_BLOCKERS,
            format!("the customer cannot be deleted yet: {}", reasons.join(", ")),
        )
        .with("customerId", preview.customer_id)
        .with("blockers", reasons.join(",")),
        violations,
    }
}

fn stale(request_id: Uuid, customer_id: Uuid) -> Error {
    Error::FailedPrecondition {
        problem: Problem::new(
            reason::PREVIEW_STALE,
            "the customer's records changed since the preview: preview again and submit a new request",
        )
        .with("deletionRequestId", request_id)
        .with("customerId", customer_id),
        violations: vec![PreconditionViolation {
            kind: reason::PREVIEW_STALE,
            subject: format!("customers/{customer_id}"),
            description: "the graph etag no longer matches the previewed one".into(),
        }],
    }
}

fn not_in_state(request: &DeletionRequest, reason: &'static str, wanted: &str) -> Error {
    Error::failed_precondition(
        Problem::new(
            reason,
            format!(
                "the deletion request is {}, not {wanted}",
                request.state.name()
            ),
        )
        .with("deletionRequestId", request.id)
        .with("state", request.state.name()),
    )
}

/// The customer's external_ref is held by a live customer of the tenant: `holder` names it
/// (id and name) when it is known, so the caller knows which of the two to change. The unique
/// index's refusal, a race past the check, does not say who holds it.
pub(crate) fn restore_conflict(customer_id: Uuid, holder: Option<(Uuid, &str)>) -> Error {
    let Some((holder_id, holder_name)) = holder else {
        return Error::FailedPrecondition {
            problem: Problem::new(
                reason::RESTORE_CONFLICT,
                "the customer's external_ref is now used by a live customer: change one of them first",
            )
            .with("customerId", customer_id)
            .with("field", "external_ref"),
            violations: vec![PreconditionViolation {
                kind: reason::RESTORE_CONFLICT,
                subject: "external_ref".into(),
                description: "another live customer of the tenant has this external_ref".into(),
            }],
        };
    };
    let name = crate::error::echo(holder_name);
    Error::FailedPrecondition {
        problem: Problem::new(
            reason::RESTORE_CONFLICT,
            format!(
                "the customer's external_ref is now used by live customer {holder_id} ({name:?}): \
                 change or clear the external_ref of one of them, then restore again"
            ),
        )
        .with("customerId", customer_id)
        .with("field", "external_ref")
        .with("conflictingCustomerId", holder_id)
        .with("conflictingCustomerName", holder_name),
        violations: vec![PreconditionViolation {
            kind: reason::RESTORE_CONFLICT,
            subject: "external_ref".into(),
            description: format!("live customer {holder_id} of the tenant has this external_ref"),
        }],
    }
}

/// Deletion operations, shared by every request.
#[derive(Clone)]
pub struct Deletions {
    store: Store,
    page_key: PageTokenKey,
    clock: Clock,
    /// The tenant's retention and request lifetime, read in each write that uses them.
    policies: TenantPolicies,
}

impl Deletions {
    pub fn new(
        store: Store,
        page_key: PageTokenKey,
        clock: Clock,
        policies: TenantPolicies,
    ) -> Self {
        Self {
            store,
            page_key,
            clock,
            policies,
        }
    }

    /// The caller's tenant's settings, read in the change's transaction: what a request made in it
    /// is submitted under.
    pub(crate) async fn tenant_settings(
        &self,
        change: &super::mutation::Change<'_>,
    ) -> crate::error::Result<TenantSettings> {
        self.policies.effective_in(change).await
    }
}
