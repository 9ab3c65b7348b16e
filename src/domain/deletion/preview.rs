//! What deleting a customer would do: the per-state counts of its graph read through the policy
//! table, with samples, blockers and the open pipeline.

use uuid::Uuid;

use super::super::access::{Action, Caller};
use super::super::customer_deleted;
use super::super::model::customer::{Customer, CustomerStatus};
use super::super::model::deletion::Alternative;
use super::super::policy::{self, Policy};
use super::super::records::RecordKind;
use super::{Blocker, DeletionPreview, Deletions, PipelineWarning, RelationImpact, SAMPLE_IDS};
use crate::error::{Error, Result};
use crate::reason;
use crate::store;

/// Builds the preview from the per-state counts: the policy table decides what each count means.
pub fn build_preview(
    customer: &Customer,
    counts: &[store::deletion::StateCount],
    samples: impl Fn(RecordKind, Option<&str>) -> Vec<Uuid>,
    pipeline: Vec<store::deletion::OpenPipeline>,
) -> DeletionPreview {
    let mut impacts = Vec::new();
    let mut blockers = Vec::new();
    let (mut cascade_count, mut keep_count) = (0, 0);
    for count in counts.iter().filter(|c| c.count > 0) {
        // A state the table does not know cannot be deleted safely: treat it as blocking.
        let rule = policy::rule_for(count.kind, count.state.as_deref());
        let policy = rule.map_or(Policy::Block, |r| r.policy);
        let sample_ids = samples(count.kind, count.state.as_deref());
        match policy {
            Policy::Cascade => cascade_count += count.count,
            Policy::Keep => keep_count += count.count,
            Policy::Block => blockers.push(blocker(rule, count, sample_ids.clone())),
        }
        impacts.push(RelationImpact {
            relation: count.kind,
            state: count.state.clone(),
            policy,
            count: count.count,
            sample_ids,
        });
    }
    if customer.legal_hold {
        blockers.push(legal_hold(customer));
    }
    let warnings = pipeline
        .into_iter()
        .map(|p| PipelineWarning::from_total(p.currency, p.amount_minor, p.deals))
        .collect();
    let alternatives = mark_inactive_instead(customer, counts, keep_count)
        .into_iter()
        .collect();
    DeletionPreview {
        customer_id: customer.id,
        version: customer.version,
        impacts,
        blockers,
        warnings,
        approval_required: true,
        cascade_count,
        keep_count,
        alternatives,
        // What the tenant's two-person rule asks is added by the caller that knows the tenant
        // (`Deletions::with_requirement`).
        approvals_required: 1,
        admin_approval_required: false,
        approval_reasons: Vec::new(),
    }
}

/// A customer with history the books keep (records a deletion would leave pointing at a
/// tombstone, or deals that were won or lost) is usually one the business no longer works with,
/// not one that should never have existed: INACTIVE says that, keeps the history whole, needs no
/// approval and is undone by setting the status back.
fn mark_inactive_instead(
    customer: &Customer,
    counts: &[store::deletion::StateCount],
    keep_count: i64,
) -> Option<Alternative> {
    if customer.status == CustomerStatus::Inactive {
        return None;
    }
    let closed_deals: i64 = counts
        .iter()
        .filter(|c| {
            c.kind == RecordKind::Deal && matches!(c.state.as_deref(), Some("WON" | "LOST"))
        })
        .map(|c| c.count)
        .sum();
    if keep_count == 0 && closed_deals == 0 {
        return None;
    }
    let mut history = Vec::new();
    if keep_count > 0 {
        history.push(format!("{keep_count} record(s) kept for the books"));
    }
    if closed_deals > 0 {
        history.push(format!("{closed_deals} won or lost deal(s)"));
    }
    Some(Alternative {
        code: MARK_INACTIVE.to_owned(),
        explanation: format!(
            "the customer has history ({}): if the business no longer works with it, set its \
             status to INACTIVE instead (UpdateCustomer, update_mask status), which keeps it \
             whole, needs no approval and is undone by setting it back",
            history.join(", ")
        ),
    })
}

/// The code of the "set the status to INACTIVE instead" alternative.
pub const MARK_INACTIVE: &str = "MARK_INACTIVE";

/// The blocker a BLOCK count makes; a state the table does not know blocks too, for an
/// administrator to look at.
fn blocker(
    rule: Option<&policy::Rule>,
    count: &store::deletion::StateCount,
    sample_ids: Vec<Uuid>,
) -> Blocker {
    let (reason, resolution) = rule
        .and_then(|r| r.blocker)
        .unwrap_or((reason::UNKNOWN_RECORD_STATE, "contact an administrator"));
    Blocker {
        reason: reason.to_owned(),
        relation: Some(count.kind),
        count: count.count,
        sample_ids,
        resolution: resolution.to_owned(),
    }
}

fn legal_hold(customer: &Customer) -> Blocker {
    let (reason, resolution) = policy::LEGAL_HOLD;
    Blocker {
        reason: reason.to_owned(),
        relation: None,
        count: 1,
        sample_ids: vec![customer.id],
        resolution: resolution.to_owned(),
    }
}

