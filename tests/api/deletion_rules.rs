//! The rules of the deletion lifecycle (docs/design.md sections 2 and 4; docs/reliability.md A6,
//! C3, C7, C8): who may decide, execute, cancel and restore; what blocks a deletion; what a changed
//! graph, a lapsed request or a taken external_ref do; that KEEP records and records deleted on
//! their own are left alone; that retries return the first answer; that another tenant's request
//! does not exist. Every refusal is checked by code and ErrorInfo reason, and by the stored state
//! afterwards.

use std::collections::BTreeMap;
use std::time::Duration;

use crm_service::domain::deletion::LifecycleSettings;
use crm_service::proto::crm::v1 as pb;
use pb::DeletionRequestState as S;
use tonic::{Code, Status};
use tonic_types::StatusExt;

use crate::common::{
    TestApp, approve, assert_status, bad_fields, bare_customer, cancel, execute, figure,
    get_customer, mask, new_activity, new_contact, new_contract, new_deal, new_order, new_project,
    precondition_subjects, random_id, reject, request_id, restore, submit,
};

crate::on_both_databases!(
    a_requester_cannot_decide_their_own_request_whatever_their_roles,
    sales_reps_and_services_can_neither_approve_reject_nor_restore,
    a_rejection_needs_a_comment,
    each_blocker_stops_submit_and_is_listed_by_the_preview_with_ids_and_what_to_do,
    a_legal_hold_set_after_approval_stops_the_delete,
    a_record_added_after_approval_makes_delete_fail_stale_and_deletes_nothing,
    a_graph_changed_after_submit_makes_approval_fail_stale,
    an_expired_request_can_be_neither_approved_nor_executed,
    delete_needs_an_approved_request_and_the_current_etag,
    restoring_a_live_customer_is_already_exists,
    a_restore_whose_external_ref_is_taken_fails_naming_it_and_restores_nothing,
    records_deleted_on_their_own_before_the_customer_stay_deleted_after_restore,
    keep_records_are_untouched_by_delete_and_restore,
    the_requester_can_cancel_but_another_sales_rep_cannot,
    a_customer_has_at_most_one_open_request,
    writes_to_a_deleted_customer_or_its_kept_records_fail_customer_deleted,
    writes_to_the_records_a_deletion_took_fail_customer_deleted,
    idempotent_retries_of_submit_approve_delete_and_restore_return_the_first_answer,
    another_tenants_deletion_request_is_not_found_exactly_like_a_random_id,
    list_deletion_requests_filters_by_state_and_customer_and_paginates,
);

fn state(r: &pb::DeletionRequest) -> S {
    S::try_from(r.state).expect("known state")
}

async fn fetch(app: &TestApp, id: &str) -> pb::Customer {
    get_customer(&mut app.customers(), id).await
}

/// A customer with a few cascading records (two contacts, an open deal, an activity).
async fn customer_with_records(app: &TestApp, name: &str) -> pb::Customer {
    let customer = app.create_customer(name).await;
    let mut r = app.records();
    for _ in 0..2 {
        r.create_contact(pb::CreateContactRequest {
            contact: Some(new_contact(&customer.id)),
            request_id: String::new(),
        })
        .await
        .unwrap();
    }
    r.create_deal(pb::CreateDealRequest {
        deal: Some(new_deal(&customer.id, pb::DealStage::Open)),
        request_id: String::new(),
    })
    .await
    .unwrap();
    r.create_activity(pb::CreateActivityRequest {
        activity: Some(new_activity(&customer.id)),
        request_id: String::new(),
    })
    .await
    .unwrap();
    customer
}

async fn add_contact(app: &TestApp, customer_id: &str) -> pb::Contact {
    app.records_as("acme", "rep-2", &["sales_rep"])
        .create_contact(pb::CreateContactRequest {
            contact: Some(new_contact(customer_id)),
            request_id: String::new(),
        })
        .await
        .expect("create contact")
        .into_inner()
        .contact
        .unwrap()
}

async fn requests_of(app: &TestApp, customer_id: &str) -> Vec<pb::DeletionRequest> {
    app.approvals_as("acme", "reader", &["sales_rep"])
        .list_deletion_requests(pb::ListDeletionRequestsRequest {
            customer_id: customer_id.into(),
            page_size: 1000,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .deletion_requests
}

async fn a_requester_cannot_decide_their_own_request_whatever_their_roles(app: TestApp) {
    // (requester, roles when submitting, roles when deciding): the same `sub` is the same person
    // whatever roles its token carries.
    let cases: &[(&str, &[&str], &[&str])] = &[
        ("sup-1", &["supervisor"], &["supervisor"]),
        ("adm-1", &["admin"], &["admin"]),
        ("rep-7", &["sales_rep"], &["supervisor"]),
        ("rep-8", &["sales_rep"], &["admin", "supervisor"]),
    ];
    let mut attempts = 0;
    for (user, submit_roles, decide_roles) in cases {
        let customer = app
            .create_customer(&format!("Self-approved by {user}"))
            .await;
        let preview = app.preview(&customer.id).await;
        let pending = submit(
            &mut app.approvals_as("acme", user, submit_roles),
            &customer.id,
            &preview.etag,
            "duplicate account",
        )
        .await
        .unwrap();
        let mut own = app.approvals_as("acme", user, decide_roles);
        assert_status(
            approve(&mut own, &pending.id).await,
            Code::PermissionDenied,
            "SELF_APPROVAL_FORBIDDEN",
        );
        assert_status(
            reject(&mut own, &pending.id, "changed my mind").await,
            Code::PermissionDenied,
            "SELF_APPROVAL_FORBIDDEN",
        );
        attempts += 2;
        let after = app.deletion_request(&pending.id).await;
        assert_eq!(state(&after), S::Pending, "{user}");
        assert_eq!(after.etag, pending.etag, "{user}: nothing was written");
        assert!(after.decided_by.is_empty() && after.decide_time.is_none());
    }

    // Sixteen self-approvals at once: none gets through.
    let customer = app.create_customer("Self-approved at once").await;
    let preview = app.preview(&customer.id).await;
    let pending = submit(
        &mut app.approvals_as("acme", "sup-9", &["supervisor"]),
        &customer.id,
        &preview.etag,
        "duplicate account",
    )
    .await
    .unwrap();
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let mut own = app.approvals_as("acme", "sup-9", &["supervisor"]);
            let id = pending.id.clone();
            tokio::spawn(async move { approve(&mut own, &id).await })
        })
        .collect();
    for task in tasks {
        assert_status(
            task.await.unwrap(),
            Code::PermissionDenied,
            "SELF_APPROVAL_FORBIDDEN",
        );
        attempts += 1;
    }
    assert_eq!(state(&app.deletion_request(&pending.id).await), S::Pending);
    let approvals = app
        .audit_events(pb::ListAuditEventsRequest {
            action: "deletion_request.approve".into(),
            ..Default::default()
        })
        .await;
    assert!(approvals.is_empty(), "{approvals:?}");
    figure(format_args!(
        "{:?}: self-approvals accepted 0 of {attempts} attempts",
        app.db
    ));
}

