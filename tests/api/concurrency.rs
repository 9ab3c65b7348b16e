//! Concurrent writers: SQLite's writers queue behind BEGIN IMMEDIATE instead of failing with
//! "database is locked", and every record write moves the customer's graph version exactly once.
//! Concurrent readers: GetCustomer calls that PostgreSQL's readers batch into one statement each
//! get their own customer, of their own tenant.

use std::time::Instant;

use crm_service::proto::crm::v1 as pb;

use crate::common::{TestApp, new_customer};

crate::on_both_databases!(
    concurrent_record_writes_all_succeed_and_each_moves_the_graph_etag_once,
    concurrent_reads_each_get_their_own_tenants_customer,
);

async fn concurrent_record_writes_all_succeed_and_each_moves_the_graph_etag_once(app: TestApp) {
    const WRITERS: usize = 32;
    let customer = app.create_customer("Contended Corp").await;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..WRITERS {
        let mut records = app.records();
        let mut customers = app.customers();
        let customer_id = customer.id.clone();
        tasks.push(tokio::spawn(async move {
            let contact = pb::Contact {
                customer_id,
                full_name: format!("Writer {i}"),
                ..Default::default()
            };
            records
                .create_contact(pb::CreateContactRequest {
                    contact: Some(contact),
                    request_id: String::new(),
                })
                .await?;
            // Interleave unrelated customer creation, which also takes the write lock.
            customers
                .create_customer(new_customer(&format!("Bystander {i}")))
                .await?;
            Ok::<_, tonic::Status>(())
        }));
    }
    let mut failures = Vec::new();
    for task in tasks {
        if let Err(status) = task.await.unwrap() {
            failures.push(status);
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {WRITERS} writers failed: {failures:?}",
        failures.len()
    );
    let after = app
        .customers()
        .get_customer(pb::GetCustomerRequest {
            customer_id: customer.id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .customer
        .unwrap();
    let before: i64 = customer.etag.parse().unwrap();
    let now: i64 = after.etag.parse().unwrap();
    assert_eq!(
        now - before,
        WRITERS as i64,
        "one graph version per record write"
    );
    let contacts = app
        .records()
        .list_contacts(pb::ListContactsRequest {
            customer_id: customer.id.clone(),
            page_size: 1000,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .contacts;
    assert_eq!(contacts.len(), WRITERS);
    eprintln!(
        "[figure] {:?}: {WRITERS} concurrent writers x 2 writes in {:?}, 0 failures",
        app.db,
        started.elapsed()
    );
}

/// 256 GetCustomer calls in flight on the test server's 4 reader connections: on PostgreSQL most
/// queue and go out in batches of many tenants' reads. Each call must get exactly its customer,
/// and NOT_FOUND for another tenant's id or an unknown one, as when it runs alone.
async fn concurrent_reads_each_get_their_own_tenants_customer(app: TestApp) {
    const CALLS: usize = 256;
    let tenants = ["acme", "globex"];
    let mut customers = Vec::new();
    for tenant in tenants {
        let mut client = app.customers_as(tenant, "rep-1", &["sales_rep"]);
        for i in 0..8 {
            let created = client
                .create_customer(new_customer(&format!("{tenant} {i}")))
                .await
                .unwrap()
                .into_inner()
                .customer
                .unwrap();
            customers.push((tenant, created.id, created.name));
        }
    }
    let mut calls = Vec::new();
    for call in 0..CALLS {
        let caller = tenants[call % 2];
        let (owner, id, name) = match call % 5 {
            // One call in five asks for an id nobody has.
            4 => ("nobody", crate::common::random_id(), String::new()),
            _ => customers[(call * 7) % customers.len()].clone(),
        };
        let mut client = app.customers_as(caller, "rep-1", &["sales_rep"]);
        calls.push(tokio::spawn(async move {
            let got = client
                .get_customer(pb::GetCustomerRequest {
                    customer_id: id.clone(),
                })
                .await;
            (caller, owner, id, name, got)
        }));
    }
    for call in calls {
        let (caller, owner, id, name, got) = call.await.unwrap();
        if caller == owner {
            let customer = got
                .unwrap_or_else(|s| panic!("{caller} reading its {id}: {s:?}"))
                .into_inner()
                .customer
                .unwrap();
            assert_eq!((customer.id, customer.name), (id, name));
        } else {
            let status = got.expect_err("another tenant's or an unknown id");
            assert_eq!(
                status.code(),
                tonic::Code::NotFound,
                "{caller} reading {owner}'s {id}"
            );
        }
    }
}
