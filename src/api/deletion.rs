//! `crm.v1.DeletionApprovalService`, and the preview's proto form (shared with CustomerService).

use tonic::{Request, Response, Status};

use super::convert::{
    caller, detached, enum_field, idempotency_key, optional_id, optional_timestamp, timestamp,
};
use crate::domain::deletion::{
    Blocker, DeletionPreview, DeletionRequest, Deletions, MergeAsk, PipelineWarning,
    RelationImpact, RequestState,
};
use crate::domain::model::approval::{Approval, ApprovalPolicy, ApprovalReason};
use crate::domain::mutation::Operation;
use crate::domain::policy::Policy;
use crate::domain::validate::parse_id;
use crate::error::Result;
use crate::proto::crm::v1 as pb;
use crate::proto::crm::v1::deletion_approval_service_server::DeletionApprovalService;

pub struct DeletionApi {
    deletions: Deletions,
}

impl DeletionApi {
    pub fn new(deletions: Deletions) -> Self {
        Self { deletions }
    }
}

fn policy_to_proto(p: Policy) -> i32 {
    let policy = match p {
        Policy::Cascade => pb::DeletionPolicy::Cascade,
        Policy::Block => pb::DeletionPolicy::Block,
        Policy::Keep => pb::DeletionPolicy::Keep,
    };
    policy as i32
}

pub fn impact_to_proto(i: RelationImpact) -> pb::RelationImpact {
    pb::RelationImpact {
        relation: i.relation.name().to_owned(),
        state: i.state.unwrap_or_default(),
        policy: policy_to_proto(i.policy),
        count: i.count,
        sample_ids: i.sample_ids.iter().map(ToString::to_string).collect(),
    }
}

pub fn blocker_to_proto(b: Blocker) -> pb::DeletionBlocker {
    pb::DeletionBlocker {
        reason: b.reason,
        relation: b.relation.map(|k| k.name().to_owned()).unwrap_or_default(),
        count: b.count,
        sample_ids: b.sample_ids.iter().map(ToString::to_string).collect(),
        resolution: b.resolution,
    }
}

pub fn warning_to_proto(w: PipelineWarning) -> pb::PipelineWarning {
    pb::PipelineWarning {
        currency: w.currency,
        open_amount_minor: w.open_amount_minor,
        open_deals: w.open_deals,
        open_amount_saturated: w.open_amount_saturated,
    }
}

pub fn preview_to_proto(p: DeletionPreview) -> pb::DeletionPreview {
    pb::DeletionPreview {
        customer_id: p.customer_id.to_string(),
        etag: p.version.to_string(),
        impacts: p.impacts.into_iter().map(impact_to_proto).collect(),
        blockers: p.blockers.into_iter().map(blocker_to_proto).collect(),
        warnings: p.warnings.into_iter().map(warning_to_proto).collect(),
        approval_required: p.approval_required,
        cascade_count: p.cascade_count,
        keep_count: p.keep_count,
        alternatives: p
            .alternatives
            .into_iter()
            .map(|a| pb::DeletionAlternative {
                code: a.code,
                explanation: a.explanation,
            })
            .collect(),
        approvals_required: p.approvals_required as i32,
        admin_approval_required: p.admin_approval_required,
        approval_reasons: p
            .approval_reasons
            .into_iter()
            .map(reason_to_proto)
            .collect(),
    }
}

fn reason_to_proto(r: ApprovalReason) -> pb::ApprovalReason {
    pb::ApprovalReason {
        code: r.code,
        description: r.description,
    }
}

/// The approval part of a request or batch: its policy, its approvals, and, while `pending`,
/// whom it waits for.
pub fn approval_to_proto(
    policy: ApprovalPolicy,
    approvals: Vec<Approval>,
    escalate_time: Option<chrono::DateTime<chrono::Utc>>,
    pending: bool,
) -> pb::ApprovalStatus {
    let waiting_for = if pending {
        crate::domain::approval::waiting_for(&policy, &approvals)
    } else {
        String::new()
    };
    pb::ApprovalStatus {
        routed_to_teams: policy.teams,
        approvals_required: policy.approvals_required as i32,
        admin_approval_required: policy.admin_required,
        reasons: policy.reasons.into_iter().map(reason_to_proto).collect(),
        approvals: approvals
            .into_iter()
            .map(|a| pb::Approval {
                approver_id: a.approver_id,
                admin: a.admin,
                approve_time: Some(timestamp(a.approve_time)),
                comment: a.comment,
            })
            .collect(),
        waiting_for,
        escalate_time: optional_timestamp(escalate_time),
    }
}

