//! The recycle bin (ListDeletedCustomers), black box: deleted customers that can still be
//! restored, soonest purge first, each with the request or batch that deleted it, who asked and
//! who approved, and how many records went with it; filters, paging, who sees what, and the
//! deletion batch events of the customer event stream.

use std::collections::BTreeMap;
use std::time::Duration;

use crm_service::proto::crm::v1 as pb;
use crm_service::proto::crm::v1::customer_event_service_client::CustomerEventServiceClient;
use tonic::{Code, Status};

use crate::common::batches::{approve as approve_batch, rep, run, submitted, sup, wait_for};
use crate::common::{
    Bearer, Customers, Kind, TestApp, approve, assert_status, bad_fields, create_record, execute,
    random_id, restore, submit as submit_request,
};

crate::on_both_databases!(
    the_bin_lists_deleted_customers_soonest_purge_first_with_what_deleted_them,
    the_bin_filters_by_requester_request_batch_and_purge_time_and_pages_in_order,
    a_sales_rep_sees_only_the_deletions_it_requested_and_another_tenant_sees_none,
    a_restored_or_purged_customer_leaves_the_bin,
    the_bin_refuses_bad_filters_naming_each,
    a_batch_publishes_submitted_decided_started_and_completed_events_with_counts,
);

async fn bin(
    customers: &mut Customers,
    request: pb::ListDeletedCustomersRequest,
) -> Result<pb::ListDeletedCustomersResponse, Status> {
    Ok(customers
        .list_deleted_customers(request)
        .await?
        .into_inner())
}

/// Every entry a caller sees with `filter`, walking pages of 2.
async fn whole_bin(
    customers: &mut Customers,
    filter: pb::ListDeletedCustomersRequest,
) -> Vec<pb::DeletedCustomer> {
    let mut all = Vec::new();
    let mut token = String::new();
    for _ in 0..100 {
        let page = bin(
            customers,
            pb::ListDeletedCustomersRequest {
                page_size: 2,
                page_token: token,
                ..filter.clone()
            },
        )
        .await
        .unwrap_or_else(|s| panic!("bin page: {s:?}"));
        assert!(page.deleted_customers.len() <= 2);
        all.extend(page.deleted_customers);
        if page.next_page_token.is_empty() {
            return all;
        }
        token = page.next_page_token;
    }
    panic!("the bin never ends")
}

fn names(entries: &[pb::DeletedCustomer]) -> Vec<String> {
    entries
        .iter()
        .map(|e| e.customer.as_ref().unwrap().name.clone())
        .collect()
}

fn supervisor(app: &TestApp) -> Customers {
    app.customers_as("acme", "sup-9", &["supervisor"])
}

/// A customer with `records` contacts.
async fn customer_with(app: &TestApp, name: &str, records: usize) -> pb::Customer {
    let c = app.create_customer(name).await;
    let mut r = app.records();
    for _ in 0..records {
        create_record(&mut r, Kind::Contact, &c.id)
            .await
            .expect("contact");
    }
    c
}

/// Deleted through a request of `requester` (a sales rep) approved by `sup-1`; the request id.
async fn deleted_by(app: &TestApp, customer_id: &str, requester: &str) -> String {
    let preview = app.preview(customer_id).await;
    let mut approvals = app.approvals_as("acme", requester, &["sales_rep"]);
    let request = submit_request(&mut approvals, customer_id, &preview.etag, "bin test")
        .await
        .expect("submit");
    approve(
        &mut app.approvals_as("acme", "sup-1", &["supervisor"]),
        &request.id,
    )
    .await
    .expect("approve");
    execute(
        &mut app.customers_as("acme", requester, &["sales_rep"]),
        customer_id,
        &request.id,
        &preview.etag,
    )
    .await
    .expect("delete");
    request.id
}

/// Deleted by one batch submitted by `rep-1`, approved by `sup-1`; the batch id.
async fn batch_deleted(app: &TestApp, ids: &[String]) -> String {
    let (batch, _) = submitted(app, ids, "bin batch").await;
    approve_batch(&mut sup(app), &batch.id).await.unwrap();
    run(&mut rep(app), &batch.id).await.unwrap();
    wait_for(app, &batch.id, pb::DeletionBatchState::Completed).await;
    batch.id
}

