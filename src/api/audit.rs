//! `crm.v1.AuditService`.

use tonic::{Request, Response, Status};

use super::convert::{caller, from_timestamp, timestamp};
use crate::domain::audit::{AuditEvent, AuditFilter, AuditLog};
use crate::domain::validate::parse_id;
use crate::proto::crm::v1 as pb;
use crate::proto::crm::v1::audit_service_server::AuditService;

pub struct AuditApi {
    log: AuditLog,
}

impl AuditApi {
    pub fn new(log: AuditLog) -> Self {
        Self { log }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn to_proto(e: AuditEvent) -> pb::AuditEvent {
    pb::AuditEvent {
        sequence: e.sequence,
        time: Some(timestamp(e.time)),
        actor: e.actor,
        action: e.action,
        target_type: e.target_type,
        target_id: e.target_id.to_string(),
        customer_id: e.customer_id.map(|c| c.to_string()).unwrap_or_default(),
        request_id: e.request_id.map(|r| r.to_string()).unwrap_or_default(),
        trace_id: e.trace_id,
        summary: e.summary,
        previous_hash: hex(&e.previous_hash),
        hash: hex(&e.hash),
    }
}

#[tonic::async_trait]
impl AuditService for AuditApi {
    async fn list_audit_events(
        &self,
        request: Request<pb::ListAuditEventsRequest>,
    ) -> Result<Response<pb::ListAuditEventsResponse>, Status> {
        let caller = caller(&request)?;
        let req = request.into_inner();
        let filter = AuditFilter {
            customer_id: if req.customer_id.is_empty() {
                None
            } else {
                Some(parse_id("customer_id", &req.customer_id)?)
            },
            action: (!req.action.is_empty()).then_some(req.action),
            start_time: req
                .start_time
                .as_ref()
                .map(|t| from_timestamp("start_time", t))
                .transpose()?,
            end_time: req
                .end_time
                .as_ref()
                .map(|t| from_timestamp("end_time", t))
                .transpose()?,
        };
        let page = self
            .log
            .list(&caller, filter, req.page_size, &req.page_token)
            .await?;
        Ok(Response::new(pb::ListAuditEventsResponse {
            audit_events: page.items.into_iter().map(to_proto).collect(),
            next_page_token: page.next_page_token.unwrap_or_default(),
        }))
    }

    async fn verify_audit_chain(
        &self,
        request: Request<pb::VerifyAuditChainRequest>,
    ) -> Result<Response<pb::VerifyAuditChainResponse>, Status> {
        let caller = caller(&request)?;
        let v = self.log.verify(&caller).await?;
        Ok(Response::new(pb::VerifyAuditChainResponse {
            valid: v.first_break.is_none(),
            events_checked: v.events_checked,
            first_broken_sequence: v.first_break.as_ref().map_or(0, |b| b.sequence),
            problem: v.first_break.map(|b| b.problem).unwrap_or_default(),
            head_sequence: v.head_sequence,
            head_hash: hex(&v.head_hash),
        }))
    }
}
