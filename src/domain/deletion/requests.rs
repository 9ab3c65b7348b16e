//! Deletion requests: submit one for a previewed graph, read them, and the decisions (approve,
//! reject, cancel). What each transition may do is `rules`; here are the locks and the writes.

use uuid::Uuid;

use super::super::access::{Action, Caller};
use super::super::approval;
use super::super::audit::Entry;
use super::super::idempotency::Idempotency;
use super::super::inbox;
use super::super::model::approval::ApprovalPolicy;
use super::super::model::batch::BatchStateFilter;
use super::super::model::customer::Customer;
use super::super::model::tenant_settings::{TenantSettings, TwoPersonRule};
use super::super::mutation::{self, Change, Mutation, Operation};
use super::super::paging::{self, Page, QueryFingerprint};
use super::super::validate::Violations;
use super::super::{chrono_duration, customer_deleted};
use super::rules::{self, Refusal};
use super::{
    DeletionPreview, DeletionRequest, Deletions, REASON_MAX, RequestState, StoredRequest, blocked,
};
use crate::error::{Error, PreconditionViolation, Problem, Result};
use crate::reason;
use crate::store;

/// A submission whose preview_etag is not the customer's graph version.
fn preview_etag_stale(customer: &Customer) -> Error {
    Error::FailedPrecondition {
        problem: Problem::new(
            reason::PREVIEW_STALE,
            "the customer's records changed since the preview: preview again and submit its etag",
        )
        .with("customerId", customer.id)
        .with("currentEtag", customer.version),
        violations: vec![PreconditionViolation {
            kind: reason::PREVIEW_STALE,
            subject: format!("customers/{}", customer.id),
            description: "preview_etag is not the customer's current etag".into(),
        }],
    }
}

/// Which decision a supervisor makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Decision {
    Approve,
    Reject,
}

impl Decision {
    /// The operation that asks for it, the state it leads to, and its audit action.
    fn outcome(self) -> (Operation, RequestState, &'static str) {
        match self {
            Decision::Approve => (
                Operation::ApproveDeletionRequest,
                RequestState::Approved,
                "deletion_request.approve",
            ),
            Decision::Reject => (
                Operation::RejectDeletionRequest,
                RequestState::Rejected,
                "deletion_request.reject",
            ),
        }
    }
}

