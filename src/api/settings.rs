//! `crm.v1.TenantSettingsService`: proto ⇄ domain, nothing else.

use std::time::Duration;

use tonic::{Request, Response, Status};

use super::convert::{caller, detached, idempotency_key, optional_timestamp};
use crate::domain::mutation::Operation;
use crate::domain::tenant_settings::{
    CurrencyAmount, TenantPolicies, TenantSettings, TwoPersonRule,
};
use crate::error::{Error, Result};
use crate::proto::crm::v1 as pb;
use crate::proto::crm::v1::tenant_settings_service_server::TenantSettingsService;

pub struct SettingsApi {
    policies: TenantPolicies,
}

impl SettingsApi {
    pub fn new(policies: TenantPolicies) -> Self {
        Self { policies }
    }
}

fn duration_to_proto(d: Duration) -> prost_types::Duration {
    prost_types::Duration {
        seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        nanos: d.subsec_nanos() as i32,
    }
}

/// A client duration: unset is `None`; negative or malformed is INVALID_ARGUMENT naming `field`.
fn duration_from(field: &str, d: Option<&prost_types::Duration>) -> Result<Option<Duration>> {
    let Some(d) = d else { return Ok(None) };
    if d.seconds < 0 || !(0..1_000_000_000).contains(&d.nanos) {
        return Err(Error::invalid_field(
            field,
            "must be a positive duration (seconds ≥ 0, nanos 0 to 999,999,999)",
        ));
    }
    Ok(Some(
        Duration::from_secs(d.seconds as u64) + Duration::from_nanos(d.nanos as u64),
    ))
}

/// A threshold of the two-person rule: 0 is off.
fn threshold(n: i64) -> Option<i64> {
    (n != 0).then_some(n)
}

fn rule_to_proto(rule: TwoPersonRule) -> pb::TwoPersonRule {
    pb::TwoPersonRule {
        open_pipeline_at_least: rule
            .open_pipeline_at_least
            .into_iter()
            .map(|a| pb::CurrencyAmount {
                currency: a.currency,
                amount_minor: a.amount_minor,
            })
            .collect(),
        records_at_least: rule.records_at_least.unwrap_or(0),
        batch_size_above: rule.batch_size_above.unwrap_or(0),
        key_accounts: rule.key_accounts,
        admin_required: rule.admin_required,
    }
}

fn rule_from(rule: pb::TwoPersonRule) -> TwoPersonRule {
    TwoPersonRule {
        open_pipeline_at_least: rule
            .open_pipeline_at_least
            .into_iter()
            .map(|a| CurrencyAmount {
                currency: a.currency,
                amount_minor: a.amount_minor,
            })
            .collect(),
        records_at_least: threshold(rule.records_at_least),
        batch_size_above: threshold(rule.batch_size_above),
        key_accounts: rule.key_accounts,
        admin_required: rule.admin_required,
    }
}

pub fn to_proto(s: TenantSettings) -> pb::TenantSettings {
    pb::TenantSettings {
        etag: s.etag(),
        retention: Some(duration_to_proto(s.retention)),
        request_ttl: Some(duration_to_proto(s.request_ttl)),
        escalate_after: s.escalate_after.map(duration_to_proto),
        teams_claim: s.teams_claim,
        supervises_claim: s.supervises_claim,
        phone_default_country_code: s.phone_default_country_code.unwrap_or_default(),
        two_person_rule: Some(rule_to_proto(s.two_person)),
        update_time: optional_timestamp(s.update_time),
        updated_by: s.updated_by,
    }
}

/// The settings a client sent. Output-only fields are ignored (the mask cannot name them); a
/// missing duration reads as zero, which the domain's bounds refuse by name.
fn from_proto(s: pb::TenantSettings) -> Result<TenantSettings> {
    let retention = duration_from("tenant_settings.retention", s.retention.as_ref())?;
    let request_ttl = duration_from("tenant_settings.request_ttl", s.request_ttl.as_ref())?;
    let escalate_after =
        duration_from("tenant_settings.escalate_after", s.escalate_after.as_ref())?;
    Ok(TenantSettings {
        retention: retention.unwrap_or_default(),
        request_ttl: request_ttl.unwrap_or_default(),
        escalate_after,
        teams_claim: s.teams_claim,
        supervises_claim: s.supervises_claim,
        phone_default_country_code: Some(s.phone_default_country_code).filter(|c| !c.is_empty()),
        two_person: rule_from(s.two_person_rule.unwrap_or_default()),
        version: 0,
        update_time: None,
        updated_by: String::new(),
    })
}

#[tonic::async_trait]
impl TenantSettingsService for SettingsApi {
    async fn get_tenant_settings(
        &self,
        request: Request<pb::GetTenantSettingsRequest>,
    ) -> Result<Response<pb::GetTenantSettingsResponse>, Status> {
        let caller = caller(&request)?;
        let settings = self.policies.get(&caller).await?;
        Ok(Response::new(pb::GetTenantSettingsResponse {
            tenant_settings: Some(to_proto(settings)),
        }))
    }

    async fn update_tenant_settings(
        &self,
        request: Request<pb::UpdateTenantSettingsRequest>,
    ) -> Result<Response<pb::UpdateTenantSettingsResponse>, Status> {
        let caller = caller(&request)?;
        let req = request.into_inner();
        let key = idempotency_key(
            &req.request_id,
            Operation::UpdateTenantSettings,
            &pb::UpdateTenantSettingsRequest {
                request_id: String::new(),
                ..req.clone()
            },
        )?;
        let settings = req
            .tenant_settings
            .ok_or_else(|| Error::invalid_field("tenant_settings", "is required"))?;
        let new = from_proto(settings)?;
        let mask = req.update_mask.map(|m| m.paths).unwrap_or_default();
        let (policies, etag) = (self.policies.clone(), req.etag);
        let updated =
            detached(async move { policies.update(&caller, new, mask, etag, key).await }).await?;
        Ok(Response::new(pb::UpdateTenantSettingsResponse {
            tenant_settings: Some(to_proto(updated)),
        }))
    }
}
