//! Approval that fits an organisation (docs/design.md, "Approval policy"): a request or batch is
//! routed at submission to the supervisors of the requester's teams, and a high-impact one needs
//! two distinct approvers. Pure functions over the policy stored with the request, so every rule
//! is tested here without a database; the transitions lock the request and ask.

use chrono::{DateTime, Utc};

use super::access::{Caller, Role};
use super::model::approval::{Approval, ApprovalPolicy, ApprovalReason};
use super::model::batch::BatchImpact;
use super::model::deletion::{DeletionPreview, PipelineWarning};
use super::model::tenant_settings::{TenantSettings, TwoPersonRule};
use crate::error::{Error, Problem};
use crate::reason;

/// How many approvals a deletion needs under the tenant's two-person rule, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    pub approvals: u32,
    pub admin_required: bool,
    pub reasons: Vec<ApprovalReason>,
}

impl Requirement {
    fn from_reasons(rule: &TwoPersonRule, reasons: Vec<ApprovalReason>) -> Self {
        let two = !reasons.is_empty();
        Self {
            approvals: if two { 2 } else { 1 },
            admin_required: two && rule.admin_required,
            reasons,
        }
    }
}

fn because(code: &str, description: String) -> ApprovalReason {
    ApprovalReason {
        code: code.to_owned(),
        description,
    }
}

/// What deleting the customer of `preview` needs: two approvals when its open pipeline in a
/// currency is at or above that currency's threshold, when it deletes at least the threshold's
/// number of records, or when the customer is a key account and the rule covers key accounts.
pub fn for_deletion(
    rule: &TwoPersonRule,
    preview: &DeletionPreview,
    key_account: bool,
) -> Requirement {
    let mut reasons = impact_reasons(rule, &preview.warnings, preview.cascade_count);
    if rule.key_accounts && key_account {
        reasons.push(because(
            "KEY_ACCOUNT",
            "the customer is a key account".to_owned(),
        ));
    }
    Requirement::from_reasons(rule, reasons)
}

/// The rules a deletion's figures meet: the open pipeline per currency, the records it deletes.
fn impact_reasons(
    rule: &TwoPersonRule,
    warnings: &[PipelineWarning],
    cascade_count: i64,
) -> Vec<ApprovalReason> {
    let mut reasons = Vec::new();
    for warning in warnings {
        let threshold = rule
            .open_pipeline_at_least
            .iter()
            .find(|t| t.currency == warning.currency);
        if let Some(t) = threshold.filter(|t| warning.open_amount_minor >= t.amount_minor) {
            reasons.push(because(
                "OPEN_PIPELINE",
                format!(
                    "open pipeline of {} {} (minor units) is at or above {}",
                    warning.open_amount_minor, warning.currency, t.amount_minor
                ),
            ));
        }
    }
    if let Some(at_least) = rule.records_at_least.filter(|n| cascade_count >= *n) {
        reasons.push(because(
            "RECORD_COUNT",
            format!("deletes {cascade_count} records, at or above {at_least}"),
        ));
    }
    reasons
}

/// What a batch needs: two approvals above the rule's batch size, when its summed figures (open
/// pipeline per currency, records deleted) meet the rule as one deletion's would, or when it
/// includes a key account and the rule covers key accounts.
pub fn for_batch(rule: &TwoPersonRule, impact: &BatchImpact) -> Requirement {
    let size = i64::from(impact.included_count);
    let mut reasons = Vec::new();
    if let Some(above) = rule.batch_size_above.filter(|above| size > *above) {
        reasons.push(because(
            "BATCH_SIZE",
            format!("a batch of {size} customers, above {above}"),
        ));
    }
    reasons.extend(impact_reasons(rule, &impact.warnings, impact.cascade_count));
    if rule.key_accounts && impact.key_accounts > 0 {
        reasons.push(because(
            "KEY_ACCOUNT",
            format!("the batch includes {} key account(s)", impact.key_accounts),
        ));
    }
    Requirement::from_reasons(rule, reasons)
}

/// What merging a duplicate needs: a merge deletes no record and drops no pipeline (both move
/// to the survivor), so of the two-person rule only the key-account mark applies.
pub fn for_merge(rule: &TwoPersonRule, key_account: bool) -> Requirement {
    let reasons = (rule.key_accounts && key_account)
        .then(|| because("KEY_ACCOUNT", "the duplicate is a key account".to_owned()))
        .into_iter()
        .collect();
    Requirement::from_reasons(rule, reasons)
}