async fn sales_reps_and_services_can_neither_approve_reject_nor_restore(app: TestApp) {
    let customer = customer_with_records(&app, "Roles Ltd").await;
    let pending = app.pending_deletion(&customer.id, "roles").await;
    for (user, role) in [("rep-2", "sales_rep"), ("svc-1", "service")] {
        let mut client = app.approvals_as("acme", user, &[role]);
        assert_status(
            approve(&mut client, &pending.id).await,
            Code::PermissionDenied,
            "ROLE_NOT_ALLOWED",
        );
        assert_status(
            reject(&mut client, &pending.id, "no").await,
            Code::PermissionDenied,
            "ROLE_NOT_ALLOWED",
        );
    }
    let still = app.deletion_request(&pending.id).await;
    assert_eq!(
        (state(&still), still.etag.as_str()),
        (S::Pending, pending.etag.as_str())
    );

    // A service may submit, but never cancel or execute, even its own request.
    let other = app.create_customer("Service-requested").await;
    let preview = app.preview(&other.id).await;
    let mut service = app.approvals_as("acme", "svc-1", &["service"]);
    let by_service = submit(&mut service, &other.id, &preview.etag, "sync cleanup")
        .await
        .unwrap();
    assert_status(
        cancel(&mut service, &by_service.id).await,
        Code::PermissionDenied,
        "ROLE_NOT_ALLOWED",
    );
    let approved = approve(
        &mut app.approvals_as("acme", "sup-1", &["supervisor"]),
        &by_service.id,
    )
    .await
    .unwrap();
    assert_status(
        execute(
            &mut app.customers_as("acme", "svc-1", &["service"]),
            &other.id,
            &approved.id,
            &preview.etag,
        )
        .await,
        Code::PermissionDenied,
        "ROLE_NOT_ALLOWED",
    );
    assert_eq!(
        state(&app.deletion_request(&by_service.id).await),
        S::Approved
    );
    assert!(fetch(&app, &other.id).await.delete_time.is_none());

    // Restore is for supervisors and admins.
    approve(
        &mut app.approvals_as("acme", "sup-1", &["supervisor"]),
        &pending.id,
    )
    .await
    .unwrap();
    execute(
        &mut app.customers(),
        &customer.id,
        &pending.id,
        &pending.preview.unwrap().etag,
    )
    .await
    .unwrap();
    let deleted = fetch(&app, &customer.id).await;
    let graph = app.snapshot(&customer.id).await;
    for (user, role) in [("rep-2", "sales_rep"), ("svc-1", "service")] {
        for validate_only in [true, false] {
            assert_status(
                restore(
                    &mut app.customers_as("acme", user, &[role]),
                    &customer.id,
                    validate_only,
                )
                .await,
                Code::PermissionDenied,
                "ROLE_NOT_ALLOWED",
            );
        }
    }
    assert_eq!(fetch(&app, &customer.id).await, deleted, "still deleted");
    assert_eq!(app.snapshot(&customer.id).await, graph);
    assert_eq!(app.audit_count(&customer.id, "customer.restore").await, 0);
}

async fn a_rejection_needs_a_comment(app: TestApp) {
    let customer = app.create_customer("Rejected Inc").await;
    let pending = app
        .pending_deletion(&customer.id, "inactive for years")
        .await;
    let mut sup = app.approvals_as("acme", "sup-1", &["supervisor"]);
    for blank in ["", "   "] {
        let status = assert_status(
            reject(&mut sup, &pending.id, blank).await,
            Code::InvalidArgument,
            "INVALID_FIELD",
        );
        assert_eq!(bad_fields(&status), ["comment"]);
    }
    let still = app.deletion_request(&pending.id).await;
    assert_eq!(
        (state(&still), still.etag.as_str()),
        (S::Pending, pending.etag.as_str())
    );

    let rejected = reject(&mut sup, &pending.id, "they still order from us")
        .await
        .unwrap();
    assert_eq!(state(&rejected), S::Rejected);
    assert_eq!(rejected.decided_by, "sup-1");
    assert_eq!(rejected.decision_comment, "they still order from us");
    assert!(rejected.decide_time.is_some());
    assert_eq!(app.deletion_request(&pending.id).await, rejected);
    assert_status(
        approve(&mut sup, &pending.id).await,
        Code::FailedPrecondition,
        "DELETION_REQUEST_NOT_PENDING",
    );
    // A rejected request is closed: a new one may be made.
    let again = app.pending_deletion(&customer.id, "asked again").await;
    assert_eq!(state(&again), S::Pending);
}

#[derive(Debug, Clone, Copy)]
enum Blocking {
    ActiveContract,
    OpenOrder,
    ActiveProject,
    LegalHold,
}

impl Blocking {
    const ALL: [Blocking; 4] = [
        Blocking::ActiveContract,
        Blocking::OpenOrder,
        Blocking::ActiveProject,
        Blocking::LegalHold,
    ];

    /// (reason, relation, state)
    fn expected(self) -> (&'static str, &'static str, &'static str) {
        match self {
            Blocking::ActiveContract => ("ACTIVE_CONTRACT", "contract", "ACTIVE"),
            Blocking::OpenOrder => ("OPEN_ORDER", "order", "OPEN"),
            Blocking::ActiveProject => ("ACTIVE_PROJECT", "project", "ACTIVE"),
            Blocking::LegalHold => ("LEGAL_HOLD", "", ""),
        }
    }

    /// Makes `customer` blocked; returns the ids the blocker must list.
    async fn apply(self, app: &TestApp, customer: &pb::Customer) -> Vec<String> {
        let mut r = app.records();
        let c = customer.id.as_str();
        let mut ids = Vec::new();
        for _ in 0..2 {
            let id = match self {
                Blocking::ActiveContract => {
                    r.create_contract(pb::CreateContractRequest {
                        contract: Some(new_contract(c, pb::ContractStatus::Active)),
                        request_id: String::new(),
                    })
                    .await
                    .unwrap()
                    .into_inner()
                    .contract
                    .unwrap()
                    .id
                }
                Blocking::OpenOrder => {
                    r.create_order(pb::CreateOrderRequest {
                        order: Some(new_order(c, pb::OrderStatus::Open)),
                        request_id: String::new(),
                    })
                    .await
                    .unwrap()
                    .into_inner()
                    .order
                    .unwrap()
                    .id
                }
                Blocking::ActiveProject => {
                    r.create_project(pb::CreateProjectRequest {
                        project: Some(new_project(c, pb::ProjectStatus::Active)),
                        request_id: String::new(),
                    })
                    .await
                    .unwrap()
                    .into_inner()
                    .project
                    .unwrap()
                    .id
                }
                Blocking::LegalHold => {
                    app.customers_as("acme", "admin-1", &["admin"])
                        .set_legal_hold(pb::SetLegalHoldRequest {
                            customer_id: customer.id.clone(),
                            legal_hold: true,
                            reason: "case 2026-17".into(),
                            request_id: String::new(),
                        })
                        .await
                        .expect("an admin sets a legal hold");
                    return vec![customer.id.clone()];
                }
            };
            ids.push(id);
        }
        ids
    }
}

