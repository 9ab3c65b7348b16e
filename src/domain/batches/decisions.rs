//! A batch's transitions asked for by a caller: approve, reject, cancel, run, and the start of a
//! restore. Each is one write transaction that locks the batch's row, asks `rules`, writes the
//! next state and audits it, naming the batch.

use uuid::Uuid;

use super::super::access::{Action, Caller};
use super::super::approval;
use super::super::audit::Entry;
use super::super::idempotency::Idempotency;
use super::super::mutation::{self, Change, Mutation, Operation};
use super::super::validate::Violations;
use super::rules::{self, Refusal};
use super::{BatchItem, BatchState, Batches, DeletionBatch, ItemState};
use crate::error::{Error, Result};
use crate::store;

const COMMENT_MAX: usize = 1000;

/// A decision of a supervisor or admin.
#[derive(Debug, Clone, Copy)]
enum Decision {
    Approve,
    Reject,
}

/// `batch` after `caller`'s approval: `decided` (APPROVED) with the approvals once they meet the
/// batch's policy, otherwise still PENDING with the approval recorded.
fn with_approval(
    batch: &DeletionBatch,
    decided: DeletionBatch,
    caller: &Caller,
    now: chrono::DateTime<chrono::Utc>,
    comment: &str,
) -> Result<DeletionBatch> {
    let approvals = approval::approve(&batch.approval, &batch.approvals, caller, now, comment)?;
    Ok(if batch.approval.is_met(&approvals) {
        DeletionBatch {
            approvals,
            ..decided
        }
    } else {
        DeletionBatch {
            approvals,
            ..batch.clone()
        }
    })
}

impl Batches {
    pub async fn approve(
        &self,
        caller: &Caller,
        id: Uuid,
        comment: String,
        key: Option<Idempotency>,
    ) -> Result<DeletionBatch> {
        self.decide(caller, id, comment, key, Decision::Approve)
            .await
    }

    pub async fn reject(
        &self,
        caller: &Caller,
        id: Uuid,
        comment: String,
        key: Option<Idempotency>,
    ) -> Result<DeletionBatch> {
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
    ) -> Result<DeletionBatch> {
        caller.require(Action::DecideDeletion)?;
        let mut v = Violations::new();
        let (operation, to, action) = match decision {
            Decision::Approve => {
                v.text("comment", &comment, COMMENT_MAX);
                (
                    Operation::ApproveDeletionBatch,
                    BatchState::Approved,
                    "deletion_batch.approve",
                )
            }
            Decision::Reject => {
                v.required_text("comment", &comment, COMMENT_MAX);
                (
                    Operation::RejectDeletionBatch,
                    BatchState::Rejected,
                    "deletion_batch.reject",
                )
            }
        };
        v.finish()?;
        let comment = &comment;
        let mutation = Mutation::new(caller, operation, key.as_ref());
        mutation::run(&self.store, &self.clock, mutation, |change| async move {
            let batch = self.lock(&change, id).await?;
            if let Err(refusal) = rules::may_decide(&batch, caller, change.now) {
                return Err(self.refuse(&change, batch, refusal).await);
            }
            let decided = DeletionBatch {
                state: to,
                decided_by: caller.subject.clone(),
                decision_comment: comment.clone(),
                decide_time: Some(change.now),
                ..batch.clone()
            };
            let next = match decision {
                Decision::Reject => decided,
                Decision::Approve => with_approval(&batch, decided, caller, change.now, comment)?,
            };
            self.save(&change, &batch, next, action).await
        })
        .await
    }

    pub async fn cancel(
        &self,
        caller: &Caller,
        id: Uuid,
        comment: String,
        key: Option<Idempotency>,
    ) -> Result<DeletionBatch> {
        if !caller.may(Action::ActOnOwnDeletion) {
            caller.require(Action::ActOnAnyDeletion)?;
        }
        let mut v = Violations::new();
        v.text("comment", &comment, COMMENT_MAX);
        v.finish()?;
        let comment = &comment;
        let mutation = Mutation::new(caller, Operation::CancelDeletionBatch, key.as_ref());
        mutation::run(&self.store, &self.clock, mutation, |change| async move {
            let batch = self.lock(&change, id).await?;
            if let Err(refusal) = rules::may_cancel(&batch, caller, change.now) {
                return Err(self.refuse(&change, batch, refusal).await);
            }
            let next = DeletionBatch {
                state: BatchState::Cancelled,
                decided_by: caller.subject.clone(),
                decision_comment: comment.clone(),
                decide_time: Some(change.now),
                ..batch.clone()
            };
            self.save(&change, &batch, next, "deletion_batch.cancel")
                .await
        })
        .await
    }

    /// Starts an approved batch: it turns RUNNING and the workers take it from there.
    pub async fn run(
        &self,
        caller: &Caller,
        id: Uuid,
        key: Option<Idempotency>,
    ) -> Result<DeletionBatch> {
        if !caller.may(Action::ActOnOwnDeletion) {
            caller.require(Action::ActOnAnyDeletion)?;
        }
        let mutation = Mutation::new(caller, Operation::RunDeletionBatch, key.as_ref());
        let started = mutation::run(&self.store, &self.clock, mutation, |change| async move {
            let batch = self.lock(&change, id).await?;
            if let Err(refusal) = rules::may_run(&batch, caller, change.now) {
                return Err(self.refuse(&change, batch, refusal).await);
            }
            let next = DeletionBatch {
                state: BatchState::Running,
                started_by: caller.subject.clone(),
                start_time: Some(change.now),
                ..batch.clone()
            };
            self.save(&change, &batch, next, "deletion_batch.start")
                .await
        })
        .await?;
        self.wake.notify_one();
        Ok(started)
    }