impl Deletions {
    /// The preview of `customer`'s deletion. Without `detail` it holds the counts, policies and
    /// blockers only (no sample ids, no pipeline warning): what DeleteCustomer re-checks inside
    /// its write transaction, where every query lengthens the time the customer stays locked.
    pub(crate) async fn preview_in(
        &self,
        conn: &impl store::Connection,
        tenant: &str,
        customer: &Customer,
        detail: bool,
    ) -> Result<DeletionPreview> {
        let counts = store::deletion::state_counts(conn, tenant, customer.id).await?;
        let samples = samples_of(conn, tenant, customer, &counts, |_| detail).await?;
        let pipeline = if detail {
            store::deletion::open_pipeline(conn, tenant, customer.id).await?
        } else {
            Vec::new()
        };
        Ok(build_preview(
            customer,
            &counts,
            |kind, state| sample_lookup(&samples, kind, state),
            pipeline,
        ))
    }

    /// What a merge of `customer` would move: the counts and sample ids of every live record,
    /// without the open pipeline (a merge keeps the deals open, with the survivor).
    pub(crate) async fn moves_in(
        &self,
        conn: &impl store::Connection,
        tenant: &str,
        customer: &Customer,
    ) -> Result<DeletionPreview> {
        let counts = store::deletion::state_counts(conn, tenant, customer.id).await?;
        let samples = samples_of(conn, tenant, customer, &counts, |_| true).await?;
        Ok(build_preview(
            customer,
            &counts,
            |kind, state| sample_lookup(&samples, kind, state),
            Vec::new(),
        ))
    }

    /// A preview without sample ids or pipeline from counts already read (a batch chunk reads
    /// its customers' counts in one go: `store::deletion::state_counts_of`).
    pub(crate) fn preview_of_counts(
        customer: &Customer,
        counts: &[store::deletion::StateCount],
    ) -> DeletionPreview {
        build_preview(customer, counts, |_, _| Vec::new(), Vec::new())
    }

    /// The preview of one customer of a batch: counts, policies, blockers with their sample ids
    /// (so that whoever resolves them knows which records) and the open pipeline, without the
    /// sample ids of what would be cascaded or kept (a batch sums those counts).
    pub(crate) async fn preview_for_batch(
        &self,
        conn: &impl store::Connection,
        tenant: &str,
        customer: &Customer,
    ) -> Result<DeletionPreview> {
        let counts = store::deletion::state_counts(conn, tenant, customer.id).await?;
        let blocking = |c: &store::deletion::StateCount| {
            policy::rule_for(c.kind, c.state.as_deref()).is_none_or(|r| r.policy == Policy::Block)
        };
        let samples = samples_of(conn, tenant, customer, &counts, blocking).await?;
        let pipeline = store::deletion::open_pipeline(conn, tenant, customer.id).await?;
        Ok(build_preview(
            customer,
            &counts,
            |kind, state| sample_lookup(&samples, kind, state),
            pipeline,
        ))
    }

    /// What deleting the customer would do. Writes nothing.
    pub async fn preview(&self, caller: &Caller, customer_id: Uuid) -> Result<DeletionPreview> {
        caller.require(Action::Read)?;
        // The customer's version, the counts, the samples and the pipeline come from one
        // snapshot: a write after it moves the version on, so a request made from this preview is
        // refused as stale rather than approving counts that were never shown.
        let tx = self.store.begin_read().await?;
        let conn = tx.conn();
        let customer = store::customers::find(conn, &caller.tenant, customer_id)
            .await?
            .ok_or_else(|| Error::not_found("customer", customer_id))?;
        if customer.is_deleted() {
            return Err(customer_deleted(customer_id));
        }
        let preview = self
            .preview_in(conn, &caller.tenant, &customer, true)
            .await?;
        // In the same snapshot: the rule the preview names is the one of the moment it shows.
        let settings = self.policies.effective_on(conn, &caller.tenant).await?;
        tx.commit().await?;
        Ok(super::requests::with_requirement(
            preview,
            &settings.two_person,
            &customer,
        ))
    }
}

/// Up to `SAMPLE_IDS` ids of each non-empty count that `wanted` picks, keyed by kind and state.
type Samples = Vec<((RecordKind, Option<String>), Vec<Uuid>)>;

async fn samples_of(
    conn: &impl store::Connection,
    tenant: &str,
    customer: &Customer,
    counts: &[store::deletion::StateCount],
    wanted: impl Fn(&store::deletion::StateCount) -> bool,
) -> Result<Samples> {
    let mut samples = Vec::new();
    for c in counts.iter().filter(|c| c.count > 0 && wanted(c)) {
        let ids = store::deletion::sample_ids(
            conn,
            tenant,
            customer.id,
            c.kind,
            c.state.as_deref(),
            SAMPLE_IDS,
        )
        .await?;
        samples.push(((c.kind, c.state.clone()), ids));
    }
    Ok(samples)
}

fn sample_lookup(samples: &Samples, kind: RecordKind, state: Option<&str>) -> Vec<Uuid> {
    samples
        .iter()
        .find(|((k, s), _)| *k == kind && s.as_deref() == state)
        .map(|(_, ids)| ids.clone())
        .unwrap_or_default()
}
