//! The approval state machine as pure functions: given a request as locked, the caller, the time
//! and the customer's graph, may this transition happen? No database, so every rule is tested
//! here on its own; the transitions in `requests` and `execute` lock the rows and ask.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::super::access::{Action, Caller};
use super::super::approval;
use super::super::etag_mismatch;
use super::super::model::customer::Customer;
use super::{DeletionRequest, RequestState, not_in_state, stale};
use crate::error::{Error, Problem};
use crate::reason;

/// Why a transition may not happen.
#[derive(Debug)]
pub enum Refusal {
    /// The request has lapsed as readers see it (EXPIRED, or STALE when the graph moved on): the
    /// lapse is recorded and committed, and the call fails with `error`.
    Lapsed { to: RequestState, error: Error },
    /// Refused, nothing to record.
    Denied(Error),
}

impl From<Error> for Refusal {
    fn from(error: Error) -> Self {
        Refusal::Denied(error)
    }
}

/// Approve or reject: a supervisor or admin (checked before, by role) who did not make the
/// request, on a PENDING request that has not lapsed.
pub fn may_decide(
    request: &DeletionRequest,
    caller: &Caller,
    now: DateTime<Utc>,
    customer_version: Option<i64>,
) -> Result<(), Refusal> {
    // Separation of duties, whatever role the requester holds now or the approver holds.
    if request.requester_id == caller.subject {
        return Err(Error::PermissionDenied(
            Problem::new(
                reason::SELF_APPROVAL_FORBIDDEN,
                "you made this deletion request: another supervisor or admin must decide it",
            )
            .with("deletionRequestId", request.id),
        )
        .into());
    }
    // Only those it is routed to, whatever its state: anyone else learns nothing more of it.
    approval::require_routed(&request.approval, caller)?;
    // A lapsed request is neither approved nor rejected: the graph a supervisor would decide on
    // is not the previewed one, or the time to decide has passed.
    not_lapsed(request, now, customer_version, "PENDING")?;
    if request.state != RequestState::Pending {
        return Err(not_in_state(request, reason::DELETION_REQUEST_NOT_PENDING, "PENDING").into());
    }
    Ok(())
}

/// Cancel: the requester, or a supervisor or admin, on an open request that has not lapsed.
pub fn may_cancel(
    request: &DeletionRequest,
    caller: &Caller,
    now: DateTime<Utc>,
    customer_version: Option<i64>,
) -> Result<(), Refusal> {
    may_act(request, caller)?;
    // A lapsed request reads as EXPIRED or STALE, which are final: record the lapse, cancel
    // nothing.
    not_lapsed(request, now, customer_version, "PENDING or APPROVED")?;
    if !request.state.is_open() {
        return Err(not_in_state(
            request,
            reason::DELETION_REQUEST_NOT_OPEN,
            "PENDING or APPROVED",
        )
        .into());
    }
    Ok(())
}

/// DeleteCustomer: the requester, or a supervisor or admin, executing the APPROVED request of
/// this very customer, with the customer's current etag. Blockers that appeared since (a legal
/// hold) are checked by the caller against the graph. Gives back the customer to delete.
pub fn may_execute<'c>(
    request: &DeletionRequest,
    caller: &Caller,
    now: DateTime<Utc>,
    customer_id: Uuid,
    customer: Option<&'c Customer>,
    etag: &str,
) -> Result<&'c Customer, Refusal> {
    // Another customer's request answers as a request that does not exist.
    if request.customer_id != customer_id {
        return Err(Error::not_found("deletion_request", request.id).into());
    }
    may_act(request, caller)?;
    if request.merge.is_some() {
        return Err(
            kind_mismatch(request, "a MERGE request: execute it with MergeCustomers").into(),
        );
    }
    let customer = customer.ok_or_else(|| Error::not_found("customer", customer_id))?;
    // Past here the request is live and its graph is the approved one: a deleted customer's
    // version has moved on from any preview of it.
    not_lapsed(request, now, Some(customer.version), "APPROVED")?;
    if request.state != RequestState::Approved {
        return Err(not_in_state(request, reason::DELETION_NOT_APPROVED, "APPROVED").into());
    }
    if etag != customer.etag() {
        return Err(etag_mismatch("customer", customer_id, etag, &customer.etag()).into());
    }
    Ok(customer)
}