/// Four deleted customers a minute apart (so their purge times order them) and one live:
/// "Single" by rep-1's request (3 records), "Batch A" and "Batch B" by one batch (2 records each),
/// "Other rep's" by rep-2's request (no records). Returns (request of Single, batch, request of
/// Other rep's).
async fn four_deleted(app: &TestApp) -> (String, String, String) {
    let single = customer_with(app, "Single", 3).await;
    let single_request = deleted_by(app, &single.id, "rep-1").await;
    app.advance_clock(Duration::from_secs(60));
    let a = customer_with(app, "Batch A", 2).await;
    let b = customer_with(app, "Batch B", 2).await;
    let batch = batch_deleted(app, &[a.id, b.id]).await;
    app.advance_clock(Duration::from_secs(60));
    let other = customer_with(app, "Other rep's", 0).await;
    let other_request = deleted_by(app, &other.id, "rep-2").await;
    customer_with(app, "Still live", 1).await;
    (single_request, batch, other_request)
}

async fn the_bin_lists_deleted_customers_soonest_purge_first_with_what_deleted_them(app: TestApp) {
    let (single_request, batch, other_request) = four_deleted(&app).await;
    let entries = whole_bin(&mut supervisor(&app), Default::default()).await;
    let by_name: BTreeMap<String, &pb::DeletedCustomer> = entries
        .iter()
        .map(|e| (e.customer.as_ref().unwrap().name.clone(), e))
        .collect();
    assert_eq!(names(&entries)[0], "Single");
    assert_eq!(names(&entries)[3], "Other rep's");
    assert_eq!(by_name.len(), 4, "the live customer is not in the bin");
    // Soonest purge first.
    let purge_times: Vec<_> = entries
        .iter()
        .map(|e| {
            let t = e.customer.as_ref().unwrap().purge_time.unwrap();
            (t.seconds, t.nanos)
        })
        .collect();
    assert!(
        purge_times.windows(2).all(|w| w[0] <= w[1]),
        "{purge_times:?}"
    );

    let single = by_name["Single"];
    assert_eq!(single.deletion_request_id, single_request);
    assert_eq!(single.deletion_batch_id, "");
    assert_eq!(
        (single.requested_by.as_str(), single.approved_by.as_str()),
        ("rep-1", "sup-1")
    );
    assert_eq!(single.deleted_records, 3);
    let customer = single.customer.as_ref().unwrap();
    assert!(customer.delete_time.is_some() && !customer.deletion_id.is_empty());
    for name in ["Batch A", "Batch B"] {
        let e = by_name[name];
        assert_eq!(e.deletion_batch_id, batch, "{name}");
        assert_eq!(e.deletion_request_id, "", "{name}");
        assert_eq!(
            (e.requested_by.as_str(), e.approved_by.as_str()),
            ("rep-1", "sup-1")
        );
        assert_eq!(e.deleted_records, 2, "{name}");
    }
    let other = by_name["Other rep's"];
    assert_eq!(other.deletion_request_id, other_request);
    assert_eq!(
        (other.requested_by.as_str(), other.deleted_records),
        ("rep-2", 0)
    );
}

