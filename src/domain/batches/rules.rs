//! A batch's state machine as pure functions: given the batch as locked, the caller and the time,
//! may this transition happen? The same roles and the same separation of duties as a single
//! deletion request (`domain::deletion::rules`).

use chrono::{DateTime, Utc};

use super::super::access::Caller;
use super::super::approval;
use super::super::deletion::rules::may_act_as_requester_or_any;
use super::{BatchState, DeletionBatch};
use crate::error::{Error, Problem};
use crate::reason;

/// Why a transition may not happen.
#[derive(Debug)]
pub enum Refusal {
    /// The batch lapsed undecided or unstarted (it reads EXPIRED): the lapse is recorded and
    /// committed, and the call fails with the error.
    Lapsed(Error),
    /// Refused, nothing to record.
    Denied(Error),
}

impl From<Error> for Refusal {
    fn from(error: Error) -> Self {
        Refusal::Denied(error)
    }
}

fn not_in_state(
    batch: &DeletionBatch,
    state: BatchState,
    why: &'static str,
    wanted: &str,
) -> Error {
    Error::failed_precondition(
        Problem::new(
            why,
            format!("the deletion batch is {}, not {wanted}", state.name()),
        )
        .with("batchId", batch.id)
        .with("state", state.name()),
    )
}

/// Refuses a batch that reads EXPIRED although its stored state does not say so yet.
fn not_lapsed(batch: &DeletionBatch, now: DateTime<Utc>, wanted: &str) -> Result<(), Refusal> {
    if batch.effective_state(now) == batch.state {
        return Ok(());
    }
    Err(Refusal::Lapsed(not_in_state(
        batch,
        BatchState::Expired,
        reason::DELETION_BATCH_EXPIRED,
        wanted,
    )))
}

/// Approve or reject: a supervisor or admin (checked before, by role) who did not submit the
/// batch, on a PENDING batch that has not lapsed.
pub fn may_decide(
    batch: &DeletionBatch,
    caller: &Caller,
    now: DateTime<Utc>,
) -> Result<(), Refusal> {
    if batch.requester_id == caller.subject {
        return Err(Error::PermissionDenied(
            Problem::new(
                reason::SELF_APPROVAL_FORBIDDEN,
                "you submitted this deletion batch: another supervisor or admin must decide it",
            )
            .with("batchId", batch.id),
        )
        .into());
    }
    approval::require_routed(&batch.approval, caller)?;
    not_lapsed(batch, now, "PENDING")?;
    if batch.state != BatchState::Pending {
        return Err(not_in_state(
            batch,
            batch.state,
            reason::DELETION_BATCH_NOT_PENDING,
            "PENDING",
        )
        .into());
    }
    Ok(())
}

/// The requester may act on their own batch; supervisors and admins on anyone's: the rule of a
/// single request.
pub fn may_act(batch: &DeletionBatch, caller: &Caller) -> Result<(), Error> {
    may_act_as_requester_or_any(&batch.requester_id, caller)
}

/// Cancel: the requester, a supervisor or an admin, on a PENDING or APPROVED batch that has
/// not lapsed.
pub fn may_cancel(
    batch: &DeletionBatch,
    caller: &Caller,
    now: DateTime<Utc>,
) -> Result<(), Refusal> {
    may_act(batch, caller)?;
    not_lapsed(batch, now, "PENDING or APPROVED")?;
    if !batch.state.awaits_decision_or_start() {
        return Err(not_in_state(
            batch,
            batch.state,
            reason::DELETION_BATCH_NOT_OPEN,
            "PENDING or APPROVED",
        )
        .into());
    }
    Ok(())
}

/// Run: the requester, a supervisor or an admin, on an APPROVED batch that has not lapsed.
pub fn may_run(batch: &DeletionBatch, caller: &Caller, now: DateTime<Utc>) -> Result<(), Refusal> {
    may_act(batch, caller)?;
    not_lapsed(batch, now, "APPROVED")?;
    if batch.state != BatchState::Approved {
        return Err(not_in_state(
            batch,
            batch.state,
            reason::DELETION_BATCH_NOT_APPROVED,
            "APPROVED",
        )
        .into());
    }
    Ok(())
}

