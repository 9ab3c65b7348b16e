//! The two-person rule and escalation, as a tenant sets them: the preview says how many approvals
//! a deletion needs and why at each threshold's edges, a request becomes APPROVED only with two
//! distinct approvers (exactly once under racing approvals), one rejection ends it, a graph change
//! voids the approvals collected, a request keeps the policy it was submitted under, and a request
//! pending past the tenant's escalation time is escalated once.

use std::time::Duration;

use crm_service::proto::crm::v1 as pb;
use crm_service::proto::crm::v1::customer_event_service_client::CustomerEventServiceClient;
use crm_service::proto::crm::v1::tenant_settings_service_client::TenantSettingsServiceClient;
use tonic::Code;

use crate::common::batches as b;
use crate::common::{
    Approvals, AuthedChannel, Bearer, Kind, TestApp, approve, assert_status, create_record,
    execute, get_customer, mask, new_deal, reject, submit,
};

crate::on_both_databases!(
    the_preview_names_each_rule_just_under_at_and_over_its_threshold,
    a_batch_needs_two_above_the_size_and_not_at_it,
    two_distinct_approvers_make_it_approved_and_one_person_counts_once,
    racing_approvals_approve_exactly_once_with_two_distinct_approvers,
    a_rejection_after_one_approval_ends_it,
    a_graph_change_between_the_approvals_voids_them,
    an_admin_must_complete_an_admin_required_pair,
    a_request_keeps_the_policy_it_was_submitted_under,
    the_tenant_names_the_team_claims,
    a_request_pending_past_the_escalation_time_is_escalated_once,
);

fn settings_client(app: &TestApp, tenant: &str) -> TenantSettingsServiceClient<AuthedChannel> {
    let token = app.token(tenant, "ada", &["admin"]);
    TenantSettingsServiceClient::with_interceptor(app.channel(), Bearer::new(&token))
}

/// Sets the fields `paths` of `acme`'s settings to those of `change`, as its admin.
async fn set(app: &TestApp, paths: &[&str], change: pb::TenantSettings) {
    let mut client = settings_client(app, "acme");
    let current = client
        .get_tenant_settings(pb::GetTenantSettingsRequest {})
        .await
        .expect("get settings")
        .into_inner()
        .tenant_settings
        .unwrap();
    client
        .update_tenant_settings(pb::UpdateTenantSettingsRequest {
            tenant_settings: Some(change),
            update_mask: mask(paths),
            etag: current.etag,
            request_id: String::new(),
        })
        .await
        .expect("update settings");
}

async fn set_rule(app: &TestApp, rule: pb::TwoPersonRule) {
    let settings = pb::TenantSettings {
        two_person_rule: Some(rule),
        ..Default::default()
    };
    set(app, &["two_person_rule"], settings).await;
}

fn eur_at_least(amount_minor: i64) -> pb::TwoPersonRule {
    pb::TwoPersonRule {
        open_pipeline_at_least: vec![pb::CurrencyAmount {
            currency: "EUR".into(),
            amount_minor,
        }],
        ..Default::default()
    }
}

/// A customer with `deals` open deals of 1,250.00 EUR each (each one a record a deletion
/// cascades).
async fn with_open_deals(app: &TestApp, name: &str, deals: usize) -> String {
    let id = app.create_customer(name).await.id;
    let mut records = app.records();
    for _ in 0..deals {
        create_record(&mut records, Kind::Deal, &id)
            .await
            .expect("deal");
    }
    assert_eq!(new_deal(&id, pb::DealStage::Open).amount_minor, 125_000);
    id
}

fn reason_codes(reasons: &[pb::ApprovalReason]) -> Vec<&str> {
    reasons.iter().map(|r| r.code.as_str()).collect()
}

fn sup(app: &TestApp, user: &str) -> Approvals {
    app.approvals_as("acme", user, &["supervisor"])
}

