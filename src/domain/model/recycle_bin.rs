//! The recycle bin: deleted customers that can still be restored, with the deletion that took
//! each of them.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::customer::Customer;

/// Which deleted customers a bin listing shows; every filter set must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BinFilter {
    /// The requester of the deletion request or batch.
    pub requested_by: Option<String>,
    pub deletion_request_id: Option<Uuid>,
    pub deletion_batch_id: Option<Uuid>,
    /// Only customers to be purged before this time.
    pub purge_before: Option<DateTime<Utc>>,
}

/// Where a bin page ends: the bin is ordered by purge time, then id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BinPosition {
    pub purge_time: DateTime<Utc>,
    pub id: Uuid,
}

/// What deleted a customer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeletedBy {
    Request { id: Uuid },
    Batch { id: Uuid },
}

/// One customer in the bin.
#[derive(Debug, Clone, PartialEq)]
pub struct BinEntry {
    pub customer: Customer,
    /// `None` only for a customer whose deletion left no request or batch behind (none does today;
    /// the listing still shows such a customer rather than hide it).
    pub deleted_by: Option<DeletedBy>,
    pub requested_by: String,
    pub approved_by: String,
    /// Records the deletion took with the customer (those kept for the books are not counted).
    pub deleted_records: i64,
    /// The survivor, when a merge deleted the customer.
    pub merged_into: Option<Uuid>,
}

impl BinEntry {
    pub fn position(&self) -> Option<BinPosition> {
        Some(BinPosition {
            purge_time: self.customer.purge_time?,
            id: self.customer.id,
        })
    }
}