/// Restore: a supervisor or admin (checked before, by role), on a COMPLETED batch.
pub fn may_restore(batch: &DeletionBatch) -> Result<(), Error> {
    if batch.state != BatchState::Completed {
        return Err(not_in_state(
            batch,
            batch.state,
            reason::DELETION_BATCH_NOT_COMPLETED,
            "COMPLETED",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::access::Role;
    use crate::domain::model::batch::{BatchImpact, BatchProgress};
    use uuid::Uuid;

    fn batch(state: BatchState, expire_time: DateTime<Utc>) -> DeletionBatch {
        DeletionBatch {
            id: Uuid::now_v7(),
            requester_id: "rep-1".into(),
            reason: "import duplicates".into(),
            state,
            impact: BatchImpact::default(),
            progress: BatchProgress::default(),
            decided_by: String::new(),
            decision_comment: String::new(),
            decide_time: None,
            expire_time,
            create_time: expire_time,
            update_time: expire_time,
            started_by: String::new(),
            start_time: None,
            finish_time: None,
            restore_start_time: None,
            restore_finish_time: None,
            version: 1,
            approval: Default::default(),
            approvals: Vec::new(),
            escalate_time: None,
        }
    }

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

    fn reason_of(refusal: Result<(), Refusal>) -> Option<(bool, &'static str)> {
        match refusal {
            Ok(()) => None,
            Err(Refusal::Lapsed(e)) => Some((true, e.reason().unwrap_or("-"))),
            Err(Refusal::Denied(e)) => Some((false, e.reason().unwrap_or("-"))),
        }
    }

    #[test]
    fn the_submitter_never_decides_even_as_admin() {
        let now = Utc::now();
        let live = now + chrono::Duration::hours(1);
        let b = batch(BatchState::Pending, live);
        assert_eq!(
            reason_of(may_decide(&b, &caller("rep-1", Role::Admin), now)),
            Some((false, reason::SELF_APPROVAL_FORBIDDEN))
        );
        assert_eq!(
            reason_of(may_decide(&b, &caller("sup-1", Role::Supervisor), now)),
            None
        );
    }

    #[test]
    fn a_lapsed_batch_is_recorded_expired_whatever_is_asked() {
        let now = Utc::now();
        for state in [BatchState::Pending, BatchState::Approved] {
            let b = batch(state, now);
            let sup = caller("sup-1", Role::Supervisor);
            assert_eq!(
                reason_of(may_decide(&b, &sup, now)),
                Some((true, reason::DELETION_BATCH_EXPIRED))
            );
            assert_eq!(
                reason_of(may_cancel(&b, &sup, now)),
                Some((true, reason::DELETION_BATCH_EXPIRED))
            );
            assert_eq!(
                reason_of(may_run(&b, &sup, now)),
                Some((true, reason::DELETION_BATCH_EXPIRED))
            );
        }
    }

    #[test]
    fn each_transition_needs_its_state() {
        let now = Utc::now();
        let live = now + chrono::Duration::hours(1);
        let sup = caller("sup-1", Role::Supervisor);
        assert_eq!(
            reason_of(may_decide(&batch(BatchState::Approved, live), &sup, now)),
            Some((false, reason::DELETION_BATCH_NOT_PENDING))
        );
        assert_eq!(
            reason_of(may_run(&batch(BatchState::Pending, live), &sup, now)),
            Some((false, reason::DELETION_BATCH_NOT_APPROVED))
        );
        assert_eq!(
            reason_of(may_cancel(&batch(BatchState::Running, live), &sup, now)),
            Some((false, reason::DELETION_BATCH_NOT_OPEN))
        );
        assert_eq!(
            reason_of(may_run(&batch(BatchState::Approved, live), &sup, now)),
            None
        );
        assert!(may_restore(&batch(BatchState::Completed, live)).is_ok());
        assert!(may_restore(&batch(BatchState::Running, live)).is_err());
    }

    #[test]
    fn a_sales_rep_runs_or_cancels_only_their_own_batch() {
        let now = Utc::now();
        let live = now + chrono::Duration::hours(1);
        let b = batch(BatchState::Approved, live);
        assert_eq!(
            reason_of(may_run(&b, &caller("rep-1", Role::SalesRep), now)),
            None
        );
        assert_eq!(
            reason_of(may_run(&b, &caller("rep-2", Role::SalesRep), now)),
            Some((false, reason::ROLE_NOT_ALLOWED))
        );
        assert_eq!(
            reason_of(may_cancel(&b, &caller("rep-2", Role::SalesRep), now)).map(|r| r.1),
            Some(reason::ROLE_NOT_ALLOWED)
        );
    }
}
