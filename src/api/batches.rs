//! `crm.v1.DeletionBatchService`.

use tonic::{Request, Response, Status};

use super::convert::{
    caller, detached, enum_field, idempotency_key, optional_timestamp, timestamp,
};
use super::customers::{customer_status, lifecycle_stage};
use super::deletion::{blocker_to_proto, impact_to_proto, warning_to_proto};
use crate::domain::batches::{
    BatchImpact, BatchItem, BatchProgress, BatchSelection, BatchState, Batches, DeletionBatch,
    ItemState,
};
use crate::domain::customers::CustomerQuery;
use crate::domain::mutation::Operation;
use crate::domain::validate::parse_id;
use crate::error::{Error, Result};
use crate::proto::crm::v1 as pb;
use crate::proto::crm::v1::deletion_batch_service_server::DeletionBatchService;

pub struct BatchApi {
    batches: Batches,
}

impl BatchApi {
    pub fn new(batches: Batches) -> Self {
        Self { batches }
    }
}

fn state_to_proto(state: BatchState) -> pb::DeletionBatchState {
    match state {
        BatchState::Pending => pb::DeletionBatchState::Pending,
        BatchState::Approved => pb::DeletionBatchState::Approved,
        BatchState::Rejected => pb::DeletionBatchState::Rejected,
        BatchState::Cancelled => pb::DeletionBatchState::Cancelled,
        BatchState::Expired => pb::DeletionBatchState::Expired,
        BatchState::Running => pb::DeletionBatchState::Running,
        BatchState::Completed => pb::DeletionBatchState::Completed,
        BatchState::Restoring => pb::DeletionBatchState::Restoring,
        BatchState::Restored => pb::DeletionBatchState::Restored,
    }
}

fn state_from_proto(state: pb::DeletionBatchState) -> Option<BatchState> {
    BatchState::ALL
        .into_iter()
        .find(|s| state_to_proto(*s) == state)
}

fn item_state_to_proto(state: ItemState) -> pb::DeletionBatchItemState {
    match state {
        ItemState::Queued => pb::DeletionBatchItemState::Queued,
        ItemState::Excluded => pb::DeletionBatchItemState::Excluded,
        ItemState::Deleted => pb::DeletionBatchItemState::Deleted,
        ItemState::Stale => pb::DeletionBatchItemState::Stale,
        ItemState::Blocked => pb::DeletionBatchItemState::Blocked,
        ItemState::Restored => pb::DeletionBatchItemState::Restored,
        ItemState::RestoreFailed => pb::DeletionBatchItemState::RestoreFailed,
    }
}

fn item_state_from_proto(state: pb::DeletionBatchItemState) -> Option<ItemState> {
    ItemState::ALL
        .into_iter()
        .find(|s| item_state_to_proto(*s) == state)
}

fn batch_impact_to_proto(i: BatchImpact) -> pb::DeletionBatchImpact {
    pb::DeletionBatchImpact {
        impacts: i.impacts.into_iter().map(impact_to_proto).collect(),
        warnings: i.warnings.into_iter().map(warning_to_proto).collect(),
        included_count: i.included_count,
        excluded_count: i.excluded_count,
        exclusions: i
            .exclusions
            .into_iter()
            .map(|e| pb::DeletionBatchExclusion {
                reason: e.reason,
                count: e.count,
            })
            .collect(),
        cascade_count: i.cascade_count,
        keep_count: i.keep_count,
    }
}

fn progress_to_proto(p: BatchProgress) -> pb::DeletionBatchProgress {
    pb::DeletionBatchProgress {
        total_items: p.total_items,
        queued: p.queued,
        excluded: p.excluded,
        deleted: p.deleted,
        stale: p.stale,
        blocked: p.blocked,
        restored: p.restored,
        restore_failed: p.restore_failed,
        deleted_records: p.deleted_records,
        restored_records: p.restored_records,
    }
}

fn batch_to_proto(b: DeletionBatch) -> pb::DeletionBatch {
    pb::DeletionBatch {
        id: b.id.to_string(),
        etag: b.etag(),
        requester_id: b.requester_id,
        reason: b.reason,
        state: state_to_proto(b.state) as i32,
        impact: Some(batch_impact_to_proto(b.impact)),
        progress: Some(progress_to_proto(b.progress)),
        decided_by: b.decided_by,
        decision_comment: b.decision_comment,
        decide_time: optional_timestamp(b.decide_time),
        expire_time: Some(timestamp(b.expire_time)),
        create_time: Some(timestamp(b.create_time)),
        update_time: Some(timestamp(b.update_time)),
        started_by: b.started_by,
        start_time: optional_timestamp(b.start_time),
        finish_time: optional_timestamp(b.finish_time),
        restore_start_time: optional_timestamp(b.restore_start_time),
        restore_finish_time: optional_timestamp(b.restore_finish_time),
        approval: Some(super::deletion::approval_to_proto(
            b.approval,
            b.approvals,
            b.escalate_time,
            b.state == BatchState::Pending,
        )),
    }
}