/// MergeCustomers: the requester, or a supervisor or admin, executing an APPROVED request of
/// kind MERGE whose two customers are still at the versions it is bound to (`graph_version`, as
/// `LockedRequest` reads it). A hold set since is checked by the caller.
pub fn may_merge(
    request: &DeletionRequest,
    caller: &Caller,
    now: DateTime<Utc>,
    graph_version: Option<i64>,
) -> Result<(), Refusal> {
    may_act(request, caller)?;
    if request.merge.is_none() {
        return Err(kind_mismatch(
            request,
            "a deletion request: execute it with DeleteCustomer",
        )
        .into());
    }
    not_lapsed(request, now, graph_version, "APPROVED")?;
    if request.state != RequestState::Approved {
        return Err(not_in_state(request, reason::DELETION_NOT_APPROVED, "APPROVED").into());
    }
    Ok(())
}

fn kind_mismatch(request: &DeletionRequest, what: &str) -> Error {
    Error::failed_precondition(
        Problem::new(
            reason::REQUEST_KIND_MISMATCH,
            format!("deletion request {} is {what}", request.id),
        )
        .with("deletionRequestId", request.id),
    )
}

/// The requester may act on their own request; supervisors and admins on anyone's.
pub fn may_act(request: &DeletionRequest, caller: &Caller) -> Result<(), Error> {
    may_act_as_requester_or_any(&request.requester_id, caller)
}

/// The rule of cancelling and executing, for a request or a batch made by `requester`: its
/// requester may act on it, supervisors and admins on anyone's.
pub fn may_act_as_requester_or_any(requester: &str, caller: &Caller) -> Result<(), Error> {
    if requester == caller.subject && caller.may(Action::ActOnOwnDeletion) {
        return Ok(());
    }
    caller.require(Action::ActOnAnyDeletion)
}

/// Whose deletions a caller may list in the recycle bin: supervisors and admins anyone's (the
/// `asked` requester, or the whole tenant's for `None`); every other role only its own, so an empty
/// `asked` becomes the caller and naming someone else is refused.
pub fn bin_requester(caller: &Caller, asked: Option<String>) -> Result<Option<String>, Error> {
    caller.require(Action::Read)?;
    if caller.may(Action::ActOnAnyDeletion) {
        return Ok(asked);
    }
    match asked {
        Some(other) if other != caller.subject => Err(Error::PermissionDenied(
            Problem::new(
                reason::ROLE_NOT_ALLOWED,
                "your roles let you see only the deletions you requested: leave requested_by \
                 empty or set it to your own user id",
            )
            .with("requestedBy", other)
            .with(
                "requiredRoles",
                super::super::access::allowed_roles(Action::ActOnAnyDeletion)
                    .iter()
                    .map(|r| r.as_str())
                    .collect::<Vec<_>>()
                    .join(","),
            ),
        )),
        _ => Ok(Some(caller.subject.clone())),
    }
}

/// Refuses a request that has lapsed as readers see it ([`DeletionRequest::effective_state`]).
/// Asked before any other check of the request's state, so that a request readers saw lapse
/// never turns APPROVED, REJECTED, CANCELLED or EXECUTED afterwards. `wanted` names the states
/// the transition needs, for the message.
pub fn not_lapsed(
    request: &DeletionRequest,
    now: DateTime<Utc>,
    customer_version: Option<i64>,
    wanted: &str,
) -> Result<(), Refusal> {
    let seen = request.effective_state(now, customer_version);
    if seen == request.state {
        return Ok(());
    }
    let error = match seen {
        RequestState::Expired => not_in_state(
            &DeletionRequest {
                state: RequestState::Expired,
                ..request.clone()
            },
            reason::DELETION_REQUEST_EXPIRED,
            wanted,
        ),
        _ => stale(request.id, request.customer_id),
    };
    Err(Refusal::Lapsed { to: seen, error })
}

