//! Deletion batches (issue 19), black box: many customers deleted under one reason and one
//! decision, run in the background and restored as a whole. Submission previews every customer
//! (EXCLUDED with why, or QUEUED bound to its etag), the aggregate impact is the sum of the single
//! previews, the four-eyes rules are those of a single request, a run leaves each item DELETED,
//! STALE or BLOCKED, a restore each RESTORED or RESTORE_FAILED, and another tenant's batch does not
//! exist.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crm_service::domain::deletion::LifecycleSettings;
use crm_service::proto::crm::v1 as pb;
use futures_util::future::join_all;
use pb::DeletionBatchItemState as I;
use pb::DeletionBatchState as B;
use tonic::{Code, Status};
use tonic_types::StatusExt;

use crate::common::batches::*;
use crate::common::{
    Db, Kind, TestApp, assert_status, bad_fields, create_record, figure, get_customer,
    list_all_customers, mask, new_activity, new_contact, new_contract, new_deal, new_order,
    new_project, random_id, request_id, touch_record,
};

crate::on_both_databases!(
    a_batch_of_200_mixed_customers_deletes_what_it_previewed_and_its_restore_brings_every_graph_back,
    an_item_whose_graph_changed_ends_stale_and_one_with_a_new_blocker_ends_blocked_with_nothing_of_theirs_deleted,
    only_a_supervisor_or_admin_who_did_not_submit_a_batch_may_decide_it,
    a_batch_is_cancelled_by_its_requester_a_supervisor_or_an_admin_while_it_is_open,
    each_call_on_a_batch_in_the_wrong_state_fails_precondition_and_runs_and_restores_need_their_roles,
    a_lapsed_batch_reads_expired_and_can_be_neither_approved_nor_run,
    a_batch_names_at_most_max_items_customers_by_id_or_by_filter_and_says_how_many,
    a_filter_batch_names_the_live_customers_it_matches_now,
    submit_refuses_bad_fields_naming_each_and_creates_nothing,
    excluded_customers_are_listed_with_why_and_a_batch_with_nothing_to_delete_is_refused,
    another_tenants_batch_is_not_found_exactly_like_a_random_id,
    submitting_twice_with_one_request_id_returns_the_same_batch,
    a_validate_only_restore_reports_each_item_as_it_would_end_and_changes_nothing,
    an_item_whose_external_ref_was_taken_fails_to_restore_and_the_others_come_back,
    batches_list_newest_first_by_state_and_items_in_submission_order_by_page,
);

/// The exclusion reason of a customer that does not exist in the caller's tenant: the catalogue's
/// NOT_FOUND, the reason a client already knows for "no such resource in your tenant" (batch.proto
/// lists it).
const NOT_FOUND_EXCLUSION: &str = "NOT_FOUND";

fn progress(b: &pb::DeletionBatch) -> pb::DeletionBatchProgress {
    b.progress.expect("progress")
}

fn impact(b: &pb::DeletionBatch) -> pb::DeletionBatchImpact {
    b.impact.clone().expect("impact")
}

/// Per reason, how many items were excluded (zero counts left out).
fn exclusions(b: &pb::DeletionBatch) -> BTreeMap<String, i32> {
    impact(b)
        .exclusions
        .iter()
        .filter(|e| e.count != 0)
        .map(|e| (e.reason.clone(), e.count))
        .collect()
}

/// An INVALID_ARGUMENT whose BadRequest names `field` (or an element of it).
fn assert_invalid<T: std::fmt::Debug>(result: Result<T, Status>, field: &str) -> Status {
    let status = assert_status(result, Code::InvalidArgument, "INVALID_FIELD");
    let fields = bad_fields(&status);
    assert!(
        fields
            .iter()
            .any(|f| f == field || f.starts_with(&format!("{field}["))),
        "{field} not among {fields:?}: {status:?}"
    );
    status
}

/// The status message and every field violation's description.
fn all_text(status: &Status) -> String {
    let mut text = status.message().to_owned();
    if let Some(bad) = status.get_error_details().bad_request() {
        for v in &bad.field_violations {
            text.push('\n');
            text.push_str(&v.description);
        }
    }
    text
}

// ----- customers and graphs ------------------------------------------------------------------

async fn create(app: &TestApp, customer: pb::Customer) -> pb::Customer {
    app.customers()
        .create_customer(pb::CreateCustomerRequest {
            customer: Some(customer),
            request_id: String::new(),
        })
        .await
        .expect("create customer")
        .into_inner()
        .customer
        .unwrap()
}

fn customer(name: &str) -> pb::Customer {
    pb::Customer {
        name: name.into(),
        email: "buyer@example.com".into(),
        industry: "retail".into(),
        lifecycle_stage: pb::LifecycleStage::Prospect as i32,
        ..Default::default()
    }
}

/// A customer with two contacts and an activity: something to delete and restore.
async fn customer_with_records(app: &TestApp, name: &str) -> pb::Customer {
    let c = app.create_customer(name).await;
    let mut r = app.records();
    for kind in [Kind::Contact, Kind::Contact, Kind::Activity] {
        create_record(&mut r, kind, &c.id).await.expect("record");
    }
    c
}

async fn customers_with_records(app: &TestApp, prefix: &str, n: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for k in 0..n {
        ids.push(
            customer_with_records(app, &format!("{prefix} {k}"))
                .await
                .id,
        );
    }
    ids
}

async fn add_open_order(app: &TestApp, customer_id: &str) -> pb::Order {
    app.records_as("acme", "rep-2", &["sales_rep"])
        .create_order(pb::CreateOrderRequest {
            order: Some(new_order(customer_id, pb::OrderStatus::Open)),
            request_id: String::new(),
        })
        .await
        .expect("open order")
        .into_inner()
        .order
        .unwrap()
}

/// The graph of customer number `i` of the golden path: a mix of empty customers, contacts and
/// activities, open deals in two currencies, paid orders and ended contracts (KEEP), draft
/// contracts and done projects (CASCADE), and records deleted on their own before.
async fn mixed_graph(app: &TestApp, customer_id: &str, i: usize) {
    let mut r = app.records();
    let c = customer_id;
    macro_rules! ok {
        ($call:expr) => {
            $call
                .await
                .unwrap_or_else(|s| panic!("customer {i}: {s:?}"))
        };
    }
    match i % 5 {
        0 => {}
        1 => {
            for _ in 0..(1 + i % 3) {
                ok!(r.create_contact(pb::CreateContactRequest {
                    contact: Some(new_contact(c)),
                    request_id: String::new(),
                }));
            }
            ok!(r.create_activity(pb::CreateActivityRequest {
                activity: Some(new_activity(c)),
                request_id: String::new(),
            }));
        }
        2 => {
            let mut deal = new_deal(c, pb::DealStage::Open);
            if i % 10 == 7 {
                deal.currency = "USD".into();
                deal.amount_minor = 50_000 + i as i64;
            }
            ok!(r.create_deal(pb::CreateDealRequest {
                deal: Some(deal),
                request_id: String::new(),
            }));
            ok!(r.create_deal(pb::CreateDealRequest {
                deal: Some(new_deal(c, pb::DealStage::Won)),
                request_id: String::new(),
            }));
            ok!(r.create_contact(pb::CreateContactRequest {
                contact: Some(new_contact(c)),
                request_id: String::new(),
            }));
        }
        3 => {
            ok!(r.create_order(pb::CreateOrderRequest {
                order: Some(new_order(c, pb::OrderStatus::Paid)),
                request_id: String::new(),
            }));
            ok!(r.create_order(pb::CreateOrderRequest {
                order: Some(new_order(c, pb::OrderStatus::Cancelled)),
                request_id: String::new(),
            }));
            // Deleted on its own before the batch: stays deleted after the restore.
            let gone = ok!(r.create_contact(pb::CreateContactRequest {
                contact: Some(new_contact(c)),
                request_id: String::new(),
            }))
            .into_inner()
            .contact
            .unwrap();
            ok!(r.delete_contact(pb::DeleteContactRequest {
                contact_id: gone.id,
                ..Default::default()
            }));
        }
        _ => {
            ok!(r.create_contract(pb::CreateContractRequest {
                contract: Some(new_contract(c, pb::ContractStatus::Expired)),
                request_id: String::new(),
            }));
            ok!(r.create_contract(pb::CreateContractRequest {
                contract: Some(new_contract(c, pb::ContractStatus::Draft)),
                request_id: String::new(),
            }));
            ok!(r.create_project(pb::CreateProjectRequest {
                project: Some(new_project(c, pb::ProjectStatus::Done)),
                request_id: String::new(),
            }));
        }
    }
}

