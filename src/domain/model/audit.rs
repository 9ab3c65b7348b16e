//! An event of the tamper-evident audit trail, and the filters of a listing.

use chrono::{DateTime, Utc};
use uuid::Uuid;

/// An audit event as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    pub tenant: String,
    pub sequence: i64,
    pub time: DateTime<Utc>,
    pub actor: String,
    pub action: String,
    pub target_type: String,
    pub target_id: Uuid,
    pub customer_id: Option<Uuid>,
    pub request_id: Option<Uuid>,
    pub trace_id: String,
    pub summary: String,
    pub previous_hash: [u8; 32],
    pub hash: [u8; 32],
}

/// Filters of a listing.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub customer_id: Option<Uuid>,
    pub action: Option<String>,
    pub start_time: Option<DateTime<Utc>>,
    pub end_time: Option<DateTime<Utc>>,
}