#[cfg(test)]
mod tests {
    use super::super::DeletionPreview;
    use super::*;
    use crate::domain::access::Role;
    use crate::domain::customers::{CustomerStatus, LifecycleStage};

    const VERSION: i64 = 7;

    fn caller(subject: &str, role: Role) -> Caller {
        Caller {
            tenant: "acme".into(),
            subject: subject.into(),
            roles: vec![role],
            unknown_roles: Vec::new(),
            claims: Default::default(),
            trace_id: String::new(),
        }
    }

    #[test]
    fn the_bin_shows_a_sales_rep_only_its_own_deletions() {
        let rep = caller("rep", Role::SalesRep);
        assert_eq!(bin_requester(&rep, None).unwrap(), Some("rep".into()));
        assert_eq!(
            bin_requester(&rep, Some("rep".into())).unwrap(),
            Some("rep".into())
        );
        assert!(matches!(
            bin_requester(&rep, Some("other".into())),
            Err(Error::PermissionDenied(_))
        ));
        let sup = caller("sup", Role::Supervisor);
        assert_eq!(bin_requester(&sup, None).unwrap(), None);
        assert_eq!(
            bin_requester(&sup, Some("rep".into())).unwrap(),
            Some("rep".into())
        );
        let admin = caller("admin", Role::Admin);
        assert_eq!(bin_requester(&admin, None).unwrap(), None);
    }

    fn request(state: RequestState, now: DateTime<Utc>) -> DeletionRequest {
        let customer_id = Uuid::now_v7();
        DeletionRequest {
            id: Uuid::now_v7(),
            customer_id,
            requester_id: "rep".into(),
            reason: "duplicate".into(),
            preview: DeletionPreview {
                customer_id,
                version: VERSION,
                impacts: Vec::new(),
                blockers: Vec::new(),
                warnings: Vec::new(),
                approval_required: true,
                cascade_count: 0,
                keep_count: 0,
                alternatives: Vec::new(),
                approvals_required: 1,
                admin_approval_required: false,
                approval_reasons: Vec::new(),
            },
            state,
            decided_by: String::new(),
            decision_comment: String::new(),
            decide_time: None,
            expire_time: now + chrono::Duration::hours(1),
            create_time: now,
            update_time: now,
            execute_time: None,
            deletion_id: None,
            version: 1,
            merge: None,
            approval: Default::default(),
            approvals: Vec::new(),
            escalate_time: None,
        }
    }

    fn customer(id: Uuid, version: i64) -> Customer {
        Customer {
            id,
            name: "Acme".into(),
            phone: String::new(),
            email: String::new(),
            industry: String::new(),
            owner_id: "rep".into(),
            lifecycle_stage: LifecycleStage::Lead,
            status: CustomerStatus::Active,
            external_ref: String::new(),
            legal_hold: false,
            create_time: Utc::now(),
            update_time: Utc::now(),
            delete_time: None,
            purge_time: None,
            version,
            deletion_id: None,
        }
    }

    fn reason(refusal: Refusal) -> String {
        match refusal {
            Refusal::Lapsed { to, error } => format!("lapsed {} {}", to.name(), reason_of(&error)),
            Refusal::Denied(error) => reason_of(&error),
        }
    }

    fn reason_of(error: &Error) -> String {
        error.reason().unwrap_or(reason::NOT_FOUND).to_owned()
    }

    #[test]
    fn nobody_decides_their_own_request_whatever_its_state_or_their_role() {
        let now = Utc::now();
        for state in [
            RequestState::Pending,
            RequestState::Approved,
            RequestState::Stale,
        ] {
            for role in [Role::Supervisor, Role::Admin] {
                let refused = may_decide(
                    &request(state, now),
                    &caller("rep", role),
                    now,
                    Some(VERSION),
                );
                assert_eq!(
                    reason(refused.unwrap_err()),
                    reason::SELF_APPROVAL_FORBIDDEN
                );
            }
        }
    }