fn state_to_proto(state: RequestState) -> pb::DeletionRequestState {
    match state {
        RequestState::Pending => pb::DeletionRequestState::Pending,
        RequestState::Approved => pb::DeletionRequestState::Approved,
        RequestState::Rejected => pb::DeletionRequestState::Rejected,
        RequestState::Cancelled => pb::DeletionRequestState::Cancelled,
        RequestState::Expired => pb::DeletionRequestState::Expired,
        RequestState::Stale => pb::DeletionRequestState::Stale,
        RequestState::Executed => pb::DeletionRequestState::Executed,
    }
}

fn state_from_proto(state: pb::DeletionRequestState) -> Option<RequestState> {
    Some(match state {
        pb::DeletionRequestState::Unspecified => return None,
        pb::DeletionRequestState::Pending => RequestState::Pending,
        pb::DeletionRequestState::Approved => RequestState::Approved,
        pb::DeletionRequestState::Rejected => RequestState::Rejected,
        pb::DeletionRequestState::Cancelled => RequestState::Cancelled,
        pb::DeletionRequestState::Expired => RequestState::Expired,
        pb::DeletionRequestState::Stale => RequestState::Stale,
        pb::DeletionRequestState::Executed => RequestState::Executed,
    })
}

pub fn request_to_proto(r: DeletionRequest) -> pb::DeletionRequest {
    pb::DeletionRequest {
        id: r.id.to_string(),
        customer_id: r.customer_id.to_string(),
        etag: r.etag(),
        requester_id: r.requester_id,
        reason: r.reason,
        preview: Some(preview_to_proto(r.preview)),
        state: state_to_proto(r.state) as i32,
        decided_by: r.decided_by,
        decision_comment: r.decision_comment,
        decide_time: optional_timestamp(r.decide_time),
        expire_time: Some(timestamp(r.expire_time)),
        create_time: Some(timestamp(r.create_time)),
        execute_time: optional_timestamp(r.execute_time),
        kind: if r.merge.is_some() {
            pb::DeletionRequestKind::Merge
        } else {
            pb::DeletionRequestKind::Delete
        } as i32,
        merge: r.merge.map(|m| pb::MergeTerms {
            survivor_id: m.survivor_id.to_string(),
            survivor_etag: m.survivor_version.to_string(),
            take_fields: m.take_fields,
        }),
        approval: Some(approval_to_proto(
            r.approval,
            r.approvals,
            r.escalate_time,
            r.state == RequestState::Pending,
        )),
    }
}

#[tonic::async_trait]
impl DeletionApprovalService for DeletionApi {
    async fn submit_deletion_request(
        &self,
        request: Request<pb::SubmitDeletionRequestRequest>,
    ) -> Result<Response<pb::SubmitDeletionRequestResponse>, Status> {
        let caller = caller(&request)?;
        let req = request.into_inner();
        let customer_id = parse_id("customer_id", &req.customer_id)?;
        let key = idempotency_key(
            &req.request_id,
            Operation::SubmitDeletionRequest,
            &pb::SubmitDeletionRequestRequest {
                request_id: String::new(),
                ..req.clone()
            },
        )?;
        let deletions = self.deletions.clone();
        let (etag, reason) = (req.preview_etag, req.reason);
        let submitted = detached(async move {
            deletions
                .submit(&caller, customer_id, etag, reason, key)
                .await
        })
        .await?;
        Ok(Response::new(pb::SubmitDeletionRequestResponse {
            deletion_request: Some(request_to_proto(submitted)),
        }))
    }

    async fn submit_merge_request(
        &self,
        request: Request<pb::SubmitMergeRequestRequest>,
    ) -> Result<Response<pb::SubmitMergeRequestResponse>, Status> {
        let caller = caller(&request)?;
        let req = request.into_inner();
        let ask = MergeAsk {
            duplicate_id: parse_id("duplicate_id", &req.duplicate_id)?,
            survivor_id: parse_id("survivor_id", &req.survivor_id)?,
            duplicate_etag: req.duplicate_etag.clone(),
            survivor_etag: req.survivor_etag.clone(),
            take_fields: req.take_fields.clone(),
            reason: req.reason.clone(),
        };
        let key = idempotency_key(
            &req.request_id,
            Operation::SubmitMergeRequest,
            &pb::SubmitMergeRequestRequest {
                request_id: String::new(),
                ..req
            },
        )?;
        let deletions = self.deletions.clone();
        let submitted =
            detached(async move { deletions.submit_merge(&caller, ask, key).await }).await?;
        Ok(Response::new(pb::SubmitMergeRequestResponse {
            deletion_request: Some(request_to_proto(submitted)),
        }))
    }

