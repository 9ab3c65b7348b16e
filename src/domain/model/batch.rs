//! A deletion batch: many customers under one reason and one decision, and what became of each.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::approval::{Approval, ApprovalPolicy};
use super::deletion::{Blocker, PipelineWarning, RelationImpact};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum BatchState {
    Pending,
    Approved,
    Rejected,
    Cancelled,
    Expired,
    Running,
    Completed,
    Restoring,
    Restored,
}

impl BatchState {
    pub const ALL: [BatchState; 9] = [
        BatchState::Pending,
        BatchState::Approved,
        BatchState::Rejected,
        BatchState::Cancelled,
        BatchState::Expired,
        BatchState::Running,
        BatchState::Completed,
        BatchState::Restoring,
        BatchState::Restored,
    ];

    pub fn name(self) -> &'static str {
        match self {
            BatchState::Pending => "PENDING",
            BatchState::Approved => "APPROVED",
            BatchState::Rejected => "REJECTED",
            BatchState::Cancelled => "CANCELLED",
            BatchState::Expired => "EXPIRED",
            BatchState::Running => "RUNNING",
            BatchState::Completed => "COMPLETED",
            BatchState::Restoring => "RESTORING",
            BatchState::Restored => "RESTORED",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }

    /// Waiting for a decision or to be started: what lapses at expire_time.
    pub fn awaits_decision_or_start(self) -> bool {
        matches!(self, BatchState::Pending | BatchState::Approved)
    }

    /// Counted against the tenant's open batches, and holding its QUEUED customers.
    pub fn is_open(self) -> bool {
        matches!(
            self,
            BatchState::Pending
                | BatchState::Approved
                | BatchState::Running
                | BatchState::Restoring
        )
    }

    /// Worked through in the background.
    pub fn is_working(self) -> bool {
        matches!(self, BatchState::Running | BatchState::Restoring)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ItemState {
    Queued,
    Excluded,
    Deleted,
    Stale,
    Blocked,
    Restored,
    RestoreFailed,
}

impl ItemState {
    pub const ALL: [ItemState; 7] = [
        ItemState::Queued,
        ItemState::Excluded,
        ItemState::Deleted,
        ItemState::Stale,
        ItemState::Blocked,
        ItemState::Restored,
        ItemState::RestoreFailed,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ItemState::Queued => "QUEUED",
            ItemState::Excluded => "EXCLUDED",
            ItemState::Deleted => "DELETED",
            ItemState::Stale => "STALE",
            ItemState::Blocked => "BLOCKED",
            ItemState::Restored => "RESTORED",
            ItemState::RestoreFailed => "RESTORE_FAILED",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }
}

/// Which customers a batch names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchSelection {
    Ids(Vec<Uuid>),
    Filter(super::customer::CustomerQuery),
}

/// How many items were left out at submission, for one reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exclusion {
    pub reason: String,
    pub count: i32,
}

/// What a batch would delete, summed over its included items at submission.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchImpact {
    pub impacts: Vec<RelationImpact>,
    pub warnings: Vec<PipelineWarning>,
    pub included_count: i32,
    pub excluded_count: i32,
    pub exclusions: Vec<Exclusion>,
    pub cascade_count: i64,
    pub keep_count: i64,
    /// Included customers marked as key accounts (for the two-person rule). Absent from batches
    /// stored before the mark existed, which had none.
    #[serde(default)]
    pub key_accounts: i32,
}

/// Items per state, and records moved.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchProgress {
    pub total_items: i32,
    pub queued: i32,
    pub excluded: i32,
    pub deleted: i32,
    pub stale: i32,
    pub blocked: i32,
    pub restored: i32,
    pub restore_failed: i32,
    pub deleted_records: i64,
    pub restored_records: i64,
}

impl BatchProgress {
    pub fn add(&mut self, state: ItemState, items: i32) {
        self.total_items += items;
        let slot = match state {
            ItemState::Queued => &mut self.queued,
            ItemState::Excluded => &mut self.excluded,
            ItemState::Deleted => &mut self.deleted,
            ItemState::Stale => &mut self.stale,
            ItemState::Blocked => &mut self.blocked,
            ItemState::Restored => &mut self.restored,
            ItemState::RestoreFailed => &mut self.restore_failed,
        };
        *slot += items;
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeletionBatch {
    pub id: Uuid,
    pub requester_id: String,
    pub reason: String,
    pub state: BatchState,
    pub impact: BatchImpact,
    pub progress: BatchProgress,
    pub decided_by: String,
    pub decision_comment: String,
    pub decide_time: Option<DateTime<Utc>>,
    pub expire_time: DateTime<Utc>,
    pub create_time: DateTime<Utc>,
    pub update_time: DateTime<Utc>,
    pub started_by: String,
    pub start_time: Option<DateTime<Utc>>,
    pub finish_time: Option<DateTime<Utc>>,
    pub restore_start_time: Option<DateTime<Utc>>,
    pub restore_finish_time: Option<DateTime<Utc>>,
    pub version: i64,
    /// Whom it is routed to and how many approvals it needs, as the tenant's policy said when it
    /// was submitted.
    pub approval: ApprovalPolicy,
    /// The approvals collected so far, in order.
    pub approvals: Vec<Approval>,
    /// When it is escalated if still PENDING (`None`: never).
    pub escalate_time: Option<DateTime<Utc>>,
}

impl DeletionBatch {
    pub fn etag(&self) -> String {
        self.version.to_string()
    }

    /// The state as a reader sees it: a batch undecided or unstarted at its expire_time has
    /// lapsed (EXPIRED), even before a write records it.
    pub fn effective_state(&self, now: DateTime<Utc>) -> BatchState {
        if self.state.awaits_decision_or_start() && self.expire_time <= now {
            BatchState::Expired
        } else {
            self.state
        }
    }

    pub fn as_seen(self, now: DateTime<Utc>) -> Self {
        Self {
            state: self.effective_state(now),
            ..self
        }
    }
}

/// Batches stored as `stored` whose expire_time has passed at `now` (`Some(true)`), has not
/// (`Some(false)`), or either (`None`): one case of a [`BatchStateFilter`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchStateCase {
    pub stored: BatchState,
    pub expired: Option<bool>,
}

/// The batches that read as some state at `now`: those matching any of `cases`. Derived from
/// [`DeletionBatch::effective_state`], so the store turns the rule into SQL without knowing it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchStateFilter {
    pub now: DateTime<Utc>,
    pub cases: Vec<BatchStateCase>,
}

