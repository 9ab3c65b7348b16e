//! The deletion lifecycle (docs/design.md section 4): preview, the approval state machine, delete
//! and restore.
//!
//! Every transition runs in one write transaction that first locks the customer's row (the lock
//! every record write takes to bump the graph version), then the request's row: always in that
//! order, so transitions and record writes of one customer queue instead of deadlocking. A request
//! is bound to the graph version its preview saw; any write to the graph since turns it STALE.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::access::{Action, Caller};
use super::audit::{self, Entry};
use super::customers::Customer;
use super::idempotency::{self, Idempotency};
use super::paging::{self, Page, PageTokenKey, QueryFingerprint};
use super::policy::{self, Policy};
use super::records::RecordKind;
use super::validate::Violations;
use super::{Clock, customer_deleted};
use crate::error::{Error, PreconditionViolation, Problem, Result};
use crate::store::{self, Store, WriteTx};

/// How many sample ids a preview shows per relation and state.
pub const SAMPLE_IDS: u64 = 10;
const REASON_MAX: usize = 1000;

/// Lifecycle settings.
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

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelationImpact {
    pub relation: RecordKind,
    pub state: Option<String>,
    pub policy: Policy,
    pub count: i64,
    pub sample_ids: Vec<Uuid>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Blocker {
    pub reason: String,
    pub relation: Option<RecordKind>,
    pub count: i64,
    pub sample_ids: Vec<Uuid>,
    pub resolution: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PipelineWarning {
    pub currency: String,
    /// The open deals' total, or `i64::MAX` when the total is larger (`open_amount_saturated`).
    pub open_amount_minor: i64,
    pub open_deals: i64,
    /// The total did not fit in `i64`. Absent from previews stored before it existed, which could
    /// not have been saturated: their sum failed instead.
    #[serde(default)]
    pub open_amount_saturated: bool,
}

impl PipelineWarning {
    /// The warning for an exact total: a total that does not fit the contract's int64 is given as
    /// the nearest int64 and flagged, rather than failing the preview or wrapping around.
    pub fn from_total(currency: String, total: i128, open_deals: i64) -> Self {
        let clamped = total.clamp(i128::from(i64::MIN), i128::from(i64::MAX));
        Self {
            currency,
            open_amount_minor: clamped as i64,
            open_deals,
            open_amount_saturated: clamped != total,
        }
    }
}

/// The dry run of a deletion. Holds ids and counts only, never personal data: it is stored with
/// the request and may be audited.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeletionPreview {
    pub customer_id: Uuid,
    /// The graph version the preview saw: its etag.
    pub version: i64,
    pub impacts: Vec<RelationImpact>,
    pub blockers: Vec<Blocker>,
    pub warnings: Vec<PipelineWarning>,
    pub approval_required: bool,
    pub cascade_count: i64,
    pub keep_count: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RequestState {
    Pending,
    Approved,
    Rejected,
    Cancelled,
    Expired,
    Stale,
    Executed,
}

impl RequestState {
    pub fn is_open(self) -> bool {
        matches!(self, RequestState::Pending | RequestState::Approved)
    }

    pub fn name(self) -> &'static str {
        match self {
            RequestState::Pending => "PENDING",
            RequestState::Approved => "APPROVED",
            RequestState::Rejected => "REJECTED",
            RequestState::Cancelled => "CANCELLED",
            RequestState::Expired => "EXPIRED",
            RequestState::Stale => "STALE",
            RequestState::Executed => "EXECUTED",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeletionRequest {
    pub id: Uuid,
    pub customer_id: Uuid,
    pub requester_id: String,
    pub reason: String,
    pub preview: DeletionPreview,
    pub state: RequestState,
    pub decided_by: String,
    pub decision_comment: String,
    pub decide_time: Option<DateTime<Utc>>,
    pub expire_time: DateTime<Utc>,
    pub create_time: DateTime<Utc>,
    pub update_time: DateTime<Utc>,
    pub execute_time: Option<DateTime<Utc>>,
    pub deletion_id: Option<Uuid>,
    pub version: i64,
}

impl DeletionRequest {
    pub fn etag(&self) -> String {
        self.version.to_string()
    }

    /// The state as a reader sees it, given the customer's current graph version (`None`: no such
    /// customer). An open request has lapsed, even before any write records it, once its
    /// expire_time has passed (EXPIRED) or once the graph is no longer the one its preview saw
    /// (STALE). Expiry is judged first: a request past its expire_time is EXPIRED whatever
    /// happened to the graph. Every transition records exactly this state before anything else
    /// ([`Deletions::refuse_lapsed`]), and ListDeletionRequests' state filter is this rule in SQL
    /// (`store::deletion::list_requests`), so what a reader saw is what the next write records.
    pub fn effective_state(
        &self,
        now: DateTime<Utc>,
        customer_version: Option<i64>,
    ) -> RequestState {
        if !self.state.is_open() {
            self.state
        } else if self.expire_time <= now {
            RequestState::Expired
        } else if customer_version != Some(self.preview.version) {
            RequestState::Stale
        } else {
            self.state
        }
    }
}

/// A request as stored, and its customer's graph version as read in the same statement: what
/// its state is judged against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRequest {
    pub request: DeletionRequest,
    pub customer_version: Option<i64>,
}

impl StoredRequest {
    /// The request with the state a reader sees at `now` ([`DeletionRequest::effective_state`]).
    pub fn as_seen(self, now: DateTime<Utc>) -> DeletionRequest {
        let state = self.request.effective_state(now, self.customer_version);
        DeletionRequest {
            state,
            ..self.request
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
            Policy::Block => {
                let (reason, resolution) = rule
                    .and_then(|r| r.blocker)
                    .unwrap_or(("UNKNOWN_RECORD_STATE", "contact an administrator"));
                blockers.push(Blocker {
                    reason: reason.to_owned(),
                    relation: Some(count.kind),
                    count: count.count,
                    sample_ids: sample_ids.clone(),
                    resolution: resolution.to_owned(),
                });
            }
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
        let (reason, resolution) = policy::LEGAL_HOLD;
        blockers.push(Blocker {
            reason: reason.to_owned(),
            relation: None,
            count: 1,
            sample_ids: vec![customer.id],
            resolution: resolution.to_owned(),
        });
    }
    let warnings = pipeline
        .into_iter()
        .map(|p| PipelineWarning::from_total(p.currency, p.amount_minor, p.deals))
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
    }
}

fn blocked(preview: &DeletionPreview) -> Error {
    let violations = preview
        .blockers
        .iter()
        .map(|b| PreconditionViolation {
            kind: "CUSTOMER_HAS_BLOCKERS",
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
            "CUSTOMER_HAS_BLOCKERS",
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
            "PREVIEW_STALE",
            "the customer's records changed since the preview: preview again and submit a new request",
        )
        .with("deletionRequestId", request_id)
        .with("customerId", customer_id),
        violations: vec![PreconditionViolation {
            kind: "PREVIEW_STALE",
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

pub(crate) fn restore_conflict(customer_id: Uuid) -> Error {
    Error::FailedPrecondition {
        problem: Problem::new(
            "RESTORE_CONFLICT",
            "the customer's external_ref is now used by a live customer: change one of them first",
        )
        .with("customerId", customer_id)
        .with("field", "external_ref"),
        violations: vec![PreconditionViolation {
            kind: "RESTORE_CONFLICT",
            subject: "external_ref".into(),
            description: "another live customer of the tenant has this external_ref".into(),
        }],
    }
}

pub(crate) fn chrono_duration(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

/// Deletion operations, shared by every request.
#[derive(Clone)]
pub struct Deletions {
    store: Store,
    page_key: PageTokenKey,
    clock: Clock,
    settings: LifecycleSettings,
}

impl Deletions {
    pub fn new(
        store: Store,
        page_key: PageTokenKey,
        clock: Clock,
        settings: LifecycleSettings,
    ) -> Self {
        Self {
            store,
            page_key,
            clock,
            settings,
        }
    }

    /// The preview of `customer`'s deletion. Without `detail` it holds the counts, policies and
    /// blockers only (no sample ids, no pipeline warning): what DeleteCustomer re-checks inside
    /// its write transaction, where every query lengthens the time the customer stays locked.
    async fn preview_in(
        &self,
        conn: &impl sea_orm::ConnectionTrait,
        tenant: &str,
        customer: &Customer,
        detail: bool,
    ) -> Result<DeletionPreview> {
        let counts = store::deletion::state_counts(conn, tenant, customer.id).await?;
        let mut samples = Vec::new();
        for c in counts.iter().filter(|c| detail && c.count > 0) {
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
        let pipeline = if detail {
            store::deletion::open_pipeline(conn, tenant, customer.id).await?
        } else {
            Vec::new()
        };
        Ok(build_preview(
            customer,
            &counts,
            |kind, state| {
                samples
                    .iter()
                    .find(|((k, s), _)| *k == kind && s.as_deref() == state)
                    .map(|(_, ids)| ids.clone())
                    .unwrap_or_default()
            },
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
        tx.commit().await?;
        Ok(preview)
    }

    /// Locks and returns the live customer, or why not.
    async fn lock_live_customer(&self, tx: &WriteTx, tenant: &str, id: Uuid) -> Result<Customer> {
        let customer = store::customers::find_for_update(tx.conn(), tenant, id)
            .await?
            .ok_or_else(|| Error::not_found("customer", id))?;
        if customer.is_deleted() {
            return Err(customer_deleted(id));
        }
        Ok(customer)
    }

    /// Records a transition the caller did not ask for (EXPIRED, STALE), committed even though the
    /// call itself then fails.
    /// Records a transition the caller did not ask for (EXPIRED, STALE) in `tx`, audited.
    async fn record_lapse(
        &self,
        tx: &WriteTx,
        caller: &Caller,
        request: DeletionRequest,
        to: RequestState,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let expected = request.version;
        let lapsed = DeletionRequest {
            state: to,
            update_time: now,
            version: request.version + 1,
            ..request
        };
        if store::deletion::update_request(tx.conn(), &caller.tenant, &lapsed, expected).await? {
            let action = if to == RequestState::Expired {
                "deletion_request.expire"
            } else {
                "deletion_request.stale"
            };
            audit::record(
                tx,
                caller,
                None,
                now,
                Entry {
                    action,
                    target_type: "deletion_request",
                    target_id: lapsed.id,
                    customer_id: Some(lapsed.customer_id),
                    summary: format!("state={}", to.name()),
                },
            )
            .await?;
        }
        Ok(())
    }

    /// Fails a transition on a request that has lapsed as readers see it (EXPIRED, or STALE when
    /// the customer's graph moved on), after recording the lapse and committing it; otherwise
    /// hands the transaction back. `wanted` names the states the transition needs, for the
    /// message. Called before any other check of the request's state, so that a request readers
    /// saw lapse never turns APPROVED, REJECTED, CANCELLED or EXECUTED afterwards.
    async fn refuse_lapsed(
        &self,
        tx: WriteTx,
        caller: &Caller,
        request: &DeletionRequest,
        customer: Option<&Customer>,
        wanted: &str,
    ) -> Result<WriteTx> {
        let seen = request.effective_state(self.clock.now(), customer.map(|c| c.version));
        if seen == request.state {
            return Ok(tx);
        }
        self.lapse(tx, caller, request.clone(), seen).await?;
        Err(match seen {
            RequestState::Expired => not_in_state(
                &DeletionRequest {
                    state: RequestState::Expired,
                    ..request.clone()
                },
                "DELETION_REQUEST_EXPIRED",
                wanted,
            ),
            _ => stale(request.id, request.customer_id),
        })
    }

    /// Records a lapse and commits it, even though the call itself then fails.
    async fn lapse(
        &self,
        tx: WriteTx,
        caller: &Caller,
        request: DeletionRequest,
        to: RequestState,
    ) -> Result<()> {
        self.record_lapse(&tx, caller, request, to, self.clock.now())
            .await?;
        tx.commit().await
    }

    pub async fn submit(
        &self,
        caller: &Caller,
        customer_id: Uuid,
        preview_etag: String,
        reason: String,
        key: Option<Idempotency>,
    ) -> Result<DeletionRequest> {
        caller.require(Action::SubmitDeletion)?;
        let mut v = Violations::new();
        v.required_text("reason", &reason, REASON_MAX);
        let preview_version = preview_etag.parse::<i64>().ok();
        if preview_etag.is_empty() {
            v.add(
                "preview_etag",
                "is required: the etag of the preview you saw",
            );
        }
        v.finish()?;
        idempotency::retry_in_flight(|| async {
            let tx = self.store.begin_write().await?;
            if let Some(first) = idempotency::replay(&tx, caller, key.as_ref(), "SubmitDeletionRequest").await? {
                return Ok(first);
            }
            let now = self.clock.now();
            let customer = self.lock_live_customer(&tx, &caller.tenant, customer_id).await?;
            // Requests that lapsed unrecorded (EXPIRED or STALE to a reader) would hold the
            // one-open-request slot.
            for open in store::deletion::open_requests(tx.conn(), &caller.tenant, customer_id).await? {
                let seen = open.effective_state(now, Some(customer.version));
                if seen != open.state {
                    self.record_lapse(&tx, caller, open, seen, now).await?;
                }
            }
            if preview_version != Some(customer.version) {
                return Err(Error::FailedPrecondition {
                    problem: Problem::new(
                        "PREVIEW_STALE",
                        "the customer's records changed since the preview: preview again and submit its etag",
                    )
                    .with("customerId", customer_id)
                    .with("currentEtag", customer.version),
                    violations: vec![PreconditionViolation {
                        kind: "PREVIEW_STALE",
                        subject: format!("customers/{customer_id}"),
                        description: "preview_etag is not the customer's current etag".into(),
                    }],
                });
            }
            let preview = self.preview_in(tx.conn(), &caller.tenant, &customer, true).await?;
            if !preview.blockers.is_empty() {
                return Err(blocked(&preview));
            }
            let request = DeletionRequest {
                id: Uuid::now_v7(),
                customer_id,
                requester_id: caller.subject.clone(),
                reason: reason.clone(),
                state: RequestState::Pending,
                decided_by: String::new(),
                decision_comment: String::new(),
                decide_time: None,
                expire_time: now + chrono_duration(self.settings.request_ttl),
                create_time: now,
                update_time: now,
                execute_time: None,
                deletion_id: None,
                version: 1,
                preview,
            };
            store::deletion::insert_request(tx.conn(), &caller.tenant, &request).await?;
            audit::record(&tx, caller, key.as_ref().map(|k| k.request_id), now, Entry {
                action: "deletion_request.submit",
                target_type: "deletion_request",
                target_id: request.id,
                customer_id: Some(customer_id),
                summary: format!(
                    "preview_etag={} cascade={} keep={}",
                    request.preview.version, request.preview.cascade_count, request.preview.keep_count
                ),
            })
            .await?;
            idempotency::remember(&tx, caller, key.as_ref(), "SubmitDeletionRequest", &request).await?;
            tx.commit().await?;
            Ok(request)
        })
        .await
    }
}

/// Which decision a supervisor makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Decision {
    Approve,
    Reject,
}

impl Deletions {
    pub async fn get(&self, caller: &Caller, id: Uuid) -> Result<DeletionRequest> {
        caller.require(Action::Read)?;
        let read = store::deletion::find_request_as_read(self.store.conn(), &caller.tenant, id)
            .await?
            .ok_or_else(|| Error::not_found("deletion_request", id))?;
        Ok(read.as_seen(self.clock.now()))
    }

    pub async fn list(
        &self,
        caller: &Caller,
        state: Option<RequestState>,
        customer_id: Option<Uuid>,
        page_size: i32,
        page_token: &str,
    ) -> Result<Page<DeletionRequest>> {
        caller.require(Action::Read)?;
        let limit = paging::page_size("page_size", page_size)?;
        let state_part = state.map(RequestState::name).unwrap_or("any");
        let customer_part = customer_id.map(|c| c.to_string()).unwrap_or_default();
        let fingerprint =
            QueryFingerprint::of(&["ListDeletionRequests", state_part, &customer_part]);
        let now = self.clock.now();
        let before = if page_token.is_empty() {
            None
        } else {
            Some(self.page_key.open(
                "page_token",
                page_token,
                &caller.tenant,
                fingerprint,
                now.timestamp(),
            )?)
        };
        let mut read = store::deletion::list_requests(
            self.store.conn(),
            &caller.tenant,
            state
                .map(|s| super::request_filter::state_filter(s, now))
                .as_ref(),
            customer_id,
            before,
            limit + 1,
        )
        .await?;
        let next_page_token = if read.len() as u64 > limit {
            read.truncate(limit as usize);
            read.last().map(|last| {
                self.page_key.seal(
                    &caller.tenant,
                    fingerprint,
                    last.request.id,
                    now.timestamp(),
                )
            })
        } else {
            None
        };
        let items = read.into_iter().map(|r| r.as_seen(now)).collect();
        Ok(Page {
            items,
            next_page_token,
        })
    }

    /// Locks the request's customer, then the request (the order every transition uses).
    async fn lock_request(
        &self,
        tx: &WriteTx,
        caller: &Caller,
        id: Uuid,
    ) -> Result<(Option<Customer>, DeletionRequest)> {
        let peek = store::deletion::find_request(tx.conn(), &caller.tenant, id)
            .await?
            .ok_or_else(|| Error::not_found("deletion_request", id))?;
        let customer =
            store::customers::find_for_update(tx.conn(), &caller.tenant, peek.customer_id).await?;
        let request = store::deletion::find_request_for_update(tx.conn(), &caller.tenant, id)
            .await?
            .ok_or_else(|| Error::not_found("deletion_request", id))?;
        Ok((customer, request))
    }

    pub async fn approve(
        &self,
        caller: &Caller,
        id: Uuid,
        comment: String,
        key: Option<Idempotency>,
    ) -> Result<DeletionRequest> {
        self.decide(caller, id, comment, key, Decision::Approve)
            .await
    }

    pub async fn reject(
        &self,
        caller: &Caller,
        id: Uuid,
        comment: String,
        key: Option<Idempotency>,
    ) -> Result<DeletionRequest> {
        self.decide(caller, id, comment, key, Decision::Reject)
            .await
    }

    async fn decide(
        &self,
        caller: &Caller,
        id: Uuid,
        comment: String,
        key: Option<Idempotency>,
        decision: Decision,
    ) -> Result<DeletionRequest> {
        caller.require(Action::DecideDeletion)?;
        let mut v = Violations::new();
        match decision {
            Decision::Reject => v.required_text("comment", &comment, REASON_MAX),
            Decision::Approve => v.text("comment", &comment, REASON_MAX),
        }
        v.finish()?;
        let operation = match decision {
            Decision::Approve => "ApproveDeletionRequest",
            Decision::Reject => "RejectDeletionRequest",
        };
        idempotency::retry_in_flight(|| async {
            let tx = self.store.begin_write().await?;
            if let Some(first) = idempotency::replay(&tx, caller, key.as_ref(), operation).await? {
                return Ok(first);
            }
            let (customer, request) = self.lock_request(&tx, caller, id).await?;
            // Separation of duties, whatever role the requester holds now or the approver holds.
            if request.requester_id == caller.subject {
                return Err(Error::PermissionDenied(
                    Problem::new(
                        "SELF_APPROVAL_FORBIDDEN",
                        "you made this deletion request: another supervisor or admin must decide it",
                    )
                    .with("deletionRequestId", id),
                ));
            }
            // A lapsed request is neither approved nor rejected: the graph a supervisor would
            // decide on is not the previewed one, or the time to decide has passed.
            let tx = self.refuse_lapsed(tx, caller, &request, customer.as_ref(), "PENDING").await?;
            if request.state != RequestState::Pending {
                return Err(not_in_state(&request, "DELETION_REQUEST_NOT_PENDING", "PENDING"));
            }
            let now = self.clock.now();
            let expected = request.version;
            let next = DeletionRequest {
                state: if decision == Decision::Approve { RequestState::Approved } else { RequestState::Rejected },
                decided_by: caller.subject.clone(),
                decision_comment: comment.clone(),
                decide_time: Some(now),
                update_time: now,
                version: request.version + 1,
                ..request
            };
            if !store::deletion::update_request(tx.conn(), &caller.tenant, &next, expected).await? {
                return Err(Error::internal("deletion request changed under its row lock"));
            }
            audit::record(&tx, caller, key.as_ref().map(|k| k.request_id), now, Entry {
                action: if decision == Decision::Approve { "deletion_request.approve" } else { "deletion_request.reject" },
                target_type: "deletion_request",
                target_id: id,
                customer_id: Some(next.customer_id),
                summary: format!("state={} preview_etag={}", next.state.name(), next.preview.version),
            })
            .await?;
            idempotency::remember(&tx, caller, key.as_ref(), operation, &next).await?;
            tx.commit().await?;
            Ok(next)
        })
        .await
    }

    /// The requester may act on their own request; supervisors and admins on anyone's.
    fn require_actor(&self, caller: &Caller, request: &DeletionRequest) -> Result<()> {
        if request.requester_id == caller.subject && caller.may(Action::ActOnOwnDeletion) {
            return Ok(());
        }
        caller.require(Action::ActOnAnyDeletion)
    }

    pub async fn cancel(
        &self,
        caller: &Caller,
        id: Uuid,
        comment: String,
        key: Option<Idempotency>,
    ) -> Result<DeletionRequest> {
        if !caller.may(Action::ActOnOwnDeletion) {
            caller.require(Action::ActOnAnyDeletion)?;
        }
        let mut v = Violations::new();
        v.text("comment", &comment, REASON_MAX);
        v.finish()?;
        idempotency::retry_in_flight(|| async {
            let tx = self.store.begin_write().await?;
            if let Some(first) =
                idempotency::replay(&tx, caller, key.as_ref(), "CancelDeletionRequest").await?
            {
                return Ok(first);
            }
            let (customer, request) = self.lock_request(&tx, caller, id).await?;
            self.require_actor(caller, &request)?;
            // A lapsed request reads as EXPIRED or STALE, which are final: record the lapse,
            // cancel nothing.
            let tx = self
                .refuse_lapsed(
                    tx,
                    caller,
                    &request,
                    customer.as_ref(),
                    "PENDING or APPROVED",
                )
                .await?;
            if !request.state.is_open() {
                return Err(not_in_state(
                    &request,
                    "DELETION_REQUEST_NOT_OPEN",
                    "PENDING or APPROVED",
                ));
            }
            let now = self.clock.now();
            let expected = request.version;
            let next = DeletionRequest {
                state: RequestState::Cancelled,
                decided_by: caller.subject.clone(),
                decision_comment: comment.clone(),
                decide_time: Some(now),
                update_time: now,
                version: request.version + 1,
                ..request
            };
            if !store::deletion::update_request(tx.conn(), &caller.tenant, &next, expected).await? {
                return Err(Error::internal(
                    "deletion request changed under its row lock",
                ));
            }
            audit::record(
                &tx,
                caller,
                key.as_ref().map(|k| k.request_id),
                now,
                Entry {
                    action: "deletion_request.cancel",
                    target_type: "deletion_request",
                    target_id: id,
                    customer_id: Some(next.customer_id),
                    summary: "state=CANCELLED".into(),
                },
            )
            .await?;
            idempotency::remember(&tx, caller, key.as_ref(), "CancelDeletionRequest", &next)
                .await?;
            tx.commit().await?;
            Ok(next)
        })
        .await
    }

    /// Executes an approved request: one transaction, set-based updates, one deletion id.
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
        idempotency::retry_in_flight(|| async {
            let tx = self.store.begin_write().await?;
            if let Some(first) = idempotency::replay(&tx, caller, key.as_ref(), "DeleteCustomer").await? {
                return Ok(first);
            }
            let (customer, request) = self.lock_request(&tx, caller, request_id).await?;
            if request.customer_id != customer_id {
                return Err(Error::not_found("deletion_request", request_id));
            }
            self.require_actor(caller, &request)?;
            let customer = customer.ok_or_else(|| Error::not_found("customer", customer_id))?;
            // Past here the request is live and its graph is the approved one: a deleted
            // customer's version has moved on from any preview of it.
            let tx = self.refuse_lapsed(tx, caller, &request, Some(&customer), "APPROVED").await?;
            if request.state != RequestState::Approved {
                return Err(not_in_state(&request, "DELETION_NOT_APPROVED", "APPROVED"));
            }
            let now = self.clock.now();
            if etag != customer.etag() {
                return Err(super::etag_mismatch("customer", customer_id, &customer.etag()));
            }
            // The graph is the approved one, but a rule may still have changed (a legal hold).
            let preview = self.preview_in(tx.conn(), &caller.tenant, &customer, false).await?;
            if !preview.blockers.is_empty() {
                return Err(blocked(&preview));
            }
            let deletion_id = Uuid::now_v7();
            let purge_time = now + chrono_duration(self.settings.retention);
            let deleted_records = store::deletion::cascade(tx.conn(), &caller.tenant, customer_id, &policy::cascading(), deletion_id, now, purge_time).await?;
            store::deletion::mark_customer_deleted(tx.conn(), &caller.tenant, customer_id, deletion_id, now, purge_time)
                .await?;
            let expected = request.version;
            let executed = DeletionRequest {
                state: RequestState::Executed,
                execute_time: Some(now),
                deletion_id: Some(deletion_id),
                update_time: now,
                version: request.version + 1,
                ..request
            };
            if !store::deletion::update_request(tx.conn(), &caller.tenant, &executed, expected).await? {
                return Err(Error::internal("deletion request changed under its row lock"));
            }
            let audit_request_id = key.as_ref().map(|k| k.request_id);
            audit::record(&tx, caller, audit_request_id, now, Entry {
                action: "customer.delete",
                target_type: "customer",
                target_id: customer_id,
                customer_id: Some(customer_id),
                summary: format!(
                    "deletion_id={deletion_id} deletion_request={request_id} cascaded={deleted_records} kept={}",
                    preview.keep_count
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
            let outcome = Deleted { customer, deleted_records };
            idempotency::remember(&tx, caller, key.as_ref(), "DeleteCustomer", &outcome).await?;
            tx.commit().await?;
            Ok(outcome)
        })
        .await
    }

    /// Brings back a deleted customer and exactly the rows of its deletion.
    pub async fn restore(
        &self,
        caller: &Caller,
        customer_id: Uuid,
        validate_only: bool,
        key: Option<Idempotency>,
    ) -> Result<Restored> {
        caller.require(Action::Restore)?;
        idempotency::retry_in_flight(|| async {
            let tx = self.store.begin_write().await?;
            if !validate_only
                && let Some(first) =
                    idempotency::replay(&tx, caller, key.as_ref(), "RestoreCustomer").await?
            {
                return Ok(first);
            }
            let customer =
                store::customers::find_for_update(tx.conn(), &caller.tenant, customer_id)
                    .await?
                    .ok_or_else(|| Error::not_found("customer", customer_id))?;
            if !customer.is_deleted() {
                return Err(Error::AlreadyExists(
                    Problem::new(
                        "CUSTOMER_NOT_DELETED",
                        "the customer is live: there is nothing to restore",
                    )
                    .with("customerId", customer_id),
                ));
            }
            let now = self.clock.now();
            if customer.purge_time.is_some_and(|t| t <= now) {
                return Err(Error::failed_precondition(
                    Problem::new(
                        "RETENTION_EXPIRED",
                        "the customer's retention has passed: it is being erased",
                    )
                    .with("customerId", customer_id),
                ));
            }
            if !customer.external_ref.is_empty()
                && store::deletion::external_ref_in_use(
                    tx.conn(),
                    &caller.tenant,
                    &customer.external_ref,
                    customer_id,
                )
                .await?
            {
                return Err(restore_conflict(customer_id));
            }
            let deletion_id =
                store::deletion::deletion_id_of(tx.conn(), &caller.tenant, customer_id)
                    .await?
                    .ok_or_else(|| Error::internal("deleted customer without a deletion id"))?;
            let restored_records = store::deletion::restore_records(
                tx.conn(),
                &caller.tenant,
                deletion_id,
                validate_only,
            )
            .await?;
            if validate_only {
                // Dropping the transaction rolls back: nothing was written.
                return Ok(Restored {
                    customer,
                    restored_records,
                });
            }
            store::deletion::mark_customer_restored(tx.conn(), &caller.tenant, customer_id).await?;
            audit::record(
                &tx,
                caller,
                key.as_ref().map(|k| k.request_id),
                now,
                Entry {
                    action: "customer.restore",
                    target_type: "customer",
                    target_id: customer_id,
                    customer_id: Some(customer_id),
                    summary: format!("deletion_id={deletion_id} restored={restored_records}"),
                },
            )
            .await?;
            let customer = Customer {
                delete_time: None,
                purge_time: None,
                deletion_id: None,
                version: customer.version + 1,
                ..customer
            };
            let outcome = Restored {
                customer,
                restored_records,
            };
            idempotency::remember(&tx, caller, key.as_ref(), "RestoreCustomer", &outcome).await?;
            tx.commit().await?;
            Ok(outcome)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pipeline_total_past_int64_is_clamped_and_flagged_and_an_exact_one_is_not() {
        let max = i128::from(i64::MAX);
        for (total, amount, saturated) in [
            (0, 0, false),
            (max - 1, i64::MAX - 1, false),
            (max, i64::MAX, false),
            (max + 1, i64::MAX, true),
            (3 * max, i64::MAX, true),
            (i128::from(i64::MIN) - 1, i64::MIN, true),
        ] {
            let w = PipelineWarning::from_total("EUR".into(), total, 2);
            assert_eq!(
                (w.open_amount_minor, w.open_amount_saturated),
                (amount, saturated),
                "{total}"
            );
        }
    }

    fn request(
        state: RequestState,
        preview_version: i64,
        expire_time: DateTime<Utc>,
    ) -> DeletionRequest {
        let customer_id = Uuid::now_v7();
        DeletionRequest {
            id: Uuid::now_v7(),
            customer_id,
            requester_id: "rep-1".into(),
            reason: "duplicate".into(),
            preview: DeletionPreview {
                customer_id,
                version: preview_version,
                impacts: Vec::new(),
                blockers: Vec::new(),
                warnings: Vec::new(),
                approval_required: true,
                cascade_count: 0,
                keep_count: 0,
            },
            state,
            decided_by: String::new(),
            decision_comment: String::new(),
            decide_time: None,
            expire_time,
            create_time: expire_time,
            update_time: expire_time,
            execute_time: None,
            deletion_id: None,
            version: 1,
        }
    }

    #[test]
    fn an_open_request_reads_expired_first_then_stale_and_a_closed_one_as_stored() {
        use RequestState::*;
        let now = Utc::now();
        let (live, lapsed) = (now + chrono::Duration::hours(1), now);
        for (state, expire, version, seen) in [
            (Pending, live, Some(3), Pending),
            (Approved, live, Some(3), Approved),
            (Pending, live, Some(4), Stale),
            (Approved, live, Some(4), Stale),
            (Approved, live, None, Stale),
            (Pending, lapsed, Some(3), Expired),
            (Approved, lapsed, Some(4), Expired),
            (Rejected, lapsed, Some(4), Rejected),
            (Cancelled, live, Some(4), Cancelled),
            (Executed, live, Some(4), Executed),
            (Stale, lapsed, Some(3), Stale),
            (Expired, live, Some(3), Expired),
        ] {
            let r = request(state, 3, expire);
            assert_eq!(
                r.effective_state(now, version),
                seen,
                "{state:?} {version:?}"
            );
        }
    }

    #[test]
    fn a_warning_stored_before_the_saturation_flag_reads_as_not_saturated() {
        let stored = r#"{"currency":"EUR","open_amount_minor":125000,"open_deals":1}"#;
        let w: PipelineWarning = serde_json::from_str(stored).unwrap();
        assert!(!w.open_amount_saturated);
        assert_eq!(w.open_amount_minor, 125_000);
    }
}