async fn each_blocker_stops_submit_and_is_listed_by_the_preview_with_ids_and_what_to_do(
    app: TestApp,
) {
    let all = customer_with_records(&app, "Blocked by everything").await;
    let mut all_reasons = Vec::new();
    for blocking in Blocking::ALL {
        let (reason, relation, record_state) = blocking.expected();
        let customer = customer_with_records(&app, &format!("Blocked by {reason}")).await;
        let mut ids = blocking.apply(&app, &customer).await;
        blocking.apply(&app, &all).await;
        all_reasons.push(reason);

        let preview = app.preview(&customer.id).await;
        assert_eq!(
            preview.blockers.len(),
            1,
            "{reason}: {:?}",
            preview.blockers
        );
        let blocker = &preview.blockers[0];
        assert_eq!(blocker.reason, reason);
        assert_eq!(blocker.relation, relation);
        assert_eq!(blocker.count, ids.len() as i64, "{reason}");
        let mut listed = blocker.sample_ids.clone();
        listed.sort();
        ids.sort();
        assert_eq!(listed, ids, "{reason}: the blocking ids");
        assert!(
            blocker.resolution.len() > 10,
            "{reason}: says what to do: {:?}",
            blocker.resolution
        );
        if !relation.is_empty() {
            let impact = preview
                .impacts
                .iter()
                .find(|i| i.relation == relation && i.state == record_state)
                .unwrap_or_else(|| panic!("{reason}: no impact in {:?}", preview.impacts));
            assert_eq!(impact.policy, pb::DeletionPolicy::Block as i32);
            assert_eq!(impact.count, 2);
        } else {
            assert!(fetch(&app, &customer.id).await.legal_hold);
        }
        assert_eq!(
            preview.cascade_count, 4,
            "{reason}: two contacts, a deal, an activity"
        );

        let before = fetch(&app, &customer.id).await;
        assert_eq!(preview.etag, before.etag);
        let status = assert_status(
            submit(
                &mut app.approvals_as("acme", "rep-1", &["sales_rep"]),
                &customer.id,
                &preview.etag,
                "blocked",
            )
            .await,
            Code::FailedPrecondition,
            "CUSTOMER_HAS_BLOCKERS",
        );
        let subject = if relation.is_empty() {
            format!("customer:{reason}")
        } else {
            format!("{relation}:{reason}")
        };
        assert_eq!(
            precondition_subjects(&status),
            [("CUSTOMER_HAS_BLOCKERS".to_owned(), subject)],
            "{status:?}"
        );
        assert!(requests_of(&app, &customer.id).await.is_empty(), "{reason}");
        assert_eq!(fetch(&app, &customer.id).await, before, "{reason}");
    }

    let preview = app.preview(&all.id).await;
    let mut reasons: Vec<&str> = preview.blockers.iter().map(|b| b.reason.as_str()).collect();
    reasons.sort();
    all_reasons.sort();
    assert_eq!(reasons, all_reasons);
    let status = assert_status(
        submit(
            &mut app.approvals_as("acme", "rep-1", &["sales_rep"]),
            &all.id,
            &preview.etag,
            "blocked",
        )
        .await,
        Code::FailedPrecondition,
        "CUSTOMER_HAS_BLOCKERS",
    );
    assert_eq!(precondition_subjects(&status).len(), 4, "{status:?}");

    // Doing what the resolution says unblocks: cancel the open orders, finish the projects.
    let resolved = app.create_customer("Resolved").await;
    let orders = Blocking::OpenOrder.apply(&app, &resolved).await;
    let projects = Blocking::ActiveProject.apply(&app, &resolved).await;
    let mut r = app.records();
    for id in orders {
        r.update_order(pb::UpdateOrderRequest {
            order: Some(pb::Order {
                id,
                status: pb::OrderStatus::Cancelled as i32,
                ..Default::default()
            }),
            update_mask: mask(&["status"]),
            ..Default::default()
        })
        .await
        .unwrap();
    }
    for id in projects {
        r.update_project(pb::UpdateProjectRequest {
            project: Some(pb::Project {
                id,
                status: pb::ProjectStatus::Done as i32,
                ..Default::default()
            }),
            update_mask: mask(&["status"]),
            ..Default::default()
        })
        .await
        .unwrap();
    }
    let preview = app.preview(&resolved.id).await;
    assert!(preview.blockers.is_empty(), "{:?}", preview.blockers);
    assert_eq!((preview.cascade_count, preview.keep_count), (2, 2));
    app.pending_deletion(&resolved.id, "resolved").await;
}

async fn a_legal_hold_set_after_approval_stops_the_delete(app: TestApp) {
    let customer = customer_with_records(&app, "Held After Approval").await;
    let approved = app.approved_deletion(&customer.id, "held").await;
    // Set behind the service's back on purpose. SetLegalHold moves the customer's etag, so
    // through the API this request would go STALE first; the test proves that a hold the
    // request's etag does not see (a restored backup, a migration, a bug elsewhere) still stops
    // the delete, because DeleteCustomer re-checks the blockers themselves.
    app.sql(&format!(
        "UPDATE customer SET legal_hold = true WHERE tenant_id = 'acme' AND name = '{}'",
        customer.name
    ))
    .await;
    let before = customer_snapshot(&app, &customer.id).await;
    let status = assert_status(
        execute(
            &mut app.customers(),
            &customer.id,
            &approved.id,
            &approved.preview.as_ref().unwrap().etag,
        )
        .await,
        Code::FailedPrecondition,
        "CUSTOMER_HAS_BLOCKERS",
    );
    assert_eq!(
        precondition_subjects(&status),
        [(
            "CUSTOMER_HAS_BLOCKERS".to_owned(),
            "customer:LEGAL_HOLD".to_owned()
        )]
    );
    assert_eq!(customer_snapshot(&app, &customer.id).await, before);
    assert_eq!(
        state(&app.deletion_request(&approved.id).await),
        S::Approved
    );
    assert_eq!(app.audit_count(&customer.id, "customer.delete").await, 0);
}

/// The customer and its whole graph.
async fn customer_snapshot(app: &TestApp, id: &str) -> (pb::Customer, crate::common::Snapshot) {
    (fetch(app, id).await, app.snapshot(id).await)
}

async fn a_record_added_after_approval_makes_delete_fail_stale_and_deletes_nothing(app: TestApp) {
    let customer = customer_with_records(&app, "Grew After Approval").await;
    let approved = app.approved_deletion(&customer.id, "grew").await;
    let previewed = approved.preview.clone().unwrap();
    add_contact(&app, &customer.id).await;
    let before = customer_snapshot(&app, &customer.id).await;
    assert_eq!(before.1.live(), 5);

    assert_status(
        execute(
            &mut app.customers(),
            &customer.id,
            &approved.id,
            &previewed.etag,
        )
        .await,
        Code::FailedPrecondition,
        "PREVIEW_STALE",
    );
    let stale = app.deletion_request(&approved.id).await;
    assert_eq!(state(&stale), S::Stale);
    assert_ne!(
        stale.etag, approved.etag,
        "the transition is a new version of the request"
    );
    assert_eq!(
        customer_snapshot(&app, &customer.id).await,
        before,
        "nothing deleted, nothing changed"
    );
    // A stale request stays dead, whatever etag is sent.
    for etag in [previewed.etag.as_str(), before.0.etag.as_str()] {
        assert_status(
            execute(&mut app.customers(), &customer.id, &approved.id, etag).await,
            Code::FailedPrecondition,
            "DELETION_NOT_APPROVED",
        );
    }
    assert_eq!(customer_snapshot(&app, &customer.id).await, before);
    assert_eq!(
        app.audit_count(&customer.id, "deletion_request.stale")
            .await,
        1
    );
    assert_eq!(app.audit_count(&customer.id, "customer.delete").await, 0);
    // The slot is free: preview again, submit anew.
    let fresh = app.approved_deletion(&customer.id, "grew, again").await;
    let deleted = execute(
        &mut app.customers(),
        &customer.id,
        &fresh.id,
        &fresh.preview.unwrap().etag,
    )
    .await
    .unwrap();
    assert_eq!(deleted.deleted_records, 5);
}

async fn a_graph_changed_after_submit_makes_approval_fail_stale(app: TestApp) {
    for change in ["create", "update", "delete"] {
        let customer = customer_with_records(&app, &format!("Changed by {change}")).await;
        let pending = app.pending_deletion(&customer.id, change).await;
        let contact = app.snapshot(&customer.id).await.contacts[0].id.clone();
        let mut r = app.records_as("acme", "rep-2", &["sales_rep"]);
        match change {
            "create" => {
                add_contact(&app, &customer.id).await;
            }
            "update" => {
                crate::common::touch_record(&mut r, crate::common::Kind::Contact, &contact)
                    .await
                    .unwrap();
            }
            _ => {
                crate::common::delete_record(&mut r, crate::common::Kind::Contact, &contact)
                    .await
                    .unwrap()
                    .unwrap();
            }
        }
        let before = customer_snapshot(&app, &customer.id).await;
        assert_status(
            approve(
                &mut app.approvals_as("acme", "sup-1", &["supervisor"]),
                &pending.id,
            )
            .await,
            Code::FailedPrecondition,
            "PREVIEW_STALE",
        );
        let stale = app.deletion_request(&pending.id).await;
        assert_eq!(state(&stale), S::Stale, "{change}");
        assert!(stale.decided_by.is_empty(), "{change}: nobody approved it");
        assert_status(
            execute(
                &mut app.customers(),
                &customer.id,
                &pending.id,
                &before.0.etag,
            )
            .await,
            Code::FailedPrecondition,
            "DELETION_NOT_APPROVED",
        );
        assert_eq!(
            customer_snapshot(&app, &customer.id).await,
            before,
            "{change}"
        );
    }
}

