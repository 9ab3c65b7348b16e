//! What a deletion request's state reads as (issue 16): an open request (PENDING or APPROVED)
//! whose customer's graph moved on since its preview reads STALE at once, on Get, on List and in
//! List's state filter, not only after someone next acts on it; expiry takes precedence, as it
//! does when someone acts on the request; and acting on such a request records what readers
//! already saw.

use std::time::Duration;

use crm_service::domain::deletion::LifecycleSettings;
use crm_service::proto::crm::v1 as pb;
use pb::DeletionRequestState as S;
use tonic::Code;

use crate::common::{
    TestApp, approve, assert_status, cancel, execute, new_contact, reject, submit,
};

crate::on_both_databases!(
    an_approved_request_reads_stale_once_its_customer_gains_a_contact,
    an_approved_request_reads_stale_once_its_customer_is_put_on_legal_hold,
    a_pending_request_reads_stale_once_its_customer_changes,
    an_unchanged_approved_request_still_reads_approved,
    a_lapsed_request_whose_graph_also_changed_reads_expired,
    acting_on_a_request_that_reads_stale_records_stale_and_frees_the_slot,
);

fn state(r: &pb::DeletionRequest) -> S {
    S::try_from(r.state).expect("known state")
}

async fn add_contact(app: &TestApp, customer_id: &str) {
    app.records_as("acme", "rep-2", &["sales_rep"])
        .create_contact(pb::CreateContactRequest {
            contact: Some(new_contact(customer_id)),
            request_id: String::new(),
        })
        .await
        .expect("create contact");
}

/// The ids ListDeletionRequests gives with `state` as its filter (UNSPECIFIED: none), and the
/// state it gives each, walking every page.
async fn listed(app: &TestApp, filter: S) -> Vec<(String, S)> {
    let mut reader = app.approvals_as("acme", "reader", &["sales_rep"]);
    let mut request = pb::ListDeletionRequestsRequest {
        page_size: 2,
        state: filter as i32,
        ..Default::default()
    };
    let mut out = Vec::new();
    loop {
        let page = reader
            .list_deletion_requests(request.clone())
            .await
            .expect("list deletion requests")
            .into_inner();
        out.extend(
            page.deletion_requests
                .iter()
                .map(|r| (r.id.clone(), state(r))),
        );
        if page.next_page_token.is_empty() {
            return out;
        }
        request.page_token = page.next_page_token;
    }
}

/// Asserts that `id` reads as `expected` on Get, on an unfiltered List, and that List's state
/// filter puts it under `expected` and under none of the other open-or-lapsed states.
async fn assert_reads(app: &TestApp, id: &str, expected: S) {
    assert_eq!(state(&app.deletion_request(id).await), expected, "Get");
    let all = listed(app, S::Unspecified).await;
    let listed_as: Vec<S> = all
        .iter()
        .filter(|(i, _)| i == id)
        .map(|(_, s)| *s)
        .collect();
    assert_eq!(listed_as, vec![expected], "List without a filter");
    for filter in [S::Pending, S::Approved, S::Stale, S::Expired] {
        let page = listed(app, filter).await;
        assert!(
            page.iter().all(|(_, s)| *s == filter),
            "List state={filter:?} gave other states: {page:?}"
        );
        assert_eq!(
            page.iter().any(|(i, _)| i == id),
            filter == expected,
            "List state={filter:?} for a request that reads {expected:?}"
        );
    }
}

async fn an_approved_request_reads_stale_once_its_customer_gains_a_contact(app: TestApp) {
    let customer = app.create_customer("Grows After Approval").await;
    let approved = app.approved_deletion(&customer.id, "grows").await;
    assert_reads(&app, &approved.id, S::Approved).await;
    add_contact(&app, &customer.id).await;
    assert_reads(&app, &approved.id, S::Stale).await;
}

async fn an_approved_request_reads_stale_once_its_customer_is_put_on_legal_hold(app: TestApp) {
    let customer = app.create_customer("Held After Approval").await;
    let approved = app.approved_deletion(&customer.id, "held").await;
    app.customers_as("acme", "admin-1", &["admin"])
        .set_legal_hold(pb::SetLegalHoldRequest {
            customer_id: customer.id.clone(),
            legal_hold: true,
            reason: "case 2027-31".into(),
            request_id: String::new(),
        })
        .await
        .expect("set legal hold");
    assert_reads(&app, &approved.id, S::Stale).await;
}

