//! Merging a duplicate into a survivor through approval, and undoing it, black box: the golden
//! path, the approval rules, staleness, one open merge per duplicate, chains, conflicts, refusals,
//! events and audit, and as a property over random graphs with edits between merge and unmerge.
//!
//! Seeded: the seed is printed; `CRM_TEST_SEED=<seed>` replays a run.

use std::collections::BTreeSet;

use crm_service::proto::crm::v1 as pb;
use tonic::{Code, Status};
use tonic_types::StatusExt;

use crate::common::{
    Approvals, CONTACT_COLUMNS, Customers, Kind, Records, Snapshot, TestApp, approve,
    assert_status, bad_fields, create_record, delete_record, execute, figure, get_customer, mask,
    restore, touch_record,
};
use crate::process::{ServerProcess, fresh_database};
use crate::restore_property::Rng;

crate::on_both_databases!(
    a_merge_moves_every_live_record_and_an_unmerge_gives_both_graphs_back,
    the_requester_cannot_approve_and_a_write_to_either_customer_makes_the_merge_stale,
    a_duplicate_has_one_open_merge_and_concurrent_submissions_let_one_win,
    a_merge_racing_a_deletion_of_the_survivor_ends_in_one_coherent_outcome,
    a_chain_is_undone_latest_merge_first,
    an_unmerge_keeps_fields_changed_since_and_an_external_ref_conflict_undoes_nothing,
    merges_and_deletions_are_executed_and_restored_only_their_own_way,
    bad_merge_requests_are_refused_by_field_role_tenant_and_hold,
    an_unmerge_undoes_exactly_the_merge_over_random_graphs_and_edits,
    a_merge_killed_mid_flight_has_moved_all_or_nothing,
    past_its_retention_a_merge_stays_and_erasure_forgets_its_values,
    the_survivor_may_take_the_duplicates_external_ref_and_an_unmerge_gives_it_back,
);

fn sup(app: &TestApp, user: &str) -> Approvals {
    app.approvals_as("acme", user, &["supervisor"])
}

fn rep(app: &TestApp) -> Approvals {
    app.approvals_as("acme", "rep-1", &["sales_rep"])
}

fn supervisor_customers(app: &TestApp) -> Customers {
    app.customers_as("acme", "sup-1", &["supervisor"])
}

async fn merge_preview(app: &TestApp, duplicate: &str, survivor: &str) -> pb::MergePreview {
    app.customers()
        .preview_merge_customers(pb::PreviewMergeCustomersRequest {
            duplicate_id: duplicate.into(),
            survivor_id: survivor.into(),
        })
        .await
        .expect("preview merge")
        .into_inner()
        .preview
        .unwrap()
}

async fn submit_merge(
    approvals: &mut Approvals,
    preview: &pb::MergePreview,
    take_fields: &[&str],
) -> Result<pb::DeletionRequest, Status> {
    Ok(approvals
        .submit_merge_request(pb::SubmitMergeRequestRequest {
            duplicate_id: preview.duplicate_id.clone(),
            survivor_id: preview.survivor_id.clone(),
            duplicate_etag: preview.duplicate_etag.clone(),
            survivor_etag: preview.survivor_etag.clone(),
            take_fields: take_fields.iter().map(|f| f.to_string()).collect(),
            reason: "the same company, entered twice".into(),
            request_id: String::new(),
        })
        .await?
        .into_inner()
        .deletion_request
        .unwrap())
}

async fn merge(
    customers: &mut Customers,
    request_id: &str,
) -> Result<pb::MergeCustomersResponse, Status> {
    Ok(customers
        .merge_customers(pb::MergeCustomersRequest {
            deletion_request_id: request_id.into(),
            request_id: String::new(),
        })
        .await?
        .into_inner())
}

async fn unmerge(
    app: &TestApp,
    duplicate: &str,
    validate_only: bool,
) -> Result<pb::UnmergeCustomersResponse, Status> {
    Ok(supervisor_customers(app)
        .unmerge_customers(pb::UnmergeCustomersRequest {
            duplicate_id: duplicate.into(),
            validate_only,
            request_id: String::new(),
        })
        .await?
        .into_inner())
}

/// Preview, submit as rep-1, approve as sup-1: the APPROVED merge request.
async fn approved_merge(
    app: &TestApp,
    duplicate: &str,
    survivor: &str,
    take_fields: &[&str],
) -> pb::DeletionRequest {
    let preview = merge_preview(app, duplicate, survivor).await;
    let pending = submit_merge(&mut rep(app), &preview, take_fields)
        .await
        .expect("submit merge");
    approve(&mut sup(app, "sup-1"), &pending.id)
        .await
        .expect("approve merge")
}

/// The whole merge: preview, submit, approve, MergeCustomers as the requester.
async fn merged(
    app: &TestApp,
    duplicate: &str,
    survivor: &str,
    take_fields: &[&str],
) -> pb::MergeCustomersResponse {
    let approved = approved_merge(app, duplicate, survivor, take_fields).await;
    merge(&mut app.customers(), &approved.id)
        .await
        .expect("merge")
}

async fn update_customer(app: &TestApp, customer: pb::Customer, paths: &[&str]) -> pb::Customer {
    app.customers_as("acme", "sup-1", &["supervisor"])
        .update_customer(pb::UpdateCustomerRequest {
            customer: Some(customer),
            update_mask: mask(paths),
            etag: String::new(),
            request_id: String::new(),
        })
        .await
        .expect("update customer")
        .into_inner()
        .customer
        .unwrap()
}