    /// Starts restoring every customer a completed batch deleted; with `validate_only`, says per
    /// item what a restore would do and changes nothing.
    pub async fn restore(
        &self,
        caller: &Caller,
        id: Uuid,
        validate_only: bool,
        key: Option<Idempotency>,
    ) -> Result<(DeletionBatch, Vec<BatchItem>)> {
        caller.require(Action::Restore)?;
        if validate_only {
            return self.restore_preview(caller, id).await;
        }
        let mutation = Mutation::new(caller, Operation::RestoreDeletionBatch, key.as_ref());
        let restoring = mutation::run(&self.store, &self.clock, mutation, |change| async move {
            let batch = self.lock(&change, id).await?;
            rules::may_restore(&batch)?;
            let next = DeletionBatch {
                state: BatchState::Restoring,
                restore_start_time: Some(change.now),
                ..batch.clone()
            };
            let next = self
                .save(&change, &batch, next, "deletion_batch.restore")
                .await?;
            Ok((next, Vec::new()))
        })
        .await?;
        self.wake.notify_one();
        Ok(restoring)
    }

    /// Each DELETED item of a completed batch as a restore would leave it, in one snapshot.
    async fn restore_preview(
        &self,
        caller: &Caller,
        id: Uuid,
    ) -> Result<(DeletionBatch, Vec<BatchItem>)> {
        let tx = self.store.begin_read().await?;
        let (conn, tenant, now) = (tx.conn(), &caller.tenant, self.clock.now());
        let batch = store::batches::find(conn, tenant, id)
            .await?
            .ok_or_else(|| Error::not_found("deletion batch", id))?;
        rules::may_restore(&batch)?;
        let deleted = store::batches::list_items(
            conn,
            tenant,
            id,
            Some(ItemState::Deleted),
            None,
            self.settings.max_items as u64,
        )
        .await?;
        let mut items = Vec::with_capacity(deleted.len());
        for item in deleted {
            let customer = store::customers::find(conn, tenant, item.customer_id).await?;
            let problem = self
                .restore_problem(conn, tenant, now, &item, customer.as_ref())
                .await?;
            items.push(super::work::restore_outcome(item, problem, 0, now));
        }
        tx.commit().await?;
        Ok((batch.as_seen(now), items))
    }

    /// Locks the batch's row.
    async fn lock(&self, change: &Change<'_>, id: Uuid) -> Result<DeletionBatch> {
        store::batches::find_for_update(change.tx().conn(), &change.caller.tenant, id)
            .await?
            .ok_or_else(|| Error::not_found("deletion batch", id))
    }

    /// Writes `next` over the batch as locked, audits it, and gives it back as stored.
    async fn save(
        &self,
        change: &Change<'_>,
        locked: &DeletionBatch,
        next: DeletionBatch,
        action: &'static str,
    ) -> Result<DeletionBatch> {
        let next = DeletionBatch {
            update_time: change.now,
            version: locked.version + 1,
            ..next
        };
        store::batches::update(
            change.tx().conn(),
            &change.caller.tenant,
            &next,
            locked.version,
        )
        .await?
        .or_else(|| {
            Error::internal(format!(
                "deletion batch {} changed under its row lock",
                next.id
            ))
        })?;
        let summary = format!(
            "state={} included={} excluded={} approvals={}/{}",
            next.state.name(),
            next.impact.included_count,
            next.impact.excluded_count,
            next.approvals.len(),
            next.approval.approvals_required
        );
        change
            .audit(Entry {
                action,
                target_type: "deletion_batch",
                target_id: next.id,
                customer_id: None,
                summary,
            })
            .await?;
        Ok(next)
    }

    /// The error a refused transition fails with. A lapse is recorded (EXPIRED) first and kept,
    /// though the call fails: what a reader saw is what the next write records.
    async fn refuse(&self, change: &Change<'_>, batch: DeletionBatch, refusal: Refusal) -> Error {
        match refusal {
            Refusal::Denied(error) => error,
            Refusal::Lapsed(error) => {
                let expired = DeletionBatch {
                    state: BatchState::Expired,
                    update_time: change.now,
                    version: batch.version + 1,
                    ..batch.clone()
                };
                let recorded = async {
                    store::batches::update(
                        change.tx().conn(),
                        &change.caller.tenant,
                        &expired,
                        batch.version,
                    )
                    .await?
                    .or_else(|| Error::internal("deletion batch changed under its row lock"))?;
                    change
                        .audit_unasked(Entry {
                            action: "deletion_batch.expire",
                            target_type: "deletion_batch",
                            target_id: batch.id,
                            customer_id: None,
                            summary: "state=EXPIRED".into(),
                        })
                        .await
                };
                match recorded.await {
                    Ok(()) => {
                        change.commit_even_if_failing();
                        error
                    }
                    Err(failed) => failed,
                }
            }
        }
    }
}