async fn the_preview_names_each_rule_just_under_at_and_over_its_threshold(app: TestApp) {
    // Two open deals: 2,500.00 EUR of pipeline, two records the deletion cascades.
    let id = with_open_deals(&app, "Edge Ltd", 2).await;
    let needs = async |rule: pb::TwoPersonRule| {
        set_rule(&app, rule).await;
        let preview = app.preview(&id).await;
        (
            preview.approvals_required,
            reason_codes(&preview.approval_reasons).join(","),
        )
    };
    for (amount, want) in [(250_001, 1), (250_000, 2), (249_999, 2)] {
        let (n, why) = needs(eur_at_least(amount)).await;
        assert_eq!(n, want, "pipeline threshold {amount}");
        assert_eq!(why, if want == 2 { "OPEN_PIPELINE" } else { "" });
    }
    let usd = pb::TwoPersonRule {
        open_pipeline_at_least: vec![pb::CurrencyAmount {
            currency: "USD".into(),
            amount_minor: 1,
        }],
        ..Default::default()
    };
    assert_eq!(needs(usd).await.0, 1, "another currency's threshold");
    for (count, want) in [(3, 1), (2, 2), (1, 2)] {
        let rule = pb::TwoPersonRule {
            records_at_least: count,
            ..Default::default()
        };
        let (n, why) = needs(rule).await;
        assert_eq!(n, want, "record threshold {count}");
        assert_eq!(why, if want == 2 { "RECORD_COUNT" } else { "" });
    }
    let key_accounts = pb::TwoPersonRule {
        key_accounts: true,
        ..Default::default()
    };
    assert_eq!(needs(key_accounts.clone()).await.0, 1, "not a key account");
    mark_key_account(&app, &id).await;
    assert_eq!(needs(key_accounts).await, (2, "KEY_ACCOUNT".into()));
    let admin = pb::TwoPersonRule {
        admin_required: true,
        ..eur_at_least(1)
    };
    set_rule(&app, admin).await;
    let preview = app.preview(&id).await;
    assert!(preview.admin_approval_required);
    assert!(
        preview.approval_reasons[0]
            .description
            .contains("250000 EUR"),
        "{preview:?}"
    );
}

async fn a_batch_needs_two_above_the_size_and_not_at_it(app: TestApp) {
    for (above, want) in [(3, 1), (2, 1), (1, 2)] {
        let rule = pb::TwoPersonRule {
            batch_size_above: above,
            ..Default::default()
        };
        set_rule(&app, rule).await;
        let ids = vec![
            app.create_customer(&format!("Batch A {above}")).await.id,
            app.create_customer(&format!("Batch B {above}")).await.id,
        ];
        let (batch, _) = b::submitted(&app, &ids, "tidy").await;
        let approval = batch.approval.unwrap();
        assert_eq!(
            approval.approvals_required, want,
            "a batch of 2, above {above}"
        );
        if want == 2 {
            assert_eq!(reason_codes(&approval.reasons), ["BATCH_SIZE"]);
            let first = b::approve(&mut b::sup(&app), &batch.id).await.unwrap();
            assert_eq!(first.state, pb::DeletionBatchState::Pending as i32);
            let again = b::approve(&mut b::sup(&app), &batch.id).await;
            assert_status(again, Code::FailedPrecondition, "ALREADY_APPROVED");
            let second = b::approve(&mut b::batches(&app, "sup-2", &["supervisor"]), &batch.id)
                .await
                .unwrap();
            assert_eq!(second.state, pb::DeletionBatchState::Approved as i32);
            assert_eq!(second.approval.unwrap().approvals.len(), 2);
        } else {
            b::cancel(&mut b::rep(&app), &batch.id).await.unwrap();
        }
    }
    // A key account among the items, under a rule that covers key accounts.
    let rule = pb::TwoPersonRule {
        key_accounts: true,
        ..Default::default()
    };
    set_rule(&app, rule).await;
    let plain = app.create_customer("Batch Plain").await.id;
    let (batch, _) = b::submitted(&app, std::slice::from_ref(&plain), "tidy").await;
    assert_eq!(batch.approval.unwrap().approvals_required, 1);
    b::cancel(&mut b::rep(&app), &batch.id).await.unwrap();
    let key = app.create_customer("Batch Key").await.id;
    mark_key_account(&app, &key).await;
    let (batch, _) = b::submitted(&app, &[plain, key], "tidy").await;
    let approval = batch.approval.unwrap();
    assert_eq!(approval.approvals_required, 2);
    assert_eq!(reason_codes(&approval.reasons), ["KEY_ACCOUNT"]);
}