impl Deletions {
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
        let reason = &reason;
        let mutation = Mutation::new(caller, Operation::SubmitDeletionRequest, key.as_ref());
        mutation::run(&self.store, &self.clock, mutation, |change| async move {
            let tx = change.tx();
            let customer = self.lock_live_customer(&change, customer_id).await?;
            self.record_unrecorded_lapses(&change, &customer).await?;
            if preview_version != Some(customer.version) {
                return Err(preview_etag_stale(&customer));
            }
            let settings = self.tenant_settings(&change).await?;
            let preview = self.deletable(&change, &customer, &settings).await?;
            let request = self.pending_request(&change, customer_id, reason, preview, &settings);
            store::deletion::insert_request(tx.conn(), &caller.tenant, &request).await?;
            change
                .audit(Entry {
                    action: "deletion_request.submit",
                    target_type: "deletion_request",
                    target_id: request.id,
                    customer_id: Some(customer_id),
                    summary: format!(
                        "preview_etag={} cascade={} keep={} {}",
                        request.preview.version,
                        request.preview.cascade_count,
                        request.preview.keep_count,
                        policy_summary(&request.approval)
                    ),
                })
                .await?;
            Ok(request)
        })
        .await
    }

    /// The customer's preview, if nothing stops a request for it: no open batch holds it, and
    /// nothing blocks its deletion.
    async fn deletable(
        &self,
        change: &Change<'_>,
        customer: &Customer,
        settings: &TenantSettings,
    ) -> Result<DeletionPreview> {
        not_queued(change, customer).await?;
        let (conn, tenant) = (change.tx().conn(), &change.caller.tenant);
        let preview = self.preview_in(conn, tenant, customer, true).await?;
        if !preview.blockers.is_empty() {
            return Err(blocked(&preview));
        }
        Ok(with_requirement(preview, &settings.two_person, customer))
    }

    /// A new request for `preview`, routed and needing the approvals its preview says under the
    /// tenant's `settings`, waiting for a decision until its lifetime passes.
    pub(super) fn pending_request(
        &self,
        change: &Change<'_>,
        customer_id: Uuid,
        reason: &str,
        preview: DeletionPreview,
        settings: &TenantSettings,
    ) -> DeletionRequest {
        let now = change.now;
        let requirement = approval::Requirement {
            approvals: preview.approvals_required,
            admin_required: preview.admin_approval_required,
            reasons: preview.approval_reasons.clone(),
        };
        DeletionRequest {
            id: Uuid::now_v7(),
            customer_id,
            requester_id: change.caller.subject.clone(),
            reason: reason.to_owned(),
            state: RequestState::Pending,
            decided_by: String::new(),
            decision_comment: String::new(),
            decide_time: None,
            expire_time: now + chrono_duration(settings.request_ttl),
            create_time: now,
            update_time: now,
            execute_time: None,
            deletion_id: None,
            version: 1,
            preview,
            merge: None,
            approval: approval::route(change.caller, settings, requirement),
            approvals: Vec::new(),
            escalate_time: settings
                .escalate_after
                .map(|after| now + chrono_duration(after)),
        }
    }

    /// Records the lapse of the customer's open requests that lapsed unrecorded (EXPIRED or
    /// STALE to a reader): they would hold the one-open-request slot.
    pub(super) async fn record_unrecorded_lapses(
        &self,
        change: &Change<'_>,
        customer: &Customer,
    ) -> Result<()> {
        let (conn, tenant) = (change.tx().conn(), &change.caller.tenant);
        for open in store::deletion::open_requests(conn, tenant, customer.id).await? {
            let version =
                store::deletion::bound_graph_version(conn, tenant, &open, customer.version).await?;
            let seen = open.effective_state(change.now, version);
            if seen != open.state {
                self.record_lapse(change, open, seen).await?;
            }
        }
        Ok(())
    }

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
        awaiting_my_decision: bool,
        page_size: i32,
        page_token: &str,
    ) -> Result<Page<DeletionRequest>> {
        caller.require(Action::Read)?;
        let limit = paging::page_size("page_size", page_size)?;
        if awaiting_my_decision {
            inbox::pending_only(state.is_none_or(|s| s == RequestState::Pending), "requests")?;
            return self.awaiting(caller, customer_id, limit, page_token).await;
        }
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
        let filter = state.map(|s| super::super::model::request_filter::state_filter(s, now));
        let mut read = store::deletion::list_requests(
            self.store.conn(),
            &caller.tenant,
            filter.as_ref(),
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

    /// The PENDING requests `caller` may decide, oldest first: not their own, routed to them, and
    /// not approved by them yet.
    async fn awaiting(
        &self,
        caller: &Caller,
        customer_id: Option<Uuid>,
        limit: u64,
        page_token: &str,
    ) -> Result<Page<DeletionRequest>> {
        caller.require(Action::DecideDeletion)?;
        let customer_part = customer_id.map(|c| c.to_string()).unwrap_or_default();
        let fingerprint = QueryFingerprint::of(&[
            "ListDeletionRequests",
            "awaiting_my_decision",
            &caller.subject,
            &customer_part,
        ]);
        let now = self.clock.now();
        let tenant = &caller.tenant;
        let after = if page_token.is_empty() {
            None
        } else {
            let token = self.page_key.open(
                "page_token",
                page_token,
                tenant,
                fingerprint,
                now.timestamp(),
            )?;
            Some(token)
        };
        let pending = super::super::model::request_filter::state_filter(RequestState::Pending, now);
        let conn = self.store.conn();
        let (pending, subject) = (&pending, caller.subject.as_str());
        let fetch = |after, n| {
            store::deletion::list_oldest_not_by(conn, tenant, pending, subject, after, n)
        };
        let keep = |read: &StoredRequest| {
            let r = &read.request;
            customer_id.is_none_or(|c| r.customer_id == c)
                && approval::awaits(&r.approval, &r.approvals, caller)
        };
        let (read, next) = inbox::walk(fetch, keep, |r| r.request.id, after, limit).await?;
        Ok(Page {
            items: read.into_iter().map(|r| r.as_seen(now)).collect(),
            next_page_token: next
                .map(|id| self.page_key.seal(tenant, fingerprint, id, now.timestamp())),
        })
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
            Decision::Approve => v.text("comment", &comment, REASON_MAX),
            Decision::Reject => v.required_text("comment", &comment, REASON_MAX),
        }
        v.finish()?;
        let (operation, to, action) = decision.outcome();
        let comment = &comment;
        let mutation = Mutation::new(caller, operation, key.as_ref());
        mutation::run(&self.store, &self.clock, mutation, |change| async move {
            let locked = self.lock_request(&change, id).await?;
            let version = locked.graph_version();
            let request = locked.request;
            if let Err(refusal) = rules::may_decide(&request, caller, change.now, version) {
                return Err(self.refuse(&change, &request, refusal).await);
            }
            let next = match decision {
                Decision::Reject => request.decided(to, &caller.subject, comment, change.now),
                Decision::Approve => {
                    let approvals = approval::approve(
                        &request.approval,
                        &request.approvals,
                        caller,
                        change.now,
                        comment,
                    )?;
                    request.approved_by(approvals, &caller.subject, comment, change.now)
                }
            };
            self.save(&change, &next).await?;
            change
                .audit(Entry {
                    action,
                    target_type: "deletion_request",
                    target_id: id,
                    customer_id: Some(next.customer_id),
                    summary: format!(
                        "state={} preview_etag={} approvals={}/{}",
                        next.state.name(),
                        next.preview.version,
                        next.approvals.len(),
                        next.approval.approvals_required
                    ),
                })
                .await?;
            Ok(next)
        })
        .await
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
        let comment = &comment;
        let mutation = Mutation::new(caller, Operation::CancelDeletionRequest, key.as_ref());
        mutation::run(&self.store, &self.clock, mutation, |change| async move {
            let locked = self.lock_request(&change, id).await?;
            let version = locked.graph_version();
            let request = locked.request;
            if let Err(refusal) = rules::may_cancel(&request, caller, change.now, version) {
                return Err(self.refuse(&change, &request, refusal).await);
            }
            let next = request.decided(
                RequestState::Cancelled,
                &caller.subject,
                comment,
                change.now,
            );
            self.save(&change, &next).await?;
            change
                .audit(Entry {
                    action: "deletion_request.cancel",
                    target_type: "deletion_request",
                    target_id: id,
                    customer_id: Some(next.customer_id),
                    summary: "state=CANCELLED".into(),
                })
                .await?;
            Ok(next)
        })
        .await
    }

    /// Locks and returns the live customer, or why not.
    pub(super) async fn lock_live_customer(
        &self,
        change: &Change<'_>,
        id: Uuid,
    ) -> Result<Customer> {
        let customer =
            store::customers::find_for_update(change.tx().conn(), &change.caller.tenant, id)
                .await?
                .ok_or_else(|| Error::not_found("customer", id))?;
        if customer.is_deleted() {
            return Err(customer_deleted(id));
        }
        Ok(customer)
    }

    /// Locks the request's customer (and a merge's survivor with it, in id order), then the
    /// request: the order every transition uses.
    pub(super) async fn lock_request(
        &self,
        change: &Change<'_>,
        id: Uuid,
    ) -> Result<LockedRequest> {
        let (conn, tenant) = (change.tx().conn(), &change.caller.tenant);
        let peek = store::deletion::find_request(conn, tenant, id)
            .await?
            .ok_or_else(|| Error::not_found("deletion_request", id))?;
        let (customer, survivor) = match &peek.merge {
            None => (
                store::customers::find_for_update(conn, tenant, peek.customer_id).await?,
                None,
            ),
            Some(merge) => {
                let both = [peek.customer_id, merge.survivor_id];
                let mut locked =
                    store::customers::find_many_for_update(conn, tenant, &both).await?;
                let mut take = |id: Uuid| {
                    locked
                        .iter()
                        .position(|c| c.id == id)
                        .map(|at| locked.swap_remove(at))
                };
                (take(peek.customer_id), take(merge.survivor_id))
            }
        };
        let request = store::deletion::find_request_for_update(conn, tenant, id)
            .await?
            .ok_or_else(|| Error::not_found("deletion_request", id))?;
        Ok(LockedRequest {
            customer,
            survivor,
            request,
        })
    }

    /// Writes the request's next state over the version it was locked at.
    pub(super) async fn save(&self, change: &Change<'_>, next: &DeletionRequest) -> Result<()> {
        let locked_at = next.version - 1;
        if store::deletion::update_request(
            change.tx().conn(),
            &change.caller.tenant,
            next,
            locked_at,
        )
        .await?
        {
            Ok(())
        } else {
            Err(Error::internal(format!(
                "deletion request {} changed under its row lock",
                next.id
            )))
        }
    }

    /// The error a refused transition fails with. A lapse is recorded first and kept, though
    /// the call fails: what a reader saw is what the next write records.
    pub(super) async fn refuse(
        &self,
        change: &Change<'_>,
        request: &DeletionRequest,
        refusal: Refusal,
    ) -> Error {
        match refusal {
            Refusal::Denied(error) => error,
            Refusal::Lapsed { to, error } => {
                match self.record_lapse(change, request.clone(), to).await {
                    Ok(()) => {
                        change.commit_even_if_failing();
                        error
                    }
                    Err(failed) => failed,
                }
            }
        }
    }

    /// Records a transition nobody asked for (EXPIRED, STALE), audited without a request id.
    async fn record_lapse(
        &self,
        change: &Change<'_>,
        request: DeletionRequest,
        to: RequestState,
    ) -> Result<()> {
        let expected = request.version;
        let lapsed = DeletionRequest {
            state: to,
            update_time: change.now,
            version: request.version + 1,
            ..request
        };
        let tenant = &change.caller.tenant;
        if store::deletion::update_request(change.tx().conn(), tenant, &lapsed, expected).await? {
            let action = if to == RequestState::Expired {
                "deletion_request.expire"
            } else {
                "deletion_request.stale"
            };
            change
                .audit_unasked(Entry {
                    action,
                    target_type: "deletion_request",
                    target_id: lapsed.id,
                    customer_id: Some(lapsed.customer_id),
                    summary: format!("state={}", to.name()),
                })
                .await?;
        }
        Ok(())
    }
}