async fn a_pending_request_reads_stale_once_its_customer_changes(app: TestApp) {
    let customer = app.create_customer("Grows While Pending").await;
    let pending = app.pending_deletion(&customer.id, "grows").await;
    assert_reads(&app, &pending.id, S::Pending).await;
    add_contact(&app, &customer.id).await;
    assert_reads(&app, &pending.id, S::Stale).await;
}

async fn an_unchanged_approved_request_still_reads_approved(app: TestApp) {
    let unchanged = app.create_customer("Unchanged").await;
    let approved = app.approved_deletion(&unchanged.id, "unchanged").await;
    // Another customer's change moves nothing of this one's.
    let other = app.create_customer("Changed").await;
    let pending = app.pending_deletion(&other.id, "changed").await;
    add_contact(&app, &other.id).await;
    assert_reads(&app, &approved.id, S::Approved).await;
    assert_reads(&app, &pending.id, S::Stale).await;
    // And it can still be executed.
    execute(
        &mut app.customers(),
        &unchanged.id,
        &approved.id,
        &approved.preview.unwrap().etag,
    )
    .await
    .expect("delete");
    assert_reads(&app, &approved.id, S::Executed).await;
}

async fn a_lapsed_request_whose_graph_also_changed_reads_expired(app: TestApp) {
    let customer = app.create_customer("Lapsed And Grown").await;
    let approved = app
        .approved_deletion(&customer.id, "lapsed and grown")
        .await;
    add_contact(&app, &customer.id).await;
    app.advance_clock(LifecycleSettings::default().request_ttl + Duration::from_secs(1));
    assert_reads(&app, &approved.id, S::Expired).await;
    // Acting on it records what was read: EXPIRED, not STALE.
    assert_status(
        execute(
            &mut app.customers(),
            &customer.id,
            &approved.id,
            &approved.preview.unwrap().etag,
        )
        .await,
        Code::FailedPrecondition,
        "DELETION_REQUEST_EXPIRED",
    );
    assert_reads(&app, &approved.id, S::Expired).await;
    assert_eq!(
        app.audit_count(&customer.id, "deletion_request.expire")
            .await,
        1
    );
    assert_eq!(
        app.audit_count(&customer.id, "deletion_request.stale")
            .await,
        0
    );
}

async fn acting_on_a_request_that_reads_stale_records_stale_and_frees_the_slot(app: TestApp) {
    let mut sup = app.approvals_as("acme", "sup-1", &["supervisor"]);
    let mut requester = app.approvals_as("acme", "rep-1", &["sales_rep"]);
    for action in ["reject", "cancel", "submit anew"] {
        let customer = app.create_customer(&format!("Stale, then {action}")).await;
        let pending = app.pending_deletion(&customer.id, action).await;
        add_contact(&app, &customer.id).await;
        assert_reads(&app, &pending.id, S::Stale).await;
        match action {
            // A request readers saw as STALE does not turn REJECTED or CANCELLED afterwards.
            "reject" => {
                assert_status(
                    reject(&mut sup, &pending.id, "no").await,
                    Code::FailedPrecondition,
                    "PREVIEW_STALE",
                );
            }
            "cancel" => {
                assert_status(
                    cancel(&mut requester, &pending.id).await,
                    Code::FailedPrecondition,
                    "PREVIEW_STALE",
                );
            }
            // A request that reads STALE holds no slot: preview again, submit anew.
            _ => {
                let preview = app.preview(&customer.id).await;
                let fresh = submit(&mut requester, &customer.id, &preview.etag, "again")
                    .await
                    .expect("a new request for the changed graph");
                approve(&mut sup, &fresh.id).await.expect("approve");
            }
        }
        let after = app.deletion_request(&pending.id).await;
        assert_eq!(state(&after), S::Stale, "{action}");
        assert!(after.decided_by.is_empty(), "{action}: nobody decided it");
        assert_eq!(
            app.audit_count(&customer.id, "deletion_request.stale")
                .await,
            1,
            "{action}: the lapse is recorded once"
        );
    }
}
