//! A tenant's settings: how long deleted data is kept, how long a deletion request lives, when a
//! pending one is escalated, which token claims name teams, the phone default country, and when a
//! deletion needs two approvers. Plain data: the rules that read and change it are in
//! `domain::tenant_settings`, the table that keeps it in `store::tenant_settings`.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// One tenant's settings as they apply now: the stored ones, or the process-wide defaults
/// (`version` 0) for a tenant that never changed them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantSettings {
    /// How long a deleted customer, or a record deleted on its own, can be restored before it is
    /// erased. Applies to deletions made after it is set: a deletion keeps its purge time.
    pub retention: Duration,
    /// How long a deletion request (or batch) waits for approval, then for execution. A request
    /// keeps the lifetime it was submitted under.
    pub request_ttl: Duration,
    /// A request or batch still PENDING this long after submission is escalated (one event);
    /// None: never.
    pub escalate_after: Option<Duration>,
    /// Token claim (array of strings) naming the teams a user belongs to.
    pub teams_claim: String,
    /// Token claim (array of strings) naming the teams a supervisor supervises.
    pub supervises_claim: String,
    /// The country calling code (digits, e.g. `44`) of phone numbers written without one, for
    /// duplicate search; None: such numbers match only numbers written the same way.
    pub phone_default_country_code: Option<String>,
    pub two_person: TwoPersonRule,
    /// Etag; 0 for a tenant that never stored settings (the defaults).
    pub version: i64,
    pub update_time: Option<DateTime<Utc>>,
    pub updated_by: String,
}

/// When a deletion needs two distinct approvers. Each threshold None/empty = that rule is off.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TwoPersonRule {
    /// Open pipeline (sum of open deals) at or above `amount_minor` in `currency`.
    pub open_pipeline_at_least: Vec<CurrencyAmount>,
    /// The deletion soft-deletes at least this many records (preview cascade_count).
    pub records_at_least: Option<i64>,
    /// A deletion batch of more than this many customers.
    pub batch_size_above: Option<i64>,
    /// A customer marked as a key account.
    pub key_accounts: bool,
    /// One of the two approvers must be an admin.
    pub admin_required: bool,
}

/// An amount of money in a currency's minor unit (cents for EUR).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CurrencyAmount {
    /// ISO 4217 code: three uppercase letters.
    pub currency: String,
    pub amount_minor: i64,
}

impl TenantSettings {
    /// The current etag: the version as text ("0" for the defaults).
    pub fn etag(&self) -> String {
        self.version.to_string()
    }

    /// The stored part of the settings: everything but the version and who changed it when,
    /// which the table keeps in columns of their own.
    pub fn stored(&self) -> StoredSettings {
        StoredSettings {
            retention_secs: self.retention.as_secs(),
            request_ttl_secs: self.request_ttl.as_secs(),
            escalate_after_secs: self.escalate_after.map(|d| d.as_secs()),
            teams_claim: self.teams_claim.clone(),
            supervises_claim: self.supervises_claim.clone(),
            phone_default_country_code: self.phone_default_country_code.clone(),
            two_person: self.two_person.clone(),
        }
    }

    /// Settings read back from the table.
    pub fn from_stored(
        stored: StoredSettings,
        version: i64,
        update_time: DateTime<Utc>,
        updated_by: String,
    ) -> Self {
        Self {
            retention: Duration::from_secs(stored.retention_secs),
            request_ttl: Duration::from_secs(stored.request_ttl_secs),
            escalate_after: stored.escalate_after_secs.map(Duration::from_secs),
            teams_claim: stored.teams_claim,
            supervises_claim: stored.supervises_claim,
            phone_default_country_code: stored.phone_default_country_code,
            two_person: stored.two_person,
            version,
            update_time: Some(update_time),
            updated_by,
        }
    }
}

/// The JSON a tenant's row keeps. Durations are whole seconds (the settings are validated to
/// whole seconds), so that the stored text reads as what an admin set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredSettings {
    pub retention_secs: u64,
    pub request_ttl_secs: u64,
    #[serde(default)]
    pub escalate_after_secs: Option<u64>,
    pub teams_claim: String,
    pub supervises_claim: String,
    #[serde(default)]
    pub phone_default_country_code: Option<String>,
    #[serde(default)]
    pub two_person: TwoPersonRule,
}