fn item_to_proto(i: BatchItem) -> pb::DeletionBatchItem {
    pb::DeletionBatchItem {
        customer_id: i.customer_id.to_string(),
        customer_etag: i
            .customer_version
            .map(|v| v.to_string())
            .unwrap_or_default(),
        state: item_state_to_proto(i.state) as i32,
        excluded_reason: i.excluded_reason,
        blockers: i.blockers.into_iter().map(blocker_to_proto).collect(),
        deletion_id: i.deletion_id.map(|d| d.to_string()).unwrap_or_default(),
        deleted_records: i.deleted_records,
        restore_problem: i.restore_problem,
        restore_reason: i.restore_reason,
        update_time: Some(timestamp(i.update_time)),
    }
}

/// Exactly one of the ids and the filter.
fn selection(req: &pb::SubmitDeletionBatchRequest) -> Result<BatchSelection> {
    match (&req.filter, req.customer_ids.is_empty()) {
        (Some(_), false) => Err(Error::invalid_field(
            "customer_ids",
            "name the customers by id or by filter, not both",
        )),
        (None, true) => Err(Error::invalid_field(
            "customer_ids",
            "is required: the customers to delete, by id (or give a filter)",
        )),
        (None, false) => {
            let ids = req
                .customer_ids
                .iter()
                .enumerate()
                .map(|(i, id)| parse_id(&format!("customer_ids[{i}]"), id))
                .collect::<Result<Vec<_>>>()?;
            Ok(BatchSelection::Ids(ids))
        }
        (Some(f), true) => Ok(BatchSelection::Filter(CustomerQuery {
            show_deleted: false,
            text: f.query.clone(),
            industry: f.industry.clone(),
            owner_id: f.owner_id.clone(),
            lifecycle_stage: lifecycle_stage("filter.lifecycle_stage", f.lifecycle_stage)?,
            status: customer_status("filter.status", f.status)?,
        })),
    }
}

#[tonic::async_trait]
impl DeletionBatchService for BatchApi {
    async fn submit_deletion_batch(
        &self,
        request: Request<pb::SubmitDeletionBatchRequest>,
    ) -> Result<Response<pb::SubmitDeletionBatchResponse>, Status> {
        let caller = caller(&request)?;
        let req = request.into_inner();
        let selection = selection(&req)?;
        let key = idempotency_key(
            &req.request_id,
            Operation::SubmitDeletionBatch,
            &pb::SubmitDeletionBatchRequest {
                request_id: String::new(),
                ..req.clone()
            },
        )?;
        let batches = self.batches.clone();
        let reason = req.reason;
        let (batch, items) =
            detached(async move { batches.submit(&caller, selection, reason, key).await }).await?;
        Ok(Response::new(pb::SubmitDeletionBatchResponse {
            batch: Some(batch_to_proto(batch)),
            items: items.into_iter().map(item_to_proto).collect(),
        }))
    }

    async fn get_deletion_batch(
        &self,
        request: Request<pb::GetDeletionBatchRequest>,
    ) -> Result<Response<pb::GetDeletionBatchResponse>, Status> {
        let caller = caller(&request)?;
        let id = parse_id("batch_id", &request.get_ref().batch_id)?;
        let found = self.batches.get(&caller, id).await?;
        Ok(Response::new(pb::GetDeletionBatchResponse {
            batch: Some(batch_to_proto(found)),
        }))
    }

    async fn list_deletion_batches(
        &self,
        request: Request<pb::ListDeletionBatchesRequest>,
    ) -> Result<Response<pb::ListDeletionBatchesResponse>, Status> {
        let caller = caller(&request)?;
        let req = request.into_inner();
        let state =
            enum_field::<pb::DeletionBatchState>("state", req.state)?.and_then(state_from_proto);
        let page = self
            .batches
            .list(
                &caller,
                state,
                req.awaiting_my_decision,
                req.page_size,
                &req.page_token,
            )
            .await?;
        Ok(Response::new(pb::ListDeletionBatchesResponse {
            batches: page.items.into_iter().map(batch_to_proto).collect(),
            next_page_token: page.next_page_token.unwrap_or_default(),
        }))
    }

