//! SubmitDeletionBatch: previews every customer named and records the batch with one item per
//! customer, QUEUED (bound to the graph version its preview saw) or EXCLUDED with why.

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::super::access::{Action, Caller};
use super::super::approval;
use super::super::audit::Entry;
use super::super::chrono_duration;
use super::super::deletion::policy_summary;
use super::super::idempotency::Idempotency;
use super::super::model::customer::{Customer, CustomerQuery};
use super::super::model::deletion::{Blocker, DeletionPreview, PipelineWarning, RelationImpact};
use super::super::model::tenant_settings::TenantSettings;
use super::super::mutation::{self, Change, Mutation, Operation};
use super::super::validate::Violations;
use super::{
    BatchImpact, BatchItem, BatchProgress, BatchSelection, BatchState, BatchStateFilter, Batches,
    DeletionBatch, Exclusion, ItemState,
};
use crate::error::{Error, Problem, Result};
use crate::reason;
use crate::store;

const REASON_MAX: usize = 1000;
/// How far a filter's matches are counted when they are over the cap, to say how many matched.
const COUNT_MATCHES_UP_TO: usize = 100_000;

/// A customer's fate at submission.
enum Verdict {
    /// Included, bound to the graph version its preview saw (the preview itself goes into the
    /// impact at once: a batch of 10,000 never holds 10,000 previews).
    Queued { version: i64 },
    Excluded {
        reason: &'static str,
        version: Option<i64>,
        blockers: Vec<Blocker>,
    },
}

impl Batches {
    pub async fn submit(
        &self,
        caller: &Caller,
        selection: BatchSelection,
        reason: String,
        key: Option<Idempotency>,
    ) -> Result<(DeletionBatch, Vec<BatchItem>)> {
        caller.require(Action::SubmitDeletion)?;
        let mut v = Violations::new();
        v.required_text("reason", &reason, REASON_MAX);
        v.finish()?;
        let customers = self.resolve(caller, selection).await?;
        let (reason, customers) = (&reason, &customers);
        let mutation = Mutation::new(caller, Operation::SubmitDeletionBatch, key.as_ref());
        // The customers are judged inside the write, after a retry's stored answer is replayed
        // (its own customers would now read as already requested) and in the transaction that
        // writes the batch, so what was checked is what is written.
        mutation::run(&self.store, &self.clock, mutation, |change| async move {
            let (conn, tenant) = (change.tx().conn(), &change.caller.tenant);
            let (verdicts, impact) = &self.judge(conn, tenant, customers, change.now).await?;
            if impact.included_count == 0 {
                return Err(nothing_to_delete(impact));
            }
            let open =
                store::batches::count(conn, tenant, &BatchStateFilter::open(change.now)).await?;
            if open >= self.settings.max_open as u64 {
                return Err(too_many_open(self.settings.max_open));
            }
            let settings = self.deletions.tenant_settings(&change).await?;
            let batch = self.new_batch(&change, reason, impact.clone(), &settings);
            let items = new_items(batch.id, verdicts, change.now);
            store::batches::insert(conn, tenant, &batch, &items).await?;
            change
                .audit(Entry {
                    action: "deletion_batch.submit",
                    target_type: "deletion_batch",
                    target_id: batch.id,
                    customer_id: None,
                    summary: format!(
                        "items={} included={} excluded={} cascade={} keep={} {}",
                        items.len(),
                        impact.included_count,
                        impact.excluded_count,
                        impact.cascade_count,
                        impact.keep_count,
                        policy_summary(&batch.approval)
                    ),
                })
                .await?;
            Ok((batch, items))
        })
        .await
    }

    /// The customers a selection names, at most `max_items` of them.
    async fn resolve(&self, caller: &Caller, selection: BatchSelection) -> Result<Vec<Uuid>> {
        let max = self.settings.max_items;
        match selection {
            BatchSelection::Ids(ids) => {
                let mut seen = HashSet::new();
                if let Some(dup) = ids.iter().find(|id| !seen.insert(**id)) {
                    return Err(Error::invalid_field(
                        "customer_ids",
                        format!("names customer {dup} more than once: name each customer once"),
                    ));
                }
                if ids.len() > max {
                    return Err(Error::invalid_field(
                        "customer_ids",
                        format!(
                            "names {} customers; a batch takes at most {max}: split it",
                            ids.len()
                        ),
                    ));
                }
                Ok(ids)
            }
            BatchSelection::Filter(query) => self.matching(caller, &query).await,
        }
    }