async fn mark_key_account(app: &TestApp, id: &str) {
    let mut boss = app.customers_as("acme", "sup-1", &["supervisor"]);
    let mut marked = get_customer(&mut boss, id).await;
    marked.key_account = true;
    boss.update_customer(pb::UpdateCustomerRequest {
        customer: Some(marked),
        update_mask: mask(&["key_account"]),
        ..Default::default()
    })
    .await
    .expect("mark key account");
}

/// A PENDING request for a fresh customer with two open deals, under a rule they meet.
async fn needing_two(app: &TestApp, name: &str) -> (String, pb::DeletionRequest) {
    set_rule(app, eur_at_least(250_000)).await;
    let id = with_open_deals(app, name, 2).await;
    let request = app.pending_deletion(&id, "duplicate").await;
    let approval = request.approval.clone().unwrap();
    assert_eq!(approval.approvals_required, 2);
    assert_eq!(reason_codes(&approval.reasons), ["OPEN_PIPELINE"]);
    (id, request)
}

async fn two_distinct_approvers_make_it_approved_and_one_person_counts_once(app: TestApp) {
    let (id, request) = needing_two(&app, "Two Keys").await;
    let first = approve(&mut sup(&app, "sup-1"), &request.id).await.unwrap();
    assert_eq!(first.state, pb::DeletionRequestState::Pending as i32);
    let approval = first.approval.unwrap();
    assert_eq!(approval.approvals.len(), 1);
    assert_eq!(
        approval.waiting_for,
        "1 more approval: any supervisor or admin"
    );
    assert!(first.decided_by.is_empty());
    let early = execute(
        &mut app.customers(),
        &id,
        &request.id,
        &first.preview.unwrap().etag,
    )
    .await;
    assert_status(early, Code::FailedPrecondition, "DELETION_NOT_APPROVED");
    let again = approve(&mut sup(&app, "sup-1"), &request.id).await;
    assert_status(again, Code::FailedPrecondition, "ALREADY_APPROVED");
    let second = approve(&mut sup(&app, "sup-2"), &request.id).await.unwrap();
    assert_eq!(second.state, pb::DeletionRequestState::Approved as i32);
    assert_eq!(second.decided_by, "sup-2");
    let approval = second.approval.unwrap();
    let approvers: Vec<&str> = approval
        .approvals
        .iter()
        .map(|a| a.approver_id.as_str())
        .collect();
    assert_eq!(approvers, ["sup-1", "sup-2"]);
    assert!(approval.waiting_for.is_empty());
    assert_eq!(app.audit_count(&id, "deletion_request.approve").await, 2);
    let etag = second.preview.unwrap().etag;
    execute(&mut app.customers(), &id, &request.id, &etag)
        .await
        .expect("delete");
    assert!(app.verify_audit().await.valid);
}

async fn racing_approvals_approve_exactly_once_with_two_distinct_approvers(app: TestApp) {
    for trial in 0..4 {
        let (_, request) = needing_two(&app, &format!("Race {trial}")).await;
        // Four supervisors at once: two approvals count, the rest find it decided.
        let racers = (0..4).map(|n| {
            let mut client = sup(&app, &format!("racer-{n}"));
            let id = request.id.clone();
            tokio::spawn(async move { approve(&mut client, &id).await })
        });
        let mut approved = 0;
        for racer in racers {
            match racer.await.unwrap() {
                Ok(r) if r.state == pb::DeletionRequestState::Approved as i32 => approved += 1,
                Ok(r) => assert_eq!(r.state, pb::DeletionRequestState::Pending as i32),
                Err(s) => {
                    assert_status::<()>(
                        Err(s),
                        Code::FailedPrecondition,
                        "DELETION_REQUEST_NOT_PENDING",
                    );
                }
            }
        }
        assert_eq!(approved, 1, "trial {trial}: APPROVED exactly once");
        let seen = app.deletion_request(&request.id).await;
        assert_eq!(seen.state, pb::DeletionRequestState::Approved as i32);
        let approvals = seen.approval.unwrap().approvals;
        assert_eq!(approvals.len(), 2, "trial {trial}");
        assert_ne!(approvals[0].approver_id, approvals[1].approver_id);
    }
}