fn ids(snapshot: &Snapshot) -> BTreeSet<String> {
    snapshot.rows().into_iter().map(|(_, id, _)| id).collect()
}

/// The records of `snapshot` whose ids are in `wanted`, as if they belonged to `customer_id`.
fn moved_to(snapshot: &Snapshot, wanted: &BTreeSet<String>, customer_id: &str) -> Snapshot {
    macro_rules! pick {
        ($field:ident) => {
            snapshot
                .$field
                .iter()
                .filter(|r| wanted.contains(&r.id))
                .cloned()
                .map(|mut r| {
                    r.customer_id = customer_id.to_owned();
                    r
                })
                .collect()
        };
    }
    Snapshot {
        contacts: pick!(contacts),
        deals: pick!(deals),
        orders: pick!(orders),
        contracts: pick!(contracts),
        projects: pick!(projects),
        activities: pick!(activities),
    }
}

/// `snapshot` without the records whose ids are in `gone`.
fn without(snapshot: &Snapshot, gone: &BTreeSet<String>) -> Snapshot {
    macro_rules! keep {
        ($field:ident) => {
            snapshot
                .$field
                .iter()
                .filter(|r| !gone.contains(&r.id))
                .cloned()
                .collect()
        };
    }
    Snapshot {
        contacts: keep!(contacts),
        deals: keep!(deals),
        orders: keep!(orders),
        contracts: keep!(contracts),
        projects: keep!(projects),
        activities: keep!(activities),
    }
}

/// Snapshots are listed in id order within a kind; merging two lists keeps that order.
fn union(a: &Snapshot, b: &Snapshot) -> Snapshot {
    macro_rules! both {
        ($field:ident) => {{
            let mut all: Vec<_> = a.$field.iter().chain(&b.$field).cloned().collect();
            all.sort_by(|x, y| x.id.cmp(&y.id));
            all
        }};
    }
    Snapshot {
        contacts: both!(contacts),
        deals: both!(deals),
        orders: both!(orders),
        contracts: both!(contracts),
        projects: both!(projects),
        activities: both!(activities),
    }
}

/// The customer as a reader compares it across a merge and its unmerge: everything but the etag.
fn sans_etag(c: &pb::Customer) -> pb::Customer {
    pb::Customer {
        etag: String::new(),
        ..c.clone()
    }
}

async fn events_of(app: &TestApp, customer_id: &str) -> Vec<pb::CustomerEvent> {
    let mut client = crm_service::proto::crm::v1::customer_event_service_client::CustomerEventServiceClient::with_interceptor(
        app.channel(),
        crate::common::Bearer::new(&app.token("acme", "watcher", &["supervisor"])),
    );
    let events = client
        .list_customer_events(pb::ListCustomerEventsRequest {
            after_sequence: 0,
            page_size: 1000,
        })
        .await
        .expect("list events")
        .into_inner()
        .events;
    events
        .into_iter()
        .filter(|e| e.customer_id == customer_id)
        .collect()
}

