//! BatchCreateCustomers (AIP-233): up to 1,000 customers in one call, all or nothing, each
//! validated, authorised, audited and evented as CreateCustomer would, in request order.

use std::time::Instant;

use crm_service::proto::crm::v1 as pb;
use crm_service::proto::crm::v1::customer_event_service_client::CustomerEventServiceClient;
use tonic::{Code, Status};
use tonic_types::StatusExt;

use crate::common::{
    AuthedChannel, Bearer, Customers, TestApp, assert_status, bad_fields, bare_customer, figure,
    get_customer, list_all_customers, new_customer, request_id,
};

crate::on_both_databases!(
    creates_every_customer_in_order_each_audited_and_evented_once,
    one_invalid_item_fails_the_batch_naming_every_bad_item_and_writes_nothing,
    a_duplicate_external_ref_in_the_batch_or_the_tenant_writes_nothing,
    the_batch_holds_one_to_a_thousand_requests_without_their_own_request_id,
    a_retry_with_the_request_id_returns_the_first_customers,
    the_customers_are_the_callers_tenants_only,
    every_item_is_authorised_as_create_would_and_a_refusal_names_it,
);

async fn batch_create(
    client: &mut Customers,
    requests: Vec<pb::CreateCustomerRequest>,
    request_id: &str,
) -> Result<Vec<pb::Customer>, Status> {
    client
        .batch_create_customers(pb::BatchCreateCustomersRequest {
            requests,
            request_id: request_id.into(),
        })
        .await
        .map(|r| r.into_inner().customers)
}

fn named(prefix: &str, n: usize) -> Vec<pb::CreateCustomerRequest> {
    (0..n)
        .map(|i| new_customer(&format!("{prefix} {i:04}")))
        .collect()
}

fn with_ref(name: &str, external_ref: &str) -> pb::CreateCustomerRequest {
    let mut request = bare_customer(name);
    request.customer.as_mut().unwrap().external_ref = external_ref.into();
    request
}

fn events_client(app: &TestApp, tenant: &str) -> CustomerEventServiceClient<AuthedChannel> {
    let token = app.token(tenant, "consumer", &["service"]);
    CustomerEventServiceClient::with_interceptor(app.channel(), Bearer::new(&token))
}

/// Every customer event of `tenant`, in sequence order.
async fn customer_events(app: &TestApp, tenant: &str) -> Vec<pb::CustomerEvent> {
    let mut client = events_client(app, tenant);
    let (mut after, mut out) = (0, Vec::new());
    loop {
        let page = client
            .list_customer_events(pb::ListCustomerEventsRequest {
                after_sequence: after,
                page_size: 1000,
            })
            .await
            .expect("list customer events")
            .into_inner();
        if page.events.is_empty() {
            return out;
        }
        after = page.last_sequence;
        out.extend(page.events);
    }
}

/// What a write leaves in `acme`: customers, audit events, customer events.
async fn footprint(app: &TestApp) -> (usize, usize, usize) {
    let customers = list_all_customers(&mut app.customers(), Default::default()).await;
    let audit = app.audit_events(Default::default()).await;
    let events = customer_events(app, "acme").await;
    (customers.len(), audit.len(), events.len())
}

fn metadata(status: &Status) -> std::collections::HashMap<String, String> {
    status
        .get_error_details()
        .error_info()
        .unwrap()
        .metadata
        .clone()
}