async fn an_expired_request_can_be_neither_approved_nor_executed(app: TestApp) {
    let pending_customer = customer_with_records(&app, "Lapsed Pending").await;
    let pending = app
        .pending_deletion(&pending_customer.id, "lapse pending")
        .await;
    let approved_customer = customer_with_records(&app, "Lapsed Approved").await;
    let approved = app
        .approved_deletion(&approved_customer.id, "lapse approved")
        .await;
    let idle_customer = app.create_customer("Lapsed Untouched").await;
    let idle = app.pending_deletion(&idle_customer.id, "lapse idle").await;
    let withdrawn_customer = app.create_customer("Lapsed Withdrawn").await;
    let withdrawn = app
        .pending_deletion(&withdrawn_customer.id, "lapse withdrawn")
        .await;
    // The request lifetime (72 h by default) passes.
    app.advance_clock(LifecycleSettings::default().request_ttl + Duration::from_secs(1));
    for id in [&pending.id, &approved.id, &idle.id, &withdrawn.id] {
        assert_eq!(
            state(&app.deletion_request(id).await),
            S::Expired,
            "a lapsed request reads as EXPIRED"
        );
    }

    let mut sup = app.approvals_as("acme", "sup-2", &["supervisor"]);
    let before = customer_snapshot(&app, &pending_customer.id).await;
    assert_status(
        approve(&mut sup, &pending.id).await,
        Code::FailedPrecondition,
        "DELETION_REQUEST_EXPIRED",
    );
    assert_status(
        approve(&mut sup, &pending.id).await,
        Code::FailedPrecondition,
        "DELETION_REQUEST_NOT_PENDING",
    );
    let expired = app.deletion_request(&pending.id).await;
    assert_eq!(state(&expired), S::Expired);
    assert!(expired.decided_by.is_empty());
    assert_eq!(customer_snapshot(&app, &pending_customer.id).await, before);

    let before = customer_snapshot(&app, &approved_customer.id).await;
    let etag = approved.preview.as_ref().unwrap().etag.clone();
    assert_status(
        execute(
            &mut app.customers(),
            &approved_customer.id,
            &approved.id,
            &etag,
        )
        .await,
        Code::FailedPrecondition,
        "DELETION_REQUEST_EXPIRED",
    );
    assert_status(
        execute(
            &mut app.customers(),
            &approved_customer.id,
            &approved.id,
            &etag,
        )
        .await,
        Code::FailedPrecondition,
        "DELETION_NOT_APPROVED",
    );
    assert_eq!(state(&app.deletion_request(&approved.id).await), S::Expired);
    assert_eq!(
        customer_snapshot(&app, &approved_customer.id).await,
        before,
        "nothing deleted"
    );
    // Nor withdrawn: EXPIRED is final, it does not turn CANCELLED.
    let mut requester = app.approvals_as("acme", "rep-1", &["sales_rep"]);
    assert_status(
        cancel(&mut requester, &withdrawn.id).await,
        Code::FailedPrecondition,
        "DELETION_REQUEST_EXPIRED",
    );
    assert_status(
        cancel(&mut requester, &withdrawn.id).await,
        Code::FailedPrecondition,
        "DELETION_REQUEST_NOT_OPEN",
    );
    let still_expired = app.deletion_request(&withdrawn.id).await;
    assert_eq!(state(&still_expired), S::Expired);
    assert!(still_expired.decided_by.is_empty());
    for c in [
        &pending_customer.id,
        &approved_customer.id,
        &withdrawn_customer.id,
    ] {
        assert_eq!(app.audit_count(c, "deletion_request.expire").await, 1);
        assert_eq!(app.audit_count(c, "deletion_request.cancel").await, 0);
        assert_eq!(app.audit_count(c, "customer.delete").await, 0);
    }

    // A lapsed request holds no slot: each customer may be asked for again, including the one
    // whose lapse nobody has recorded yet.
    for c in [
        &pending_customer.id,
        &approved_customer.id,
        &idle_customer.id,
    ] {
        app.pending_deletion(c, "asked again").await;
    }
    let idle_now = app.deletion_request(&idle.id).await;
    assert_eq!(state(&idle_now), S::Expired);
}

async fn delete_needs_an_approved_request_and_the_current_etag(app: TestApp) {
    let customer = customer_with_records(&app, "Not Yet Approved").await;
    let before = customer_snapshot(&app, &customer.id).await;
    let etag = before.0.etag.clone();
    let mut rep = app.customers();
    let mut sup = app.approvals_as("acme", "sup-1", &["supervisor"]);

    let pending = app.pending_deletion(&customer.id, "pending").await;
    assert_status(
        execute(&mut rep, &customer.id, &pending.id, &etag).await,
        Code::FailedPrecondition,
        "DELETION_NOT_APPROVED",
    );
    assert_eq!(state(&app.deletion_request(&pending.id).await), S::Pending);
    reject(&mut sup, &pending.id, "no").await.unwrap();
    assert_status(
        execute(&mut rep, &customer.id, &pending.id, &etag).await,
        Code::FailedPrecondition,
        "DELETION_NOT_APPROVED",
    );
    let withdrawn = app.pending_deletion(&customer.id, "withdrawn").await;
    cancel(
        &mut app.approvals_as("acme", "rep-1", &["sales_rep"]),
        &withdrawn.id,
    )
    .await
    .unwrap();
    assert_status(
        execute(&mut rep, &customer.id, &withdrawn.id, &etag).await,
        Code::FailedPrecondition,
        "DELETION_NOT_APPROVED",
    );
    assert_eq!(customer_snapshot(&app, &customer.id).await, before);

    let approved = app.approved_deletion(&customer.id, "approved").await;
    assert_status(
        execute(&mut rep, &customer.id, &approved.id, "999").await,
        Code::Aborted,
        "ETAG_MISMATCH",
    );
    // Another customer's id with this request: the request is not that customer's.
    let other = app.create_customer("Bystander").await;
    assert_status(
        execute(&mut rep, &other.id, &approved.id, &other.etag).await,
        Code::NotFound,
        "NOT_FOUND",
    );
    assert_eq!(
        state(&app.deletion_request(&approved.id).await),
        S::Approved
    );
    assert_eq!(customer_snapshot(&app, &customer.id).await, before);
    assert_eq!(fetch(&app, &other.id).await, other);

    let deleted = execute(&mut rep, &customer.id, &approved.id, &etag)
        .await
        .unwrap();
    assert_eq!(deleted.deleted_records, 4);
    assert_eq!(
        state(&app.deletion_request(&approved.id).await),
        S::Executed
    );
}

async fn restoring_a_live_customer_is_already_exists(app: TestApp) {
    let created = customer_with_records(&app, "Alive and Well").await;
    let customer = fetch(&app, &created.id).await;
    let mut sup = app.customers_as("acme", "sup-1", &["supervisor"]);
    for validate_only in [true, false] {
        assert_status(
            restore(&mut sup, &customer.id, validate_only).await,
            Code::AlreadyExists,
            "CUSTOMER_NOT_DELETED",
        );
    }
    assert_eq!(fetch(&app, &customer.id).await, customer);
    assert_status(
        restore(&mut sup, &random_id(), false).await,
        Code::NotFound,
        "NOT_FOUND",
    );

    app.delete_customer(&customer.id).await;
    restore(&mut sup, &customer.id, false).await.unwrap();
    let restored = fetch(&app, &customer.id).await;
    assert_status(
        restore(&mut sup, &customer.id, false).await,
        Code::AlreadyExists,
        "CUSTOMER_NOT_DELETED",
    );
    assert_eq!(fetch(&app, &customer.id).await, restored);
    assert_eq!(app.audit_count(&customer.id, "customer.restore").await, 1);
}

