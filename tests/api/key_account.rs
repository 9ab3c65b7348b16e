//! The key-account mark: only a supervisor or an admin sets or clears it (the tenant's two-person
//! rule may ask two approvers to delete a key account, so the roles that ask for deletions do not
//! decide it); every read shows it; changing it moves the etag, so an open deletion request for
//! the customer reads STALE and must be asked for again under the rule that now applies.

use crm_service::proto::crm::v1 as pb;
use pb::DeletionRequestState as S;
use tonic::Code;

use crate::common::{
    Customers, TestApp, assert_status, customer_names, execute, get_customer, list_all_customers,
    mask, new_customer,
};

crate::on_both_databases!(
    a_supervisor_creates_a_key_account_and_get_and_list_show_it,
    a_customer_is_not_a_key_account_unless_marked,
    a_sales_rep_or_a_service_creating_a_key_account_is_denied_and_nothing_is_written,
    a_sales_rep_updating_the_key_account_path_is_denied_and_changes_nothing,
    a_supervisor_or_an_admin_toggles_the_mark_and_each_change_moves_the_etag,
    an_update_that_does_not_name_the_mark_keeps_it,
    an_approved_deletion_reads_stale_once_the_mark_changes,
);

fn key_account(name: &str) -> pb::CreateCustomerRequest {
    let mut request = new_customer(name);
    request.customer.as_mut().unwrap().key_account = true;
    request
}

async fn create(client: &mut Customers, request: pb::CreateCustomerRequest) -> pb::Customer {
    client
        .create_customer(request)
        .await
        .expect("create")
        .into_inner()
        .customer
        .unwrap()
}

fn mark(customer: &pb::Customer, key_account: bool) -> pb::UpdateCustomerRequest {
    pb::UpdateCustomerRequest {
        customer: Some(pb::Customer {
            id: customer.id.clone(),
            key_account,
            ..Default::default()
        }),
        update_mask: mask(&["key_account"]),
        etag: customer.etag.clone(),
        request_id: String::new(),
    }
}

async fn updated(client: &mut Customers, request: pb::UpdateCustomerRequest) -> pb::Customer {
    client
        .update_customer(request)
        .await
        .expect("update")
        .into_inner()
        .customer
        .unwrap()
}

/// The refusal names the roles that may mark, as every ROLE_NOT_ALLOWED does.
fn assert_denied<T: std::fmt::Debug>(result: Result<T, tonic::Status>) {
    let status = assert_status(result, Code::PermissionDenied, "ROLE_NOT_ALLOWED");
    assert!(
        status.message().contains("key account") && status.message().contains("supervisor, admin"),
        "{status:?}"
    );
}