async fn a_rejection_after_one_approval_ends_it(app: TestApp) {
    let (_, request) = needing_two(&app, "Approve Then Reject").await;
    approve(&mut sup(&app, "sup-1"), &request.id).await.unwrap();
    let rejected = reject(&mut sup(&app, "sup-2"), &request.id, "keep them")
        .await
        .unwrap();
    assert_eq!(rejected.state, pb::DeletionRequestState::Rejected as i32);
    let late = approve(&mut sup(&app, "sup-3"), &request.id).await;
    assert_status(
        late,
        Code::FailedPrecondition,
        "DELETION_REQUEST_NOT_PENDING",
    );
}

async fn a_graph_change_between_the_approvals_voids_them(app: TestApp) {
    let (id, request) = needing_two(&app, "Moving Graph").await;
    approve(&mut sup(&app, "sup-1"), &request.id).await.unwrap();
    create_record(&mut app.records(), Kind::Contact, &id)
        .await
        .expect("contact");
    assert_eq!(
        app.deletion_request(&request.id).await.state,
        pb::DeletionRequestState::Stale as i32
    );
    let second = approve(&mut sup(&app, "sup-2"), &request.id).await;
    assert_status(second, Code::FailedPrecondition, "PREVIEW_STALE");
    // A new request starts from no approvals.
    let fresh = app.pending_deletion(&id, "duplicate, again").await;
    assert!(fresh.approval.unwrap().approvals.is_empty());
}