    #[test]
    fn a_pending_request_is_decided_until_it_lapses() {
        let now = Utc::now();
        let boss = caller("boss", Role::Supervisor);
        let pending = request(RequestState::Pending, now);
        assert!(may_decide(&pending, &boss, now, Some(VERSION)).is_ok());
        // The graph moved on: STALE, recorded.
        let refused = may_decide(&pending, &boss, now, Some(VERSION + 1)).unwrap_err();
        assert_eq!(reason(refused), "lapsed STALE PREVIEW_STALE");
        // The customer is gone: STALE as well.
        let refused = may_decide(&pending, &boss, now, None).unwrap_err();
        assert_eq!(reason(refused), "lapsed STALE PREVIEW_STALE");
        // Expiry is judged first, whatever happened to the graph.
        let later = pending.expire_time;
        let refused = may_decide(&pending, &boss, later, Some(VERSION + 1)).unwrap_err();
        assert_eq!(reason(refused), "lapsed EXPIRED DELETION_REQUEST_EXPIRED");
        // Decided already: refused without recording anything.
        let approved = request(RequestState::Approved, now);
        let refused = may_decide(&approved, &boss, now, Some(VERSION)).unwrap_err();
        assert_eq!(reason(refused), reason::DELETION_REQUEST_NOT_PENDING);
    }

    #[test]
    fn the_requester_or_a_supervisor_cancels_an_open_request_and_another_rep_does_not() {
        let now = Utc::now();
        let open = request(RequestState::Approved, now);
        assert!(may_cancel(&open, &caller("rep", Role::SalesRep), now, Some(VERSION)).is_ok());
        assert!(may_cancel(&open, &caller("boss", Role::Supervisor), now, Some(VERSION)).is_ok());
        let refused = may_cancel(
            &open,
            &caller("other-rep", Role::SalesRep),
            now,
            Some(VERSION),
        )
        .unwrap_err();
        assert!(matches!(
            refused,
            Refusal::Denied(Error::PermissionDenied(_))
        ));
        // A service may submit but not act on a request, even its own.
        let refused =
            may_cancel(&open, &caller("rep", Role::Service), now, Some(VERSION)).unwrap_err();
        assert!(matches!(
            refused,
            Refusal::Denied(Error::PermissionDenied(_))
        ));
        for closed in [
            RequestState::Rejected,
            RequestState::Cancelled,
            RequestState::Executed,
        ] {
            let refused = may_cancel(
                &request(closed, now),
                &caller("rep", Role::SalesRep),
                now,
                Some(VERSION),
            )
            .unwrap_err();
            assert_eq!(reason(refused), reason::DELETION_REQUEST_NOT_OPEN);
        }
    }

    #[test]
    fn only_the_approved_request_of_this_customer_with_its_etag_is_executed() {
        let now = Utc::now();
        let rep = caller("rep", Role::SalesRep);
        let approved = request(RequestState::Approved, now);
        let id = approved.customer_id;
        let live = customer(id, VERSION);
        let etag = live.etag();
        assert!(may_execute(&approved, &rep, now, id, Some(&live), &etag).is_ok());

        let refused =
            may_execute(&approved, &rep, now, Uuid::now_v7(), Some(&live), &etag).unwrap_err();
        assert!(matches!(refused, Refusal::Denied(Error::NotFound { .. })));
        let refused = may_execute(&approved, &rep, now, id, None, &etag).unwrap_err();
        assert!(matches!(refused, Refusal::Denied(Error::NotFound { .. })));
        let refused = may_execute(&approved, &rep, now, id, Some(&live), "3").unwrap_err();
        assert_eq!(reason(refused), reason::ETAG_MISMATCH);
        let moved = customer(id, VERSION + 1);
        let refused =
            may_execute(&approved, &rep, now, id, Some(&moved), &moved.etag()).unwrap_err();
        assert_eq!(reason(refused), "lapsed STALE PREVIEW_STALE");
        let pending = DeletionRequest {
            state: RequestState::Pending,
            ..approved.clone()
        };
        let refused = may_execute(&pending, &rep, now, id, Some(&live), &etag).unwrap_err();
        assert_eq!(reason(refused), reason::DELETION_NOT_APPROVED);
    }
}
