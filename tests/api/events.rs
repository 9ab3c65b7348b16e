//! The customer event stream: every change in commit order, per tenant, resumable by sequence.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crm_service::proto::crm::v1 as pb;
use crm_service::proto::crm::v1::customer_event_service_client::CustomerEventServiceClient;
use tonic::Code;

use crate::common::{AuthedChannel, Bearer, TestApp, assert_status, new_contact, new_customer};

crate::on_both_databases!(
    a_watcher_hears_a_commit_without_waiting_for_the_safety_poll,
    three_subscribers_through_a_thousand_mutations_and_a_restart_see_every_event_once_in_order,
    list_pages_the_stream_and_only_services_supervisors_and_admins_read_it,
);

fn events_client(
    app: &TestApp,
    tenant: &str,
    role: &str,
) -> CustomerEventServiceClient<AuthedChannel> {
    let token = app.token(tenant, "consumer", &[role]);
    CustomerEventServiceClient::with_interceptor(app.channel(), Bearer::new(&token))
}

/// A subscriber: follows the stream from `after`, recording every event in `seen`, until it has
/// seen `until` or the stream ends.
async fn follow(
    mut client: CustomerEventServiceClient<AuthedChannel>,
    after: i64,
    until: i64,
    seen: Arc<Mutex<Vec<pb::CustomerEvent>>>,
) {
    let Ok(response) = client
        .watch_customer_events(pb::WatchCustomerEventsRequest {
            after_sequence: after,
        })
        .await
    else {
        return;
    };
    let mut stream = response.into_inner();
    while let Ok(Some(message)) = stream.message().await {
        let event = message.event.expect("event");
        let done = event.sequence >= until;
        seen.lock().unwrap().push(event);
        if done {
            break;
        }
    }
}

async fn mutate(app: &TestApp, tenant: &str, n: usize) {
    let customers = app.customers_as(tenant, "writer", &["sales_rep"]);
    let records = app.records_as(tenant, "writer", &["sales_rep"]);
    mutate_with(customers, records, n).await;
}

/// `n` mutations: i % 3 == 0 creates a customer, 1 adds a contact to it, 2 renames it.
async fn mutate_with(
    mut customers: crm_service::proto::crm::v1::customer_service_client::CustomerServiceClient<
        AuthedChannel,
    >,
    mut records: crm_service::proto::crm::v1::record_service_client::RecordServiceClient<
        AuthedChannel,
    >,
    n: usize,
) {
    let mut last: Option<String> = None;
    for i in 0..n {
        match (i % 3, &last) {
            (1, Some(id)) => {
                let contact = new_contact(id);
                records
                    .create_contact(pb::CreateContactRequest {
                        contact: Some(contact),
                        request_id: String::new(),
                    })
                    .await
                    .unwrap();
            }
            (2, Some(id)) => {
                let update = pb::UpdateCustomerRequest {
                    customer: Some(pb::Customer {
                        id: id.clone(),
                        name: format!("Renamed {i}"),
                        ..Default::default()
                    }),
                    update_mask: Some(prost_types::FieldMask {
                        paths: vec!["name".into()],
                    }),
                    ..Default::default()
                };
                customers.update_customer(update).await.unwrap();
            }
            _ => {
                let created = customers
                    .create_customer(new_customer(&format!("Stream {i}")))
                    .await
                    .unwrap();
                last = Some(created.into_inner().customer.unwrap().id);
            }
        }
    }
}

/// `total` mutations from 4 writers at once: their transactions race for sequence numbers.
async fn write_concurrently(app: &TestApp, total: usize) {
    const WRITERS: usize = 4;
    let mut writers = Vec::new();
    for _ in 0..WRITERS {
        let customers = app.customers_as("acme", "writer", &["sales_rep"]);
        let records = app.records_as("acme", "writer", &["sales_rep"]);
        writers.push(tokio::spawn(mutate_with(
            customers,
            records,
            total / WRITERS,
        )));
    }
    for writer in writers {
        writer.await.unwrap();
    }
}

