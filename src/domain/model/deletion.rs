//! A deletion request and the preview it was approved on: what a reader sees of them, and the
//! one rule for the state a reader sees.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::approval::{Approval, ApprovalPolicy, ApprovalReason};
use super::record::RecordKind;
use crate::domain::policy::Policy;

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
    /// Gentler ways to the same end that fit this customer better. Absent from previews stored
    /// before they existed.
    #[serde(default)]
    pub alternatives: Vec<Alternative>,
    /// How many distinct approvers the deletion needs under the tenant's two-person rule (1 in
    /// previews stored before the rule existed).
    #[serde(default = "one")]
    pub approvals_required: u32,
    /// The two-person rule also needs an admin among them.
    #[serde(default)]
    pub admin_approval_required: bool,
    /// Why two: the rules the deletion met.
    #[serde(default)]
    pub approval_reasons: Vec<ApprovalReason>,
}

fn one() -> u32 {
    1
}

/// The dry run of merging a duplicate into the customer that stays: what moves, what differs,
/// what stops it, and both graph versions a merge would be bound to. Ids and counts, and the two
/// customers' own field values where they differ.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MergePreview {
    pub duplicate_id: Uuid,
    pub survivor_id: Uuid,
    pub duplicate_version: i64,
    pub survivor_version: i64,
    /// Every live record of the duplicate, per kind and state: all of them move.
    pub moves: Vec<RelationImpact>,
    pub move_count: i64,
    /// The customer fields whose values differ, for the merge to choose from.
    pub conflicts: Vec<FieldConflict>,
    pub blockers: Vec<Blocker>,
}

/// A customer field whose value differs between the duplicate and the survivor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldConflict {
    pub field: String,
    pub duplicate_value: String,
    pub survivor_value: String,
}

/// A way to the same end as a deletion, suggested by the preview, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alternative {
    /// Stable code, e.g. `MARK_INACTIVE`.
    pub code: String,
    /// Why it fits better, and what to do, for a person.
    pub explanation: String,
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
    /// Set on a MERGE request: the customer is the duplicate, merged into `merge.survivor_id`.
    pub merge: Option<MergeTerms>,
    /// Whom it is routed to and how many approvals it needs, as the tenant's policy said when it
    /// was submitted.
    pub approval: ApprovalPolicy,
    /// The approvals collected so far, in order.
    pub approvals: Vec<Approval>,
    /// When it is escalated if still PENDING (`None`: never).
    pub escalate_time: Option<DateTime<Utc>>,
}

/// What a MERGE request binds besides the duplicate's graph (its preview): the survivor's graph
/// version, the fields the survivor takes from the duplicate, and, once executed, the values
/// the survivor had in those fields (for an unmerge).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MergeTerms {
    pub survivor_id: Uuid,
    pub survivor_version: i64,
    pub take_fields: Vec<String>,
    /// Set once the merge is executed, and blanked when the duplicate is erased (personal data).
    #[serde(skip)]
    pub values: Option<MergeValues>,
}

/// An executed merge's field values.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MergeValues {
    /// The survivor's values before the merge, field by field.
    pub survivor_before: Vec<(String, String)>,
    /// The values the survivor took, field by field: an unmerge reverts a field only while the
    /// survivor still holds what it took.
    pub taken: Vec<(String, String)>,
}

impl DeletionRequest {
    /// The graph version the request is bound to: its preview's, plus, for a merge, the
    /// survivor's. Versions only grow, so the sum moves on as soon as either customer changes;
    /// readers compare it with the same sum of the customers' current versions.
    pub fn bound_version(&self) -> i64 {
        self.preview.version + self.merge.as_ref().map_or(0, |m| m.survivor_version)
    }

    pub fn etag(&self) -> String {
        self.version.to_string()
    }

    /// The request as a decision leaves it: approved, rejected or cancelled by `by`.
    pub fn decided(self, to: RequestState, by: &str, comment: &str, now: DateTime<Utc>) -> Self {
        Self {
            state: to,
            decided_by: by.to_owned(),
            decision_comment: comment.to_owned(),
            decide_time: Some(now),
            update_time: now,
            version: self.version + 1,
            ..self
        }
    }

    /// The request after an approval, with the approvals collected so far: APPROVED, decided by
    /// the approver who completed the policy, once they meet it; PENDING otherwise.
    pub fn approved_by(
        self,
        approvals: Vec<Approval>,
        by: &str,
        comment: &str,
        now: DateTime<Utc>,
    ) -> Self {
        let met = self.approval.is_met(&approvals);
        let next = Self { approvals, ..self };
        if met {
            return next.decided(RequestState::Approved, by, comment, now);
        }
        Self {
            update_time: now,
            version: next.version + 1,
            ..next
        }
    }

    /// The request as its execution leaves it.
    pub fn executed(self, now: DateTime<Utc>, deletion_id: Uuid) -> Self {
        Self {
            state: RequestState::Executed,
            execute_time: Some(now),
            deletion_id: Some(deletion_id),
            update_time: now,
            version: self.version + 1,
            ..self
        }
    }

    /// The state as a reader sees it, given the customer's current graph version (`None`: no such
    /// customer). An open request has lapsed, even before any write records it, once its
    /// expire_time has passed (EXPIRED) or once the graph is no longer the one its preview saw
    /// (STALE). Expiry is judged first: a request past its expire_time is EXPIRED whatever
    /// happened to the graph. Every transition records exactly this state before anything else
    /// ([`crate::domain::deletion::rules::not_lapsed`]), and ListDeletionRequests' state filter is derived from this rule
    /// ([`super::request_filter::state_filter`]), so what a reader saw is what the next write records.
    pub fn effective_state(
        &self,
        now: DateTime<Utc>,
        customer_version: Option<i64>,
    ) -> RequestState {
        if !self.state.is_open() {
            self.state
        } else if self.expire_time <= now {
            RequestState::Expired
        } else if customer_version != Some(self.bound_version()) {
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
            create_time: expire_time,
            update_time: expire_time,
            execute_time: None,
            deletion_id: None,
            version: 1,
            merge: None,
            approval: ApprovalPolicy::default(),
            approvals: Vec::new(),
            escalate_time: None,
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