/// `preview` with what the tenant's two-person rule asks of deleting `customer`.
pub(crate) fn with_requirement(
    preview: DeletionPreview,
    rule: &TwoPersonRule,
    customer: &Customer,
) -> DeletionPreview {
    let needs = approval::for_deletion(rule, &preview, customer.key_account);
    DeletionPreview {
        approvals_required: needs.approvals,
        admin_approval_required: needs.admin_required,
        approval_reasons: needs.reasons,
        ..preview
    }
}

/// The policy a request was submitted under, for its audit entry: ids and figures only.
pub(crate) fn policy_summary(policy: &ApprovalPolicy) -> String {
    let reasons: Vec<&str> = policy.reasons.iter().map(|r| r.code.as_str()).collect();
    format!(
        "routed_to={} approvals_required={} admin_required={} because={}",
        policy.teams.join("|"),
        policy.approvals_required,
        policy.admin_required,
        reasons.join("|")
    )
}

/// No open batch holds the customer (that batch's decision covers it).
pub(super) async fn not_queued(change: &Change<'_>, customer: &Customer) -> Result<()> {
    let (conn, tenant) = (change.tx().conn(), &change.caller.tenant);
    let open = BatchStateFilter::open(change.now);
    if store::batches::queued_in(conn, tenant, &[customer.id], &open)
        .await?
        .is_empty()
    {
        Ok(())
    } else {
        Err(queued_in_batch(customer.id))
    }
}

/// The customer is queued in an open deletion batch: that batch's decision covers it.
fn queued_in_batch(customer_id: Uuid) -> Error {
    Error::failed_precondition(
        Problem::new(
            reason::DELETION_ALREADY_REQUESTED,
            "this customer is queued in an open deletion batch: decide or cancel the batch first",
        )
        .with("customerId", customer_id),
    )
}

/// A request and the customers it is bound to, locked.
pub(super) struct LockedRequest {
    pub customer: Option<Customer>,
    /// A merge's survivor (`None` for a deletion, or a survivor no longer there).
    pub survivor: Option<Customer>,
    pub request: DeletionRequest,
}

impl LockedRequest {
    /// The current version of the graph the request is bound to, to compare with
    /// `DeletionRequest::bound_version`; `None` when a customer of it is gone.
    pub fn graph_version(&self) -> Option<i64> {
        let customer = self.customer.as_ref()?.version;
        match &self.request.merge {
            None => Some(customer),
            Some(_) => Some(customer + self.survivor.as_ref()?.version),
        }
    }
}