async fn an_admin_must_complete_an_admin_required_pair(app: TestApp) {
    set_rule(
        &app,
        pb::TwoPersonRule {
            admin_required: true,
            ..eur_at_least(1)
        },
    )
    .await;
    let id = with_open_deals(&app, "Admin Pair", 1).await;
    let request = app.pending_deletion(&id, "duplicate").await;
    assert!(request.approval.as_ref().unwrap().admin_approval_required);
    approve(&mut sup(&app, "sup-1"), &request.id).await.unwrap();
    let inbox = |user: &str, roles: &[&str]| {
        let mut client = app.approvals_as("acme", user, roles);
        async move {
            client
                .list_deletion_requests(pb::ListDeletionRequestsRequest {
                    awaiting_my_decision: true,
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner()
                .deletion_requests
                .len()
        }
    };
    assert_eq!(
        inbox("sup-2", &["supervisor"]).await,
        0,
        "a supervisor cannot complete it"
    );
    assert_eq!(inbox("ada", &["admin"]).await, 1);
    let second = approve(&mut sup(&app, "sup-2"), &request.id).await;
    assert_status(second, Code::PermissionDenied, "ADMIN_APPROVAL_REQUIRED");
    let done = approve(
        &mut app.approvals_as("acme", "ada", &["admin"]),
        &request.id,
    )
    .await
    .unwrap();
    assert_eq!(done.state, pb::DeletionRequestState::Approved as i32);
    let approvals = done.approval.unwrap().approvals;
    assert_eq!((approvals[0].admin, approvals[1].admin), (false, true));
}

async fn a_request_keeps_the_policy_it_was_submitted_under(app: TestApp) {
    let (_, before) = needing_two(&app, "Kept Policy").await;
    set_rule(&app, pb::TwoPersonRule::default()).await;
    approve(&mut sup(&app, "sup-1"), &before.id).await.unwrap();
    let still = app.deletion_request(&before.id).await;
    assert_eq!(
        still.state,
        pb::DeletionRequestState::Pending as i32,
        "still needs two"
    );
    let id = with_open_deals(&app, "New Policy", 2).await;
    let after = app.pending_deletion(&id, "duplicate").await;
    assert_eq!(after.approval.unwrap().approvals_required, 1);
}

async fn the_tenant_names_the_team_claims(app: TestApp) {
    let claims = pb::TenantSettings {
        teams_claim: "groups".into(),
        supervises_claim: "leads".into(),
        ..Default::default()
    };
    set(&app, &["teams_claim", "supervises_claim"], claims).await;
    let id = app.create_customer("Claimed").await.id;
    let preview = app.preview(&id).await;
    let mut rep =
        app.approvals_with_claims("acme", "rep-9", &["sales_rep"], &[("groups", &["emea"])]);
    let request = submit(&mut rep, &id, &preview.etag, "duplicate")
        .await
        .unwrap();
    assert_eq!(request.approval.unwrap().routed_to_teams, ["emea"]);
    let mut old_claim = app.approvals_with_claims(
        "acme",
        "sup-7",
        &["supervisor"],
        &[("supervises", &["emea"])],
    );
    let refused = approve(&mut old_claim, &request.id).await;
    assert_status(refused, Code::PermissionDenied, "NOT_ROUTED_TO_YOU");
    let mut lead =
        app.approvals_with_claims("acme", "sup-8", &["supervisor"], &[("leads", &["emea"])]);
    let approved = approve(&mut lead, &request.id).await.unwrap();
    assert_eq!(approved.state, pb::DeletionRequestState::Approved as i32);
}

async fn escalated(app: &TestApp) -> Vec<pb::CustomerEvent> {
    let token = app.token("acme", "notifier", &["service"]);
    let mut events =
        CustomerEventServiceClient::with_interceptor(app.channel(), Bearer::new(&token));
    events
        .list_customer_events(pb::ListCustomerEventsRequest {
            after_sequence: 0,
            page_size: 1000,
        })
        .await
        .unwrap()
        .into_inner()
        .events
        .into_iter()
        .filter(|e| e.r#type == pb::CustomerEventType::DeletionEscalated as i32)
        .collect()
}

async fn a_request_pending_past_the_escalation_time_is_escalated_once(app: TestApp) {
    let hour = pb::TenantSettings {
        escalate_after: Some(prost_types::Duration {
            seconds: 3600,
            nanos: 0,
        }),
        ..Default::default()
    };
    set(&app, &["escalate_after"], hour).await;
    let waiting = app.create_customer("Waiting").await.id;
    let request = app.pending_deletion(&waiting, "duplicate").await;
    let due = request.approval.unwrap().escalate_time.unwrap();
    assert_eq!(due.seconds - request.create_time.unwrap().seconds, 3600);
    let decided = app.create_customer("Decided").await.id;
    app.approved_deletion(&decided, "duplicate").await;
    let ids = vec![app.create_customer("Batched").await.id];
    let (batch, _) = b::submitted(&app, &ids, "tidy").await;
    // The sweep runs every 200 ms here: nothing is due before the hour.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(escalated(&app).await.is_empty());
    app.advance_clock(Duration::from_secs(3601));
    let mut events = Vec::new();
    for _ in 0..50 {
        events = escalated(&app).await;
        if events.len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Several more passes: still once each.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let again = escalated(&app).await;
    assert_eq!(again, events);
    let mut records: Vec<(String, String, String)> = events
        .iter()
        .map(|e| {
            (
                e.record_type.clone(),
                e.record_id.clone(),
                e.customer_id.clone(),
            )
        })
        .collect();
    records.sort();
    assert_eq!(
        records,
        [
            ("deletion_batch".into(), batch.id.clone(), String::new()),
            (
                "deletion_request".into(),
                request.id.clone(),
                waiting.clone()
            ),
        ],
        "the pending request and batch, not the approved one"
    );
    assert!(
        events
            .iter()
            .all(|e| e.counts.get("pending_seconds").is_some_and(|s| *s >= 3600))
    );
    assert_eq!(
        app.audit_count(&waiting, "deletion_request.escalate").await,
        1
    );
    assert!(app.verify_audit().await.valid);
}
