//! Placeholder until the tenant settings land: the shape the approval rules read.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantSettings {
    pub retention: Duration,
    pub request_ttl: Duration,
    pub escalate_after: Option<Duration>,
    pub teams_claim: String,
    pub supervises_claim: String,
    pub phone_default_country_code: Option<String>,
    pub two_person: TwoPersonRule,
    pub version: i64,
    pub update_time: Option<DateTime<Utc>>,
    pub updated_by: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TwoPersonRule {
    pub open_pipeline_at_least: Vec<CurrencyAmount>,
    pub records_at_least: Option<i64>,
    pub batch_size_above: Option<i64>,
    pub key_accounts: bool,
    pub admin_required: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CurrencyAmount {
    pub currency: String,
    pub amount_minor: i64,
}
