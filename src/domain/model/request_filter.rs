//! ListDeletionRequests' state filter, derived from [`DeletionRequest::effective_state`] so that
//! the rule of what state a reader sees is written once. The store turns the filter into SQL
//! (`store::deletion::list_requests`); it does not know the rule.
//!
//! A stored request's effective state depends on three things only: its stored state, whether
//! its expire_time has passed, and whether its customer's graph is still at the version its
//! preview saw. The filter asks `effective_state` about every combination, and keeps those that
//! read as the wanted state.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::deletion::{DeletionPreview, DeletionRequest, RequestState};

/// Every state a request can be stored in.
const STORED: [RequestState; 7] = [
    RequestState::Pending,
    RequestState::Approved,
    RequestState::Rejected,
    RequestState::Cancelled,
    RequestState::Expired,
    RequestState::Stale,
    RequestState::Executed,
];

/// The requests a reader sees in one state at `now`: those matching any of `cases`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateFilter {
    pub now: DateTime<Utc>,
    pub cases: Vec<StateCase>,
}

/// Requests stored in one of `stored`, with expiry and graph as given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateCase {
    pub stored: Vec<RequestState>,
    /// `Some(true)`: expire_time is at or before `now`; `Some(false)`: after it; `None`: either.
    pub expired: Option<bool>,
    /// `Some(true)`: the customer's current graph version is the preview's; `Some(false)`: it is
    /// not, or there is no such customer; `None`: either.
    pub graph_unchanged: Option<bool>,
}

/// The filter of the requests that read as `wanted` at `now`.
pub fn state_filter(wanted: RequestState, now: DateTime<Utc>) -> StateFilter {
    let mut cases: Vec<StateCase> = Vec::new();
    for stored in STORED {
        let reads_as = |expired: bool, graph_unchanged: bool| {
            let request = probe(stored, now, expired);
            let customer_version = graph_unchanged.then_some(request.bound_version());
            request.effective_state(now, customer_version) == wanted
        };
        let mut conditions = Vec::new();
        for expired in [false, true] {
            match (reads_as(expired, true), reads_as(expired, false)) {
                (true, true) => conditions.push((Some(expired), None)),
                (true, false) => conditions.push((Some(expired), Some(true))),
                (false, true) => conditions.push((Some(expired), Some(false))),
                (false, false) => {}
            }
        }
        if conditions == [(Some(false), None), (Some(true), None)] {
            conditions = vec![(None, None)];
        }
        for (expired, graph_unchanged) in conditions {
            // States read alike under the same conditions share one case (one `IN`).
            match cases
                .iter_mut()
                .find(|c| c.expired == expired && c.graph_unchanged == graph_unchanged)
            {
                Some(case) => case.stored.push(stored),
                None => cases.push(StateCase {
                    stored: vec![stored],
                    expired,
                    graph_unchanged,
                }),
            }
        }
    }
    // The wanted state as stored first: the filter reads as the rule does.
    cases.sort_by_key(|case| !case.stored.contains(&wanted));
    StateFilter { now, cases }
}

/// A request stored as `state`, lapsed by `now` or not, for `effective_state` to judge. Only the
/// stored state, the expire_time and the preview's version are read.
fn probe(state: RequestState, now: DateTime<Utc>, expired: bool) -> DeletionRequest {
    let expire_time = if expired {
        now
    } else {
        now + chrono::Duration::seconds(1)
    };
    DeletionRequest {
        id: Uuid::nil(),
        customer_id: Uuid::nil(),
        requester_id: String::new(),
        reason: String::new(),
        preview: DeletionPreview {
            customer_id: Uuid::nil(),
            version: 1,
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
        expire_time,
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

#[cfg(test)]
mod tests {
    use super::*;
    use RequestState::*;

    /// A new state must be added to `STORED`: this match stops compiling until it is.
    #[test]
    fn every_state_is_stored() {
        for state in STORED {
            match state {
                Pending | Approved | Rejected | Cancelled | Expired | Stale | Executed => {}
            }
        }
        assert_eq!(STORED.len(), 7);
    }

    fn case(
        stored: &[RequestState],
        expired: Option<bool>,
        graph_unchanged: Option<bool>,
    ) -> StateCase {
        StateCase {
            stored: stored.to_vec(),
            expired,
            graph_unchanged,
        }
    }

    /// The filters the list has always run: an open state only while neither lapse applies,
    /// EXPIRED and STALE also for the open requests that lapsed that way, the rest as stored.
    #[test]
    fn the_filters_are_the_rule_of_effective_state() {
        let now = Utc::now();
        let cases = |wanted| state_filter(wanted, now).cases;
        assert_eq!(cases(Pending), [case(&[Pending], Some(false), Some(true))]);
        assert_eq!(
            cases(Approved),
            [case(&[Approved], Some(false), Some(true))]
        );
        assert_eq!(
            cases(Expired),
            [
                case(&[Expired], None, None),
                case(&[Pending, Approved], Some(true), None)
            ]
        );
        assert_eq!(
            cases(Stale),
            [
                case(&[Stale], None, None),
                case(&[Pending, Approved], Some(false), Some(false))
            ]
        );
        for closed in [Rejected, Cancelled, Executed] {
            assert_eq!(cases(closed), [case(&[closed], None, None)]);
        }
    }
}