async fn the_bin_filters_by_requester_request_batch_and_purge_time_and_pages_in_order(
    app: TestApp,
) {
    let (single_request, batch, _) = four_deleted(&app).await;
    let mut sup = supervisor(&app);
    let filtered = |filter: pb::ListDeletedCustomersRequest| {
        let mut client = supervisor(&app);
        async move { names(&whole_bin(&mut client, filter).await) }
    };
    assert_eq!(
        filtered(pb::ListDeletedCustomersRequest {
            deletion_request_id: single_request,
            ..Default::default()
        })
        .await,
        ["Single"]
    );
    assert_eq!(
        filtered(pb::ListDeletedCustomersRequest {
            deletion_batch_id: batch.clone(),
            ..Default::default()
        })
        .await,
        ["Batch A", "Batch B"]
    );
    assert_eq!(
        filtered(pb::ListDeletedCustomersRequest {
            requested_by: "rep-1".into(),
            ..Default::default()
        })
        .await,
        ["Single", "Batch A", "Batch B"]
    );
    assert_eq!(
        filtered(pb::ListDeletedCustomersRequest {
            requested_by: "rep-2".into(),
            deletion_batch_id: batch,
            ..Default::default()
        })
        .await,
        Vec::<String>::new(),
        "filters combine"
    );
    // "Purged before T": T just after Single's purge time takes Single only.
    let all = whole_bin(&mut sup, Default::default()).await;
    let mut just_after = all[0].customer.as_ref().unwrap().purge_time.unwrap();
    just_after.nanos += 1000;
    assert_eq!(
        filtered(pb::ListDeletedCustomersRequest {
            purge_before: Some(just_after),
            ..Default::default()
        })
        .await,
        ["Single"]
    );
    // Pages of 1 give the same order as pages of 2; a token does not work with other filters.
    let first = bin(
        &mut sup,
        pb::ListDeletedCustomersRequest {
            page_size: 1,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(names(&first.deleted_customers), ["Single"]);
    let second = bin(
        &mut sup,
        pb::ListDeletedCustomersRequest {
            page_size: 1,
            page_token: first.next_page_token.clone(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(names(&second.deleted_customers), [names(&all)[1].clone()]);
    let status = assert_status(
        bin(
            &mut sup,
            pb::ListDeletedCustomersRequest {
                page_token: first.next_page_token,
                requested_by: "rep-1".into(),
                ..Default::default()
            },
        )
        .await,
        Code::InvalidArgument,
        "INVALID_FIELD",
    );
    assert_eq!(bad_fields(&status), ["page_token"]);
}

async fn a_sales_rep_sees_only_the_deletions_it_requested_and_another_tenant_sees_none(
    app: TestApp,
) {
    four_deleted(&app).await;
    let mut rep2 = app.customers_as("acme", "rep-2", &["sales_rep"]);
    assert_eq!(
        names(&whole_bin(&mut rep2, Default::default()).await),
        ["Other rep's"]
    );
    assert_eq!(
        names(
            &whole_bin(
                &mut rep2,
                pb::ListDeletedCustomersRequest {
                    requested_by: "rep-2".into(),
                    ..Default::default()
                }
            )
            .await
        ),
        ["Other rep's"]
    );
    let status = assert_status(
        bin(
            &mut rep2,
            pb::ListDeletedCustomersRequest {
                requested_by: "rep-1".into(),
                ..Default::default()
            },
        )
        .await,
        Code::PermissionDenied,
        "ROLE_NOT_ALLOWED",
    );
    assert!(status.message().contains("requested_by"), "{status:?}");
    let mut rep1 = app.customers_as("acme", "rep-1", &["sales_rep"]);
    assert_eq!(
        names(&whole_bin(&mut rep1, Default::default()).await),
        ["Single", "Batch A", "Batch B"]
    );
    let mut admin = app.customers_as("acme", "admin-1", &["admin"]);
    assert_eq!(whole_bin(&mut admin, Default::default()).await.len(), 4);
    let mut globex = app.customers_as("globex", "sup-1", &["supervisor"]);
    assert!(whole_bin(&mut globex, Default::default()).await.is_empty());
}

async fn a_restored_or_purged_customer_leaves_the_bin(app: TestApp) {
    let kept = customer_with(&app, "Restored", 1).await;
    deleted_by(&app, &kept.id, "rep-1").await;
    let erased = customer_with(&app, "Purged", 1).await;
    deleted_by(&app, &erased.id, "rep-1").await;
    let waiting = customer_with(&app, "Waiting", 1).await;
    deleted_by(&app, &waiting.id, "rep-1").await;
    let mut sup = supervisor(&app);
    assert_eq!(
        names(&whole_bin(&mut sup, Default::default()).await),
        ["Restored", "Purged", "Waiting"]
    );
    restore(&mut sup, &kept.id, false).await.expect("restore");
    app.customers_as("acme", "admin-1", &["admin"])
        .purge_customer(pb::PurgeCustomerRequest {
            customer_id: erased.id.clone(),
            ..Default::default()
        })
        .await
        .expect("purge");
    assert_eq!(
        names(&whole_bin(&mut sup, Default::default()).await),
        ["Waiting"]
    );
}

async fn the_bin_refuses_bad_filters_naming_each(app: TestApp) {
    let mut sup = supervisor(&app);
    for (request, field) in [
        (
            pb::ListDeletedCustomersRequest {
                deletion_request_id: "not-a-uuid".into(),
                ..Default::default()
            },
            "deletion_request_id",
        ),
        (
            pb::ListDeletedCustomersRequest {
                deletion_batch_id: "42".into(),
                ..Default::default()
            },
            "deletion_batch_id",
        ),
        (
            pb::ListDeletedCustomersRequest {
                page_size: -1,
                ..Default::default()
            },
            "page_size",
        ),
        (
            pb::ListDeletedCustomersRequest {
                page_token: "garbage".into(),
                ..Default::default()
            },
            "page_token",
        ),
        (
            pb::ListDeletedCustomersRequest {
                requested_by: "x".repeat(10_000),
                ..Default::default()
            },
            "requested_by",
        ),
        (
            pb::ListDeletedCustomersRequest {
                purge_before: Some(prost_types::Timestamp {
                    seconds: 0,
                    nanos: -5,
                }),
                ..Default::default()
            },
            "purge_before",
        ),
    ] {
        let status = assert_status(
            bin(&mut sup, request).await,
            Code::InvalidArgument,
            "INVALID_FIELD",
        );
        assert_eq!(bad_fields(&status), [field], "{status:?}");
    }
    // An id that names nothing is an empty bin, not an error.
    let empty = bin(
        &mut sup,
        pb::ListDeletedCustomersRequest {
            deletion_batch_id: random_id(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert!(empty.deleted_customers.is_empty() && empty.next_page_token.is_empty());
}

async fn a_batch_publishes_submitted_decided_started_and_completed_events_with_counts(
    app: TestApp,
) {
    let a = customer_with(&app, "Evented A", 2).await;
    let b = customer_with(&app, "Evented B", 1).await;
    let token = app.token("acme", "svc", &["service"]);
    let mut events =
        CustomerEventServiceClient::with_interceptor(app.channel(), Bearer::new(&token));
    let after = events
        .list_customer_events(pb::ListCustomerEventsRequest {
            page_size: 1000,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .events
        .last()
        .map_or(0, |e| e.sequence);
    let batch = batch_deleted(&app, &[a.id.clone(), b.id.clone(), random_id()]).await;
    let seen = events
        .list_customer_events(pb::ListCustomerEventsRequest {
            after_sequence: after,
            page_size: 1000,
        })
        .await
        .unwrap()
        .into_inner()
        .events;
    use pb::CustomerEventType as T;
    let batch_events: Vec<(T, String, BTreeMap<String, i64>)> = seen
        .iter()
        .filter(|e| e.record_type == "deletion_batch")
        .map(|e| {
            assert_eq!(e.record_id, batch);
            assert_eq!(e.customer_id, "", "a batch event names no customer");
            (
                T::try_from(e.r#type).unwrap(),
                e.action.clone(),
                e.counts.clone().into_iter().collect(),
            )
        })
        .collect();
    let counts = |pairs: &[(&str, i64)]| -> BTreeMap<String, i64> {
        pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    };
    assert_eq!(batch_events.len(), 4, "{batch_events:?}");
    assert_eq!(batch_events[0].0, T::DeletionBatchSubmitted);
    assert_eq!(
        batch_events[0].2,
        counts(&[
            ("items", 3),
            ("included", 2),
            ("excluded", 1),
            ("cascade", 3),
            ("keep", 0),
            ("approvals_required", 1)
        ])
    );
    assert_eq!(
        (batch_events[1].0, batch_events[1].1.as_str()),
        (T::DeletionBatchDecided, "deletion_batch.approve")
    );
    assert_eq!(
        (batch_events[2].0, batch_events[2].1.as_str()),
        (T::DeletionBatchStarted, "deletion_batch.start")
    );
    assert_eq!(batch_events[3].0, T::DeletionBatchCompleted);
    let done = &batch_events[3].2;
    assert_eq!(
        (
            done["deleted"],
            done["stale"],
            done["blocked"],
            done["deleted_records"]
        ),
        (2, 0, 0, 3),
        "{done:?}"
    );
    // Each customer's own DELETED event comes between the start and the completion.
    let position = |pred: &dyn Fn(&pb::CustomerEvent) -> bool| seen.iter().position(pred).unwrap();
    let started = position(&|e| e.action == "deletion_batch.start");
    let completed = position(&|e| e.action == "deletion_batch.complete");
    for id in [&a.id, &b.id] {
        let deleted = position(&|e| e.customer_id == *id && e.r#type == T::Deleted as i32);
        assert!(started < deleted && deleted < completed, "{id}");
    }
}