/// The customer with its etag blanked: a restore is a new version of the same customer.
fn sans_etag(c: &pb::Customer) -> pb::Customer {
    pb::Customer {
        etag: String::new(),
        ..c.clone()
    }
}

async fn is_deleted(app: &TestApp, id: &str) -> bool {
    get_customer(&mut app.customers(), id)
        .await
        .delete_time
        .is_some()
}

type ImpactKey = (String, String, i32);

fn impact_map(impacts: &[pb::RelationImpact]) -> BTreeMap<ImpactKey, i64> {
    let mut out = BTreeMap::new();
    for i in impacts {
        *out.entry((i.relation.clone(), i.state.clone(), i.policy))
            .or_insert(0) += i.count;
    }
    out.retain(|_, n| *n != 0);
    out
}

fn warning_map(warnings: &[pb::PipelineWarning]) -> BTreeMap<String, (i64, i64)> {
    let mut out = BTreeMap::new();
    for w in warnings {
        assert!(!w.open_amount_saturated, "{w:?}");
        let e = out.entry(w.currency.clone()).or_insert((0, 0));
        e.0 += w.open_amount_minor;
        e.1 += w.open_deals;
    }
    out
}

// ----- 1. the golden path --------------------------------------------------------------------

async fn a_batch_of_200_mixed_customers_deletes_what_it_previewed_and_its_restore_brings_every_graph_back(
    app: TestApp,
) {
    const N: usize = 200;
    const GROUP: usize = 20;
    let t0 = Instant::now();
    let mut ids: Vec<String> = Vec::with_capacity(N);
    for g in 0..N / GROUP {
        let app = &app;
        let created = join_all((0..GROUP).map(|k| async move {
            let i = g * GROUP + k;
            let mut c = customer(&format!("Batch Golden {i:03}"));
            if i.is_multiple_of(4) {
                c.external_ref = format!("ERP-GOLD-{i:03}");
            }
            let c = create(app, c).await;
            mixed_graph(app, &c.id, i).await;
            c.id
        }))
        .await;
        ids.extend(created);
    }
    let bystander = customer_with_records(&app, "Not in the batch").await;
    let t_data = t0.elapsed();

    // What each customer is, and what its single preview says, before the batch.
    let mut before = Vec::with_capacity(N);
    for chunk in ids.chunks(GROUP) {
        let app = &app;
        before.extend(
            join_all(chunk.iter().map(|id| async move {
                (
                    get_customer(&mut app.customers(), id).await,
                    app.snapshot(id).await,
                    app.preview(id).await,
                )
            }))
            .await,
        );
    }
    let bystander_before = (
        get_customer(&mut app.customers(), &bystander.id).await,
        app.snapshot(&bystander.id).await,
    );
    let mut expected_impacts = BTreeMap::new();
    let mut expected_warnings = Vec::new();
    let (mut cascade, mut keep) = (0i64, 0i64);
    for (customer, _, preview) in &before {
        assert!(preview.blockers.is_empty(), "{:?}", preview.blockers);
        assert_eq!(preview.etag, customer.etag);
        for (k, n) in impact_map(&preview.impacts) {
            *expected_impacts.entry(k).or_insert(0) += n;
        }
        expected_warnings.extend(preview.warnings.iter().cloned());
        cascade += preview.cascade_count;
        keep += preview.keep_count;
    }
    assert!(
        cascade > 0 && keep > 0,
        "the mix has records to cascade and to keep"
    );
    let expected_warnings = warning_map(&expected_warnings);
    assert_eq!(expected_warnings.len(), 2, "EUR and USD pipeline");

    // Submit: every item QUEUED, bound to its customer's etag, in submission order.
    let t1 = Instant::now();
    let (batch, submitted_items) = submitted(&app, &ids, "closing the 2019 trade-show leads").await;
    let t_submit = t1.elapsed();
    assert_eq!(batch_state(&batch), B::Pending);
    assert_eq!(batch.requester_id, "rep-1");
    assert_eq!(batch.reason, "closing the 2019 trade-show leads");
    assert!(!batch.id.is_empty() && !batch.etag.is_empty());
    assert!(batch.create_time.is_some() && batch.expire_time.is_some());
    assert_eq!(submitted_items.len(), N);
    for ((item, id), (customer, _, _)) in submitted_items.iter().zip(&ids).zip(&before) {
        assert_eq!(&item.customer_id, id, "submission order");
        assert_eq!(item_state(item), I::Queued, "{item:?}");
        assert_eq!(item.customer_etag, customer.etag, "{item:?}");
        assert!(
            item.excluded_reason.is_empty() && item.blockers.is_empty(),
            "{item:?}"
        );
        assert!(item.deletion_id.is_empty(), "{item:?}");
    }
    let aggregate = impact(&batch);
    for i in &aggregate.impacts {
        assert!(i.sample_ids.is_empty(), "sample ids are not summed: {i:?}");
    }
    let keys: Vec<_> = aggregate
        .impacts
        .iter()
        .map(|i| (i.relation.clone(), i.state.clone(), i.policy))
        .collect();
    let mut unique = keys.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(
        keys.len(),
        unique.len(),
        "one entry per (relation, state, policy): {keys:?}"
    );
    assert_eq!(
        impact_map(&aggregate.impacts),
        expected_impacts,
        "the aggregate impact is the sum of the single previews"
    );
    assert_eq!(warning_map(&aggregate.warnings), expected_warnings);
    assert_eq!(
        (aggregate.cascade_count, aggregate.keep_count),
        (cascade, keep)
    );
    assert_eq!(
        (aggregate.included_count, aggregate.excluded_count),
        (N as i32, 0)
    );
    assert_eq!(exclusions(&batch), BTreeMap::new());
    let p = progress(&batch);
    assert_eq!(
        (p.total_items, p.queued, p.excluded, p.deleted),
        (N as i32, N as i32, 0, 0)
    );
    assert_eq!(
        get(&app, &batch.id).await,
        batch,
        "Get reads what Submit answered"
    );

    // Approve (another person, a supervisor), run (the requester), in the background.
    let approved = approve(&mut sup(&app), &batch.id).await.expect("approve");
    assert_eq!(batch_state(&approved), B::Approved);
    assert_eq!(approved.decided_by, "sup-1");
    assert!(approved.decide_time.is_some());
    assert_ne!(approved.etag, batch.etag);
    let t2 = Instant::now();
    let started = run(&mut rep(&app), &batch.id).await.expect("run");
    assert!(
        [B::Running, B::Completed].contains(&batch_state(&started)),
        "{started:?}"
    );
    assert_eq!(started.started_by, "rep-1");
    assert!(started.start_time.is_some());
    let done = wait_for(&app, &batch.id, B::Completed).await;
    let t_run = t2.elapsed();
    assert!(done.finish_time.is_some());
    let p = progress(&done);
    assert_eq!(
        (
            p.total_items,
            p.queued,
            p.deleted,
            p.stale,
            p.blocked,
            p.excluded
        ),
        (N as i32, 0, N as i32, 0, 0, 0),
        "{p:?}"
    );
    assert_eq!(p.deleted_records, cascade);
    assert_eq!(
        impact(&done),
        aggregate,
        "the impact is what was previewed at submission"
    );

    let ran = items_paged(&app, &batch.id, None, 64).await;
    assert_eq!(ran.len(), N);
    let mut deletion_ids = std::collections::BTreeSet::new();
    for ((item, id), (customer, graph, preview)) in ran.iter().zip(&ids).zip(&before) {
        assert_eq!(&item.customer_id, id);
        assert_eq!(item_state(item), I::Deleted, "{item:?}");
        assert!(!item.deletion_id.is_empty(), "{item:?}");
        assert!(
            deletion_ids.insert(item.deletion_id.clone()),
            "one deletion id per customer"
        );
        assert_eq!(item.deleted_records, preview.cascade_count, "{item:?}");
        let now = get_customer(&mut app.customers(), id).await;
        assert!(now.delete_time.is_some(), "{now:?}");
        assert_eq!(now.deletion_id, item.deletion_id);
        let during = app.snapshot(id).await;
        assert_eq!(during.rows().len(), graph.rows().len(), "{}", customer.name);
        assert_eq!(
            during.live() as i64,
            preview.keep_count,
            "{}: only the kept records stay live",
            customer.name
        );
    }
    let live = list_all_customers(
        &mut app.customers(),
        pb::ListCustomersRequest {
            page_size: 1000,
            ..Default::default()
        },
    )
    .await;
    let live: Vec<&str> = live.iter().map(|c| c.id.as_str()).collect();
    assert!(
        ids.iter().all(|id| !live.contains(&id.as_str())),
        "a deleted customer is not listed"
    );
    assert!(live.contains(&bystander.id.as_str()));

    // Restore the whole batch (a supervisor): every graph equal, field by field, to before.
    let t3 = Instant::now();
    let restoring = restore(
        &mut batches(&app, "sup-2", &["supervisor"]),
        &batch.id,
        false,
    )
    .await
    .expect("restore");
    let restoring = restoring.batch.unwrap();
    assert!(
        [B::Restoring, B::Restored].contains(&batch_state(&restoring)),
        "{restoring:?}"
    );
    let back = wait_for(&app, &batch.id, B::Restored).await;
    let t_restore = t3.elapsed();
    assert!(back.restore_start_time.is_some() && back.restore_finish_time.is_some());
    let p = progress(&back);
    assert_eq!(
        (p.restored, p.restore_failed, p.deleted),
        (N as i32, 0, 0),
        "{p:?}"
    );
    assert_eq!(p.restored_records, cascade);
    let restored_items = items(&app, &batch.id).await;
    let mut compared = 0;
    for (item, (customer, graph, _)) in restored_items.iter().zip(&before) {
        assert_eq!(item_state(item), I::Restored, "{item:?}");
        assert!(!item.deletion_id.is_empty(), "{item:?}");
        let after = get_customer(&mut app.customers(), &customer.id).await;
        assert_ne!(
            after.etag, customer.etag,
            "the restore is a new version of the graph"
        );
        assert_eq!(sans_etag(&after), sans_etag(customer), "{}", customer.name);
        let graph_after = app.snapshot(&customer.id).await;
        assert_eq!(
            &graph_after, graph,
            "{}: the graph, field by field",
            customer.name
        );
        compared += graph.rows().len();
    }
    assert_eq!(
        (
            get_customer(&mut app.customers(), &bystander.id).await,
            app.snapshot(&bystander.id).await
        ),
        bystander_before,
        "a customer outside the batch is untouched"
    );
    assert!(app.verify_audit().await.valid);
    figure(format_args!(
        "{:?} batch of {N}: data {t_data:?}, submit {t_submit:?}, run {t_run:?}, restore \
         {t_restore:?}; {cascade} records cascaded, {keep} kept, {compared} compared field by field",
        app.db
    ));
}