    async fn get_deletion_request(
        &self,
        request: Request<pb::GetDeletionRequestRequest>,
    ) -> Result<Response<pb::GetDeletionRequestResponse>, Status> {
        let caller = caller(&request)?;
        let id = parse_id(
            "deletion_request_id",
            &request.get_ref().deletion_request_id,
        )?;
        let found = self.deletions.get(&caller, id).await?;
        Ok(Response::new(pb::GetDeletionRequestResponse {
            deletion_request: Some(request_to_proto(found)),
        }))
    }

    async fn list_deletion_requests(
        &self,
        request: Request<pb::ListDeletionRequestsRequest>,
    ) -> Result<Response<pb::ListDeletionRequestsResponse>, Status> {
        let caller = caller(&request)?;
        let req = request.into_inner();
        let state =
            enum_field::<pb::DeletionRequestState>("state", req.state)?.and_then(state_from_proto);
        let customer_id = optional_id("customer_id", &req.customer_id)?;
        let page = self
            .deletions
            .list(
                &caller,
                state,
                customer_id,
                req.awaiting_my_decision,
                req.page_size,
                &req.page_token,
            )
            .await?;
        Ok(Response::new(pb::ListDeletionRequestsResponse {
            deletion_requests: page.items.into_iter().map(request_to_proto).collect(),
            next_page_token: page.next_page_token.unwrap_or_default(),
        }))
    }

    async fn approve_deletion_request(
        &self,
        request: Request<pb::ApproveDeletionRequestRequest>,
    ) -> Result<Response<pb::ApproveDeletionRequestResponse>, Status> {
        let caller = caller(&request)?;
        let req = request.into_inner();
        let id = parse_id("deletion_request_id", &req.deletion_request_id)?;
        let key = idempotency_key(
            &req.request_id,
            Operation::ApproveDeletionRequest,
            &pb::ApproveDeletionRequestRequest {
                request_id: String::new(),
                ..req.clone()
            },
        )?;
        let deletions = self.deletions.clone();
        let comment = req.comment;
        let approved =
            detached(async move { deletions.approve(&caller, id, comment, key).await }).await?;
        Ok(Response::new(pb::ApproveDeletionRequestResponse {
            deletion_request: Some(request_to_proto(approved)),
        }))
    }

    async fn reject_deletion_request(
        &self,
        request: Request<pb::RejectDeletionRequestRequest>,
    ) -> Result<Response<pb::RejectDeletionRequestResponse>, Status> {
        let caller = caller(&request)?;
        let req = request.into_inner();
        let id = parse_id("deletion_request_id", &req.deletion_request_id)?;
        let key = idempotency_key(
            &req.request_id,
            Operation::RejectDeletionRequest,
            &pb::RejectDeletionRequestRequest {
                request_id: String::new(),
                ..req.clone()
            },
        )?;
        let deletions = self.deletions.clone();
        let comment = req.comment;
        let rejected =
            detached(async move { deletions.reject(&caller, id, comment, key).await }).await?;
        Ok(Response::new(pb::RejectDeletionRequestResponse {
            deletion_request: Some(request_to_proto(rejected)),
        }))
    }

    async fn cancel_deletion_request(
        &self,
        request: Request<pb::CancelDeletionRequestRequest>,
    ) -> Result<Response<pb::CancelDeletionRequestResponse>, Status> {
        let caller = caller(&request)?;
        let req = request.into_inner();
        let id = parse_id("deletion_request_id", &req.deletion_request_id)?;
        let key = idempotency_key(
            &req.request_id,
            Operation::CancelDeletionRequest,
            &pb::CancelDeletionRequestRequest {
                request_id: String::new(),
                ..req.clone()
            },
        )?;
        let deletions = self.deletions.clone();
        let comment = req.comment;
        let cancelled =
            detached(async move { deletions.cancel(&caller, id, comment, key).await }).await?;
        Ok(Response::new(pb::CancelDeletionRequestResponse {
            deletion_request: Some(request_to_proto(cancelled)),
        }))
    }
}