    /// The live customers `query` matches now, or an error saying how many matched when that is
    /// more than a batch takes.
    async fn matching(&self, caller: &Caller, query: &CustomerQuery) -> Result<Vec<Uuid>> {
        query.check("filter.")?;
        let max = self.settings.max_items;
        let mut ids = Vec::new();
        let mut after = None;
        loop {
            let page =
                store::customers::list(&self.store, &caller.tenant, query, after, 1000).await?;
            let full = page.len() == 1000;
            after = page.last().map(|c| c.id);
            ids.extend(page.into_iter().map(|c| c.id));
            if !full || ids.len() >= COUNT_MATCHES_UP_TO {
                break;
            }
        }
        if ids.len() > max {
            let matched = if ids.len() >= COUNT_MATCHES_UP_TO {
                format!("more than {COUNT_MATCHES_UP_TO}")
            } else {
                ids.len().to_string()
            };
            return Err(Error::invalid_field(
                "filter",
                format!(
                    "matches {matched} customers; a batch takes at most {max}: narrow the filter"
                ),
            ));
        }
        Ok(ids)
    }

    /// Each customer's fate, judged in the submission's transaction: its preview and the graph
    /// version it saw.
    async fn judge(
        &self,
        conn: &impl store::Connection,
        tenant: &str,
        customers: &[Uuid],
        now: DateTime<Utc>,
    ) -> Result<(Vec<(Uuid, Verdict)>, BatchImpact)> {
        let mut impact = ImpactSum::default();
        let in_batches =
            store::batches::queued_in(conn, tenant, customers, &BatchStateFilter::open(now))
                .await?;
        let mut verdicts = Vec::with_capacity(customers.len());
        for &id in customers {
            let excluded = |reason, version| Verdict::Excluded {
                reason,
                version,
                blockers: Vec::new(),
            };
            let verdict = match store::customers::find(conn, tenant, id).await? {
                None => excluded(reason::NOT_FOUND, None),
                Some(c) if c.is_deleted() => excluded(reason::CUSTOMER_DELETED, Some(c.version)),
                Some(c)
                    if in_batches.contains(&id)
                        || has_open_request(conn, tenant, &c, now).await? =>
                {
                    excluded(reason::DELETION_ALREADY_REQUESTED, Some(c.version))
                }
                Some(c) => {
                    let preview = self.deletions.preview_for_batch(conn, tenant, &c).await?;
                    if preview.blockers.is_empty() {
                        impact.add(&preview, c.key_account);
                        Verdict::Queued {
                            version: preview.version,
                        }
                    } else {
                        Verdict::Excluded {
                            reason: reason::CUSTOMER_HAS_BLOCKERS,
                            version: Some(c.version),
                            blockers: preview.blockers,
                        }
                    }
                }
            };
            if let Verdict::Excluded { reason, .. } = &verdict {
                impact.exclude(reason);
            }
            verdicts.push((id, verdict));
        }
        Ok((verdicts, impact.finish()))
    }

    /// A new PENDING batch with this impact, made by the change's caller, routed and needing the
    /// approvals the tenant's `settings` ask, waiting for a decision until a request's lifetime
    /// passes.
    fn new_batch(
        &self,
        change: &Change<'_>,
        reason: &str,
        impact: BatchImpact,
        settings: &TenantSettings,
    ) -> DeletionBatch {
        let now = change.now;
        let needs = approval::for_batch(&settings.two_person, &impact);
        DeletionBatch {
            id: Uuid::now_v7(),
            requester_id: change.caller.subject.clone(),
            reason: reason.to_owned(),
            state: BatchState::Pending,
            progress: BatchProgress {
                total_items: impact.included_count + impact.excluded_count,
                queued: impact.included_count,
                excluded: impact.excluded_count,
                ..BatchProgress::default()
            },
            impact,
            decided_by: String::new(),
            decision_comment: String::new(),
            decide_time: None,
            expire_time: now + chrono_duration(settings.request_ttl),
            create_time: now,
            update_time: now,
            started_by: String::new(),
            start_time: None,
            finish_time: None,
            restore_start_time: None,
            restore_finish_time: None,
            version: 1,
            approval: approval::route(change.caller, settings, needs),
            approvals: Vec::new(),
            escalate_time: settings
                .escalate_after
                .map(|after| now + chrono_duration(after)),
        }
    }
}

