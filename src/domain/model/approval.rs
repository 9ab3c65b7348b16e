//! Who decides a deletion request or batch, and how many must approve it: the policy it was
//! submitted under and the approvals it has collected. Stored with the request, so that a later
//! change of the tenant's settings, or of the requester's teams, never moves a request already
//! made.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalPolicy {
    /// The requester's teams at submission: only a supervisor of one of them, or an admin, may
    /// decide. Empty (a token without team claims): any supervisor of the tenant.
    pub teams: Vec<String>,
    /// The token claim naming the teams a supervisor supervises, as the tenant's settings named
    /// it at submission.
    pub supervises_claim: String,
    /// 1, or 2 under the tenant's two-person rule.
    pub approvals_required: u32,
    /// One of the approvers must be an admin.
    pub admin_required: bool,
    /// The rules of the two-person rule this deletion met (empty when one approval suffices).
    pub reasons: Vec<ApprovalReason>,
}

impl Default for ApprovalPolicy {
    /// Any supervisor, one approval: the policy of requests made before policies existed.
    fn default() -> Self {
        Self {
            teams: Vec::new(),
            supervises_claim: String::new(),
            approvals_required: 1,
            admin_required: false,
            reasons: Vec::new(),
        }
    }
}

impl ApprovalPolicy {
    /// Whether `approvals` meet the policy: enough distinct approvers, an admin among them when
    /// one is required.
    pub fn is_met(&self, approvals: &[Approval]) -> bool {
        approvals.len() >= self.approvals_required as usize
            && (!self.admin_required || approvals.iter().any(|a| a.admin))
    }
}

/// A rule of the two-person rule that a deletion met, and how.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalReason {
    /// Stable code: OPEN_PIPELINE, RECORD_COUNT, BATCH_SIZE or KEY_ACCOUNT.
    pub code: String,
    /// The figures, for a person: "open pipeline 12500 EUR (minor units) is at or above 10000".
    pub description: String,
}

/// One approval of a request or batch that needs more than one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approval {
    pub approver_id: String,
    /// The approver held the admin role when approving.
    pub admin: bool,
    pub approve_time: DateTime<Utc>,
    pub comment: String,
}