/// The policy a request by `requester` is submitted under: routed to the teams the tenant's team
/// claim names in the requester's token (none: any supervisor), needing what `requirement` says.
pub fn route(
    requester: &Caller,
    settings: &TenantSettings,
    requirement: Requirement,
) -> ApprovalPolicy {
    ApprovalPolicy {
        teams: requester.claim(&settings.teams_claim).to_vec(),
        supervises_claim: settings.supervises_claim.clone(),
        approvals_required: requirement.approvals,
        admin_required: requirement.admin_required,
        reasons: requirement.reasons,
    }
}

fn is_admin(caller: &Caller) -> bool {
    caller.roles.contains(&Role::Admin)
}

/// Whether the policy routes the request to `caller`, whose role already allows deciding
/// deletions: an admin always, a supervisor when the request names no team or the supervisor's
/// token says they supervise one of its teams.
pub fn routed_to(policy: &ApprovalPolicy, caller: &Caller) -> bool {
    is_admin(caller)
        || policy.teams.is_empty()
        || caller
            .claim(&policy.supervises_claim)
            .iter()
            .any(|team| policy.teams.contains(team))
}

/// `PERMISSION_DENIED` (NOT_ROUTED_TO_YOU) unless the policy routes the request to `caller`.
pub fn require_routed(policy: &ApprovalPolicy, caller: &Caller) -> Result<(), Error> {
    if routed_to(policy, caller) {
        return Ok(());
    }
    let teams = policy.teams.join(",");
    Err(Error::PermissionDenied(
        Problem::new(
            reason::NOT_ROUTED_TO_YOU,
            format!(
                "this request is routed to the supervisors of the requester's team(s) {teams} \
                 (your token's {:?} claim names none of them) and to admins: ask one of them",
                policy.supervises_claim
            ),
        )
        .with("teams", teams)
        .with("supervisesClaim", policy.supervises_claim.clone()),
    ))
}

/// The approvals after `caller` approves, or why they may not: the same person counts once, and
/// under an admin requirement the approval that would complete the count must bring an admin if
/// none approved yet. Routing and separation of duties are asked before.
pub fn approve(
    policy: &ApprovalPolicy,
    approvals: &[Approval],
    caller: &Caller,
    now: DateTime<Utc>,
    comment: &str,
) -> Result<Vec<Approval>, Error> {
    if approvals.iter().any(|a| a.approver_id == caller.subject) {
        return Err(Error::failed_precondition(
            Problem::new(
                reason::ALREADY_APPROVED,
                format!(
                    "you approved this request already, and one person counts once: it needs \
                     {} approvals from distinct people",
                    policy.approvals_required
                ),
            )
            .with("approvalsRequired", policy.approvals_required),
        ));
    }
    let mut next = approvals.to_vec();
    next.push(Approval {
        approver_id: caller.subject.clone(),
        admin: is_admin(caller),
        approve_time: now,
        comment: comment.to_owned(),
    });
    let completes_count = next.len() >= policy.approvals_required as usize;
    if completes_count && !policy.is_met(&next) {
        return Err(Error::PermissionDenied(
            Problem::new(
                reason::ADMIN_APPROVAL_REQUIRED,
                "the two-person rule needs an admin among the approvers and none has approved \
                 yet: the remaining approval must be an admin's",
            )
            .with("approvalsRequired", policy.approvals_required),
        ));
    }
    Ok(next)
}

/// Whether an undecided request with this policy and these approvals waits for `caller`'s
/// decision: it is routed to them, and an approval of theirs would count (they have not given one,
/// and it does not leave an admin requirement unmet). What a decider's inbox shows.
pub fn awaits(policy: &ApprovalPolicy, approvals: &[Approval], caller: &Caller) -> bool {
    routed_to(policy, caller)
        && approve(policy, approvals, caller, DateTime::UNIX_EPOCH, "").is_ok()
}

