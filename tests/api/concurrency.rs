//! Concurrent writers: SQLite's writers queue behind BEGIN IMMEDIATE instead of failing with
//! "database is locked", and every record write moves the customer's graph version exactly once.

use std::time::Instant;

use crm_service::proto::crm::v1 as pb;

use crate::common::{TestApp, new_customer};

crate::on_both_databases!(concurrent_record_writes_all_succeed_and_each_moves_the_graph_etag_once);

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