async fn three_subscribers_through_a_thousand_mutations_and_a_restart_see_every_event_once_in_order(
    mut app: TestApp,
) {
    const FIRST: usize = 500;
    const SECOND: usize = 500;
    let started = Instant::now();
    // Noise in another tenant that no subscriber may see.
    mutate(&app, "globex", 30).await;
    let total = (FIRST + SECOND) as i64;
    let logs: Vec<Arc<Mutex<Vec<pb::CustomerEvent>>>> = (0..3).map(|_| Arc::default()).collect();
    let mut subscribers = Vec::new();
    for log in &logs {
        subscribers.push(tokio::spawn(follow(
            events_client(&app, "acme", "service"),
            0,
            total,
            log.clone(),
        )));
    }
    write_concurrently(&app, FIRST).await;
    // The consumers drop their streams (as a consumer would on a lost connection), and the server
    // restarts on the same database.
    for subscriber in &subscribers {
        subscriber.abort();
    }
    app.restart().await;
    write_concurrently(&app, SECOND).await;
    // Each subscriber resumes after the last sequence it recorded, on the new server.
    let mut resumed = Vec::new();
    for log in &logs {
        let after = log.lock().unwrap().last().map_or(0, |e| e.sequence);
        resumed.push(tokio::spawn(follow(
            events_client(&app, "acme", "service"),
            after,
            total,
            log.clone(),
        )));
    }
    for task in resumed {
        tokio::time::timeout(Duration::from_secs(60), task)
            .await
            .expect("caught up")
            .unwrap();
    }
    let seen: Vec<Vec<pb::CustomerEvent>> =
        logs.iter().map(|log| log.lock().unwrap().clone()).collect();
    for (n, events) in seen.iter().enumerate() {
        let sequences: Vec<i64> = events.iter().map(|e| e.sequence).collect();
        let expected: Vec<i64> = (1..=total).collect();
        assert_eq!(
            sequences, expected,
            "subscriber {n}: every event exactly once, in order"
        );
        let mut by_type: BTreeMap<i32, usize> = BTreeMap::new();
        for e in events {
            *by_type.entry(e.r#type).or_default() += 1;
        }
        // Each writer's 125 mutations are i % 3 == 0: create (42), 1: add a contact (42),
        // 2: rename (41); 8 writers in all.
        let count = |t: pb::CustomerEventType| by_type.get(&(t as i32)).copied().unwrap_or(0);
        assert_eq!(
            count(pb::CustomerEventType::Created),
            8 * 42,
            "subscriber {n}"
        );
        assert_eq!(
            count(pb::CustomerEventType::RecordChanged),
            8 * 42,
            "subscriber {n}"
        );
        assert_eq!(
            count(pb::CustomerEventType::Updated),
            8 * 41,
            "subscriber {n}"
        );
        assert!(events.iter().all(|e| !e.customer_id.is_empty()));
    }
    // The polled list gives the same stream.
    let mut client = events_client(&app, "acme", "supervisor");
    let mut listed = Vec::new();
    let mut after = 0;
    loop {
        let page = client
            .list_customer_events(pb::ListCustomerEventsRequest {
                after_sequence: after,
                page_size: 1000,
            })
            .await
            .unwrap()
            .into_inner();
        if page.events.is_empty() {
            break;
        }
        after = page.last_sequence;
        listed.extend(page.events);
    }
    assert_eq!(listed, seen[0], "ListCustomerEvents pages the same events");
    crate::common::figure(format!(
        "{:?} C9: 3 subscribers x {} events with a restart after {FIRST}: lost 0, duplicates 0, out of order 0; {:?}",
        app.db,
        total,
        started.elapsed()
    ));
}

async fn list_pages_the_stream_and_only_services_supervisors_and_admins_read_it(app: TestApp) {
    mutate(&app, "acme", 5).await;
    let page = events_client(&app, "acme", "admin")
        .list_customer_events(pb::ListCustomerEventsRequest {
            after_sequence: 2,
            page_size: 2,
        })
        .await
        .unwrap()
        .into_inner();
    let sequences: Vec<i64> = page.events.iter().map(|e| e.sequence).collect();
    assert_eq!(sequences, [3, 4]);
    assert_eq!(page.last_sequence, 4);
    let denied = events_client(&app, "acme", "sales_rep")
        .list_customer_events(pb::ListCustomerEventsRequest::default())
        .await;
    assert_status(denied, Code::PermissionDenied, "ROLE_NOT_ALLOWED");
    let negative = events_client(&app, "acme", "service")
        .list_customer_events(pb::ListCustomerEventsRequest {
            after_sequence: -1,
            page_size: 0,
        })
        .await;
    assert_status(negative, Code::InvalidArgument, "INVALID_FIELD");
    let other = events_client(&app, "globex", "service")
        .list_customer_events(pb::ListCustomerEventsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(other.events.is_empty(), "no other tenant's events");
}

/// The watcher is woken by the commit itself (NOTIFY on PostgreSQL, a 200 ms poll on SQLite),
/// not by the 5 s safety poll: a generous 4 s bound tells the two apart.
async fn a_watcher_hears_a_commit_without_waiting_for_the_safety_poll(app: TestApp) {
    mutate(&app, "acme", 1).await;
    let mut client = events_client(&app, "acme", "service");
    let mut stream = client
        .watch_customer_events(pb::WatchCustomerEventsRequest { after_sequence: 0 })
        .await
        .unwrap()
        .into_inner();
    // The replay delivers the first event: the watcher is now following.
    assert_eq!(
        stream
            .message()
            .await
            .unwrap()
            .unwrap()
            .event
            .unwrap()
            .sequence,
        1
    );
    let committed = Instant::now();
    mutate(&app, "acme", 1).await;
    let next = tokio::time::timeout(Duration::from_secs(4), stream.message()).await;
    let event = next
        .expect("woken by the commit, not by the 5 s poll")
        .unwrap()
        .unwrap()
        .event
        .unwrap();
    assert_eq!(event.sequence, 2);
    crate::common::figure(format!(
        "{:?}: commit to watcher in {:?}",
        app.db,
        committed.elapsed()
    ));
}