/// Whom an undecided request waits for, for a person: "1 more approval: a supervisor of emea or
/// an admin".
pub fn waiting_for(policy: &ApprovalPolicy, approvals: &[Approval]) -> String {
    let remaining = (policy.approvals_required as usize).saturating_sub(approvals.len());
    if remaining == 0 {
        return String::new();
    }
    let admin_missing = policy.admin_required && !approvals.iter().any(|a| a.admin);
    let who = if admin_missing && remaining == 1 {
        "an admin".to_owned()
    } else if policy.teams.is_empty() {
        "any supervisor or admin".to_owned()
    } else {
        format!("a supervisor of {} or an admin", policy.teams.join(" or "))
    };
    let more = if remaining == 1 {
        "1 more approval".to_owned()
    } else {
        format!("{remaining} more approvals")
    };
    let admin_note = if admin_missing && remaining > 1 {
        ", one of them an admin's"
    } else {
        ""
    };
    format!("{more}{admin_note}: {who}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::model::tenant_settings::CurrencyAmount;

    fn caller(subject: &str, roles: &[Role], claims: &[(&str, &[&str])]) -> Caller {
        Caller {
            tenant: "t".into(),
            subject: subject.into(),
            roles: roles.to_vec(),
            unknown_roles: Vec::new(),
            claims: claims
                .iter()
                .map(|(name, values)| {
                    let values = values.iter().map(|v| v.to_string()).collect();
                    (name.to_string(), values)
                })
                .collect(),
            trace_id: String::new(),
        }
    }

    fn policy(teams: &[&str], approvals: u32, admin: bool) -> ApprovalPolicy {
        ApprovalPolicy {
            teams: teams.iter().map(|t| t.to_string()).collect(),
            supervises_claim: "supervises".into(),
            approvals_required: approvals,
            admin_required: admin,
            reasons: Vec::new(),
        }
    }

    #[test]
    fn routing_matrix() {
        use Role::*;
        let none: &[(&str, &[&str])] = &[];
        // (request's teams, decider's roles, decider's supervised teams, routed?)
        type Case<'a> = (&'a [&'a str], &'a [Role], &'a [&'a str], bool);
        let cases: &[Case] = &[
            (&[], &[Supervisor], &[], true),
            (&[], &[Supervisor], &["emea"], true),
            (&[], &[Admin], &[], true),
            (&["emea"], &[Supervisor], &["emea"], true),
            (&["emea"], &[Supervisor], &["apac"], false),
            (&["emea"], &[Supervisor], &[], false),
            (&["emea"], &[Admin], &[], true),
            (&["emea"], &[Supervisor, Admin], &["apac"], true),
            (&["emea", "apac"], &[Supervisor], &["apac"], true),
            (&["emea", "apac"], &[Supervisor], &["amer", "emea"], true),
            (&["emea", "apac"], &[Supervisor], &["amer"], false),
        ];
        for (teams, roles, supervises, routed) in cases {
            let decider = if supervises.is_empty() {
                caller("sue", roles, none)
            } else {
                caller("sue", roles, &[("supervises", supervises)])
            };
            let p = policy(teams, 1, false);
            assert_eq!(
                routed_to(&p, &decider),
                *routed,
                "{teams:?} {roles:?} {supervises:?}"
            );
            let refused = require_routed(&p, &decider).is_err();
            assert_eq!(refused, !routed);
        }
    }

    #[test]
    fn a_team_in_the_wrong_claim_does_not_route() {
        // Belonging to a team is not supervising it.
        let member = caller("sue", &[Role::Supervisor], &[("teams", &["emea"])]);
        assert!(!routed_to(&policy(&["emea"], 1, false), &member));
    }

    #[test]
    fn the_route_is_the_requesters_teams_under_the_tenants_claim_names() {
        let mut settings = crate::domain::model::tenant_settings::TenantSettings {
            retention: std::time::Duration::from_secs(1),
            request_ttl: std::time::Duration::from_secs(1),
            escalate_after: None,
            teams_claim: "groups".into(),
            supervises_claim: "leads".into(),
            phone_default_country_code: None,
            two_person: TwoPersonRule::default(),
            version: 0,
            update_time: None,
            updated_by: String::new(),
        };
        let rep = caller(
            "rep",
            &[Role::SalesRep],
            &[("groups", &["emea", "dach"]), ("teams", &["x"])],
        );
        let one = Requirement::from_reasons(&settings.two_person, Vec::new());
        let p = route(&rep, &settings, one.clone());
        assert_eq!(p.teams, ["emea", "dach"]);
        assert_eq!(p.supervises_claim, "leads");
        settings.teams_claim = "absent".into();
        assert!(
            route(&rep, &settings, one).teams.is_empty(),
            "no claim: any supervisor"
        );
    }

    fn preview(cascade: i64, pipeline: &[(&str, i64)]) -> DeletionPreview {
        DeletionPreview {
            customer_id: uuid::Uuid::nil(),
            version: 1,
            impacts: Vec::new(),
            blockers: Vec::new(),
            warnings: pipeline
                .iter()
                .map(|(c, a)| PipelineWarning::from_total(c.to_string(), i128::from(*a), 1))
                .collect(),
            approval_required: true,
            cascade_count: cascade,
            keep_count: 0,
            alternatives: Vec::new(),
            approvals_required: 1,
            admin_approval_required: false,
            approval_reasons: Vec::new(),
        }
    }

    fn codes(r: &Requirement) -> Vec<&str> {
        r.reasons.iter().map(|r| r.code.as_str()).collect()
    }

    #[test]
    fn two_person_thresholds_just_under_at_and_over() {
        let rule = TwoPersonRule {
            open_pipeline_at_least: vec![CurrencyAmount {
                currency: "EUR".into(),
                amount_minor: 1_000_000,
            }],
            records_at_least: Some(100),
            batch_size_above: Some(50),
            key_accounts: true,
            admin_required: false,
        };
        for (amount, two) in [(999_999, false), (1_000_000, true), (1_000_001, true)] {
            let r = for_deletion(&rule, &preview(0, &[("EUR", amount)]), false);
            assert_eq!(r.approvals == 2, two, "{amount}");
            assert_eq!(codes(&r) == ["OPEN_PIPELINE"], two);
        }
        // Another currency's pipeline is not compared with the EUR amount.
        assert_eq!(
            for_deletion(&rule, &preview(0, &[("USD", 5_000_000)]), false).approvals,
            1
        );
        for (records, two) in [(99, false), (100, true), (101, true)] {
            let r = for_deletion(&rule, &preview(records, &[]), false);
            assert_eq!(r.approvals == 2, two, "{records}");
        }
        assert_eq!(
            codes(&for_deletion(&rule, &preview(0, &[]), true)),
            ["KEY_ACCOUNT"]
        );
        for (size, two) in [(50, false), (51, true)] {
            let impact = BatchImpact {
                included_count: size,
                ..BatchImpact::default()
            };
            assert_eq!(for_batch(&rule, &impact).approvals == 2, two, "{size}");
        }
        let with_key_account = BatchImpact {
            included_count: 2,
            key_accounts: 1,
            ..BatchImpact::default()
        };
        assert_eq!(codes(&for_batch(&rule, &with_key_account)), ["KEY_ACCOUNT"]);
        let off = TwoPersonRule::default();
        let heavy = preview(1_000_000, &[("EUR", i64::MAX)]);
        assert_eq!(
            for_deletion(&off, &heavy, true).approvals,
            1,
            "a rule left off"
        );
        // Several rules met: still two approvers, every reason named.
        let r = for_deletion(&rule, &preview(100, &[("EUR", 1_000_000)]), true);
        assert_eq!(
            (r.approvals, codes(&r)),
            (2, vec!["OPEN_PIPELINE", "RECORD_COUNT", "KEY_ACCOUNT"])
        );
        assert!(!r.admin_required);
        let with_admin = TwoPersonRule {
            admin_required: true,
            ..rule
        };
        assert!(for_deletion(&with_admin, &preview(100, &[]), false).admin_required);
        assert!(
            !for_deletion(&with_admin, &preview(1, &[]), false).admin_required,
            "only with two"
        );
    }

    #[test]
    fn two_approvals_from_distinct_people_and_an_admin_when_required() {
        let now = DateTime::UNIX_EPOCH;
        let sup = |s: &str| caller(s, &[Role::Supervisor], &[]);
        let admin = caller("ada", &[Role::Admin], &[]);
        let p = policy(&[], 2, false);
        let one = approve(&p, &[], &sup("a"), now, "").unwrap();
        assert!(!p.is_met(&one));
        assert!(matches!(
            approve(&p, &one, &sup("a"), now, ""),
            Err(Error::FailedPrecondition { .. })
        ));
        let two = approve(&p, &one, &sup("b"), now, "").unwrap();
        assert!(p.is_met(&two));
        assert_eq!(
            two.iter()
                .map(|a| a.approver_id.as_str())
                .collect::<Vec<_>>(),
            ["a", "b"]
        );

        let p = policy(&[], 2, true);
        let one = approve(&p, &[], &sup("a"), now, "").unwrap();
        assert!(awaits(&p, &one, &admin));
        assert!(
            !awaits(&p, &one, &sup("b")),
            "a second supervisor cannot complete it"
        );
        assert!(matches!(
            approve(&p, &one, &sup("b"), now, ""),
            Err(Error::PermissionDenied(_))
        ));
        assert!(p.is_met(&approve(&p, &one, &admin, now, "").unwrap()));
        // An admin first: any second approver completes it.
        let first = approve(&p, &[], &admin, now, "").unwrap();
        assert!(p.is_met(&approve(&p, &first, &sup("b"), now, "").unwrap()));
        assert_eq!(
            waiting_for(&p, &[]),
            "2 more approvals, one of them an admin's: any supervisor or admin"
        );
        assert_eq!(waiting_for(&p, &one), "1 more approval: an admin");
        assert_eq!(
            waiting_for(&policy(&["emea"], 1, false), &[]),
            "1 more approval: a supervisor of emea or an admin"
        );
    }
}