async fn a_supervisor_creates_a_key_account_and_get_and_list_show_it(app: TestApp) {
    let mut sup = app.customers_as("acme", "sup-1", &["supervisor"]);
    let created = create(&mut sup, key_account("Key Account Ltd")).await;
    assert!(created.key_account);
    let plain = app.create_customer("Plain Ltd").await;
    // Read by a sales rep, through GetCustomer's fast path and through a listing.
    let mut rep = app.customers();
    assert_eq!(get_customer(&mut rep, &created.id).await, created);
    let listed = list_all_customers(&mut rep, pb::ListCustomersRequest::default()).await;
    let marks: Vec<(&str, bool)> = listed
        .iter()
        .map(|c| (c.name.as_str(), c.key_account))
        .collect();
    assert_eq!(marks, [("Key Account Ltd", true), ("Plain Ltd", false)]);
    // A free-text listing reads its rows another way (the trigram index on both databases).
    let found = list_all_customers(
        &mut rep,
        pb::ListCustomersRequest {
            query: "key account".into(),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(found, [created]);
    assert!(!plain.key_account);
}

async fn a_customer_is_not_a_key_account_unless_marked(app: TestApp) {
    for roles in [
        &["sales_rep"][..],
        &["supervisor"],
        &["admin"],
        &["service"],
    ] {
        let mut client = app.customers_as("acme", "someone", roles);
        let created = create(&mut client, new_customer(&format!("Plain {roles:?}"))).await;
        assert!(!created.key_account, "{roles:?}");
        assert!(!get_customer(&mut client, &created.id).await.key_account);
    }
}

async fn a_sales_rep_or_a_service_creating_a_key_account_is_denied_and_nothing_is_written(
    app: TestApp,
) {
    for roles in [&["sales_rep"][..], &["service"], &["sales_rep", "service"]] {
        let mut client = app.customers_as("acme", "someone", roles);
        assert_denied(client.create_customer(key_account("Self-Made Key")).await);
    }
    assert!(customer_names(&mut app.customers()).await.is_empty());
    assert_eq!(app.audit_count("", "customer.create").await, 0);
}

async fn a_sales_rep_updating_the_key_account_path_is_denied_and_changes_nothing(app: TestApp) {
    let mut sup = app.customers_as("acme", "sup-1", &["supervisor"]);
    let marked = create(&mut sup, key_account("Marked")).await;
    let plain = app.create_customer("Unmarked").await;
    let mut rep = app.customers();
    assert_denied(rep.update_customer(mark(&plain, true)).await);
    // Clearing it, or naming it to its current value beside another field, is deciding it too.
    assert_denied(rep.update_customer(mark(&marked, false)).await);
    let mut both = mark(&marked, true);
    both.customer.as_mut().unwrap().name = "Renamed".into();
    both.update_mask = mask(&["name", "key_account"]);
    assert_denied(rep.update_customer(both).await);
    assert_eq!(get_customer(&mut rep, &plain.id).await, plain);
    assert_eq!(get_customer(&mut rep, &marked.id).await, marked);
}

async fn a_supervisor_or_an_admin_toggles_the_mark_and_each_change_moves_the_etag(app: TestApp) {
    let customer = app.create_customer("Toggled").await;
    let mut sup = app.customers_as("acme", "sup-1", &["supervisor"]);
    let mut admin = app.customers_as("acme", "admin-1", &["admin"]);
    let on = updated(&mut sup, mark(&customer, true)).await;
    assert!(on.key_account);
    assert_ne!(on.etag, customer.etag);
    let off = updated(&mut admin, mark(&on, false)).await;
    assert!(!off.key_account);
    assert_ne!(off.etag, on.etag);
    assert_eq!(get_customer(&mut app.customers(), &customer.id).await, off);
    // The update's audit entry names the field it changed (names only, never values).
    let summaries: Vec<String> = app
        .audit_events(pb::ListAuditEventsRequest {
            customer_id: customer.id.clone(),
            action: "customer.update".into(),
            ..Default::default()
        })
        .await
        .into_iter()
        .map(|e| e.summary)
        .collect();
    assert_eq!(summaries, ["fields=key_account", "fields=key_account"]);
    // An etag from before the change is stale.
    assert_status(
        sup.update_customer(mark(&on, true)).await,
        Code::Aborted,
        "ETAG_MISMATCH",
    );
}

async fn an_update_that_does_not_name_the_mark_keeps_it(app: TestApp) {
    let mut sup = app.customers_as("acme", "sup-1", &["supervisor"]);
    let marked = create(&mut sup, key_account("Kept Mark")).await;
    // A sales rep edits another field; the message's key_account is false (proto3's default),
    // but the mask does not name it.
    let renamed = updated(
        &mut app.customers(),
        pb::UpdateCustomerRequest {
            customer: Some(pb::Customer {
                id: marked.id.clone(),
                name: "Kept Mark (renamed)".into(),
                ..Default::default()
            }),
            update_mask: mask(&["name"]),
            etag: marked.etag.clone(),
            request_id: String::new(),
        },
    )
    .await;
    assert_eq!(renamed.name, "Kept Mark (renamed)");
    assert!(renamed.key_account);
    assert!(get_customer(&mut sup, &marked.id).await.key_account);
}

async fn an_approved_deletion_reads_stale_once_the_mark_changes(app: TestApp) {
    let customer = app.create_customer("Marked After Approval").await;
    let approved = app.approved_deletion(&customer.id, "duplicate").await;
    assert_eq!(
        app.deletion_request(&approved.id).await.state,
        S::Approved as i32
    );
    let mut sup = app.customers_as("acme", "sup-2", &["supervisor"]);
    let current = get_customer(&mut sup, &customer.id).await;
    updated(&mut sup, mark(&current, true)).await;
    // Approved under the old rule: the approval no longer holds for a key account.
    assert_eq!(
        app.deletion_request(&approved.id).await.state,
        S::Stale as i32
    );
    assert_status(
        execute(
            &mut app.customers(),
            &customer.id,
            &approved.id,
            &approved.preview.unwrap().etag,
        )
        .await,
        Code::FailedPrecondition,
        "PREVIEW_STALE",
    );
    let after = get_customer(&mut sup, &customer.id).await;
    assert!(after.key_account && after.delete_time.is_none());
}