async fn creates_every_customer_in_order_each_audited_and_evented_once(app: TestApp) {
    let mut client = app.customers();
    app.create_customer("Before the import").await;
    let requests = named("Imported", 25);
    let created = batch_create(&mut client, requests.clone(), "")
        .await
        .expect("batch create");
    assert_eq!(created.len(), 25);
    for (asked, got) in requests.iter().zip(&created) {
        let asked = asked.customer.as_ref().unwrap();
        assert_eq!(got.name, asked.name, "in the order asked");
        assert_eq!(got.email, asked.email);
        assert_eq!(got.lifecycle_stage, asked.lifecycle_stage);
        assert_eq!(got.owner_id, "rep-1", "the caller owns what it creates");
        assert_eq!(got.status, pb::CustomerStatus::Active as i32);
        assert_eq!(got.etag, "1");
        assert_eq!(get_customer(&mut client, &got.id).await, *got);
    }
    let listed = list_all_customers(&mut client, Default::default()).await;
    assert_eq!(listed.len(), 26);
    assert_eq!(listed[0].name, "Before the import");
    assert_eq!(&listed[1..], &created[..], "listed in creation order");

    let ids: Vec<&str> = created.iter().map(|c| c.id.as_str()).collect();
    let audited: Vec<String> = app
        .audit_events(pb::ListAuditEventsRequest {
            action: "customer.create".into(),
            ..Default::default()
        })
        .await
        .into_iter()
        .map(|e| e.customer_id)
        .collect();
    assert_eq!(audited.len(), 26);
    assert_eq!(&audited[1..], &ids[..], "one audit event each, in order");
    let evented: Vec<String> = customer_events(&app, "acme")
        .await
        .into_iter()
        .filter(|e| e.r#type == pb::CustomerEventType::Created as i32)
        .map(|e| e.customer_id)
        .collect();
    assert_eq!(&evented[1..], &ids[..], "one CREATED event each, in order");
    let chain = app.verify_audit().await;
    assert!(chain.valid, "{chain:?}");
    assert_eq!(chain.events_checked, 26);
}

async fn one_invalid_item_fails_the_batch_naming_every_bad_item_and_writes_nothing(app: TestApp) {
    let mut client = app.customers();
    app.create_customer("Already there").await;
    let before = footprint(&app).await;

    let mut requests = named("Valid", 50);
    requests[37].customer.as_mut().unwrap().email = "not-an-e-mail".into();
    let refused = batch_create(&mut client, requests, &request_id()).await;
    let status = assert_status(refused, Code::InvalidArgument, "INVALID_FIELD");
    assert_eq!(bad_fields(&status), ["requests[37].customer.email"]);
    assert!(
        status.message().contains("requests[37].customer.email"),
        "{status:?}"
    );

    // Every kind of mistake, in several items: all named at once, by item.
    let mut requests = named("Valid", 50);
    requests[3].customer.as_mut().unwrap().name = String::new();
    requests[11].customer.as_mut().unwrap().id = "0190aaaa-0000-7000-8000-000000000000".into();
    requests[20].request_id = request_id();
    requests[28].customer = None;
    requests[33].customer.as_mut().unwrap().lifecycle_stage = 99;
    requests[49].customer.as_mut().unwrap().phone = "call me".into();
    let refused = batch_create(&mut client, requests, "").await;
    let status = assert_status(refused, Code::InvalidArgument, "INVALID_FIELD");
    assert_eq!(
        bad_fields(&status),
        [
            "requests[3].customer.name",
            "requests[11].customer.id",
            "requests[20].request_id",
            "requests[28].customer",
            "requests[33].customer.lifecycle_stage",
            "requests[49].customer.phone",
        ]
    );
    assert!(
        status
            .message()
            .starts_with("6 of the 50 requests are invalid"),
        "{status:?}"
    );

    // More mistakes than an answer carries: the first ones named, the rest counted.
    let mut requests = named("Valid", 300);
    for request in &mut requests {
        request.customer.as_mut().unwrap().email = "nope".into();
    }
    let refused = batch_create(&mut client, requests, "").await;
    let status = assert_status(refused, Code::InvalidArgument, "INVALID_FIELD");
    assert_eq!(bad_fields(&status).len(), 10);
    assert_eq!(bad_fields(&status)[9], "requests[9].customer.email");
    assert!(
        status
            .message()
            .starts_with("300 of the 300 requests are invalid"),
        "{status:?}"
    );

    assert_eq!(footprint(&app).await, before, "nothing was written");
    assert!(app.verify_audit().await.valid);
}

async fn a_duplicate_external_ref_in_the_batch_or_the_tenant_writes_nothing(app: TestApp) {
    let mut client = app.customers();
    batch_create(&mut client, vec![with_ref("Holder", "ERP-1")], "")
        .await
        .unwrap();
    let before = footprint(&app).await;

    let twice = vec![
        with_ref("A", "ERP-2"),
        with_ref("B", "ERP-3"),
        with_ref("C", ""),
        with_ref("D", "ERP-2"),
        with_ref("E", ""),
    ];
    let refused = batch_create(&mut client, twice, "").await;
    let status = assert_status(refused, Code::InvalidArgument, "INVALID_FIELD");
    assert_eq!(bad_fields(&status), ["requests[3].customer.external_ref"]);
    assert!(status.message().contains("requests[0]"), "{status:?}");

    let taken = vec![
        with_ref("F", "ERP-4"),
        with_ref("G", "ERP-5"),
        with_ref("H", "ERP-1"),
    ];
    let refused = batch_create(&mut client, taken, &request_id()).await;
    let status = assert_status(refused, Code::AlreadyExists, "EXTERNAL_REF_TAKEN");
    let info = metadata(&status);
    assert_eq!(info["index"], "2");
    assert_eq!(info["field"], "requests[2].customer.external_ref");
    assert_eq!(info["externalRef"], "ERP-1");
    assert!(status.message().starts_with("requests[2]: "), "{status:?}");

    assert_eq!(footprint(&app).await, before, "nothing was written");
    // Without the clash, the same customers go in.
    let fine = vec![with_ref("F", "ERP-4"), with_ref("G", "ERP-5")];
    batch_create(&mut client, fine, "").await.unwrap();
}

/// A customer at every field's longest ASCII value.
fn largest_ascii(i: usize) -> pb::CreateCustomerRequest {
    pb::CreateCustomerRequest {
        customer: Some(pb::Customer {
            name: format!("{i:04}{}", "N".repeat(196)),
            email: format!("{}@example.com", "e".repeat(242)),
            phone: format!("+1 {}", "5".repeat(29)),
            industry: "I".repeat(100),
            owner_id: "O".repeat(128),
            external_ref: format!("{i:04}{}", "R".repeat(124)),
            lifecycle_stage: pb::LifecycleStage::Customer as i32,
            status: pb::CustomerStatus::Inactive as i32,
            ..Default::default()
        }),
        request_id: String::new(),
    }
}

async fn the_batch_holds_one_to_a_thousand_requests_without_their_own_request_id(app: TestApp) {
    let mut client = app.customers();
    let status = assert_status(
        batch_create(&mut client, Vec::new(), "").await,
        Code::InvalidArgument,
        "INVALID_FIELD",
    );
    assert_eq!(bad_fields(&status), ["requests"]);
    let status = assert_status(
        batch_create(&mut client, named("Too many", 1001), "").await,
        Code::InvalidArgument,
        "INVALID_FIELD",
    );
    assert_eq!(bad_fields(&status), ["requests"]);
    assert!(status.message().contains("at most 1000"), "{status:?}");

    let mut own_key = named("Own key", 3);
    own_key[1].request_id = request_id();
    let status = assert_status(
        batch_create(&mut client, own_key, "").await,
        Code::InvalidArgument,
        "INVALID_FIELD",
    );
    assert_eq!(bad_fields(&status), ["requests[1].request_id"]);
    assert!(
        status.message().contains("the batch's request_id"),
        "{status:?}"
    );
    assert_eq!(footprint(&app).await, (0, 0, 0));

    // A thousand customers with every field at its longest fits in a request (1 MiB).
    let requests: Vec<_> = (0..1000).map(largest_ascii).collect();
    let size = prost::Message::encoded_len(&pb::BatchCreateCustomersRequest {
        requests: requests.clone(),
        request_id: request_id(),
    });
    assert!(size < 1024 * 1024, "{size} bytes");
    let mut service = app.customers_as("acme", "importer", &["service"]);
    let started = Instant::now();
    let created = batch_create(&mut service, requests, &request_id())
        .await
        .expect("1,000 customers");
    figure(format!(
        "{:?} BatchCreateCustomers of 1,000 largest ASCII customers ({size} bytes): {:?} (debug build)",
        app.db,
        started.elapsed()
    ));
    assert_eq!(created.len(), 1000);
    assert_eq!(
        created[999].external_ref,
        largest_ascii(999).customer.unwrap().external_ref
    );
    assert_eq!(footprint(&app).await, (1000, 1000, 1000));
    assert!(app.verify_audit().await.valid);

    // Past 1 MiB (here 1,000 names and industries of four-byte characters, 1.2 MB) gRPC framing
    // refuses the call.
    let requests: Vec<_> = (0..1000)
        .map(|_| {
            let mut request = bare_customer(&"𝄞".repeat(200));
            request.customer.as_mut().unwrap().industry = "𝄞".repeat(100);
            request
        })
        .collect();
    let over = batch_create(&mut service, requests, "")
        .await
        .map(|c| c.len());
    assert_eq!(over.map_err(|s| s.code()), Err(Code::OutOfRange));
    assert_eq!(footprint(&app).await, (1000, 1000, 1000));
}

async fn a_retry_with_the_request_id_returns_the_first_customers(app: TestApp) {
    let mut client = app.customers();
    let key = request_id();
    let first = batch_create(&mut client, named("Once", 10), &key)
        .await
        .unwrap();
    let after_first = footprint(&app).await;
    let retry = batch_create(&mut client, named("Once", 10), &key)
        .await
        .unwrap();
    assert_eq!(retry, first, "the first answer, same ids");
    assert_eq!(footprint(&app).await, after_first, "nothing duplicated");

    let other = batch_create(&mut client, named("Other", 10), &key).await;
    let status = assert_status(other, Code::InvalidArgument, "REQUEST_ID_REUSED");
    assert_eq!(bad_fields(&status), ["request_id"]);
    // A CreateCustomer's key is not a batch's.
    let single = client
        .create_customer(pb::CreateCustomerRequest {
            request_id: key.clone(),
            ..new_customer("Once 0000")
        })
        .await;
    assert_status(single, Code::InvalidArgument, "REQUEST_ID_REUSED");
    assert_eq!(footprint(&app).await, after_first);
}

async fn the_customers_are_the_callers_tenants_only(app: TestApp) {
    let mut acme = app.customers();
    let created = batch_create(&mut acme, named("Acme's", 5), "")
        .await
        .unwrap();
    let mut globex = app.customers_as("globex", "rep-9", &["sales_rep"]);
    assert!(
        list_all_customers(&mut globex, Default::default())
            .await
            .is_empty()
    );
    for customer in &created {
        let hidden = globex
            .get_customer(pb::GetCustomerRequest {
                customer_id: customer.id.clone(),
            })
            .await;
        assert_status(hidden, Code::NotFound, "NOT_FOUND");
    }
    assert!(customer_events(&app, "globex").await.is_empty());
    // The same external_refs are free in another tenant.
    let refs = |prefix: &str| -> Vec<_> {
        (0..3)
            .map(|i| with_ref(&format!("{prefix} {i}"), &format!("ERP-{i}")))
            .collect()
    };
    batch_create(&mut acme, refs("Acme"), "").await.unwrap();
    batch_create(&mut globex, refs("Globex"), "").await.unwrap();
    assert_eq!(
        list_all_customers(&mut globex, Default::default())
            .await
            .len(),
        3
    );
}

async fn every_item_is_authorised_as_create_would_and_a_refusal_names_it(app: TestApp) {
    let mut rep = app.customers();
    let mut marked = named("Rep's", 5);
    marked[3].customer.as_mut().unwrap().key_account = true;
    let status = assert_status(
        batch_create(&mut rep, marked.clone(), "").await,
        Code::PermissionDenied,
        "ROLE_NOT_ALLOWED",
    );
    let info = metadata(&status);
    assert_eq!(info["index"], "3");
    assert_eq!(info["field"], "requests[3].customer.key_account");
    assert!(status.message().starts_with("requests[3]: "), "{status:?}");

    let mut assigned = named("Rep's", 5);
    assigned[0].customer.as_mut().unwrap().owner_id = "rep-1".into();
    assigned[1].customer.as_mut().unwrap().owner_id = "rep-2".into();
    let status = assert_status(
        batch_create(&mut rep, assigned.clone(), "").await,
        Code::PermissionDenied,
        "OWNER_ASSIGNMENT_FORBIDDEN",
    );
    let info = metadata(&status);
    assert_eq!(info["index"], "1");
    assert_eq!(info["field"], "requests[1].customer.owner_id");
    assert_eq!(footprint(&app).await, (0, 0, 0), "nothing was written");

    // A supervisor may do both.
    let mut supervisor = app.customers_as("acme", "sup-1", &["supervisor"]);
    let created = batch_create(&mut supervisor, marked, "").await.unwrap();
    assert!(created[3].key_account);
    assert_eq!(created[0].owner_id, "sup-1");
    let created = batch_create(&mut supervisor, assigned, "").await.unwrap();
    assert_eq!(created[0].owner_id, "rep-1");
    assert_eq!(created[1].owner_id, "rep-2");
}