/// One item per verdict, in submission order: QUEUED and bound to the version its preview saw,
/// or EXCLUDED with why.
fn new_items(batch_id: Uuid, verdicts: &[(Uuid, Verdict)], now: DateTime<Utc>) -> Vec<BatchItem> {
    verdicts
        .iter()
        .enumerate()
        .map(|(position, (customer_id, verdict))| {
            let (state, customer_version, excluded_reason, blockers) = match verdict {
                Verdict::Queued { version } => (ItemState::Queued, Some(*version), "", Vec::new()),
                Verdict::Excluded {
                    reason,
                    version,
                    blockers,
                } => (ItemState::Excluded, *version, *reason, blockers.clone()),
            };
            BatchItem {
                batch_id,
                position: position as i32,
                customer_id: *customer_id,
                customer_version,
                state,
                excluded_reason: excluded_reason.to_owned(),
                blockers,
                deletion_id: None,
                deleted_records: 0,
                restored_records: 0,
                restore_reason: String::new(),
                restore_problem: String::new(),
                update_time: now,
            }
        })
        .collect()
}

/// The batch's impact, summed as the customers are judged: the included items' previews per
/// relation, state and policy, and per currency; the excluded ones counted per reason.
#[derive(Default)]
struct ImpactSum {
    impact: BatchImpact,
    impacts: BTreeMap<(String, Option<String>, String), RelationImpact>,
    pipeline: BTreeMap<String, (i128, i64)>,
    exclusions: BTreeMap<&'static str, i32>,
}

impl ImpactSum {
    fn add(&mut self, p: &DeletionPreview, key_account: bool) {
        self.impact.included_count += 1;
        self.impact.key_accounts += i32::from(key_account);
        self.impact.cascade_count += p.cascade_count;
        self.impact.keep_count += p.keep_count;
        for i in &p.impacts {
            let key = (
                i.relation.name().to_owned(),
                i.state.clone(),
                format!("{:?}", i.policy),
            );
            self.impacts
                .entry(key)
                .and_modify(|sum| sum.count += i.count)
                .or_insert_with(|| RelationImpact {
                    sample_ids: Vec::new(),
                    ..i.clone()
                });
        }
        for w in &p.warnings {
            let sum = self.pipeline.entry(w.currency.clone()).or_default();
            sum.0 += i128::from(w.open_amount_minor);
            sum.1 += w.open_deals;
        }
    }

    fn exclude(&mut self, reason: &'static str) {
        self.impact.excluded_count += 1;
        *self.exclusions.entry(reason).or_default() += 1;
    }

    fn finish(self) -> BatchImpact {
        BatchImpact {
            impacts: self.impacts.into_values().collect(),
            warnings: self
                .pipeline
                .into_iter()
                .map(|(currency, (total, deals))| {
                    PipelineWarning::from_total(currency, total, deals)
                })
                .collect(),
            exclusions: self
                .exclusions
                .into_iter()
                .map(|(reason, count)| Exclusion {
                    reason: reason.to_owned(),
                    count,
                })
                .collect(),
            ..self.impact
        }
    }
}

fn nothing_to_delete(impact: &BatchImpact) -> Error {
    let why = impact
        .exclusions
        .iter()
        .map(|e| format!("{} {}", e.count, e.reason))
        .collect::<Vec<_>>()
        .join(", ");
    Error::failed_precondition(
        Problem::new(
            reason::NOTHING_TO_DELETE,
            format!(
                "no customer of the batch can be deleted ({why}): nothing was submitted; \
                 resolve the exclusions or name other customers"
            ),
        )
        .with("excluded", impact.excluded_count),
    )
}

fn too_many_open(max: usize) -> Error {
    Error::failed_precondition(
        Problem::new(
            reason::TOO_MANY_OPEN_BATCHES,
            format!(
                "the tenant already has {max} open deletion batches, the most allowed: wait for \
                 one to complete, or cancel one"
            ),
        )
        .with("limit", max),
    )
}

/// Whether the customer has a request that is open as readers see it.
async fn has_open_request(
    conn: &impl store::Connection,
    tenant: &str,
    customer: &Customer,
    now: DateTime<Utc>,
) -> Result<bool> {
    for request in store::deletion::open_requests(conn, tenant, customer.id).await? {
        let version =
            store::deletion::bound_graph_version(conn, tenant, &request, customer.version).await?;
        if request.effective_state(now, version).is_open() {
            return Ok(true);
        }
    }
    Ok(false)
}