async fn a_merge_moves_every_live_record_and_an_unmerge_gives_both_graphs_back(app: TestApp) {
    let duplicate = app.create_customer("ACME Ltd").await;
    let survivor = app.create_customer("Acme Limited").await;
    let duplicate = update_customer(
        &app,
        pb::Customer {
            id: duplicate.id.clone(),
            email: "buyer@acme.example".into(),
            ..Default::default()
        },
        &["email"],
    )
    .await;
    let mut records = app.records();
    for kind in [
        Kind::Contact,
        Kind::Contact,
        Kind::Deal,
        Kind::Order,
        Kind::Activity,
    ] {
        create_record(&mut records, kind, &duplicate.id)
            .await
            .unwrap();
    }
    // Deleted on its own before the merge: not live, it stays with the duplicate.
    let note = create_record(&mut records, Kind::Activity, &duplicate.id)
        .await
        .unwrap();
    delete_record(&mut records, Kind::Activity, &note.id)
        .await
        .unwrap()
        .unwrap();
    create_record(&mut records, Kind::Contact, &survivor.id)
        .await
        .unwrap();
    let (d_before, s_before) = (
        app.snapshot(&duplicate.id).await,
        app.snapshot(&survivor.id).await,
    );
    let survivor = get_customer(&mut app.customers(), &survivor.id).await;
    let duplicate = get_customer(&mut app.customers(), &duplicate.id).await;

    let approved = approved_merge(&app, &duplicate.id, &survivor.id, &["email"]).await;
    assert_eq!(approved.kind, pb::DeletionRequestKind::Merge as i32);
    let terms = approved.merge.clone().unwrap();
    assert_eq!(
        (terms.survivor_id.as_str(), terms.survivor_etag.as_str()),
        (survivor.id.as_str(), survivor.etag.as_str())
    );
    assert_eq!(terms.take_fields, ["email"]);
    let done = merge(&mut app.customers(), &approved.id)
        .await
        .expect("merge");
    assert_eq!(done.moved_records, 5);
    assert_eq!(done.taken_fields, ["email"]);
    let merged_survivor = done.survivor.unwrap();
    assert_eq!(merged_survivor.email, "buyer@acme.example");
    assert_eq!(
        merged_survivor.name, "Acme Limited",
        "fields not chosen stay the survivor's"
    );
    assert_ne!(merged_survivor.etag, survivor.etag);
    let gone = get_customer(&mut app.customers(), &duplicate.id).await;
    assert!(gone.delete_time.is_some() && gone.purge_time.is_some());

    // The survivor holds every moved record, unchanged but for its customer (etags included).
    let moved: BTreeSet<String> = d_before
        .rows()
        .into_iter()
        .filter(|(_, _, deleted)| deleted.is_none())
        .map(|(_, id, _)| id)
        .collect();
    let s_merged = app.snapshot(&survivor.id).await;
    assert_eq!(
        s_merged,
        union(&s_before, &moved_to(&d_before, &moved, &survivor.id))
    );
    assert_eq!(
        app.snapshot(&duplicate.id).await,
        without(&d_before, &moved)
    );
    let request = app.deletion_request(&approved.id).await;
    assert_eq!(request.state, pb::DeletionRequestState::Executed as i32);

    // One audit entry of ids and counts, an event for each customer naming the other.
    assert_eq!(app.audit_count(&duplicate.id, "customer.merge").await, 1);
    let merge_event = |events: Vec<pb::CustomerEvent>| {
        events
            .into_iter()
            .find(|e| e.r#type == pb::CustomerEventType::Merged as i32)
            .expect("a MERGED event")
    };
    let on_duplicate = merge_event(events_of(&app, &duplicate.id).await);
    assert_eq!(
        (
            on_duplicate.record_type.as_str(),
            on_duplicate.record_id.as_str()
        ),
        ("survivor", survivor.id.as_str())
    );
    assert_eq!(on_duplicate.counts.get("moved"), Some(&5));
    let on_survivor = merge_event(events_of(&app, &survivor.id).await);
    assert_eq!(
        (
            on_survivor.record_type.as_str(),
            on_survivor.record_id.as_str()
        ),
        ("duplicate", duplicate.id.as_str())
    );

    // The recycle bin shows whom it was merged into.
    let bin = supervisor_customers(&app)
        .list_deleted_customers(pb::ListDeletedCustomersRequest::default())
        .await
        .unwrap()
        .into_inner()
        .deleted_customers;
    let entry = bin
        .iter()
        .find(|e| e.customer.as_ref().is_some_and(|c| c.id == duplicate.id))
        .expect("the merged duplicate is in the bin");
    assert_eq!(entry.merged_into_customer_id, survivor.id);
    assert_eq!(
        (entry.deletion_request_id.as_str(), entry.deleted_records),
        (approved.id.as_str(), 0)
    );

    // validate_only reports and changes nothing.
    let dry = unmerge(&app, &duplicate.id, true)
        .await
        .expect("validate unmerge");
    assert_eq!(dry.moved_back_records, 5);
    assert_eq!(app.snapshot(&survivor.id).await, s_merged);
    assert!(
        get_customer(&mut app.customers(), &duplicate.id)
            .await
            .delete_time
            .is_some()
    );

    let undone = unmerge(&app, &duplicate.id, false).await.expect("unmerge");
    assert_eq!(undone.moved_back_records, 5);
    assert_eq!(undone.reverted_fields, ["email"]);
    assert!(undone.kept_fields.is_empty());
    assert_eq!(app.snapshot(&duplicate.id).await, d_before);
    assert_eq!(app.snapshot(&survivor.id).await, s_before);
    let d_after = get_customer(&mut app.customers(), &duplicate.id).await;
    let s_after = get_customer(&mut app.customers(), &survivor.id).await;
    assert_eq!(sans_etag(&d_after), sans_etag(&duplicate));
    assert_eq!(
        sans_etag(&pb::Customer {
            update_time: None,
            ..s_after
        }),
        sans_etag(&pb::Customer {
            update_time: None,
            ..survivor.clone()
        })
    );
    assert!(
        events_of(&app, &survivor.id)
            .await
            .iter()
            .any(|e| e.r#type == pb::CustomerEventType::Unmerged as i32)
    );
    assert!(app.verify_audit().await.valid);
    // Undone once: the duplicate is live.
    assert_status(
        unmerge(&app, &duplicate.id, false).await,
        Code::FailedPrecondition,
        "NOT_MERGED",
    );
}

async fn the_requester_cannot_approve_and_a_write_to_either_customer_makes_the_merge_stale(
    app: TestApp,
) {
    let duplicate = app.create_customer("Globex").await;
    let survivor = app.create_customer("Globex Corp").await;
    let preview = merge_preview(&app, &duplicate.id, &survivor.id).await;
    let pending = submit_merge(&mut sup(&app, "sup-2"), &preview, &[])
        .await
        .expect("submit");
    assert_status(
        approve(&mut sup(&app, "sup-2"), &pending.id).await,
        Code::PermissionDenied,
        "SELF_APPROVAL_FORBIDDEN",
    );
    approve(&mut sup(&app, "sup-1"), &pending.id)
        .await
        .expect("another supervisor approves");

    // A write to the survivor after the approval: STALE, nothing moves.
    let mut records = app.records();
    let d_before = app.snapshot(&duplicate.id).await;
    create_record(&mut records, Kind::Contact, &survivor.id)
        .await
        .unwrap();
    let refused = merge(&mut supervisor_customers(&app), &pending.id).await;
    assert_status(refused, Code::FailedPrecondition, "PREVIEW_STALE");
    assert_eq!(app.snapshot(&duplicate.id).await, d_before);
    assert_eq!(
        app.deletion_request(&pending.id).await.state,
        pb::DeletionRequestState::Stale as i32
    );

    // A write to the duplicate: the same.
    let again = approved_merge(&app, &duplicate.id, &survivor.id, &[]).await;
    create_record(&mut records, Kind::Deal, &duplicate.id)
        .await
        .unwrap();
    let d_before = app.snapshot(&duplicate.id).await;
    assert_status(
        merge(&mut app.customers(), &again.id).await,
        Code::FailedPrecondition,
        "PREVIEW_STALE",
    );
    assert_eq!(app.snapshot(&duplicate.id).await, d_before);
    // A pending merge reads STALE in the list's filter too.
    let third = submit_merge(
        &mut rep(&app),
        &merge_preview(&app, &duplicate.id, &survivor.id).await,
        &[],
    )
    .await
    .unwrap();
    update_customer(
        &app,
        pb::Customer {
            id: survivor.id.clone(),
            industry: "retail".into(),
            ..Default::default()
        },
        &["industry"],
    )
    .await;
    let stale = sup(&app, "sup-1")
        .list_deletion_requests(pb::ListDeletionRequestsRequest {
            state: pb::DeletionRequestState::Stale as i32,
            customer_id: duplicate.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .deletion_requests;
    assert!(stale.iter().any(|r| r.id == third.id), "{stale:?}");
}

async fn a_duplicate_has_one_open_merge_and_concurrent_submissions_let_one_win(app: TestApp) {
    let duplicate = app.create_customer("Initech").await;
    let first = app.create_customer("Initech Inc").await;
    let second = app.create_customer("Initech LLC").await;
    let to_first = merge_preview(&app, &duplicate.id, &first.id).await;
    let to_second = merge_preview(&app, &duplicate.id, &second.id).await;
    let (a, b) = tokio::join!(
        async { submit_merge(&mut rep(&app), &to_first, &[]).await },
        async { submit_merge(&mut sup(&app, "sup-3"), &to_second, &[]).await },
    );
    let won = [&a, &b].iter().filter(|r| r.is_ok()).count();
    assert_eq!(won, 1, "{a:?} {b:?}");
    let lost = if a.is_ok() { b } else { a };
    assert_status(lost, Code::FailedPrecondition, "DELETION_ALREADY_REQUESTED");
    // A deletion request for the duplicate is refused too while the merge is open.
    let preview = app.preview(&duplicate.id).await;
    assert_status(
        crate::common::submit(&mut rep(&app), &duplicate.id, &preview.etag, "gone").await,
        Code::FailedPrecondition,
        "DELETION_ALREADY_REQUESTED",
    );
}

async fn a_merge_racing_a_deletion_of_the_survivor_ends_in_one_coherent_outcome(app: TestApp) {
    for _ in 0..3 {
        let duplicate = app.create_customer("Umbrella").await;
        let survivor = app.create_customer("Umbrella Corp").await;
        create_record(&mut app.records(), Kind::Contact, &duplicate.id)
            .await
            .unwrap();
        let merge_request = approved_merge(&app, &duplicate.id, &survivor.id, &[]).await;
        let deletion = app.approved_deletion(&survivor.id, "closed down").await;
        let survivor_etag = get_customer(&mut app.customers(), &survivor.id).await.etag;
        let (merged, deleted) = tokio::join!(
            async { merge(&mut app.customers(), &merge_request.id).await },
            async {
                execute(
                    &mut app.customers(),
                    &survivor.id,
                    &deletion.id,
                    &survivor_etag,
                )
                .await
            },
        );
        assert!(
            merged.is_ok() != deleted.is_ok(),
            "exactly one wins: {merged:?} {deleted:?}"
        );
        let d = get_customer(&mut app.customers(), &duplicate.id).await;
        let s = get_customer(&mut app.customers(), &survivor.id).await;
        if merged.is_ok() {
            // The survivor changed under the deletion's approval: it stays, with the records.
            assert_status(deleted, Code::FailedPrecondition, "PREVIEW_STALE");
            assert!(d.delete_time.is_some() && s.delete_time.is_none());
            assert_eq!(app.snapshot(&survivor.id).await.live(), 1);
        } else {
            assert_status(merged, Code::FailedPrecondition, "PREVIEW_STALE");
            assert!(d.delete_time.is_none() && s.delete_time.is_some());
            assert_eq!(app.snapshot(&duplicate.id).await.live(), 1);
        }
    }
}

async fn a_chain_is_undone_latest_merge_first(app: TestApp) {
    let mut records = app.records();
    let mut customers = Vec::new();
    for name in ["Hooli A", "Hooli B", "Hooli C"] {
        let c = app.create_customer(name).await;
        create_record(&mut records, Kind::Contact, &c.id)
            .await
            .unwrap();
        create_record(&mut records, Kind::Deal, &c.id)
            .await
            .unwrap();
        customers.push(c);
    }
    let (a, b, c) = (&customers[0], &customers[1], &customers[2]);
    let mut before = Vec::new();
    for x in [a, b, c] {
        before.push(app.snapshot(&x.id).await);
    }
    assert_eq!(merged(&app, &a.id, &b.id, &["name"]).await.moved_records, 2);
    assert_eq!(merged(&app, &b.id, &c.id, &["name"]).await.moved_records, 4);
    assert_eq!(
        get_customer(&mut app.customers(), &c.id).await.name,
        "Hooli A"
    );
    assert_eq!(app.snapshot(&c.id).await.live(), 6);
    // A's survivor is merged away: B must come back first.
    assert_status(
        unmerge(&app, &a.id, false).await,
        Code::FailedPrecondition,
        "CUSTOMER_DELETED",
    );
    let back = unmerge(&app, &b.id, false).await.expect("unmerge B from C");
    assert_eq!(
        (back.moved_back_records, back.reverted_fields.clone()),
        (4, vec!["name".to_owned()])
    );
    assert_eq!(
        get_customer(&mut app.customers(), &b.id).await.name,
        "Hooli A"
    );
    let back = unmerge(&app, &a.id, false).await.expect("unmerge A from B");
    assert_eq!(back.moved_back_records, 2);
    for (x, snapshot) in [a, b, c].into_iter().zip(&before) {
        assert_eq!(&app.snapshot(&x.id).await, snapshot, "{}", x.name);
        assert_eq!(get_customer(&mut app.customers(), &x.id).await.name, x.name);
    }
}

async fn an_unmerge_keeps_fields_changed_since_and_an_external_ref_conflict_undoes_nothing(
    app: TestApp,
) {
    let duplicate = app.create_customer("Stark Industries").await;
    let duplicate = update_customer(
        &app,
        pb::Customer {
            id: duplicate.id.clone(),
            external_ref: "ERP-77".into(),
            phone: "+44 20 7946 0001".into(),
            ..Default::default()
        },
        &["external_ref", "phone"],
    )
    .await;
    let survivor = app.create_customer("Stark Ind.").await;
    create_record(&mut app.records(), Kind::Contact, &duplicate.id)
        .await
        .unwrap();
    merged(&app, &duplicate.id, &survivor.id, &["name", "phone"]).await;
    // The survivor's name changes after the merge: an unmerge keeps it and says so.
    update_customer(
        &app,
        pb::Customer {
            id: survivor.id.clone(),
            name: "Stark Group".into(),
            ..Default::default()
        },
        &["name"],
    )
    .await;
    // Another customer takes the duplicate's external_ref meanwhile: the unmerge fails whole.
    let taker = app.create_customer("Stark Holdings").await;
    let taker = update_customer(
        &app,
        pb::Customer {
            id: taker.id.clone(),
            external_ref: "ERP-77".into(),
            ..Default::default()
        },
        &["external_ref"],
    )
    .await;
    let s_before = app.snapshot(&survivor.id).await;
    let s_customer = get_customer(&mut app.customers(), &survivor.id).await;
    let refused = unmerge(&app, &duplicate.id, false).await;
    let status = assert_status(refused, Code::FailedPrecondition, "RESTORE_CONFLICT");
    let details = status.get_error_details();
    let info = details.error_info().unwrap();
    assert_eq!(
        info.metadata.get("field").map(String::as_str),
        Some("external_ref")
    );
    assert_eq!(info.metadata.get("customerId"), Some(&duplicate.id));
    assert_eq!(app.snapshot(&survivor.id).await, s_before);
    assert_eq!(
        get_customer(&mut app.customers(), &survivor.id).await,
        s_customer
    );
    assert!(
        get_customer(&mut app.customers(), &duplicate.id)
            .await
            .delete_time
            .is_some()
    );

    update_customer(
        &app,
        pb::Customer {
            id: taker.id.clone(),
            external_ref: String::new(),
            ..Default::default()
        },
        &["external_ref"],
    )
    .await;
    let undone = unmerge(&app, &duplicate.id, false).await.expect("unmerge");
    assert_eq!(undone.reverted_fields, ["phone"]);
    assert_eq!(undone.kept_fields.len(), 1);
    assert_eq!(
        (
            undone.kept_fields[0].field.as_str(),
            undone.kept_fields[0].value.as_str()
        ),
        ("name", "Stark Group")
    );
    let s = get_customer(&mut app.customers(), &survivor.id).await;
    assert_eq!(
        (s.name.as_str(), s.phone.as_str()),
        ("Stark Group", survivor.phone.as_str())
    );
    assert_eq!(
        get_customer(&mut app.customers(), &duplicate.id)
            .await
            .external_ref,
        "ERP-77"
    );
}

async fn merges_and_deletions_are_executed_and_restored_only_their_own_way(app: TestApp) {
    let duplicate = app.create_customer("Wayne Enterprises").await;
    let survivor = app.create_customer("Wayne Ent").await;
    let merge_request = approved_merge(&app, &duplicate.id, &survivor.id, &[]).await;
    let etag = get_customer(&mut app.customers(), &duplicate.id).await.etag;
    assert_status(
        execute(
            &mut app.customers(),
            &duplicate.id,
            &merge_request.id,
            &etag,
        )
        .await,
        Code::FailedPrecondition,
        "REQUEST_KIND_MISMATCH",
    );
    let other = app.create_customer("Cyberdyne").await;
    let deletion = app.approved_deletion(&other.id, "gone").await;
    assert_status(
        merge(&mut app.customers(), &deletion.id).await,
        Code::FailedPrecondition,
        "REQUEST_KIND_MISMATCH",
    );
    merge(&mut app.customers(), &merge_request.id)
        .await
        .expect("merge");
    assert_status(
        restore(&mut supervisor_customers(&app), &duplicate.id, false).await,
        Code::FailedPrecondition,
        "DELETED_BY_MERGE",
    );
    // A customer deleted the usual way is not unmerged.
    let deleted = app.create_customer("Soylent").await;
    app.delete_customer(&deleted.id).await;
    assert_status(
        unmerge(&app, &deleted.id, false).await,
        Code::FailedPrecondition,
        "NOT_MERGED",
    );
    // Executed once: a second MergeCustomers is refused, nothing moves twice.
    assert_status(
        merge(&mut app.customers(), &merge_request.id).await,
        Code::FailedPrecondition,
        "DELETION_NOT_APPROVED",
    );
}

async fn bad_merge_requests_are_refused_by_field_role_tenant_and_hold(app: TestApp) {
    let duplicate = app.create_customer("Tyrell").await;
    let survivor = app.create_customer("Tyrell Corp").await;
    let preview = merge_preview(&app, &duplicate.id, &survivor.id).await;
    let status = assert_status(
        submit_merge(&mut rep(&app), &preview, &["bogus", "name", "name"]).await,
        Code::InvalidArgument,
        "INVALID_FIELD",
    );
    assert_eq!(bad_fields(&status), ["take_fields[0]", "take_fields[2]"]);
    let same = pb::MergePreview {
        survivor_id: duplicate.id.clone(),
        survivor_etag: preview.duplicate_etag.clone(),
        ..preview.clone()
    };
    let status = assert_status(
        submit_merge(&mut rep(&app), &same, &[]).await,
        Code::InvalidArgument,
        "INVALID_FIELD",
    );
    assert_eq!(bad_fields(&status), ["survivor_id"]);
    let no_etag = pb::MergePreview {
        survivor_etag: String::new(),
        ..preview.clone()
    };
    let status = assert_status(
        submit_merge(&mut rep(&app), &no_etag, &[]).await,
        Code::InvalidArgument,
        "INVALID_FIELD",
    );
    assert_eq!(bad_fields(&status), ["survivor_etag"]);
    let old = pb::MergePreview {
        survivor_etag: "1".into(),
        ..preview.clone()
    };
    let _ = update_customer(
        &app,
        pb::Customer {
            id: survivor.id.clone(),
            industry: "bio".into(),
            ..Default::default()
        },
        &["industry"],
    )
    .await;
    assert_status(
        submit_merge(&mut rep(&app), &old, &[]).await,
        Code::FailedPrecondition,
        "PREVIEW_STALE",
    );
    // Another tenant's customer does not exist here.
    let mut globex = app.customers_as("globex", "rep-9", &["sales_rep"]);
    let theirs = globex
        .create_customer(crate::common::new_customer("Theirs"))
        .await
        .unwrap()
        .into_inner()
        .customer
        .unwrap();
    let cross = pb::MergePreview {
        survivor_id: theirs.id.clone(),
        survivor_etag: theirs.etag.clone(),
        ..merge_preview(&app, &duplicate.id, &survivor.id).await
    };
    assert_status(
        submit_merge(&mut rep(&app), &cross, &[]).await,
        Code::NotFound,
        "NOT_FOUND",
    );
    // A hold on either customer stops it.
    app.customers_as("acme", "admin-1", &["admin"])
        .set_legal_hold(pb::SetLegalHoldRequest {
            customer_id: survivor.id.clone(),
            legal_hold: true,
            reason: "litigation".into(),
            ..Default::default()
        })
        .await
        .expect("hold");
    let held = merge_preview(&app, &duplicate.id, &survivor.id).await;
    assert_status(
        submit_merge(&mut rep(&app), &held, &[]).await,
        Code::FailedPrecondition,
        "LEGAL_HOLD",
    );
    // Executing: another tenant does not see the request; a sales rep other than the requester
    // may not execute it.
    let lifted = app.create_customer("Tyrell Ltd").await;
    let approved = approved_merge(&app, &lifted.id, &duplicate.id, &[]).await;
    let foreign = app
        .customers_as("globex", "sup-9", &["supervisor"])
        .merge_customers(pb::MergeCustomersRequest {
            deletion_request_id: approved.id.clone(),
            ..Default::default()
        })
        .await;
    assert_status(foreign, Code::NotFound, "NOT_FOUND");
    let other_rep = app
        .customers_as("acme", "rep-2", &["sales_rep"])
        .merge_customers(pb::MergeCustomersRequest {
            deletion_request_id: approved.id.clone(),
            ..Default::default()
        })
        .await;
    assert_status(other_rep, Code::PermissionDenied, "ROLE_NOT_ALLOWED");
    // Unmerge is for supervisors and admins.
    let refused = app
        .customers()
        .unmerge_customers(pb::UnmergeCustomersRequest {
            duplicate_id: duplicate.id.clone(),
            ..Default::default()
        })
        .await;
    assert_status(refused, Code::PermissionDenied, "ROLE_NOT_ALLOWED");
    let refused = app
        .customers_as("globex", "sup-9", &["supervisor"])
        .unmerge_customers(pb::UnmergeCustomersRequest {
            duplicate_id: duplicate.id.clone(),
            ..Default::default()
        })
        .await;
    assert_status(refused, Code::NotFound, "NOT_FOUND");
    let status = assert_status(
        unmerge(&app, "not-a-uuid", false).await,
        Code::InvalidArgument,
        "INVALID_FIELD",
    );
    assert_eq!(bad_fields(&status), ["duplicate_id"]);
}

async fn random_records(
    records: &mut Records,
    rng: &mut Rng,
    customer_id: &str,
) -> Vec<(Kind, String)> {
    let mut made = Vec::new();
    for _ in 0..rng.below(8) {
        let kind = Kind::ALL[rng.below(6) as usize];
        let record = create_record(records, kind, customer_id).await.unwrap();
        made.push((kind, record.id));
    }
    made
}

async fn an_unmerge_undoes_exactly_the_merge_over_random_graphs_and_edits(app: TestApp) {
    let seed = crate::restore_property::seed();
    figure(format!(
        "merge property seed {seed} (CRM_TEST_SEED={seed} replays it)"
    ));
    let mut rng = Rng(seed);
    let mut records = app.records_as("acme", "sup-1", &["supervisor"]);
    for case in 0..6 {
        let duplicate = app.create_customer(&format!("Case {case} duplicate")).await;
        let survivor = app.create_customer(&format!("Case {case} survivor")).await;
        let d_made = random_records(&mut records, &mut rng, &duplicate.id).await;
        random_records(&mut records, &mut rng, &survivor.id).await;
        // Some of the duplicate's records deleted on their own first: they do not move.
        for (kind, id) in &d_made {
            if rng.below(4) == 0 {
                let _ = delete_record(&mut records, *kind, id).await;
            }
        }
        let (d_before, s_before) = (
            app.snapshot(&duplicate.id).await,
            app.snapshot(&survivor.id).await,
        );
        let moved: BTreeSet<String> = d_before
            .rows()
            .into_iter()
            .filter(|r| r.2.is_none())
            .map(|r| r.1)
            .collect();
        merged(&app, &duplicate.id, &survivor.id, &[]).await;
        // Edits under the survivor: moved records changed or deleted, new records created.
        for (kind, id) in &d_made {
            if !moved.contains(id) {
                continue;
            }
            match rng.below(3) {
                0 => {
                    touch_record(&mut records, *kind, id).await.unwrap();
                }
                1 => {
                    let _ = delete_record(&mut records, *kind, id).await;
                }
                _ => {}
            }
        }
        let created = random_records(&mut records, &mut rng, &survivor.id).await;
        let s_mid = app.snapshot(&survivor.id).await;
        unmerge(&app, &duplicate.id, false).await.expect("unmerge");
        let expected_d = union(
            &without(&d_before, &moved),
            &moved_to(&s_mid, &moved, &duplicate.id),
        );
        assert_eq!(
            app.snapshot(&duplicate.id).await,
            expected_d,
            "case {case} seed {seed}"
        );
        let s_after = app.snapshot(&survivor.id).await;
        assert_eq!(s_after, without(&s_mid, &moved), "case {case} seed {seed}");
        let created: BTreeSet<String> = created.into_iter().map(|(_, id)| id).collect();
        assert_eq!(
            ids(&s_after),
            ids(&s_before).union(&created).cloned().collect(),
            "case {case}"
        );
    }
}

/// SIGKILL while MergeCustomers runs, at a different moment each time: after the restart each
/// merge has either happened whole (the duplicate deleted, every record with the survivor, the
/// request EXECUTED, one audit entry) or not at all (everything where it was, the request still
/// APPROVED, and it merges whole when asked again).
async fn a_merge_killed_mid_flight_has_moved_all_or_nothing(app: TestApp) {
    let db = app.db;
    drop(app);
    let Some((url, schema)) = fresh_database(db).await else {
        return;
    };
    let mut server = ServerProcess::start(db, &url, schema.as_deref(), &[]).await;
    let mut client = server.app().await;
    const ATTEMPTS: usize = 4;
    let mut pairs = Vec::new();
    for n in 0..ATTEMPTS {
        let duplicate = client
            .create_customer(&format!("Crash duplicate {n}"))
            .await;
        create_record(&mut client.records(), Kind::Contact, &duplicate.id)
            .await
            .unwrap();
        pairs.push(duplicate);
    }
    // 1,000 more contacts for each duplicate, in one statement.
    client.clone_rows("contact", CONTACT_COLUMNS, 1000).await;
    let mut whole = 0;
    for (n, duplicate) in pairs.iter().enumerate() {
        let survivor = client.create_customer(&format!("Crash survivor {n}")).await;
        let approved = approved_merge(&client, &duplicate.id, &survivor.id, &["name"]).await;
        let mut customers = client.customers();
        let request_id = approved.id.clone();
        let call = tokio::spawn(async move { merge(&mut customers, &request_id).await });
        tokio::time::sleep(std::time::Duration::from_millis([0, 8, 20, 50][n])).await;
        server.kill().await;
        let _ = call.await;
        server = ServerProcess::start(db, &url, schema.as_deref(), &[]).await;
        let restarted = server.app().await;
        let mut old = std::mem::replace(&mut client, restarted);
        old.schema = None;
        drop(old);

        let d = get_customer(&mut client.customers(), &duplicate.id).await;
        let (d_live, s_live) = (
            client.snapshot(&duplicate.id).await.live(),
            client.snapshot(&survivor.id).await.live(),
        );
        let request = client.deletion_request(&approved.id).await;
        if d.delete_time.is_some() {
            whole += 1;
            assert_eq!((d_live, s_live), (0, 1001), "attempt {n}: all moved");
            assert_eq!(request.state, pb::DeletionRequestState::Executed as i32);
            assert_eq!(client.audit_count(&duplicate.id, "customer.merge").await, 1);
        } else {
            assert_eq!((d_live, s_live), (1001, 0), "attempt {n}: nothing moved");
            assert_eq!(request.state, pb::DeletionRequestState::Approved as i32);
            let done = merge(&mut client.customers(), &approved.id)
                .await
                .expect("merge again");
            assert_eq!(done.moved_records, 1001);
        }
        // Either way, the unmerge gives it all back.
        assert_eq!(
            unmerge(&client, &duplicate.id, false)
                .await
                .expect("unmerge")
                .moved_back_records,
            1001
        );
    }
    figure(format_args!(
        "{db:?}: {whole} of {ATTEMPTS} merges killed mid-flight had committed whole, the rest not at all"
    ));
    assert!(client.verify_audit().await.valid);
    drop(server);
    drop(client);
}

/// Rows of `sql` (a COUNT) on the test's database.
async fn count(app: &TestApp, sql: &str) -> i64 {
    use sea_orm::ConnectionTrait;
    let store = app.store().await;
    store
        .conn()
        .query_one_raw(sea_orm::Statement::from_string(store.backend(), sql))
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .expect("one row")
        .try_get_by_index::<i64>(0)
        .unwrap()
}

/// `id` as a literal of the uuid column type (a 16-byte blob on SQLite).
fn uuid_literal(app: &TestApp, id: &str) -> String {
    let id = uuid::Uuid::parse_str(id).expect("a uuid");
    match app.db {
        crate::common::Db::Sqlite => format!("x'{}'", id.simple()),
        crate::common::Db::Postgres => format!("'{id}'"),
    }
}

async fn past_its_retention_a_merge_stays_and_erasure_forgets_its_values(app: TestApp) {
    let admin = || app.customers_as("acme", "admin-1", &["admin"]);
    // Merged, then its retention passes: no unmerge; the erasure forgets the merge.
    let duplicate = app.create_customer("Oscorp").await;
    let duplicate = update_customer(
        &app,
        pb::Customer {
            id: duplicate.id.clone(),
            phone: "+44 20 7946 0999".into(),
            ..Default::default()
        },
        &["phone"],
    )
    .await;
    let survivor = app.create_customer("Oscorp Industries").await;
    create_record(&mut app.records(), Kind::Contact, &duplicate.id)
        .await
        .unwrap();
    merged(&app, &duplicate.id, &survivor.id, &["phone", "name"]).await;
    let terms = format!(
        "SELECT COUNT(*) FROM deletion_request WHERE customer_id = {} AND merge_values IS NOT NULL",
        uuid_literal(&app, &duplicate.id)
    );
    assert_eq!(
        count(&app, &terms).await,
        1,
        "the merge keeps the survivor's values before it"
    );
    app.advance_clock(std::time::Duration::from_secs(31 * 24 * 3600));
    assert_status(
        unmerge(&app, &duplicate.id, false).await,
        Code::FailedPrecondition,
        "RETENTION_EXPIRED",
    );
    admin()
        .purge_customer(pb::PurgeCustomerRequest {
            customer_id: duplicate.id.clone(),
            ..Default::default()
        })
        .await
        .expect("purge the duplicate");
    assert_eq!(count(&app, &terms).await, 0, "the erasure blanks them");
    assert_eq!(
        count(&app, "SELECT COUNT(*) FROM merge_move").await,
        0,
        "and forgets what moved"
    );
    assert_eq!(
        app.snapshot(&survivor.id).await.live(),
        1,
        "the moved contact stays with the survivor"
    );
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM deletion_request WHERE merge_values LIKE '%Oscorp Industries%'"
        )
        .await,
        0
    );

    // The survivor erased: the values it had before a merge into it are erased too.
    let duplicate = app.create_customer("Massive Dynamic").await;
    let survivor = app.create_customer("Massive Dynamic Inc").await;
    merged(&app, &duplicate.id, &survivor.id, &["name"]).await;
    let kept = format!(
        "SELECT COUNT(*) FROM deletion_request WHERE customer_id = {} AND merge_values IS NOT NULL",
        uuid_literal(&app, &duplicate.id)
    );
    assert_eq!(count(&app, &kept).await, 1);
    app.delete_customer(&survivor.id).await;
    admin()
        .purge_customer(pb::PurgeCustomerRequest {
            customer_id: survivor.id.clone(),
            ..Default::default()
        })
        .await
        .expect("purge the survivor");
    assert_eq!(count(&app, &kept).await, 0);
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM deletion_request WHERE merge_values LIKE '%Massive Dynamic Inc%'"
        )
        .await,
        0
    );
}

async fn the_survivor_may_take_the_duplicates_external_ref_and_an_unmerge_gives_it_back(
    app: TestApp,
) {
    let duplicate = app.create_customer("Aperture").await;
    let duplicate = update_customer(
        &app,
        pb::Customer {
            id: duplicate.id.clone(),
            external_ref: "ERP-42".into(),
            ..Default::default()
        },
        &["external_ref"],
    )
    .await;
    let survivor = app.create_customer("Aperture Science").await;
    let done = merged(&app, &duplicate.id, &survivor.id, &["external_ref"]).await;
    // Only one live customer may hold an external_ref: the duplicate went first.
    assert_eq!(done.survivor.unwrap().external_ref, "ERP-42");
    let undone = unmerge(&app, &duplicate.id, false).await.expect("unmerge");
    assert_eq!(undone.reverted_fields, ["external_ref"]);
    assert_eq!(
        get_customer(&mut app.customers(), &survivor.id)
            .await
            .external_ref,
        ""
    );
    assert_eq!(
        get_customer(&mut app.customers(), &duplicate.id)
            .await
            .external_ref,
        "ERP-42"
    );
}