// ----- 2. stale and blocked ------------------------------------------------------------------

async fn an_item_whose_graph_changed_ends_stale_and_one_with_a_new_blocker_ends_blocked_with_nothing_of_theirs_deleted(
    app: TestApp,
) {
    let ids = customers_with_records(&app, "Between", 5).await;
    let (edited, renamed, blocked, free1, free2) = (&ids[0], &ids[1], &ids[2], &ids[3], &ids[4]);
    let (batch, _) = submitted(&app, &ids, "between submit and run").await;
    approve(&mut sup(&app), &batch.id).await.expect("approve");

    // Between approval and the run: a contact of one customer changes, another customer is
    // renamed, a third gets an open order.
    let mut r = app.records_as("acme", "rep-2", &["sales_rep"]);
    let contact = r
        .list_contacts(pb::ListContactsRequest {
            customer_id: edited.clone(),
            page_size: 10,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .contacts
        .remove(0);
    touch_record(&mut r, Kind::Contact, &contact.id)
        .await
        .expect("touch");
    app.customers_as("acme", "rep-2", &["sales_rep"])
        .update_customer(pb::UpdateCustomerRequest {
            customer: Some(pb::Customer {
                id: renamed.clone(),
                name: "Between 1 (renamed)".into(),
                ..Default::default()
            }),
            update_mask: mask(&["name"]),
            ..Default::default()
        })
        .await
        .expect("rename");
    let order = add_open_order(&app, blocked).await;
    let mut kept = Vec::new();
    for id in [edited, renamed, blocked] {
        kept.push((
            get_customer(&mut app.customers(), id).await,
            app.snapshot(id).await,
        ));
    }
    let free_before = [app.snapshot(free1).await, app.snapshot(free2).await];

    run(&mut rep(&app), &batch.id).await.expect("run");
    let done = wait_for(&app, &batch.id, B::Completed).await;
    let p = progress(&done);
    assert_eq!(
        (p.total_items, p.queued, p.deleted, p.stale, p.blocked),
        (5, 0, 2, 2, 1),
        "{p:?}"
    );
    let all = items(&app, &batch.id).await;
    let ids_listed: Vec<&String> = all.iter().map(|i| &i.customer_id).collect();
    assert_eq!(ids_listed, ids.iter().collect::<Vec<_>>());
    let by_id: BTreeMap<&str, &pb::DeletionBatchItem> =
        all.iter().map(|i| (i.customer_id.as_str(), i)).collect();

    for id in [edited, renamed] {
        let item = by_id[id.as_str()];
        assert_eq!(item_state(item), I::Stale, "{item:?}");
        assert!(item.deletion_id.is_empty(), "{item:?}");
        assert_eq!(item.deleted_records, 0, "{item:?}");
    }
    let item = by_id[blocked.as_str()];
    assert_eq!(item_state(item), I::Blocked, "{item:?}");
    assert!(item.deletion_id.is_empty(), "{item:?}");
    let open_order = item
        .blockers
        .iter()
        .find(|b| b.reason == "OPEN_ORDER")
        .unwrap_or_else(|| panic!("no OPEN_ORDER among {:?}", item.blockers));
    assert_eq!(
        (open_order.relation.as_str(), open_order.count),
        ("order", 1)
    );

    for (customer, graph) in &kept {
        assert_eq!(
            &get_customer(&mut app.customers(), &customer.id).await,
            customer,
            "{}: left as it is",
            customer.name
        );
        assert_eq!(
            &app.snapshot(&customer.id).await,
            graph,
            "{}: nothing deleted",
            customer.name
        );
    }
    for (id, graph) in [free1, free2].into_iter().zip(&free_before) {
        let item = by_id[id.as_str()];
        assert_eq!(item_state(item), I::Deleted, "{item:?}");
        assert!(!item.deletion_id.is_empty());
        assert_eq!(item.deleted_records, graph.rows().len() as i64);
        assert!(is_deleted(&app, id).await);
        assert_eq!(app.snapshot(id).await.live(), 0);
    }
    assert_eq!(
        p.deleted_records,
        (free_before[0].rows().len() + free_before[1].rows().len()) as i64
    );
    // Last (so that the rest is checked first): the blocker names the order, as a preview does.
    assert_eq!(open_order.sample_ids, vec![order.id.clone()]);
}

// ----- 3. roles, decisions, states, expiry ---------------------------------------------------

async fn only_a_supervisor_or_admin_who_did_not_submit_a_batch_may_decide_it(app: TestApp) {
    let ids = customers_with_records(&app, "Decided", 4).await;
    // Submitted by a sales rep: another sales rep may neither approve nor reject it.
    let (by_rep, _) = submitted(&app, &ids[0..1], "by a rep").await;
    let mut other_rep = batches(&app, "rep-2", &["sales_rep"]);
    assert_status(
        approve(&mut other_rep, &by_rep.id).await,
        Code::PermissionDenied,
        "ROLE_NOT_ALLOWED",
    );
    assert_status(
        reject(&mut other_rep, &by_rep.id, "no").await,
        Code::PermissionDenied,
        "ROLE_NOT_ALLOWED",
    );
    assert_eq!(
        get(&app, &by_rep.id).await,
        by_rep,
        "still PENDING, untouched"
    );

    // Submitted by a supervisor, an admin, a sales rep later promoted: never decided by the
    // same `sub`, whatever roles its token carries.
    let cases: &[(&str, &[&str], &[&str])] = &[
        ("sup-7", &["supervisor"], &["supervisor"]),
        ("adm-7", &["admin"], &["admin"]),
        ("rep-7", &["sales_rep"], &["admin", "supervisor"]),
    ];
    let mut own = Vec::new();
    for ((user, submit_roles, decide_roles), id) in cases.iter().zip(&ids[1..]) {
        let batch = submit(
            &mut batches(&app, user, submit_roles),
            by_ids(std::slice::from_ref(id), user),
        )
        .await
        .unwrap_or_else(|s| panic!("{user} submits: {s:?}"))
        .batch
        .unwrap();
        assert_eq!(batch.requester_id, *user);
        let mut same = batches(&app, user, decide_roles);
        assert_status(
            approve(&mut same, &batch.id).await,
            Code::PermissionDenied,
            "SELF_APPROVAL_FORBIDDEN",
        );
        assert_status(
            reject(&mut same, &batch.id, "mine").await,
            Code::PermissionDenied,
            "SELF_APPROVAL_FORBIDDEN",
        );
        assert_eq!(
            get(&app, &batch.id).await,
            batch,
            "{user}: still PENDING, untouched"
        );
        own.push(batch);
    }

    // A rejection needs a comment; with one, it is REJECTED and says who and why.
    let mut sup2 = batches(&app, "sup-2", &["supervisor"]);
    assert_invalid(reject(&mut sup2, &by_rep.id, "").await, "comment");
    let rejected = reject(&mut sup2, &by_rep.id, "not these customers")
        .await
        .expect("reject");
    assert_eq!(batch_state(&rejected), B::Rejected);
    assert_eq!(
        (
            rejected.decided_by.as_str(),
            rejected.decision_comment.as_str()
        ),
        ("sup-2", "not these customers")
    );
    assert!(rejected.decide_time.is_some());
    assert_eq!(get(&app, &by_rep.id).await, rejected);

    // Another supervisor or an admin approves.
    let approved = approve(&mut batches(&app, "adm-1", &["admin"]), &own[0].id)
        .await
        .expect("admin approves");
    assert_eq!(
        (batch_state(&approved), approved.decided_by.as_str()),
        (B::Approved, "adm-1")
    );
    let approved = approve(&mut sup2, &own[1].id)
        .await
        .expect("supervisor approves");
    assert_eq!(
        (batch_state(&approved), approved.decided_by.as_str()),
        (B::Approved, "sup-2")
    );
    let approved = approve(&mut sup2, &own[2].id)
        .await
        .expect("supervisor approves");
    assert_eq!(
        (batch_state(&approved), approved.decided_by.as_str()),
        (B::Approved, "sup-2")
    );
    for id in &ids {
        assert!(!is_deleted(&app, id).await, "deciding deletes nothing");
    }
}

async fn a_batch_is_cancelled_by_its_requester_a_supervisor_or_an_admin_while_it_is_open(
    app: TestApp,
) {
    let ids = customers_with_records(&app, "Withdrawn", 4).await;
    // PENDING, withdrawn by its requester (not by another sales rep).
    let (first, _) = submitted(&app, &ids[0..1], "first").await;
    assert_status(
        cancel(&mut batches(&app, "rep-2", &["sales_rep"]), &first.id).await,
        Code::PermissionDenied,
        "ROLE_NOT_ALLOWED",
    );
    assert_eq!(get(&app, &first.id).await, first);
    let cancelled = cancel(&mut rep(&app), &first.id)
        .await
        .expect("requester cancels");
    assert_eq!(batch_state(&cancelled), B::Cancelled);
    assert_eq!(cancelled.decided_by, "rep-1");
    assert!(cancelled.decide_time.is_some());

    // APPROVED, withdrawn by another supervisor.
    let (second, _) = submitted(&app, &ids[1..2], "second").await;
    approve(&mut sup(&app), &second.id).await.expect("approve");
    let cancelled = cancel(&mut batches(&app, "sup-2", &["supervisor"]), &second.id)
        .await
        .expect("supervisor cancels");
    assert_eq!(
        (batch_state(&cancelled), cancelled.decided_by.as_str()),
        (B::Cancelled, "sup-2")
    );

    // PENDING, withdrawn by an admin.
    let (third, _) = submitted(&app, &ids[2..3], "third").await;
    let cancelled = cancel(&mut batches(&app, "adm-1", &["admin"]), &third.id)
        .await
        .expect("admin cancels");
    assert_eq!(
        (batch_state(&cancelled), cancelled.decided_by.as_str()),
        (B::Cancelled, "adm-1")
    );

    // A cancelled batch is closed: no second cancel, no approval, no run.
    assert_status(
        cancel(&mut rep(&app), &first.id).await,
        Code::FailedPrecondition,
        "DELETION_BATCH_NOT_OPEN",
    );
    assert_status(
        approve(&mut sup(&app), &first.id).await,
        Code::FailedPrecondition,
        "DELETION_BATCH_NOT_PENDING",
    );
    assert_status(
        run(&mut rep(&app), &second.id).await,
        Code::FailedPrecondition,
        "DELETION_BATCH_NOT_APPROVED",
    );
    for id in &ids[0..3] {
        assert!(!is_deleted(&app, id).await);
    }

    // A COMPLETED batch cannot be cancelled either.
    let done = completed(&app, &ids[3..4], "fourth").await;
    assert_status(
        cancel(&mut rep(&app), &done.id).await,
        Code::FailedPrecondition,
        "DELETION_BATCH_NOT_OPEN",
    );
    assert_status(
        cancel(&mut batches(&app, "adm-1", &["admin"]), &done.id).await,
        Code::FailedPrecondition,
        "DELETION_BATCH_NOT_OPEN",
    );
    assert_eq!(get(&app, &done.id).await, done);

    // The customers of withdrawn batches are free for a new one.
    let (again, again_items) = submitted(&app, &ids[0..3], "again").await;
    assert_eq!(batch_state(&again), B::Pending);
    assert!(
        again_items.iter().all(|i| item_state(i) == I::Queued),
        "{again_items:?}"
    );
}

async fn each_call_on_a_batch_in_the_wrong_state_fails_precondition_and_runs_and_restores_need_their_roles(
    app: TestApp,
) {
    let ids = customers_with_records(&app, "States", 2).await;
    let (batch, _) = submitted(&app, &ids, "states").await;
    let id = batch.id.as_str();
    let mut sup1 = sup(&app);
    let mut sup2 = batches(&app, "sup-2", &["supervisor"]);
    let fp = Code::FailedPrecondition;

    // PENDING: neither run nor restored.
    assert_status(
        run(&mut rep(&app), id).await,
        fp,
        "DELETION_BATCH_NOT_APPROVED",
    );
    assert_status(run(&mut sup2, id).await, fp, "DELETION_BATCH_NOT_APPROVED");
    assert_status(
        restore(&mut sup2, id, false).await,
        fp,
        "DELETION_BATCH_NOT_COMPLETED",
    );
    assert_status(
        restore(&mut sup2, id, true).await,
        fp,
        "DELETION_BATCH_NOT_COMPLETED",
    );

    // APPROVED: neither decided again nor restored; run only by the requester, a supervisor or
    // an admin.
    approve(&mut sup1, id).await.expect("approve");
    assert_status(
        approve(&mut sup2, id).await,
        fp,
        "DELETION_BATCH_NOT_PENDING",
    );
    assert_status(
        reject(&mut sup2, id, "late").await,
        fp,
        "DELETION_BATCH_NOT_PENDING",
    );
    assert_status(
        restore(&mut sup2, id, false).await,
        fp,
        "DELETION_BATCH_NOT_COMPLETED",
    );
    assert_status(
        run(&mut batches(&app, "rep-2", &["sales_rep"]), id).await,
        Code::PermissionDenied,
        "ROLE_NOT_ALLOWED",
    );
    let approved = get(&app, id).await;
    assert_eq!(batch_state(&approved), B::Approved);
    let started = run(&mut sup2, id)
        .await
        .expect("a supervisor runs another's batch");
    assert_eq!(started.started_by, "sup-2");
    let done = wait_for(&app, id, B::Completed).await;

    // COMPLETED: not run, decided or cancelled again; restored only by a supervisor or admin.
    assert_status(
        run(&mut rep(&app), id).await,
        fp,
        "DELETION_BATCH_NOT_APPROVED",
    );
    assert_status(
        approve(&mut sup2, id).await,
        fp,
        "DELETION_BATCH_NOT_PENDING",
    );
    assert_status(
        reject(&mut sup2, id, "late").await,
        fp,
        "DELETION_BATCH_NOT_PENDING",
    );
    assert_status(cancel(&mut sup2, id).await, fp, "DELETION_BATCH_NOT_OPEN");
    for user in ["rep-1", "rep-2"] {
        let mut client = batches(&app, user, &["sales_rep"]);
        assert_status(
            restore(&mut client, id, false).await,
            Code::PermissionDenied,
            "ROLE_NOT_ALLOWED",
        );
        assert_status(
            restore(&mut client, id, true).await,
            Code::PermissionDenied,
            "ROLE_NOT_ALLOWED",
        );
    }
    assert_eq!(get(&app, id).await, done, "refused calls change nothing");
    for c in &ids {
        assert!(is_deleted(&app, c).await);
    }

    // RESTORED (by an admin): not restored or run again.
    restore(&mut batches(&app, "adm-1", &["admin"]), id, false)
        .await
        .expect("admin restores");
    let back = wait_for(&app, id, B::Restored).await;
    assert_status(
        restore(&mut sup2, id, false).await,
        fp,
        "DELETION_BATCH_NOT_COMPLETED",
    );
    assert_status(
        run(&mut rep(&app), id).await,
        fp,
        "DELETION_BATCH_NOT_APPROVED",
    );
    assert_status(cancel(&mut sup2, id).await, fp, "DELETION_BATCH_NOT_OPEN");
    assert_eq!(get(&app, id).await, back);
    for c in &ids {
        assert!(!is_deleted(&app, c).await);
    }
}

async fn a_lapsed_batch_reads_expired_and_can_be_neither_approved_nor_run(app: TestApp) {
    let ids = customers_with_records(&app, "Lapsed", 3).await;
    let (pending, _) = submitted(&app, &ids[0..1], "left pending").await;
    let (approved, _) = submitted(&app, &ids[1..2], "left unstarted").await;
    approve(&mut sup(&app), &approved.id)
        .await
        .expect("approve");
    let ttl = LifecycleSettings::default().request_ttl;
    let lifetime = pending.expire_time.unwrap().seconds - pending.create_time.unwrap().seconds;
    assert!(
        (lifetime - ttl.as_secs() as i64).abs() <= 1,
        "a batch lives as long as a request: {lifetime} s"
    );
    let before: Vec<_> = {
        let mut v = Vec::new();
        for id in &ids[0..2] {
            v.push((
                get_customer(&mut app.customers(), id).await,
                app.snapshot(id).await,
            ));
        }
        v
    };

    app.advance_clock(ttl + Duration::from_secs(1));
    for id in [&pending.id, &approved.id] {
        assert_eq!(
            batch_state(&get(&app, id).await),
            B::Expired,
            "a lapsed batch reads EXPIRED"
        );
    }
    let expired: Vec<String> = list_batches(&app, Some(B::Expired), 0)
        .await
        .into_iter()
        .map(|b| b.id)
        .collect();
    assert_eq!(expired, vec![approved.id.clone(), pending.id.clone()]);
    assert!(list_batches(&app, Some(B::Pending), 0).await.is_empty());
    assert!(list_batches(&app, Some(B::Approved), 0).await.is_empty());

    let fp = Code::FailedPrecondition;
    let mut sup2 = batches(&app, "sup-2", &["supervisor"]);
    assert_status(
        approve(&mut sup2, &pending.id).await,
        fp,
        "DELETION_BATCH_EXPIRED",
    );
    assert_eq!(
        approve(&mut sup2, &pending.id)
            .await
            .expect_err("still refused")
            .code(),
        fp
    );
    assert_status(
        run(&mut rep(&app), &approved.id).await,
        fp,
        "DELETION_BATCH_EXPIRED",
    );
    assert_eq!(
        run(&mut sup2, &approved.id)
            .await
            .expect_err("still refused")
            .code(),
        fp
    );
    for id in [&pending.id, &approved.id] {
        let b = get(&app, id).await;
        assert_eq!(batch_state(&b), B::Expired);
        assert_eq!(progress(&b).deleted, 0);
    }
    for (customer, graph) in &before {
        assert_eq!(
            &get_customer(&mut app.customers(), &customer.id).await,
            customer
        );
        assert_eq!(&app.snapshot(&customer.id).await, graph);
    }

    // A lapsed batch holds its customers no more.
    let (fresh, fresh_items) = submitted(&app, &ids, "after the lapse").await;
    assert_eq!(batch_state(&fresh), B::Pending);
    assert!(
        fresh_items.iter().all(|i| item_state(i) == I::Queued),
        "{fresh_items:?}"
    );
}

// ----- 4. caps and validation ----------------------------------------------------------------

/// Stops `app` and starts a server on a fresh database of the same kind, configured.
async fn respawn(
    app: TestApp,
    configure: impl FnOnce(&mut crm_service::app::Settings),
) -> Option<TestApp> {
    let db: Db = app.db;
    drop(app);
    TestApp::spawn_configured(db, configure).await
}

async fn create_in(app: &TestApp, name: &str, industry: &str) -> String {
    create(
        app,
        pb::Customer {
            industry: industry.into(),
            ..customer(name)
        },
    )
    .await
    .id
}

async fn a_batch_names_at_most_max_items_customers_by_id_or_by_filter_and_says_how_many(
    app: TestApp,
) {
    let Some(app) = respawn(app, |s| s.batches.max_items = 5).await else {
        return;
    };
    let mut mining = Vec::new();
    for k in 0..7 {
        mining.push(create_in(&app, &format!("Mine {k}"), "mining").await);
    }
    let mut fishing = Vec::new();
    for k in 0..5 {
        fishing.push(create_in(&app, &format!("Boat {k}"), "fishing").await);
    }
    let mut client = rep(&app);

    // By id: 7 named, 5 allowed; ids that name nothing count as named.
    let status = assert_invalid(
        submit(&mut client, by_ids(&mining, "too many")).await,
        "customer_ids",
    );
    assert!(
        all_text(&status).contains('7'),
        "says 7 were named: {status:?}"
    );
    let mut six: Vec<String> = (0..6).map(|_| random_id()).collect();
    let status = assert_invalid(
        submit(&mut client, by_ids(&six, "too many")).await,
        "customer_ids",
    );
    assert!(
        all_text(&status).contains('6'),
        "says 6 were named: {status:?}"
    );
    six.truncate(5);
    six[0] = mining[0].clone();
    let five = submit(&mut client, by_ids(&six, "five"))
        .await
        .expect("5 ids are allowed");
    assert_eq!(five.items.len(), 5);
    cancel(&mut client, &five.batch.unwrap().id)
        .await
        .expect("cancel");

    // By filter: 7 match, 5 allowed.
    let filter = |industry: &str| pb::DeletionBatchFilter {
        industry: industry.into(),
        ..Default::default()
    };
    let status = assert_status(
        submit(&mut client, by_filter(filter("mining"), "too many")).await,
        Code::InvalidArgument,
        "INVALID_FIELD",
    );
    let fields = bad_fields(&status);
    assert!(
        fields
            .iter()
            .any(|f| f == "filter" || f.starts_with("filter.") || f == "customer_ids"),
        "{fields:?}"
    );
    assert!(
        all_text(&status).contains('7'),
        "says 7 matched: {status:?}"
    );
    let five = submit(&mut client, by_filter(filter("fishing"), "five by filter"))
        .await
        .expect("5 matches are allowed");
    let mut named: Vec<String> = five.items.iter().map(|i| i.customer_id.clone()).collect();
    named.sort();
    let mut expected = fishing.clone();
    expected.sort();
    assert_eq!(named, expected);
    assert!(five.items.iter().all(|i| item_state(i) == I::Queued));
    let batches_now = list_batches(&app, None, 0).await;
    assert_eq!(batches_now.len(), 2, "refused submissions create no batch");
}

async fn a_filter_batch_names_the_live_customers_it_matches_now(app: TestApp) {
    let mut wanted = Vec::new();
    for k in 0..3 {
        wanted.push(create_in(&app, &format!("Quarry {k}"), "quarrying").await);
    }
    let _other = create_in(&app, "Bakery", "baking").await;
    let gone = create_in(&app, "Quarry gone", "quarrying").await;
    app.delete_customer(&gone).await;
    let response = submit(
        &mut rep(&app),
        by_filter(
            pb::DeletionBatchFilter {
                industry: "quarrying".into(),
                ..Default::default()
            },
            "quarries",
        ),
    )
    .await
    .expect("submit by filter");
    let mut named: Vec<String> = response
        .items
        .iter()
        .map(|i| i.customer_id.clone())
        .collect();
    named.sort();
    wanted.sort();
    assert_eq!(
        named, wanted,
        "the live customers of that industry, no deleted one"
    );
    assert!(response.items.iter().all(|i| item_state(i) == I::Queued));
    let batch = response.batch.unwrap();
    assert_eq!(impact(&batch).included_count, 3);

    // The filter is resolved at submission: a customer created later is not in the batch.
    create_in(&app, "Quarry late", "quarrying").await;
    let listed: Vec<String> = items(&app, &batch.id)
        .await
        .into_iter()
        .map(|i| i.customer_id)
        .collect();
    assert_eq!(listed.len(), 3);
}

async fn submit_refuses_bad_fields_naming_each_and_creates_nothing(app: TestApp) {
    let ids = customers_with_records(&app, "Valid", 2).await;
    let mut client = rep(&app);
    let filter = pb::DeletionBatchFilter {
        industry: "retail".into(),
        ..Default::default()
    };
    // Both, or neither.
    assert_invalid(
        submit(
            &mut client,
            pb::SubmitDeletionBatchRequest {
                filter: Some(filter.clone()),
                ..by_ids(&ids, "both")
            },
        )
        .await,
        "customer_ids",
    );
    assert_invalid(
        submit(&mut client, by_ids(&[], "neither")).await,
        "customer_ids",
    );
    // Duplicates, a malformed id.
    assert_invalid(
        submit(
            &mut client,
            by_ids(&[ids[0].clone(), ids[1].clone(), ids[0].clone()], "twice"),
        )
        .await,
        "customer_ids",
    );
    assert_invalid(
        submit(
            &mut client,
            by_ids(&[ids[0].clone(), "not-a-uuid".into()], "malformed"),
        )
        .await,
        "customer_ids",
    );
    assert_invalid(
        submit(
            &mut client,
            by_ids(&[ids[0].clone(), String::new()], "empty id"),
        )
        .await,
        "customer_ids",
    );
    // The reason: required, at most 1,000 characters.
    assert_invalid(submit(&mut client, by_ids(&ids, "")).await, "reason");
    assert_invalid(
        submit(&mut client, by_filter(filter.clone(), "")).await,
        "reason",
    );
    assert_invalid(
        submit(&mut client, by_ids(&ids, &"x".repeat(1001))).await,
        "reason",
    );
    assert!(
        list_batches(&app, None, 0).await.is_empty(),
        "nothing created"
    );
    for id in &ids {
        assert!(!is_deleted(&app, id).await);
    }
    // The boundaries themselves are fine.
    let ok = submit(&mut client, by_ids(&ids, &"x".repeat(1000)))
        .await
        .expect("1,000 characters");
    assert_eq!(ok.batch.unwrap().reason.chars().count(), 1000);
    // Last (so that the rest is checked first): the filter's query, at most 100 characters as
    // in ListCustomers.
    assert_invalid(
        submit(
            &mut client,
            by_filter(
                pb::DeletionBatchFilter {
                    query: "q".repeat(101),
                    ..Default::default()
                },
                "long query",
            ),
        )
        .await,
        "filter.query",
    );
}

// ----- 5. exclusions -------------------------------------------------------------------------

async fn excluded_customers_are_listed_with_why_and_a_batch_with_nothing_to_delete_is_refused(
    app: TestApp,
) {
    let ok = customers_with_records(&app, "Included", 2).await;
    let blocked = customer_with_records(&app, "Open order").await.id;
    let order = add_open_order(&app, &blocked).await;
    let requested = customer_with_records(&app, "Requested alone").await.id;
    app.pending_deletion(&requested, "on its own").await;
    let queued = customer_with_records(&app, "Queued elsewhere").await.id;
    let (elsewhere, _) = submitted(&app, std::slice::from_ref(&queued), "elsewhere").await;
    assert_eq!(batch_state(&elsewhere), B::Pending);
    let deleted = customer_with_records(&app, "Deleted already").await.id;
    app.delete_customer(&deleted).await;
    let random = random_id();
    let theirs = app
        .customers_as("globex", "g-rep", &["sales_rep"])
        .create_customer(crate::common::new_customer("Globex's own"))
        .await
        .unwrap()
        .into_inner()
        .customer
        .unwrap()
        .id;

    let named = vec![
        ok[0].clone(),
        blocked.clone(),
        requested.clone(),
        queued.clone(),
        deleted.clone(),
        random.clone(),
        theirs.clone(),
        ok[1].clone(),
    ];
    let etags: Vec<String> = {
        let mut v = Vec::new();
        for id in [&ok[0], &ok[1]] {
            v.push(get_customer(&mut app.customers(), id).await.etag);
        }
        v
    };
    let (batch, listed) = submitted(&app, &named, "mixed").await;
    assert_eq!(
        listed
            .iter()
            .map(|i| i.customer_id.clone())
            .collect::<Vec<_>>(),
        named,
        "every item, in submission order"
    );
    assert_eq!(item_state(&listed[0]), I::Queued);
    assert_eq!(item_state(&listed[7]), I::Queued);
    assert_eq!(
        (
            listed[0].customer_etag.clone(),
            listed[7].customer_etag.clone()
        ),
        (etags[0].clone(), etags[1].clone())
    );
    for item in &listed[1..7] {
        assert_eq!(item_state(item), I::Excluded, "{item:?}");
        assert!(item.deletion_id.is_empty(), "{item:?}");
    }
    let reason = |k: usize| listed[k].excluded_reason.as_str();
    assert_eq!(reason(1), "CUSTOMER_HAS_BLOCKERS");
    let b = &listed[1].blockers;
    assert_eq!(b.len(), 1, "{b:?}");
    assert_eq!(
        (b[0].reason.as_str(), b[0].relation.as_str(), b[0].count),
        ("OPEN_ORDER", "order", 1)
    );
    assert!(!b[0].resolution.is_empty());
    assert_eq!(
        reason(2),
        "DELETION_ALREADY_REQUESTED",
        "an open single request"
    );
    assert_eq!(
        reason(3),
        "DELETION_ALREADY_REQUESTED",
        "QUEUED in another open batch"
    );
    assert_eq!(reason(4), "CUSTOMER_DELETED");
    assert!(listed[5].customer_etag.is_empty() && listed[6].customer_etag.is_empty());
    for k in [2, 3, 4, 5, 6] {
        assert!(listed[k].blockers.is_empty(), "{:?}", listed[k]);
    }
    // Another tenant's customer is excluded exactly as a random id is.
    let scrub = |i: &pb::DeletionBatchItem| pb::DeletionBatchItem {
        customer_id: String::new(),
        update_time: None,
        ..i.clone()
    };
    assert_eq!(
        scrub(&listed[6]),
        scrub(&listed[5]),
        "another tenant's customer == a random id"
    );

    let p = progress(&batch);
    assert_eq!((p.total_items, p.queued, p.excluded), (8, 2, 6), "{p:?}");
    let i = impact(&batch);
    assert_eq!((i.included_count, i.excluded_count), (2, 6));
    let mut e = exclusions(&batch);
    let not_found = e.remove(reason(5)).unwrap_or(0);
    assert_eq!(not_found, 2, "{:?}", impact(&batch).exclusions);
    assert_eq!(
        e,
        BTreeMap::from([
            ("CUSTOMER_DELETED".to_string(), 1),
            ("CUSTOMER_HAS_BLOCKERS".to_string(), 1),
            ("DELETION_ALREADY_REQUESTED".to_string(), 2),
        ])
    );
    assert_eq!(
        items(&app, &batch.id).await,
        listed,
        "ListDeletionBatchItems == Submit's items"
    );

    // Run it: only the included ones go; the excluded stay as they were.
    let kept = [
        app.snapshot(&blocked).await,
        app.snapshot(&requested).await,
        app.snapshot(&queued).await,
    ];
    approve(&mut sup(&app), &batch.id).await.expect("approve");
    run(&mut rep(&app), &batch.id).await.expect("run");
    let done = wait_for(&app, &batch.id, B::Completed).await;
    let p = progress(&done);
    assert_eq!((p.deleted, p.excluded, p.queued), (2, 6, 0), "{p:?}");
    for id in &ok {
        assert!(is_deleted(&app, id).await);
    }
    for (id, graph) in [&blocked, &requested, &queued].into_iter().zip(&kept) {
        assert!(!is_deleted(&app, id).await);
        assert_eq!(&app.snapshot(id).await, graph);
    }
    let after = items(&app, &batch.id).await;
    for item in &after[1..7] {
        assert_eq!(item_state(item), I::Excluded, "{item:?}");
    }

    // Nothing left to delete: refused, and no batch created.
    let count = list_batches(&app, None, 0).await.len();
    let status = assert_status(
        submit(
            &mut rep(&app),
            by_ids(
                &[blocked.clone(), deleted.clone(), random_id(), ok[0].clone()],
                "nothing",
            ),
        )
        .await,
        Code::FailedPrecondition,
        "NOTHING_TO_DELETE",
    );
    assert!(!status.message().is_empty());
    assert_eq!(list_batches(&app, None, 0).await.len(), count);

    // Last, the one name the implementation's proto revised: not found is CUSTOMER_NOT_FOUND.
    assert_eq!(reason(5), NOT_FOUND_EXCLUSION, "a random id");
    assert_eq!(reason(6), NOT_FOUND_EXCLUSION, "another tenant's customer");
    // And the blocker names the order, as a preview does.
    assert_eq!(b[0].sample_ids, vec![order.id.clone()]);
}

// ----- 6. tenancy and idempotency ------------------------------------------------------------

#[derive(Debug, PartialEq)]
struct Answer {
    code: Code,
    message: String,
    reason: String,
    metadata: BTreeMap<String, String>,
    details: String,
}

/// A failed call with `ids` replaced by `<id>`: what the caller learns.
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

async fn another_tenants_batch_is_not_found_exactly_like_a_random_id(app: TestApp) {
    let ids = customers_with_records(&app, "Acme's", 2).await;
    let (pending, _) = submitted(&app, &ids[0..1], "acme pending").await;
    let done = completed(&app, &ids[1..2], "acme done").await;
    let globex = batches_of(&app, "globex", "g-adm", &["supervisor", "admin"]);
    let mut compared = 0;
    for theirs in [pending.id.as_str(), done.id.as_str()] {
        let random = random_id();
        let random = random.as_str();
        macro_rules! same {
            ($call:ident $(, $arg:expr)*) => {{
                let a = answer($call(&mut globex.clone(), theirs $(, $arg)*).await, &[theirs]);
                let b = answer($call(&mut globex.clone(), random $(, $arg)*).await, &[random]);
                assert_eq!(a, b, "{}: another tenant's batch vs a random id", stringify!($call));
                assert_eq!((a.code, a.reason.as_str()), (Code::NotFound, "NOT_FOUND"), "{a:?}");
                compared += 1;
            }};
        }
        async fn get_as(
            client: &mut Batches,
            id: &str,
        ) -> Result<pb::GetDeletionBatchResponse, Status> {
            Ok(client
                .get_deletion_batch(pb::GetDeletionBatchRequest {
                    batch_id: id.into(),
                })
                .await?
                .into_inner())
        }
        async fn items_as(
            client: &mut Batches,
            id: &str,
        ) -> Result<pb::ListDeletionBatchItemsResponse, Status> {
            Ok(client
                .list_deletion_batch_items(pb::ListDeletionBatchItemsRequest {
                    batch_id: id.into(),
                    ..Default::default()
                })
                .await?
                .into_inner())
        }
        same!(get_as);
        same!(items_as);
        same!(approve);
        same!(reject, "not yours");
        same!(cancel);
        same!(run);
        same!(restore, false);
        same!(restore, true);
    }
    assert!(
        globex
            .clone()
            .list_deletion_batches(pb::ListDeletionBatchesRequest::default())
            .await
            .unwrap()
            .into_inner()
            .batches
            .is_empty(),
        "globex lists none of acme's batches"
    );
    assert_eq!(
        get(&app, &pending.id).await,
        pending,
        "acme's batch untouched"
    );
    assert_eq!(get(&app, &done.id).await, done, "acme's batch untouched");
    assert!(is_deleted(&app, &ids[1]).await);
    figure(format_args!(
        "{:?}: {compared} batch calls with another tenant's ids, all identical to random ids",
        app.db
    ));
}

async fn submitting_twice_with_one_request_id_returns_the_same_batch(app: TestApp) {
    let ids = customers_with_records(&app, "Retried", 3).await;
    let key = request_id();
    let request = pb::SubmitDeletionBatchRequest {
        request_id: key.clone(),
        ..by_ids(&ids[0..2], "retried")
    };
    let first = submit(&mut rep(&app), request.clone())
        .await
        .expect("first");
    // The same key with other arguments is refused.
    assert_status(
        submit(
            &mut rep(&app),
            pb::SubmitDeletionBatchRequest {
                request_id: key.clone(),
                ..by_ids(&ids[1..3], "retried")
            },
        )
        .await,
        Code::InvalidArgument,
        "REQUEST_ID_REUSED",
    );
    // A retry with the same key and arguments: the first answer, although its customers are
    // now queued (in the very batch it created).
    let again = submit(&mut rep(&app), request.clone())
        .await
        .expect("retry");
    let (a, b) = (first.batch.clone().unwrap(), again.batch.clone().unwrap());
    assert_eq!(a.id, b.id, "the same batch");
    assert_eq!(
        again.items, first.items,
        "the same items (not excluded as already queued)"
    );
    assert!(again.items.iter().all(|i| item_state(i) == I::Queued));
    assert_eq!(list_batches(&app, None, 0).await.len(), 1, "one batch");

    // Without a key, two submissions are two batches (the second excludes what the first
    // queued).
    let other = submit(&mut rep(&app), by_ids(&ids[1..3], "no key"))
        .await
        .expect("no key");
    assert_ne!(other.batch.unwrap().id, a.id);
    assert_eq!(item_state(&other.items[0]), I::Excluded);
    assert_eq!(other.items[0].excluded_reason, "DELETION_ALREADY_REQUESTED");
    assert_eq!(list_batches(&app, None, 0).await.len(), 2);
}

// ----- 7. restore ----------------------------------------------------------------------------

/// Three customers with records, one of them with external_ref `erp`, deleted by a batch.
async fn deleted_trio(
    app: &TestApp,
    erp: &str,
) -> (
    Vec<pb::Customer>,
    Vec<crate::common::Snapshot>,
    pb::DeletionBatch,
) {
    let mut customers = Vec::new();
    let mut graphs = Vec::new();
    for k in 0..3 {
        let mut c = customer(&format!("Trio {k}"));
        if k == 1 {
            c.external_ref = erp.into();
        }
        let c = create(app, c).await;
        let mut r = app.records();
        create_record(&mut r, Kind::Contact, &c.id).await.unwrap();
        create_record(&mut r, Kind::Deal, &c.id).await.unwrap();
        customers.push(get_customer(&mut app.customers(), &c.id).await);
        graphs.push(app.snapshot(&c.id).await);
    }
    let ids: Vec<String> = customers.iter().map(|c| c.id.clone()).collect();
    let done = completed(app, &ids, "trio").await;
    (customers, graphs, done)
}

async fn take_external_ref(app: &TestApp, erp: &str) -> pb::Customer {
    create(
        app,
        pb::Customer {
            external_ref: erp.into(),
            ..customer("Took the ref")
        },
    )
    .await
}

async fn a_validate_only_restore_reports_each_item_as_it_would_end_and_changes_nothing(
    app: TestApp,
) {
    let (customers, _, done) = deleted_trio(&app, "ERP-VAL-1").await;
    take_external_ref(&app, "ERP-VAL-1").await;
    let items_before = items(&app, &done.id).await;
    let mut during = Vec::new();
    for c in &customers {
        during.push((
            get_customer(&mut app.customers(), &c.id).await,
            app.snapshot(&c.id).await,
        ));
    }

    let dry = restore(&mut sup(&app), &done.id, true)
        .await
        .expect("validate only");
    assert_eq!(dry.batch.as_ref(), Some(&done), "the batch as it is");
    assert_eq!(
        dry.items
            .iter()
            .map(|i| i.customer_id.clone())
            .collect::<Vec<_>>(),
        customers.iter().map(|c| c.id.clone()).collect::<Vec<_>>(),
        "each deleted item, in submission order"
    );
    assert_eq!(item_state(&dry.items[0]), I::Restored);
    assert_eq!(item_state(&dry.items[2]), I::Restored);
    let failed = &dry.items[1];
    assert_eq!(item_state(failed), I::RestoreFailed, "{failed:?}");
    assert_eq!(failed.restore_reason, "RESTORE_CONFLICT");
    assert!(!failed.restore_problem.is_empty());
    for (item, before) in dry.items.iter().zip(&items_before) {
        assert_eq!(item.deletion_id, before.deletion_id);
    }

    // Nothing changed: the batch, its items, the customers and their graphs.
    assert_eq!(get(&app, &done.id).await, done);
    assert_eq!(batch_state(&done), B::Completed);
    assert_eq!(items(&app, &done.id).await, items_before);
    for (customer, graph) in &during {
        assert_eq!(
            &get_customer(&mut app.customers(), &customer.id).await,
            customer
        );
        assert!(customer.delete_time.is_some());
        assert_eq!(&app.snapshot(&customer.id).await, graph);
    }
    // And a real restore is still possible afterwards.
    restore(&mut sup(&app), &done.id, false)
        .await
        .expect("restore");
    wait_for(&app, &done.id, B::Restored).await;
}

async fn an_item_whose_external_ref_was_taken_fails_to_restore_and_the_others_come_back(
    app: TestApp,
) {
    let (customers, graphs, done) = deleted_trio(&app, "ERP-TAKEN-1").await;
    let taker = take_external_ref(&app, "ERP-TAKEN-1").await;
    let conflicted_during = (
        get_customer(&mut app.customers(), &customers[1].id).await,
        app.snapshot(&customers[1].id).await,
    );
    let deleted_items = items(&app, &done.id).await;

    restore(&mut sup(&app), &done.id, false)
        .await
        .expect("restore");
    let back = wait_for(&app, &done.id, B::Restored).await;
    let p = progress(&back);
    assert_eq!(
        (p.restored, p.restore_failed, p.deleted),
        (2, 1, 0),
        "{p:?}"
    );
    assert_eq!(
        p.restored_records,
        (graphs[0].rows().len() + graphs[2].rows().len()) as i64
    );
    let after = items(&app, &done.id).await;
    let failed = &after[1];
    assert_eq!(item_state(failed), I::RestoreFailed, "{failed:?}");
    assert_eq!(failed.restore_reason, "RESTORE_CONFLICT");
    assert!(!failed.restore_problem.is_empty());
    assert_eq!(
        failed.deletion_id, deleted_items[1].deletion_id,
        "still names its deletion"
    );
    assert_eq!(
        (
            get_customer(&mut app.customers(), &customers[1].id).await,
            app.snapshot(&customers[1].id).await
        ),
        conflicted_during,
        "the conflicted customer stays deleted, its graph as it was"
    );
    for k in [0, 2] {
        assert_eq!(item_state(&after[k]), I::Restored, "{:?}", after[k]);
        let now = get_customer(&mut app.customers(), &customers[k].id).await;
        assert_eq!(sans_etag(&now), sans_etag(&customers[k]));
        assert_eq!(app.snapshot(&customers[k].id).await, graphs[k]);
    }
    assert!(
        get_customer(&mut app.customers(), &taker.id)
            .await
            .delete_time
            .is_none()
    );
}

// ----- 8. lists ------------------------------------------------------------------------------

async fn batches_list_newest_first_by_state_and_items_in_submission_order_by_page(app: TestApp) {
    let ids = customers_with_records(&app, "Listed", 11).await;
    let mut sup2 = batches(&app, "sup-2", &["supervisor"]);
    // Oldest first: cancelled, rejected, pending, approved, completed.
    let (cancelled, _) = submitted(&app, &ids[0..1], "to cancel").await;
    cancel(&mut rep(&app), &cancelled.id).await.unwrap();
    let (rejected, _) = submitted(&app, &ids[1..2], "to reject").await;
    reject(&mut sup2, &rejected.id, "no").await.unwrap();
    let (pending, _) = submitted(&app, &ids[2..3], "to leave").await;
    let (approved, _) = submitted(&app, &ids[3..4], "to approve").await;
    approve(&mut sup2, &approved.id).await.unwrap();
    // The last one: seven customers in an order that is neither creation nor id order, and two
    // excluded (an open order, a random id).
    add_open_order(&app, &ids[4]).await;
    let mut named: Vec<String> = ids[4..11].iter().rev().cloned().collect();
    named.swap(1, 4);
    named.insert(3, random_id());
    let done = completed(&app, &named, "to run").await;

    let newest_first: Vec<String> = [&done, &approved, &pending, &rejected, &cancelled]
        .iter()
        .map(|b| b.id.clone())
        .collect();
    for page_size in [0, 1, 2, 5, 1000] {
        let listed: Vec<String> = list_batches(&app, None, page_size)
            .await
            .into_iter()
            .map(|b| b.id)
            .collect();
        assert_eq!(listed, newest_first, "page_size {page_size}");
    }
    for (state, want) in [
        (B::Cancelled, &cancelled),
        (B::Rejected, &rejected),
        (B::Pending, &pending),
        (B::Approved, &approved),
        (B::Completed, &done),
    ] {
        let listed = list_batches(&app, Some(state), 1).await;
        assert_eq!(listed.len(), 1, "{state:?}: {listed:?}");
        assert_eq!(&listed[0].id, &want.id, "{state:?}");
        assert_eq!(batch_state(&listed[0]), state);
    }
    assert!(list_batches(&app, Some(B::Restored), 0).await.is_empty());
    assert_eq!(
        list_batches(&app, Some(B::Completed), 0).await[0],
        get(&app, &done.id).await,
        "a listed batch is the batch"
    );

    // Items: in submission order, whatever the page size; by state.
    for page_size in [0, 1, 2, 3, 8, 1000] {
        let listed: Vec<String> = items_paged(&app, &done.id, None, page_size)
            .await
            .into_iter()
            .map(|i| i.customer_id)
            .collect();
        assert_eq!(listed, named, "page_size {page_size}");
    }
    let all = items(&app, &done.id).await;
    let excluded: Vec<String> = all
        .iter()
        .filter(|i| item_state(i) == I::Excluded)
        .map(|i| i.customer_id.clone())
        .collect();
    assert_eq!(
        excluded,
        vec![named[3].clone(), ids[4].clone()],
        "the random id, the blocked one"
    );
    let deleted: Vec<String> = named
        .iter()
        .filter(|id| !excluded.contains(id))
        .cloned()
        .collect();
    for page_size in [0, 2, 1000] {
        let listed: Vec<String> = items_paged(&app, &done.id, Some(I::Deleted), page_size)
            .await
            .into_iter()
            .map(|i| i.customer_id)
            .collect();
        assert_eq!(listed, deleted, "DELETED, page_size {page_size}");
        let listed: Vec<String> = items_paged(&app, &done.id, Some(I::Excluded), page_size)
            .await
            .into_iter()
            .map(|i| i.customer_id)
            .collect();
        assert_eq!(listed, excluded, "EXCLUDED, page_size {page_size}");
    }
    assert!(
        items_paged(&app, &done.id, Some(I::Queued), 0)
            .await
            .is_empty()
    );
    assert!(
        items_paged(&app, &done.id, Some(I::Stale), 0)
            .await
            .is_empty()
    );
    assert_eq!(
        items_paged(&app, &pending.id, Some(I::Queued), 0)
            .await
            .len(),
        1
    );
}
