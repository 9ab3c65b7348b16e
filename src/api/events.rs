//! `crm.v1.CustomerEventService`.

use tonic::{Request, Response, Status};

use super::convert::{caller, timestamp};
use crate::domain::events::{CustomerEvent, CustomerEvents};
use crate::proto::crm::v1 as pb;
use crate::proto::crm::v1::customer_event_service_server::CustomerEventService;

pub struct EventApi {
    events: CustomerEvents,
}

impl EventApi {
    pub fn new(events: CustomerEvents) -> Self {
        Self { events }
    }
}

/// The event as the API gives it: the message of the gRPC stream, and the payload of the JetStream
/// relay (`crate::relay`).
pub(crate) fn to_proto(e: CustomerEvent) -> pb::CustomerEvent {
    let event_type = match e.event_type.as_str() {
        "CREATED" => pb::CustomerEventType::Created,
        "UPDATED" => pb::CustomerEventType::Updated,
        "RECORD_CHANGED" => pb::CustomerEventType::RecordChanged,
        "DELETION_REQUESTED" => pb::CustomerEventType::DeletionRequested,
        "DELETION_APPROVED" => pb::CustomerEventType::DeletionApproved,
        "DELETION_WITHDRAWN" => pb::CustomerEventType::DeletionWithdrawn,
        "DELETED" => pb::CustomerEventType::Deleted,
        "RESTORED" => pb::CustomerEventType::Restored,
        "PURGED" => pb::CustomerEventType::Purged,
        "LEGAL_HOLD_CHANGED" => pb::CustomerEventType::LegalHoldChanged,
        "DELETION_BATCH_SUBMITTED" => pb::CustomerEventType::DeletionBatchSubmitted,
        "DELETION_BATCH_DECIDED" => pb::CustomerEventType::DeletionBatchDecided,
        "DELETION_BATCH_STARTED" => pb::CustomerEventType::DeletionBatchStarted,
        "DELETION_BATCH_COMPLETED" => pb::CustomerEventType::DeletionBatchCompleted,
        "MERGED" => pb::CustomerEventType::Merged,
        "UNMERGED" => pb::CustomerEventType::Unmerged,
        "DELETION_ESCALATED" => pb::CustomerEventType::DeletionEscalated,
        _ => pb::CustomerEventType::Unspecified,
    };
    pb::CustomerEvent {
        sequence: e.sequence,
        r#type: event_type as i32,
        customer_id: e.customer_id.map(|id| id.to_string()).unwrap_or_default(),
        record_type: e.record_type,
        record_id: e.record_id.map(|id| id.to_string()).unwrap_or_default(),
        action: e.action,
        time: Some(timestamp(e.time)),
        counts: e.counts.into_iter().collect(),
    }
}

/// The server stream of WatchCustomerEvents.
pub type WatchStream = std::pin::Pin<
    Box<dyn futures_util::Stream<Item = Result<pb::WatchCustomerEventsResponse, Status>> + Send>,
>;

#[tonic::async_trait]
impl CustomerEventService for EventApi {
    type WatchCustomerEventsStream = WatchStream;

    async fn watch_customer_events(
        &self,
        request: Request<pb::WatchCustomerEventsRequest>,
    ) -> Result<Response<Self::WatchCustomerEventsStream>, Status> {
        let caller = caller(&request)?;
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        self.events
            .watch(&caller, request.get_ref().after_sequence, tx)
            .await?;
        let stream = futures_util::stream::unfold(rx, |mut rx| async move {
            let item = rx.recv().await?;
            let message = item
                .map(|event| pb::WatchCustomerEventsResponse {
                    event: Some(to_proto(event)),
                })
                .map_err(Status::from);
            Some((message, rx))
        });
        Ok(Response::new(Box::pin(stream)))
    }

    async fn list_customer_events(
        &self,
        request: Request<pb::ListCustomerEventsRequest>,
    ) -> Result<Response<pb::ListCustomerEventsResponse>, Status> {
        let caller = caller(&request)?;
        let req = request.into_inner();
        let events = self
            .events
            .list(&caller, req.after_sequence, req.page_size)
            .await?;
        let last_sequence = events.last().map_or(req.after_sequence, |e| e.sequence);
        Ok(Response::new(pb::ListCustomerEventsResponse {
            events: events.into_iter().map(to_proto).collect(),
            last_sequence,
        }))
    }
}