impl BatchStateFilter {
    /// The batches that read as any of `wanted` at `now`: every stored state and expiry that
    /// `effective_state` turns into one of them.
    pub fn reading_as(wanted: &[BatchState], now: DateTime<Utc>) -> Self {
        let mut cases = Vec::new();
        for stored in BatchState::ALL {
            let reads =
                |expired: bool| wanted.contains(&probe(stored, now, expired).effective_state(now));
            match (reads(false), reads(true)) {
                (true, true) => cases.push(BatchStateCase {
                    stored,
                    expired: None,
                }),
                (false, false) => {}
                (when_live, _) => cases.push(BatchStateCase {
                    stored,
                    expired: Some(!when_live),
                }),
            }
        }
        Self { now, cases }
    }

    /// The batches that hold the tenant's open slots and their QUEUED customers at `now`:
    /// deciding, starting, or being worked on.
    pub fn open(now: DateTime<Utc>) -> Self {
        let open: Vec<BatchState> = BatchState::ALL
            .into_iter()
            .filter(|s| s.is_open())
            .collect();
        Self::reading_as(&open, now)
    }
}

/// A batch stored as `state`, lapsed at `now` or not: all `effective_state` reads.
fn probe(state: BatchState, now: DateTime<Utc>, expired: bool) -> DeletionBatch {
    let expire_time = if expired {
        now
    } else {
        now + chrono::Duration::seconds(1)
    };
    DeletionBatch {
        id: Uuid::nil(),
        requester_id: String::new(),
        reason: String::new(),
        state,
        impact: BatchImpact::default(),
        progress: BatchProgress::default(),
        decided_by: String::new(),
        decision_comment: String::new(),
        decide_time: None,
        expire_time,
        create_time: now,
        update_time: now,
        started_by: String::new(),
        start_time: None,
        finish_time: None,
        restore_start_time: None,
        restore_finish_time: None,
        version: 1,
        approval: ApprovalPolicy::default(),
        approvals: Vec::new(),
        escalate_time: None,
    }
}

/// One customer of a batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchItem {
    pub batch_id: Uuid,
    /// Submission order, from 0.
    pub position: i32,
    pub customer_id: Uuid,
    /// The graph version the submission's preview saw (`None`: no such customer).
    pub customer_version: Option<i64>,
    pub state: ItemState,
    pub excluded_reason: String,
    pub blockers: Vec<Blocker>,
    pub deletion_id: Option<Uuid>,
    pub deleted_records: i64,
    pub restored_records: i64,
    pub restore_reason: String,
    pub restore_problem: String,
    pub update_time: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_spell_back() {
        for s in BatchState::ALL {
            assert_eq!(BatchState::parse(s.name()), Some(s));
        }
        for s in ItemState::ALL {
            assert_eq!(ItemState::parse(s.name()), Some(s));
        }
    }

    #[test]
    fn only_an_undecided_or_unstarted_batch_lapses() {
        let now = Utc::now();
        for state in BatchState::ALL {
            let lapsed = matches!(state, BatchState::Pending | BatchState::Approved);
            assert_eq!(
                probe(state, now, true).effective_state(now) == BatchState::Expired,
                lapsed || state == BatchState::Expired,
                "{state:?}"
            );
            assert_eq!(probe(state, now, false).effective_state(now), state);
        }
    }

    fn case(stored: BatchState, expired: Option<bool>) -> BatchStateCase {
        BatchStateCase { stored, expired }
    }

    /// The filters the list and the open-batch checks need: an awaiting state only before its
    /// expire_time, EXPIRED also for the awaiting batches past it, the rest as stored.
    #[test]
    fn the_filters_are_the_rule_of_effective_state() {
        use BatchState::*;
        let now = Utc::now();
        let cases = |wanted: &[BatchState]| BatchStateFilter::reading_as(wanted, now).cases;
        assert_eq!(cases(&[Pending]), [case(Pending, Some(false))]);
        assert_eq!(cases(&[Approved]), [case(Approved, Some(false))]);
        assert_eq!(
            cases(&[Expired]),
            [
                case(Pending, Some(true)),
                case(Approved, Some(true)),
                case(Expired, None)
            ]
        );
        for other in [Rejected, Cancelled, Running, Completed, Restoring, Restored] {
            assert_eq!(cases(&[other]), [case(other, None)]);
        }
        assert_eq!(
            BatchStateFilter::open(now).cases,
            [
                case(Pending, Some(false)),
                case(Approved, Some(false)),
                case(Running, None),
                case(Restoring, None)
            ]
        );
    }
}