    async fn list_deletion_batch_items(
        &self,
        request: Request<pb::ListDeletionBatchItemsRequest>,
    ) -> Result<Response<pb::ListDeletionBatchItemsResponse>, Status> {
        let caller = caller(&request)?;
        let req = request.into_inner();
        let id = parse_id("batch_id", &req.batch_id)?;
        let state = enum_field::<pb::DeletionBatchItemState>("state", req.state)?
            .and_then(item_state_from_proto);
        let page = self
            .batches
            .list_items(&caller, id, state, req.page_size, &req.page_token)
            .await?;
        Ok(Response::new(pb::ListDeletionBatchItemsResponse {
            items: page.items.into_iter().map(item_to_proto).collect(),
            next_page_token: page.next_page_token.unwrap_or_default(),
        }))
    }

    async fn approve_deletion_batch(
        &self,
        request: Request<pb::ApproveDeletionBatchRequest>,
    ) -> Result<Response<pb::ApproveDeletionBatchResponse>, Status> {
        let caller = caller(&request)?;
        let req = request.into_inner();
        let id = parse_id("batch_id", &req.batch_id)?;
        let key = idempotency_key(
            &req.request_id,
            Operation::ApproveDeletionBatch,
            &pb::ApproveDeletionBatchRequest {
                request_id: String::new(),
                ..req.clone()
            },
        )?;
        let batches = self.batches.clone();
        let comment = req.comment;
        let batch =
            detached(async move { batches.approve(&caller, id, comment, key).await }).await?;
        Ok(Response::new(pb::ApproveDeletionBatchResponse {
            batch: Some(batch_to_proto(batch)),
        }))
    }

    async fn reject_deletion_batch(
        &self,
        request: Request<pb::RejectDeletionBatchRequest>,
    ) -> Result<Response<pb::RejectDeletionBatchResponse>, Status> {
        let caller = caller(&request)?;
        let req = request.into_inner();
        let id = parse_id("batch_id", &req.batch_id)?;
        let key = idempotency_key(
            &req.request_id,
            Operation::RejectDeletionBatch,
            &pb::RejectDeletionBatchRequest {
                request_id: String::new(),
                ..req.clone()
            },
        )?;
        let batches = self.batches.clone();
        let comment = req.comment;
        let batch =
            detached(async move { batches.reject(&caller, id, comment, key).await }).await?;
        Ok(Response::new(pb::RejectDeletionBatchResponse {
            batch: Some(batch_to_proto(batch)),
        }))
    }

    async fn cancel_deletion_batch(
        &self,
        request: Request<pb::CancelDeletionBatchRequest>,
    ) -> Result<Response<pb::CancelDeletionBatchResponse>, Status> {
        let caller = caller(&request)?;
        let req = request.into_inner();
        let id = parse_id("batch_id", &req.batch_id)?;
        let key = idempotency_key(
            &req.request_id,
            Operation::CancelDeletionBatch,
            &pb::CancelDeletionBatchRequest {
                request_id: String::new(),
                ..req.clone()
            },
        )?;
        let batches = self.batches.clone();
        let comment = req.comment;
        let batch =
            detached(async move { batches.cancel(&caller, id, comment, key).await }).await?;
        Ok(Response::new(pb::CancelDeletionBatchResponse {
            batch: Some(batch_to_proto(batch)),
        }))
    }

    async fn run_deletion_batch(
        &self,
        request: Request<pb::RunDeletionBatchRequest>,
    ) -> Result<Response<pb::RunDeletionBatchResponse>, Status> {
        let caller = caller(&request)?;
        let req = request.into_inner();
        let id = parse_id("batch_id", &req.batch_id)?;
        let key = idempotency_key(
            &req.request_id,
            Operation::RunDeletionBatch,
            &pb::RunDeletionBatchRequest {
                request_id: String::new(),
                ..req.clone()
            },
        )?;
        let batches = self.batches.clone();
        let batch = detached(async move { batches.run(&caller, id, key).await }).await?;
        Ok(Response::new(pb::RunDeletionBatchResponse {
            batch: Some(batch_to_proto(batch)),
        }))
    }

    async fn restore_deletion_batch(
        &self,
        request: Request<pb::RestoreDeletionBatchRequest>,
    ) -> Result<Response<pb::RestoreDeletionBatchResponse>, Status> {
        let caller = caller(&request)?;
        let req = request.into_inner();
        let id = parse_id("batch_id", &req.batch_id)?;
        let key = idempotency_key(
            &req.request_id,
            Operation::RestoreDeletionBatch,
            &pb::RestoreDeletionBatchRequest {
                request_id: String::new(),
                ..req.clone()
            },
        )?;
        let batches = self.batches.clone();
        let validate_only = req.validate_only;
        let (batch, items) =
            detached(async move { batches.restore(&caller, id, validate_only, key).await }).await?;
        Ok(Response::new(pb::RestoreDeletionBatchResponse {
            batch: Some(batch_to_proto(batch)),
            items: items.into_iter().map(item_to_proto).collect(),
        }))
    }
}