async fn a_restore_whose_external_ref_is_taken_fails_naming_it_and_restores_nothing(app: TestApp) {
    let mut rep = app.customers();
    let mut with_ref = bare_customer("Original Holder");
    with_ref.customer.as_mut().unwrap().external_ref = "ERP-7".into();
    let original = rep
        .create_customer(with_ref)
        .await
        .unwrap()
        .into_inner()
        .customer
        .unwrap();
    add_contact(&app, &original.id).await;
    let deleted = app.delete_customer(&original.id).await;

    let mut taker = bare_customer("New Holder");
    taker.customer.as_mut().unwrap().external_ref = "ERP-7".into();
    let new_holder = rep
        .create_customer(taker)
        .await
        .expect("a deleted customer's external_ref is free")
        .into_inner()
        .customer
        .unwrap();

    let before = customer_snapshot(&app, &original.id).await;
    let head = app.verify_audit().await.head_sequence;
    let mut sup = app.customers_as("acme", "sup-2", &["supervisor"]);
    for validate_only in [true, false] {
        let status = assert_status(
            restore(&mut sup, &original.id, validate_only).await,
            Code::FailedPrecondition,
            "RESTORE_CONFLICT",
        );
        assert_eq!(
            precondition_subjects(&status),
            [("RESTORE_CONFLICT".to_owned(), "external_ref".to_owned())]
        );
        let info = status.get_error_details().error_info().cloned().unwrap();
        assert_eq!(
            info.metadata.get("field").map(String::as_str),
            Some("external_ref")
        );
    }
    assert_eq!(
        customer_snapshot(&app, &original.id).await,
        before,
        "nothing restored"
    );
    assert!(before.0.delete_time.is_some() && before.1.live() == 0);
    assert_eq!(
        app.verify_audit().await.head_sequence,
        head,
        "nothing written"
    );
    assert_eq!(fetch(&app, &new_holder.id).await, new_holder);

    // Free the reference; validate_only then says what a restore would do, and writes nothing.
    let moved = rep
        .update_customer(pb::UpdateCustomerRequest {
            customer: Some(pb::Customer {
                id: new_holder.id.clone(),
                external_ref: "ERP-8".into(),
                ..Default::default()
            }),
            update_mask: mask(&["external_ref"]),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .customer
        .unwrap();
    let head = app.verify_audit().await.head_sequence;
    let dry = restore(&mut sup, &original.id, true).await.unwrap();
    assert_eq!(dry.restored_records, deleted.deleted_records);
    assert_eq!(
        dry.customer.as_ref(),
        Some(&before.0),
        "validate_only returns it unchanged"
    );
    assert_eq!(customer_snapshot(&app, &original.id).await, before);
    assert_eq!(app.verify_audit().await.head_sequence, head);

    let restored = restore(&mut sup, &original.id, false).await.unwrap();
    assert_eq!(restored.restored_records, 1);
    let back = fetch(&app, &original.id).await;
    assert!(back.delete_time.is_none() && back.deletion_id.is_empty());
    assert_eq!(back.external_ref, "ERP-7");
    assert_eq!(app.snapshot(&original.id).await.live(), 1);
    assert_eq!(fetch(&app, &moved.id).await, moved);
}

async fn records_deleted_on_their_own_before_the_customer_stay_deleted_after_restore(app: TestApp) {
    use crate::common::{Kind, delete_record};
    let customer = app.create_customer("Pruned First").await;
    let mut r = app.records();
    let c = customer.id.as_str();
    let mut own = Vec::new();
    // Two of each deletable kind, in a deletable state; the first of each is deleted on its own.
    for _ in 0..2 {
        let ids = [
            (
                Kind::Contact,
                r.create_contact(pb::CreateContactRequest {
                    contact: Some(new_contact(c)),
                    request_id: String::new(),
                })
                .await
                .unwrap()
                .into_inner()
                .contact
                .unwrap()
                .id,
            ),
            (
                Kind::Activity,
                r.create_activity(pb::CreateActivityRequest {
                    activity: Some(new_activity(c)),
                    request_id: String::new(),
                })
                .await
                .unwrap()
                .into_inner()
                .activity
                .unwrap()
                .id,
            ),
            (
                Kind::Deal,
                r.create_deal(pb::CreateDealRequest {
                    deal: Some(new_deal(c, pb::DealStage::Won)),
                    request_id: String::new(),
                })
                .await
                .unwrap()
                .into_inner()
                .deal
                .unwrap()
                .id,
            ),
            (
                Kind::Contract,
                r.create_contract(pb::CreateContractRequest {
                    contract: Some(new_contract(c, pb::ContractStatus::Draft)),
                    request_id: String::new(),
                })
                .await
                .unwrap()
                .into_inner()
                .contract
                .unwrap()
                .id,
            ),
            (
                Kind::Project,
                r.create_project(pb::CreateProjectRequest {
                    project: Some(new_project(c, pb::ProjectStatus::Done)),
                    request_id: String::new(),
                })
                .await
                .unwrap()
                .into_inner()
                .project
                .unwrap()
                .id,
            ),
        ];
        own.push(ids);
    }
    for (kind, id) in &own[0] {
        delete_record(&mut r, *kind, id).await.unwrap().unwrap();
    }
    let before = customer_snapshot(&app, &customer.id).await;
    assert_eq!(before.1.live(), 5);

    let deleted = app.delete_customer(&customer.id).await;
    assert_eq!(deleted.deleted_records, 5, "only the live ones");
    let during = app.snapshot(&customer.id).await;
    for (_, id, delete_time) in during.rows() {
        let was = before.1.rows().into_iter().find(|r| r.1 == id).unwrap();
        if was.2.is_some() {
            assert_eq!(
                delete_time, was.2,
                "deleted on its own: its own delete_time kept"
            );
        } else {
            assert_eq!(delete_time, deleted.customer.as_ref().unwrap().delete_time);
        }
    }
    let restored = restore(
        &mut app.customers_as("acme", "sup-2", &["supervisor"]),
        &customer.id,
        false,
    )
    .await
    .unwrap();
    assert_eq!(restored.restored_records, 5);
    let after = customer_snapshot(&app, &customer.id).await;
    assert_eq!(
        after.1, before.1,
        "the same five live, the same five deleted, field by field"
    );
    assert_eq!(
        pb::Customer {
            etag: String::new(),
            ..after.0
        },
        pb::Customer {
            etag: String::new(),
            ..before.0
        }
    );
}

async fn keep_records_are_untouched_by_delete_and_restore(app: TestApp) {
    let customer = app.create_customer("Books Kept").await;
    let mut r = app.records();
    let c = customer.id.as_str();
    for status in [pb::OrderStatus::Paid, pb::OrderStatus::Cancelled] {
        r.create_order(pb::CreateOrderRequest {
            order: Some(new_order(c, status)),
            request_id: String::new(),
        })
        .await
        .unwrap();
    }
    for status in [pb::ContractStatus::Expired, pb::ContractStatus::Terminated] {
        r.create_contract(pb::CreateContractRequest {
            contract: Some(new_contract(c, status)),
            request_id: String::new(),
        })
        .await
        .unwrap();
    }
    add_contact(&app, c).await;
    let before = customer_snapshot(&app, c).await;

    let preview = app.preview(c).await;
    assert_eq!((preview.cascade_count, preview.keep_count), (1, 4));
    for (relation, record_state) in [
        ("order", "PAID"),
        ("order", "CANCELLED"),
        ("contract", "EXPIRED"),
        ("contract", "TERMINATED"),
    ] {
        let impact = preview
            .impacts
            .iter()
            .find(|i| i.relation == relation && i.state == record_state)
            .unwrap_or_else(|| panic!("{relation} {record_state}: {:?}", preview.impacts));
        assert_eq!(impact.policy, pb::DeletionPolicy::Keep as i32);
        assert_eq!(impact.count, 1);
    }

    let deleted = app.delete_customer(c).await;
    assert_eq!(deleted.deleted_records, 1, "the contact only");
    let during = app.snapshot(c).await;
    assert_eq!(
        during.orders, before.1.orders,
        "orders untouched, etags included"
    );
    assert_eq!(during.contracts, before.1.contracts, "contracts untouched");
    assert!(during.contacts.iter().all(|x| x.delete_time.is_some()));

    restore(
        &mut app.customers_as("acme", "sup-2", &["supervisor"]),
        c,
        false,
    )
    .await
    .unwrap();
    assert_eq!(app.snapshot(c).await, before.1);
}

async fn the_requester_can_cancel_but_another_sales_rep_cannot(app: TestApp) {
    let customer = customer_with_records(&app, "Withdrawn Ltd").await;
    let pending = app.pending_deletion(&customer.id, "withdraw me").await;
    for (user, role) in [("rep-2", "sales_rep"), ("svc-1", "service")] {
        assert_status(
            cancel(&mut app.approvals_as("acme", user, &[role]), &pending.id).await,
            Code::PermissionDenied,
            "ROLE_NOT_ALLOWED",
        );
    }
    assert_eq!(state(&app.deletion_request(&pending.id).await), S::Pending);
    let mut requester = app.approvals_as("acme", "rep-1", &["sales_rep"]);
    let cancelled = cancel(&mut requester, &pending.id).await.unwrap();
    assert_eq!(state(&cancelled), S::Cancelled);
    assert_eq!(cancelled.decided_by, "rep-1");
    assert_eq!(app.deletion_request(&pending.id).await, cancelled);
    assert_status(
        cancel(&mut requester, &pending.id).await,
        Code::FailedPrecondition,
        "DELETION_REQUEST_NOT_OPEN",
    );

    // Executing is the requester's too (or a supervisor's): not another sales rep's.
    let approved = app.approved_deletion(&customer.id, "delete me").await;
    let before = customer_snapshot(&app, &customer.id).await;
    assert_status(
        execute(
            &mut app.customers_as("acme", "rep-2", &["sales_rep"]),
            &customer.id,
            &approved.id,
            &before.0.etag,
        )
        .await,
        Code::PermissionDenied,
        "ROLE_NOT_ALLOWED",
    );
    assert_eq!(customer_snapshot(&app, &customer.id).await, before);
    // A supervisor may withdraw anyone's request, approved or not.
    let by_supervisor = cancel(
        &mut app.approvals_as("acme", "sup-3", &["supervisor"]),
        &approved.id,
    )
    .await
    .unwrap();
    assert_eq!(state(&by_supervisor), S::Cancelled);
    assert_eq!(by_supervisor.decided_by, "sup-3");
    assert_eq!(
        app.audit_count(&customer.id, "deletion_request.cancel")
            .await,
        2
    );
}

async fn a_customer_has_at_most_one_open_request(app: TestApp) {
    let customer = customer_with_records(&app, "Asked Twice").await;
    let first = app.pending_deletion(&customer.id, "first").await;
    let mut rep2 = app.approvals_as("acme", "rep-2", &["sales_rep"]);
    let etag = app.preview(&customer.id).await.etag;
    assert_status(
        submit(&mut rep2, &customer.id, &etag, "second").await,
        Code::FailedPrecondition,
        "DELETION_ALREADY_REQUESTED",
    );
    approve(
        &mut app.approvals_as("acme", "sup-1", &["supervisor"]),
        &first.id,
    )
    .await
    .unwrap();
    assert_status(
        submit(&mut rep2, &customer.id, &etag, "second").await,
        Code::FailedPrecondition,
        "DELETION_ALREADY_REQUESTED",
    );
    assert_eq!(requests_of(&app, &customer.id).await.len(), 1);
    cancel(
        &mut app.approvals_as("acme", "rep-1", &["sales_rep"]),
        &first.id,
    )
    .await
    .unwrap();
    let second = submit(&mut rep2, &customer.id, &etag, "second")
        .await
        .unwrap();
    assert_eq!(state(&second), S::Pending);

    // Eight requesters at once: one request.
    const REQUESTERS: usize = 8;
    let contested = customer_with_records(&app, "Asked At Once").await;
    let etag = app.preview(&contested.id).await.etag;
    let tasks: Vec<_> = (0..REQUESTERS)
        .map(|i| {
            let mut client = app.approvals_as("acme", &format!("rep-{i}"), &["sales_rep"]);
            let (id, etag) = (contested.id.clone(), etag.clone());
            tokio::spawn(async move { submit(&mut client, &id, &etag, "at once").await })
        })
        .collect();
    let mut accepted = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => accepted += 1,
            refused => {
                assert_status(
                    refused,
                    Code::FailedPrecondition,
                    "DELETION_ALREADY_REQUESTED",
                );
            }
        }
    }
    assert_eq!(accepted, 1);
    let open = requests_of(&app, &contested.id).await;
    assert_eq!(open.len(), 1);
    assert_eq!(state(&open[0]), S::Pending);
    figure(format_args!(
        "{:?}: {REQUESTERS} concurrent submits for one customer, {accepted} accepted",
        app.db
    ));
}

