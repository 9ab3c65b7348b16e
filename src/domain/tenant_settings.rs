//! Per-tenant settings (docs/design.md "Tenant settings"): read and changed by the tenant's admins,
//! with an etag, every change audited; read by the rules that depend on them (retention, a
//! request's lifetime, the phone default country) inside their own transaction.
//!
//! A tenant that never changed its settings has the process-wide ones (the flags), version 0.
//! The tenant is always the caller's: there is no way to name another tenant's settings.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::access::{Action, Caller};
use super::audit::Entry;
use super::idempotency::Idempotency;
use super::model::matching::valid_country_code;
use super::mutation::{self, Change, Mutation, Operation};
use super::validate::Violations;
use super::{Clock, changed_concurrently, etag_matches};
use crate::error::{Error, Problem, Result};
use crate::reason;
use crate::store::{self, Store};

pub use super::model::tenant_settings::{CurrencyAmount, TenantSettings, TwoPersonRule};

const HOUR: u64 = 3600;
const DAY: u64 = 24 * HOUR;
/// Retention: at least a day (a deletion must be undoable by someone who comes back the next
/// morning), at most ten years (beyond that "deleted" no longer means anything to a data
/// protection officer).
pub const RETENTION_MIN: Duration = Duration::from_secs(DAY);
pub const RETENTION_MAX: Duration = Duration::from_secs(3650 * DAY);
/// A request's lifetime: at least an hour (a supervisor must have a chance to see it), at most
/// 90 days (a preview older than that says little about the customer as it is).
pub const REQUEST_TTL_MIN: Duration = Duration::from_secs(HOUR);
pub const REQUEST_TTL_MAX: Duration = Duration::from_secs(90 * DAY);
/// Characters of a token claim's name.
pub const CLAIM_MAX: usize = 64;
/// Currencies the open-pipeline threshold may name.
pub const PIPELINE_THRESHOLDS_MAX: usize = 20;

/// The process-wide defaults of the settings that have no older flag of their own: when a
/// pending request is escalated, and which token claims name teams.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalSettings {
    pub escalate_after: Option<Duration>,
    pub teams_claim: String,
    pub supervises_claim: String,
}

impl Default for ApprovalSettings {
    fn default() -> Self {
        Self {
            escalate_after: None,
            teams_claim: "teams".into(),
            supervises_claim: "supervises".into(),
        }
    }
}

/// A setting UpdateTenantSettings may change: an `update_mask` path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SettingsField {
    Retention,
    RequestTtl,
    EscalateAfter,
    TeamsClaim,
    SupervisesClaim,
    PhoneDefaultCountryCode,
    /// The whole two-person rule at once: its thresholds only mean something together.
    TwoPersonRule,
}

/// Fields a client can read but never write.
const OUTPUT_ONLY: &[&str] = &["etag", "version", "update_time", "updated_by"];

impl SettingsField {
    pub const ALL: [SettingsField; 7] = [
        SettingsField::Retention,
        SettingsField::RequestTtl,
        SettingsField::EscalateAfter,
        SettingsField::TeamsClaim,
        SettingsField::SupervisesClaim,
        SettingsField::PhoneDefaultCountryCode,
        SettingsField::TwoPersonRule,
    ];

    /// The path in `update_mask`, and the field's name in the request's `tenant_settings`.
    pub fn path(self) -> &'static str {
        match self {
            SettingsField::Retention => "retention",
            SettingsField::RequestTtl => "request_ttl",
            SettingsField::EscalateAfter => "escalate_after",
            SettingsField::TeamsClaim => "teams_claim",
            SettingsField::SupervisesClaim => "supervises_claim",
            SettingsField::PhoneDefaultCountryCode => "phone_default_country_code",
            SettingsField::TwoPersonRule => "two_person_rule",
        }
    }

    pub fn parse_path(path: &str) -> std::result::Result<Self, String> {
        if let Some(field) = Self::ALL.into_iter().find(|f| f.path() == path) {
            return Ok(field);
        }
        if OUTPUT_ONLY.contains(&path) {
            return Err(format!("{path} is output only and cannot be updated"));
        }
        let path = crate::error::echo(path);
        Err(format!(
            "{path} is not a field of TenantSettings (two_person_rule is changed as a whole)"
        ))
    }
}

