//! A customer event: what consumers of the event stream see, and what a write puts in the outbox.

use chrono::{DateTime, Utc};
use uuid::Uuid;

/// A customer event as consumers see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomerEvent {
    pub sequence: i64,
    pub event_type: String,
    /// `None` for a deletion batch's events, which name no one customer.
    pub customer_id: Option<Uuid>,
    pub record_type: String,
    pub record_id: Option<Uuid>,
    pub action: String,
    pub time: DateTime<Utc>,
    /// A deletion batch event's counts (items per outcome); empty for other events.
    pub counts: Vec<(String, i64)>,
}

/// A customer event to publish with an audit entry (the transactional outbox).
#[derive(Debug, Clone)]
pub struct OutboxEvent {
    pub event_type: &'static str,
    pub customer_id: Option<Uuid>,
    pub record_type: String,
    pub record_id: Option<Uuid>,
    pub counts: Vec<(String, i64)>,
}
