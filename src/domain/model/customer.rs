//! A customer as the service knows it: the root of its graph, and the filters of a listing.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LifecycleStage {
    Lead,
    Prospect,
    Customer,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CustomerStatus {
    Active,
    Inactive,
}

/// A customer as stored: the root of its graph.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Customer {
    pub id: Uuid,
    pub name: String,
    pub phone: String,
    pub email: String,
    pub industry: String,
    pub owner_id: String,
    pub lifecycle_stage: LifecycleStage,
    pub status: CustomerStatus,
    /// Empty when the customer has none.
    pub external_ref: String,
    pub legal_hold: bool,
    /// A key account: the tenant's two-person rule may ask two approvers to delete it. Only a
    /// supervisor or an admin sets or clears it (`Action::MarkKeyAccount`). Defaults when absent
    /// so that answers stored (idempotency keys) before the field existed still decode.
    #[serde(default)]
    pub key_account: bool,
    pub create_time: DateTime<Utc>,
    pub update_time: DateTime<Utc>,
    pub delete_time: Option<DateTime<Utc>>,
    pub purge_time: Option<DateTime<Utc>>,
    /// Version of the customer's graph; its etag.
    pub version: i64,
    /// The deletion that removed it, while it is deleted.
    pub deletion_id: Option<Uuid>,
}

impl Customer {
    pub fn etag(&self) -> String {
        self.version.to_string()
    }

    pub fn is_deleted(&self) -> bool {
        self.delete_time.is_some()
    }
}

/// Filters of ListCustomers; every one that is set must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CustomerQuery {
    pub show_deleted: bool,
    /// Free text matched, ignoring case, inside name, e-mail and phone.
    pub text: String,
    pub industry: String,
    pub owner_id: String,
    pub lifecycle_stage: Option<LifecycleStage>,
    pub status: Option<CustomerStatus>,
}

/// The text a free-text query is matched against: lower-cased once, on write, so that SQLite and
/// PostgreSQL (whose LIKE differ in case handling) give the same answers. The separator is a
/// control character, which validation keeps out of every field and every query.
pub fn search_text(name: &str, email: &str, phone: &str) -> String {
    format!(
        "{}\u{1}{}\u{1}{}",
        name.to_lowercase(),
        email.to_lowercase(),
        phone.to_lowercase()
    )
}