async fn writes_to_a_deleted_customer_or_its_kept_records_fail_customer_deleted(app: TestApp) {
    use crate::common::{Kind, create_record, touch_record};
    let customer = app.create_customer("Gone For Good").await;
    let mut r = app.records();
    let c = customer.id.as_str();
    add_contact(&app, c).await;
    let paid = r
        .create_order(pb::CreateOrderRequest {
            order: Some(new_order(c, pb::OrderStatus::Paid)),
            request_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .order
        .unwrap();
    let expired = r
        .create_contract(pb::CreateContractRequest {
            contract: Some(new_contract(c, pb::ContractStatus::Expired)),
            request_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .contract
        .unwrap();
    app.delete_customer(c).await;
    let before = customer_snapshot(&app, c).await;

    let mut attempts = 0;
    let mut expect_deleted = |result: Result<(), Status>, what: &str| {
        attempts += 1;
        let status = result.expect_err(what);
        assert_eq!(
            status.code(),
            Code::FailedPrecondition,
            "{what}: {status:?}"
        );
        let reason = status
            .get_error_details()
            .error_info()
            .map(|i| i.reason.clone());
        assert_eq!(
            reason.as_deref(),
            Some("CUSTOMER_DELETED"),
            "{what}: {status:?}"
        );
    };
    let result = app
        .customers()
        .update_customer(pb::UpdateCustomerRequest {
            customer: Some(pb::Customer {
                id: c.into(),
                name: "Back From The Dead".into(),
                ..Default::default()
            }),
            update_mask: mask(&["name"]),
            ..Default::default()
        })
        .await;
    expect_deleted(result.map(drop), "UpdateCustomer");
    for kind in Kind::ALL {
        expect_deleted(
            create_record(&mut r, kind, c).await.map(drop),
            &format!("create {}", kind.name()),
        );
    }
    expect_deleted(
        touch_record(&mut r, Kind::Order, &paid.id).await.map(drop),
        "update kept order",
    );
    expect_deleted(
        touch_record(&mut r, Kind::Contract, &expired.id)
            .await
            .map(drop),
        "update kept contract",
    );
    let preview = app
        .customers()
        .preview_delete_customer(pb::PreviewDeleteCustomerRequest {
            customer_id: c.into(),
        })
        .await;
    expect_deleted(preview.map(drop), "PreviewDeleteCustomer");
    let resubmit = submit(
        &mut app.approvals_as("acme", "rep-1", &["sales_rep"]),
        c,
        &before.0.etag,
        "again",
    )
    .await;
    expect_deleted(resubmit.map(drop), "SubmitDeletionRequest");
    assert_eq!(customer_snapshot(&app, c).await, before, "nothing changed");
    figure(format_args!(
        "{:?}: {attempts} writes to a deleted customer's graph, all CUSTOMER_DELETED",
        app.db
    ));
}

/// records.proto: "A write to a record of a deleted customer is FAILED_PRECONDITION (reason
/// CUSTOMER_DELETED)" — the records the deletion took included: restoring the customer is what
/// the client must do, which a generic "record deleted" does not say.
async fn writes_to_the_records_a_deletion_took_fail_customer_deleted(app: TestApp) {
    use crate::common::{Kind, create_record, delete_record, touch_record};
    let customer = app.create_customer("Took Its Records").await;
    let c = customer.id.as_str();
    let mut r = app.records();
    let mut taken = Vec::new();
    for kind in [
        Kind::Contact,
        Kind::Deal,
        Kind::Contract,
        Kind::Project,
        Kind::Activity,
    ] {
        let record = create_record(&mut r, kind, c).await.unwrap();
        taken.push((kind, record.id));
    }
    // Projects are created ACTIVE (a blocker): finish it first.
    let project = &taken[3].1;
    r.update_project(pb::UpdateProjectRequest {
        project: Some(pb::Project {
            id: project.clone(),
            status: pb::ProjectStatus::Done as i32,
            ..Default::default()
        }),
        update_mask: mask(&["status"]),
        ..Default::default()
    })
    .await
    .unwrap();
    app.delete_customer(c).await;
    let before = customer_snapshot(&app, c).await;
    assert_eq!(before.1.live(), 0);
    for (kind, id) in &taken {
        for (what, result) in [
            ("update", touch_record(&mut r, *kind, id).await.map(drop)),
            (
                "delete",
                delete_record(&mut r, *kind, id).await.unwrap().map(drop),
            ),
        ] {
            let status = result.expect_err("a write to a deleted customer's record");
            assert_eq!(
                status.code(),
                Code::FailedPrecondition,
                "{what} {kind:?}: {status:?}"
            );
            let reason = status
                .get_error_details()
                .error_info()
                .map(|i| i.reason.clone());
            assert_eq!(
                reason.as_deref(),
                Some("CUSTOMER_DELETED"),
                "{what} {kind:?}: {status:?}"
            );
        }
    }
    assert_eq!(customer_snapshot(&app, c).await, before, "nothing changed");
}

async fn idempotent_retries_of_submit_approve_delete_and_restore_return_the_first_answer(
    app: TestApp,
) {
    const RETRIES: usize = 3;
    let customer = customer_with_records(&app, "Retried Ltd").await;
    let c = customer.id.clone();
    let preview = app.preview(&c).await;

    // Submit.
    let mut rep = app.approvals_as("acme", "rep-1", &["sales_rep"]);
    let submit_request = pb::SubmitDeletionRequestRequest {
        customer_id: c.clone(),
        preview_etag: preview.etag.clone(),
        reason: "retried".into(),
        request_id: request_id(),
    };
    let first = rep
        .submit_deletion_request(submit_request.clone())
        .await
        .unwrap()
        .into_inner();
    let concurrent: Vec<_> = (0..RETRIES)
        .map(|_| {
            let mut rep = rep.clone();
            let request = submit_request.clone();
            tokio::spawn(async move { rep.submit_deletion_request(request).await })
        })
        .collect();
    for task in concurrent {
        assert_eq!(task.await.unwrap().unwrap().into_inner(), first);
    }
    let status = assert_status(
        rep.submit_deletion_request(pb::SubmitDeletionRequestRequest {
            reason: "other arguments".into(),
            ..submit_request.clone()
        })
        .await,
        Code::InvalidArgument,
        "REQUEST_ID_REUSED",
    );
    assert_eq!(bad_fields(&status), ["request_id"]);
    assert_eq!(requests_of(&app, &c).await.len(), 1, "one request");
    let request = first.deletion_request.unwrap();

    // Approve: without the key a second approval would be NOT_PENDING.
    let mut sup = app.approvals_as("acme", "sup-1", &["supervisor"]);
    let approve_request = pb::ApproveDeletionRequestRequest {
        deletion_request_id: request.id.clone(),
        comment: "ok".into(),
        request_id: request_id(),
    };
    let approved = sup
        .approve_deletion_request(approve_request.clone())
        .await
        .unwrap()
        .into_inner();
    for _ in 0..RETRIES {
        assert_eq!(
            sup.approve_deletion_request(approve_request.clone())
                .await
                .unwrap()
                .into_inner(),
            approved
        );
    }
    assert_status(
        approve(&mut sup, &request.id).await,
        Code::FailedPrecondition,
        "DELETION_REQUEST_NOT_PENDING",
    );
    // A key is its caller's: another supervisor sending it gets no replay of sup-1's answer.
    assert_status(
        app.approvals_as("acme", "sup-4", &["supervisor"])
            .approve_deletion_request(approve_request.clone())
            .await,
        Code::InvalidArgument,
        "REQUEST_ID_REUSED",
    );

    // Delete: without the key a second delete would be NOT_APPROVED.
    let mut customers = app.customers();
    let delete_request = pb::DeleteCustomerRequest {
        customer_id: c.clone(),
        deletion_request_id: request.id.clone(),
        etag: preview.etag.clone(),
        request_id: request_id(),
    };
    let deleted = customers
        .delete_customer(delete_request.clone())
        .await
        .unwrap()
        .into_inner();
    for _ in 0..RETRIES {
        assert_eq!(
            customers
                .delete_customer(delete_request.clone())
                .await
                .unwrap()
                .into_inner(),
            deleted
        );
    }
    assert_status(
        execute(&mut customers, &c, &request.id, &preview.etag).await,
        Code::FailedPrecondition,
        "DELETION_NOT_APPROVED",
    );
    let gone = fetch(&app, &c).await;
    assert_eq!(
        gone.deletion_id,
        deleted.customer.as_ref().unwrap().deletion_id
    );

    // Restore: without the key a second restore would be ALREADY_EXISTS.
    let mut restorer = app.customers_as("acme", "sup-2", &["supervisor"]);
    let restore_request = pb::RestoreCustomerRequest {
        customer_id: c.clone(),
        validate_only: false,
        request_id: request_id(),
    };
    let restored = restorer
        .restore_customer(restore_request.clone())
        .await
        .unwrap()
        .into_inner();
    for _ in 0..RETRIES {
        assert_eq!(
            restorer
                .restore_customer(restore_request.clone())
                .await
                .unwrap()
                .into_inner(),
            restored
        );
    }
    assert_status(
        restore(&mut restorer, &c, false).await,
        Code::AlreadyExists,
        "CUSTOMER_NOT_DELETED",
    );
    assert_eq!(fetch(&app, &c).await, restored.customer.clone().unwrap());

    // One effect each.
    for action in [
        "deletion_request.submit",
        "deletion_request.approve",
        "customer.delete",
        "customer.restore",
    ] {
        assert_eq!(app.audit_count(&c, action).await, 1, "{action}");
    }
}

/// What a client can observe of an error, with `ids` replaced by a placeholder.
#[derive(Debug, PartialEq, Eq)]
struct Answer {
    code: Code,
    message: String,
    reason: String,
    metadata: BTreeMap<String, String>,
    details: String,
}

fn answer<T: std::fmt::Debug>(result: Result<T, Status>, ids: &[&str]) -> Answer {
    let status = result.expect_err("the call should fail");
    let scrub = |s: &str| ids.iter().fold(s.to_owned(), |s, id| s.replace(id, "<id>"));
    let details = status.get_error_details();
    let info = details.error_info().cloned().expect("ErrorInfo");
    Answer {
        code: status.code(),
        message: scrub(status.message()),
        reason: info.reason,
        metadata: info
            .metadata
            .iter()
            .map(|(k, v)| (k.clone(), scrub(v)))
            .collect(),
        details: scrub(&format!(
            "{:?} {:?} {:?}",
            details.bad_request(),
            details.precondition_failure(),
            details.resource_info()
        )),
    }
}

async fn another_tenants_deletion_request_is_not_found_exactly_like_a_random_id(app: TestApp) {
    let customer = customer_with_records(&app, "Acme's Own").await;
    let pending = app.pending_deletion(&customer.id, "acme only").await;
    let (c, r) = (customer.id.as_str(), pending.id.as_str());
    let (rc, rr) = (random_id(), random_id());
    let mut globex = app.approvals_as("globex", "gsup-1", &["supervisor", "admin"]);
    let mut globex_customers = app.customers_as("globex", "gsup-1", &["supervisor", "admin"]);
    let mut compared = 0;

    macro_rules! same {
        ($call:expr, $random:expr, $ids:expr, $rids:expr) => {{
            let theirs = answer($call.await, $ids);
            let random = answer($random.await, $rids);
            assert_eq!(theirs, random);
            assert_eq!(theirs.code, Code::NotFound, "{theirs:?}");
            compared += 1;
        }};
    }
    let get = |id: &str| pb::GetDeletionRequestRequest {
        deletion_request_id: id.into(),
    };
    same!(
        globex.clone().get_deletion_request(get(r)),
        globex.clone().get_deletion_request(get(&rr)),
        &[r],
        &[&rr]
    );
    same!(
        approve(&mut globex.clone(), r),
        approve(&mut globex.clone(), &rr),
        &[r],
        &[&rr]
    );
    same!(
        reject(&mut globex.clone(), r, "no"),
        reject(&mut globex.clone(), &rr, "no"),
        &[r],
        &[&rr]
    );
    same!(
        cancel(&mut globex.clone(), r),
        cancel(&mut globex.clone(), &rr),
        &[r],
        &[&rr]
    );
    same!(
        execute(
            &mut globex_customers.clone(),
            c,
            r,
            &pending.preview.as_ref().unwrap().etag
        ),
        execute(&mut globex_customers.clone(), &rc, &rr, "1"),
        &[c, r],
        &[&rc, &rr]
    );
    same!(
        globex_customers.preview_delete_customer(pb::PreviewDeleteCustomerRequest {
            customer_id: c.into()
        }),
        app.customers_as("globex", "gsup-1", &["supervisor"])
            .preview_delete_customer(pb::PreviewDeleteCustomerRequest {
                customer_id: rc.clone()
            }),
        &[c],
        &[&rc]
    );
    same!(
        submit(
            &mut globex.clone(),
            c,
            &pending.preview.as_ref().unwrap().etag,
            "theirs"
        ),
        submit(&mut globex.clone(), &rc, "1", "theirs"),
        &[c],
        &[&rc]
    );
    for customer_id in [String::new(), c.to_owned()] {
        let listed = globex
            .list_deletion_requests(pb::ListDeletionRequestsRequest {
                customer_id,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert!(listed.deletion_requests.is_empty(), "{listed:?}");
    }
    let after = app.deletion_request(r).await;
    assert_eq!(after, pending, "acme's request untouched");
    figure(format_args!(
        "{:?}: {compared} deletion calls with another tenant's ids, all identical to random ids",
        app.db
    ));
}

async fn list_deletion_requests_filters_by_state_and_customer_and_paginates(app: TestApp) {
    let mut sup = app.approvals_as("acme", "sup-1", &["supervisor"]);
    let mut rep = app.approvals_as("acme", "rep-1", &["sales_rep"]);
    // Creation order is listing order reversed (newest first).
    let mut created: Vec<(String, String, S)> = Vec::new();
    let busy = app.create_customer("Busy").await;
    let r = app.pending_deletion(&busy.id, "busy 1").await;
    cancel(&mut rep, &r.id).await.unwrap();
    created.push((r.id, busy.id.clone(), S::Cancelled));
    let r = app.pending_deletion(&busy.id, "busy 2").await;
    reject(&mut sup, &r.id, "no").await.unwrap();
    created.push((r.id, busy.id.clone(), S::Rejected));
    let r = app.pending_deletion(&busy.id, "busy 3").await;
    created.push((r.id, busy.id.clone(), S::Pending));
    for (name, end) in [
        ("Waiting", S::Pending),
        ("Approved", S::Approved),
        ("Refused", S::Rejected),
        ("Lapsed", S::Expired),
    ] {
        let customer = app.create_customer(name).await;
        let r = app
            .pending_deletion(&customer.id, &format!("list {name}"))
            .await;
        match end {
            S::Approved => {
                approve(&mut sup, &r.id).await.unwrap();
            }
            S::Rejected => {
                reject(&mut sup, &r.id, "no").await.unwrap();
            }
            // One request lapses among live ones: the clock would lapse them all.
            S::Expired => {
                app.sql(
                    "UPDATE deletion_request SET expire_time = create_time \
                     WHERE tenant_id = 'acme' AND reason = 'list Lapsed'",
                )
                .await
            }
            _ => {}
        }
        created.push((r.id, customer.id.clone(), end));
    }
    let newest_first = |pred: &dyn Fn(&(String, String, S)) -> bool| -> Vec<String> {
        created
            .iter()
            .rev()
            .filter(|x| pred(x))
            .map(|x| x.0.clone())
            .collect()
    };

    let mut reader = app.approvals_as("acme", "reader", &["sales_rep"]);
    let mut walk = async |filter: pb::ListDeletionRequestsRequest| {
        let mut request = filter;
        let (mut ids, mut pages) = (Vec::new(), 0);
        loop {
            let page = reader
                .list_deletion_requests(request.clone())
                .await
                .unwrap()
                .into_inner();
            pages += 1;
            assert!(page.deletion_requests.len() <= request.page_size.max(1) as usize);
            for r in page.deletion_requests {
                if request.state != 0 {
                    assert_eq!(r.state, request.state, "{r:?}");
                }
                if !request.customer_id.is_empty() {
                    assert_eq!(r.customer_id, request.customer_id);
                }
                ids.push(r.id);
            }
            if page.next_page_token.is_empty() {
                return (ids, pages);
            }
            request.page_token = page.next_page_token;
        }
    };

    let (all, pages) = walk(pb::ListDeletionRequestsRequest {
        page_size: 2,
        ..Default::default()
    })
    .await;
    assert_eq!(all, newest_first(&|_| true));
    assert_eq!(pages, 4, "7 requests in pages of 2");
    for wanted in [
        S::Pending,
        S::Approved,
        S::Rejected,
        S::Cancelled,
        S::Expired,
    ] {
        let (ids, _) = walk(pb::ListDeletionRequestsRequest {
            page_size: 1,
            state: wanted as i32,
            ..Default::default()
        })
        .await;
        assert_eq!(ids, newest_first(&|x| x.2 == wanted), "state {wanted:?}");
    }
    let (ids, pages) = walk(pb::ListDeletionRequestsRequest {
        page_size: 1,
        customer_id: busy.id.clone(),
        ..Default::default()
    })
    .await;
    assert_eq!(ids, newest_first(&|x| x.1 == busy.id));
    assert_eq!(pages, 3);
    let (ids, _) = walk(pb::ListDeletionRequestsRequest {
        page_size: 10,
        customer_id: busy.id.clone(),
        state: S::Rejected as i32,
        ..Default::default()
    })
    .await;
    assert_eq!(ids, newest_first(&|x| x.1 == busy.id && x.2 == S::Rejected));

    // A page token belongs to its filters.
    let first = reader
        .list_deletion_requests(pb::ListDeletionRequestsRequest {
            page_size: 1,
            state: S::Rejected as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let status = assert_status(
        reader
            .list_deletion_requests(pb::ListDeletionRequestsRequest {
                page_size: 1,
                state: S::Pending as i32,
                page_token: first.next_page_token,
                ..Default::default()
            })
            .await,
        Code::InvalidArgument,
        "INVALID_FIELD",
    );
    assert_eq!(bad_fields(&status), ["page_token"]);
}