/// The mask's paths as fields: every path known, at least one, each once.
fn parse_mask(mask: &[String]) -> Result<Vec<SettingsField>> {
    if mask.is_empty() {
        return Err(Error::invalid_field(
            "update_mask",
            "must name at least one field to change",
        ));
    }
    let mut fields = Vec::with_capacity(mask.len());
    let mut v = Violations::new();
    for path in mask {
        match SettingsField::parse_path(path) {
            Ok(field) if !fields.contains(&field) => fields.push(field),
            Ok(_) => {}
            Err(why) => v.add("update_mask", why),
        }
    }
    v.finish()?;
    Ok(fields)
}

/// `tenant_settings.<field>`: how a violation names a field of the request.
fn at(field: SettingsField) -> String {
    format!("tenant_settings.{}", field.path())
}

fn check_duration(
    v: &mut Violations,
    field: SettingsField,
    d: Duration,
    min: Duration,
    max: Duration,
) {
    if d.subsec_nanos() != 0 {
        v.add(at(field), "must be a whole number of seconds");
    } else if d < min || d > max {
        v.add(
            at(field),
            format!("must be between {} and {}", human(min), human(max)),
        );
    }
}

/// Each field the mask names, checked on its own (the rules between fields need the merged
/// settings: `check_merged`).
fn validate_fields(new: &TenantSettings, fields: &[SettingsField]) -> Result<()> {
    let mut v = Violations::new();
    for &field in fields {
        match field {
            SettingsField::Retention => {
                check_duration(&mut v, field, new.retention, RETENTION_MIN, RETENTION_MAX)
            }
            SettingsField::RequestTtl => check_duration(
                &mut v,
                field,
                new.request_ttl,
                REQUEST_TTL_MIN,
                REQUEST_TTL_MAX,
            ),
            SettingsField::EscalateAfter => match new.escalate_after {
                Some(d) if d.is_zero() => v.add(at(field), "must be positive, or unset for never"),
                Some(d) if d.subsec_nanos() != 0 => {
                    v.add(at(field), "must be a whole number of seconds")
                }
                _ => {}
            },
            SettingsField::TeamsClaim => v.required_text(&at(field), &new.teams_claim, CLAIM_MAX),
            SettingsField::SupervisesClaim => {
                v.required_text(&at(field), &new.supervises_claim, CLAIM_MAX)
            }
            SettingsField::PhoneDefaultCountryCode => {
                if let Some(code) = &new.phone_default_country_code
                    && !valid_country_code(code)
                {
                    v.add(
                        at(field),
                        "must be a country calling code: 1 to 3 digits, e.g. 44",
                    );
                }
            }
            SettingsField::TwoPersonRule => validate_two_person(&mut v, &new.two_person),
        }
    }
    v.finish()
}

fn validate_two_person(v: &mut Violations, rule: &TwoPersonRule) {
    let base = at(SettingsField::TwoPersonRule);
    if rule.open_pipeline_at_least.len() > PIPELINE_THRESHOLDS_MAX {
        v.add(
            format!("{base}.open_pipeline_at_least"),
            format!("names at most {PIPELINE_THRESHOLDS_MAX} currencies"),
        );
    }
    // An item is named by its index only: with `.currency` the path would pass the 64 bytes an
    // error's field path keeps (`error::NAME_MAX_BYTES`); the description says which part.
    let mut seen: Vec<&str> = Vec::new();
    for (i, threshold) in rule.open_pipeline_at_least.iter().enumerate() {
        let item = format!("{base}.open_pipeline_at_least[{i}]");
        let code = threshold.currency.as_str();
        if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_uppercase()) {
            v.add(
                &item,
                "currency must be an ISO 4217 code: three uppercase letters, e.g. EUR",
            );
        } else if seen.contains(&code) {
            v.add(&item, "currency is already listed");
        }
        seen.push(code);
        if threshold.amount_minor <= 0 {
            v.add(&item, "amount_minor must be positive");
        }
    }
    for (name, value) in [
        ("records_at_least", rule.records_at_least),
        ("batch_size_above", rule.batch_size_above),
    ] {
        if value.is_some_and(|n| n < 1) {
            v.add(
                format!("{base}.{name}"),
                "must be at least 1, or unset for off",
            );
        }
    }
}

/// The rules between fields, on the settings as they would be after the change: a request is
/// escalated before it lapses, and the two claims are different claims. The violation names the
/// field the change named (the one the admin can fix).
fn check_merged(next: &TenantSettings, fields: &[SettingsField]) -> Result<()> {
    let blame = |a: SettingsField, b: SettingsField| if fields.contains(&a) { a } else { b };
    let mut v = Violations::new();
    if let Some(escalate) = next.escalate_after
        && escalate >= next.request_ttl
    {
        let field = blame(SettingsField::EscalateAfter, SettingsField::RequestTtl);
        v.add(
            at(field),
            format!(
                "escalate_after ({}) must be shorter than request_ttl ({}): a request would lapse \
                 before it is escalated",
                human(escalate),
                human(next.request_ttl)
            ),
        );
    }
    if next.teams_claim == next.supervises_claim {
        let field = blame(SettingsField::SupervisesClaim, SettingsField::TeamsClaim);
        v.add(
            at(field),
            "teams_claim and supervises_claim must be different claims",
        );
    }
    v.finish()
}

/// `d` as people write it: `30d`, `72h`, `90m`, `45s`.
fn human(d: Duration) -> String {
    let secs = d.as_secs();
    match secs {
        s if s > 0 && s % DAY == 0 => format!("{}d", s / DAY),
        s if s > 0 && s % HOUR == 0 => format!("{}h", s / HOUR),
        s if s > 0 && s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// What the audit entry says a field was set to: durations, claim names, a country code,
/// thresholds. Never personal data.
fn audited_value(s: &TenantSettings, field: SettingsField) -> String {
    let optional = |v: Option<String>| v.unwrap_or_else(|| "none".into());
    match field {
        SettingsField::Retention => human(s.retention),
        SettingsField::RequestTtl => human(s.request_ttl),
        SettingsField::EscalateAfter => optional(s.escalate_after.map(human)),
        SettingsField::TeamsClaim => s.teams_claim.clone(),
        SettingsField::SupervisesClaim => s.supervises_claim.clone(),
        SettingsField::PhoneDefaultCountryCode => optional(s.phone_default_country_code.clone()),
        SettingsField::TwoPersonRule => {
            let rule = &s.two_person;
            let pipeline: Vec<String> = rule
                .open_pipeline_at_least
                .iter()
                .map(|t| format!("{}:{}", t.currency, t.amount_minor))
                .collect();
            format!(
                "pipeline[{}]/records:{}/batch_above:{}/key_accounts:{}/admin_required:{}",
                pipeline.join(";"),
                optional(rule.records_at_least.map(|n| n.to_string())),
                optional(rule.batch_size_above.map(|n| n.to_string())),
                rule.key_accounts,
                rule.admin_required
            )
        }
    }
}

fn audit_summary(next: &TenantSettings, fields: &[SettingsField]) -> String {
    fields
        .iter()
        .map(|&f| format!("{}={}", f.path(), audited_value(next, f)))
        .collect::<Vec<_>>()
        .join(" ")
}

/// `current` with the fields of the mask taken from `new`.
fn merged(
    current: &TenantSettings,
    new: &TenantSettings,
    fields: &[SettingsField],
) -> TenantSettings {
    let mut next = current.clone();
    for field in fields {
        match field {
            SettingsField::Retention => next.retention = new.retention,
            SettingsField::RequestTtl => next.request_ttl = new.request_ttl,
            SettingsField::EscalateAfter => next.escalate_after = new.escalate_after,
            SettingsField::TeamsClaim => next.teams_claim.clone_from(&new.teams_claim),
            SettingsField::SupervisesClaim => {
                next.supervises_claim.clone_from(&new.supervises_claim)
            }
            SettingsField::PhoneDefaultCountryCode => next
                .phone_default_country_code
                .clone_from(&new.phone_default_country_code),
            SettingsField::TwoPersonRule => next.two_person.clone_from(&new.two_person),
        }
    }
    next
}

/// The settings are one resource per tenant: the etag names the version, and the caller's
/// tenant names the resource.
fn etag_mismatch(sent: &str, current: &TenantSettings) -> Error {
    Error::Aborted(
        Problem::new(
            reason::ETAG_MISMATCH,
            format!(
                "etag {:?} does not match the tenant settings' current etag {:?}: read the \
                 settings again (or use the current etag) and retry",
                crate::error::echo(sent),
                current.etag()
            ),
        )
        .with("resource", "tenant_settings")
        .with("currentEtag", current.etag()),
    )
}

/// The audit entry's target: a tenant has one settings resource, and the entry's tenant names it.
const SETTINGS_TARGET: Uuid = Uuid::nil();

/// A tenant's settings: read and changed by its admins, read by the rules that depend on them.
#[derive(Clone)]
pub struct TenantPolicies {
    store: Store,
    clock: Clock,
    /// What a tenant that never changed its settings has: the process-wide flags.
    defaults: TenantSettings,
}

impl TenantPolicies {
    pub fn new(store: Store, clock: Clock, defaults: TenantSettings) -> Self {
        let defaults = TenantSettings {
            version: 0,
            update_time: None,
            updated_by: String::new(),
            ..defaults
        };
        Self {
            store,
            clock,
            defaults,
        }
    }

    /// The process-wide defaults (version 0).
    pub fn defaults(&self) -> &TenantSettings {
        &self.defaults
    }

    /// The caller's tenant's settings. Admin only.
    pub async fn get(&self, caller: &Caller) -> Result<TenantSettings> {
        caller.require(Action::ManageSettings)?;
        self.effective(&caller.tenant).await
    }

    /// Sets the fields `mask` names to their values in `new`, if `etag` is still the current
    /// one (empty: unconditionally). Admin only; one audited transaction; the version moves.
    pub async fn update(
        &self,
        caller: &Caller,
        new: TenantSettings,
        mask: Vec<String>,
        etag: String,
        key: Option<Idempotency>,
    ) -> Result<TenantSettings> {
        caller.require(Action::ManageSettings)?;
        let fields = parse_mask(&mask)?;
        validate_fields(&new, &fields)?;
        let (new, fields, etag) = (&new, &fields, &etag);
        mutation::run(
            &self.store,
            &self.clock,
            Mutation::new(caller, Operation::UpdateTenantSettings, key.as_ref()),
            |change| async move { self.update_in(&change, new, fields, etag).await },
        )
        .await
    }

    async fn update_in(
        &self,
        change: &Change<'_>,
        new: &TenantSettings,
        fields: &[SettingsField],
        etag: &str,
    ) -> Result<TenantSettings> {
        let (conn, tenant) = (change.tx().conn(), &change.caller.tenant);
        let current = store::tenant_settings::find_for_update(conn, tenant)
            .await?
            .unwrap_or_else(|| self.defaults.clone());
        if !etag_matches(etag, current.version) {
            return Err(etag_mismatch(etag, &current));
        }
        let next = TenantSettings {
            version: current.version + 1,
            update_time: Some(change.now),
            updated_by: change.caller.subject.clone(),
            ..merged(&current, new, fields)
        };
        check_merged(&next, fields)?;
        store::tenant_settings::save(conn, tenant, &next, current.version)
            .await?
            .or_else(|| changed_concurrently("tenant settings", SETTINGS_TARGET))?;
        change
            .audit(Entry {
                action: "tenant_settings.update",
                target_type: "tenant_settings",
                target_id: SETTINGS_TARGET,
                customer_id: None,
                summary: audit_summary(&next, fields),
            })
            .await?;
        Ok(next)
    }

    /// The settings of the running mutation's tenant, read in its transaction: what a write that
    /// depends on them (a deletion's purge time, a request's expiry) decides with.
    pub async fn effective_in(&self, change: &Change<'_>) -> Result<TenantSettings> {
        self.effective_on(change.tx().conn(), &change.caller.tenant)
            .await
    }

    /// `tenant`'s settings, outside any transaction (reads that depend on them).
    pub async fn effective(&self, tenant: &str) -> Result<TenantSettings> {
        self.effective_on(self.store.conn(), tenant).await
    }

    /// `tenant`'s settings read on `conn`: a read that already holds a snapshot sees them in it.
    pub async fn effective_on(
        &self,
        conn: &impl store::Connection,
        tenant: &str,
    ) -> Result<TenantSettings> {
        let stored = store::tenant_settings::find(conn, tenant).await?;
        Ok(stored.unwrap_or_else(|| self.defaults.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> TenantSettings {
        TenantSettings {
            retention: Duration::from_secs(30 * DAY),
            request_ttl: Duration::from_secs(72 * HOUR),
            escalate_after: None,
            teams_claim: "teams".into(),
            supervises_claim: "supervises".into(),
            phone_default_country_code: None,
            two_person: TwoPersonRule::default(),
            version: 0,
            update_time: None,
            updated_by: String::new(),
        }
    }

    fn refused_fields(result: Result<()>) -> Vec<String> {
        match result {
            Err(Error::InvalidArgument { violations, .. }) => {
                violations.into_iter().map(|v| v.field).collect()
            }
            other => panic!("expected INVALID_ARGUMENT, got {other:?}"),
        }
    }

    #[test]
    fn the_mask_is_required_and_names_known_writable_fields() {
        assert!(parse_mask(&[]).is_err());
        for path in ["etag", "version", "update_time", "nope"] {
            assert!(parse_mask(&[path.into()]).is_err(), "{path}");
        }
        for field in SettingsField::ALL {
            assert_eq!(parse_mask(&[field.path().into()]).unwrap(), vec![field]);
        }
    }

    #[test]
    fn each_rule_names_its_field() {
        // A change of the settings that breaks the rule of the field it names.
        type Edit = fn(&mut TenantSettings);
        let cases: Vec<(Edit, SettingsField, &str)> = vec![
            (
                |s| s.retention = Duration::from_secs(3600),
                SettingsField::Retention,
                "tenant_settings.retention",
            ),
            (
                |s| s.retention = Duration::from_secs(3651 * DAY),
                SettingsField::Retention,
                "tenant_settings.retention",
            ),
            (
                |s| s.request_ttl = Duration::from_secs(59 * 60),
                SettingsField::RequestTtl,
                "tenant_settings.request_ttl",
            ),
            (
                |s| s.request_ttl = Duration::from_millis(HOUR * 1000 + 1),
                SettingsField::RequestTtl,
                "tenant_settings.request_ttl",
            ),
            (
                |s| s.escalate_after = Some(Duration::ZERO),
                SettingsField::EscalateAfter,
                "tenant_settings.escalate_after",
            ),
            (
                |s| s.teams_claim = String::new(),
                SettingsField::TeamsClaim,
                "tenant_settings.teams_claim",
            ),
            (
                |s| s.supervises_claim = "x".repeat(65),
                SettingsField::SupervisesClaim,
                "tenant_settings.supervises_claim",
            ),
            (
                |s| s.phone_default_country_code = Some("044".into()),
                SettingsField::PhoneDefaultCountryCode,
                "tenant_settings.phone_default_country_code",
            ),
        ];
        for (change, field, name) in cases {
            let mut s = settings();
            change(&mut s);
            assert_eq!(refused_fields(validate_fields(&s, &[field])), vec![name]);
            // A field the mask does not name is not checked.
            assert!(validate_fields(&s, &[]).is_ok());
        }
    }

    #[test]
    fn the_two_person_rule_is_checked_item_by_item() {
        let mut s = settings();
        s.two_person = TwoPersonRule {
            open_pipeline_at_least: vec![
                CurrencyAmount {
                    currency: "eur".into(),
                    amount_minor: 1,
                },
                CurrencyAmount {
                    currency: "USD".into(),
                    amount_minor: 0,
                },
                CurrencyAmount {
                    currency: "USD".into(),
                    amount_minor: 5,
                },
            ],
            records_at_least: Some(0),
            batch_size_above: Some(-1),
            key_accounts: true,
            admin_required: false,
        };
        let base = "tenant_settings.two_person_rule";
        assert_eq!(
            refused_fields(validate_fields(&s, &[SettingsField::TwoPersonRule])),
            vec![
                format!("{base}.open_pipeline_at_least[0]"),
                format!("{base}.open_pipeline_at_least[1]"),
                format!("{base}.open_pipeline_at_least[2]"),
                format!("{base}.records_at_least"),
                format!("{base}.batch_size_above"),
            ]
        );
    }

    #[test]
    fn escalation_must_come_before_the_request_lapses() {
        let mut s = settings();
        s.escalate_after = Some(s.request_ttl);
        assert_eq!(
            refused_fields(check_merged(&s, &[SettingsField::EscalateAfter])),
            vec!["tenant_settings.escalate_after"]
        );
        // Shortening the lifetime under an existing escalation blames the lifetime.
        assert_eq!(
            refused_fields(check_merged(&s, &[SettingsField::RequestTtl])),
            vec!["tenant_settings.request_ttl"]
        );
        s.escalate_after = Some(Duration::from_secs(HOUR));
        assert!(check_merged(&s, &[SettingsField::EscalateAfter]).is_ok());
    }

    #[test]
    fn the_audit_summary_names_each_field_and_its_new_value() {
        let mut s = settings();
        s.retention = Duration::from_secs(7 * DAY);
        s.two_person.records_at_least = Some(100);
        s.two_person.open_pipeline_at_least = vec![CurrencyAmount {
            currency: "EUR".into(),
            amount_minor: 5_000_000,
        }];
        assert_eq!(
            audit_summary(
                &s,
                &[SettingsField::Retention, SettingsField::TwoPersonRule]
            ),
            "retention=7d two_person_rule=pipeline[EUR:5000000]/records:100/batch_above:none/\
             key_accounts:false/admin_required:false"
        );
    }

    #[test]
    fn merging_takes_only_the_masked_fields() {
        let current = settings();
        let mut new = settings();
        new.retention = Duration::from_secs(2 * DAY);
        new.teams_claim = "groups".into();
        let next = merged(&current, &new, &[SettingsField::Retention]);
        assert_eq!(next.retention, Duration::from_secs(2 * DAY));
        assert_eq!(next.teams_claim, "teams");
    }
}
