//! Races on the deletion lifecycle (docs/reliability.md C1, C2, C4), many trials each, figures
//! printed: concurrent approvals of one request, concurrent executions of one approved request, and
//! record writers racing a deletion. A single run proves little; each trial starts its callers
//! together on a barrier.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Instant;

use crm_service::proto::crm::v1 as pb;
use tokio::sync::Barrier;
use tonic::{Code, Status};
use tonic_types::StatusExt;

use crate::common::{
    TestApp, approve, assert_status, execute, figure, get_customer, new_contact, new_deal,
    new_order, request_id,
};

crate::on_both_databases!(
    concurrent_approvals_by_32_supervisors_let_exactly_one_win,
    concurrent_deletes_of_one_approved_request_make_exactly_one_deletion,
    contacts_written_while_a_delete_runs_never_end_up_live_under_a_deleted_customer,
);

/// Trials per race: enough to catch a lost update (a naive approval doubled in 50 of 50 trials,
/// docs/reliability.md M7) while each race stays within a few seconds per database on 2 cores.
const TRIALS: usize = 20;
const CALLERS: usize = 32;

fn reason_of(status: &Status) -> String {
    let reason = status
        .get_error_details()
        .error_info()
        .map(|i| i.reason.clone())
        .unwrap_or_default();
    format!("{:?}/{reason}", status.code())
}

/// A losing call must be a refusal of the state (or a retryable conflict), never anything else.
fn tally_loser(status: Status, tally: &mut BTreeMap<String, usize>) {
    assert!(
        matches!(status.code(), Code::FailedPrecondition | Code::Aborted),
        "{status:?}"
    );
    *tally.entry(reason_of(&status)).or_default() += 1;
}

async fn concurrent_approvals_by_32_supervisors_let_exactly_one_win(app: TestApp) {
    let started = Instant::now();
    let approvers: Vec<_> = (0..CALLERS)
        .map(|i| app.approvals_as("acme", &format!("sup-{i}"), &["supervisor"]))
        .collect();
    let mut losers = BTreeMap::new();
    let mut bad_trials = 0;
    for trial in 0..TRIALS {
        let customer = app
            .create_customer(&format!("Approved at once {trial}"))
            .await;
        let pending = app.pending_deletion(&customer.id, "race").await;
        let barrier = Arc::new(Barrier::new(CALLERS));
        let tasks: Vec<_> = approvers
            .iter()
            .map(|client| {
                let (mut client, id, barrier) =
                    (client.clone(), pending.id.clone(), barrier.clone());
                tokio::spawn(async move {
                    barrier.wait().await;
                    approve(&mut client, &id).await
                })
            })
            .collect();
        let mut winners = Vec::new();
        for (i, task) in tasks.into_iter().enumerate() {
            match task.await.unwrap() {
                Ok(approved) => winners.push((i, approved)),
                Err(status) => tally_loser(status, &mut losers),
            }
        }
        if winners.len() != 1 {
            bad_trials += 1;
        }
        assert_eq!(winners.len(), 1, "trial {trial}: {winners:?}");
        let (winner, answer) = &winners[0];
        let stored = app.deletion_request(&pending.id).await;
        assert_eq!(
            &stored, answer,
            "trial {trial}: the winner's answer is what is stored"
        );
        assert_eq!(stored.state, pb::DeletionRequestState::Approved as i32);
        assert_eq!(stored.decided_by, format!("sup-{winner}"));
        assert_eq!(
            app.audit_count(&customer.id, "deletion_request.approve")
                .await,
            1,
            "trial {trial}: one approval event"
        );
    }
    assert!(app.verify_audit().await.valid);
    figure(format_args!(
        "{:?} C1: {TRIALS} trials x {CALLERS} concurrent approvals: trials with != 1 winner = \
         {bad_trials}; losers {losers:?}; {:?}",
        app.db,
        started.elapsed()
    ));
}

/// Who executes, and with which idempotency key: the same key from the same caller (a retrying
/// client), a key per call, or none, from the requester and from supervisors.
fn delete_caller(
    app: &TestApp,
    i: usize,
    shared: &[String; 2],
) -> (crate::common::Customers, String) {
    match i % 4 {
        0 => (app.customers(), shared[0].clone()),
        1 => (
            app.customers_as("acme", "sup-1", &["supervisor"]),
            shared[1].clone(),
        ),
        2 => (
            app.customers_as("acme", &format!("sup-{i}"), &["supervisor"]),
            request_id(),
        ),
        _ => (app.customers(), String::new()),
    }
}

async fn concurrent_deletes_of_one_approved_request_make_exactly_one_deletion(app: TestApp) {
    let started = Instant::now();
    let mut losers = BTreeMap::new();
    let (mut ok_answers, mut duplicate_deletions) = (0, 0);
    for trial in 0..TRIALS {
        let customer = app
            .create_customer(&format!("Deleted at once {trial}"))
            .await;
        let c = customer.id.clone();
        let mut r = app.records();
        for _ in 0..3 {
            r.create_contact(pb::CreateContactRequest {
                contact: Some(new_contact(&c)),
                request_id: String::new(),
            })
            .await
            .unwrap();
        }
        r.create_deal(pb::CreateDealRequest {
            deal: Some(new_deal(&c, pb::DealStage::Lost)),
            request_id: String::new(),
        })
        .await
        .unwrap();
        r.create_order(pb::CreateOrderRequest {
            order: Some(new_order(&c, pb::OrderStatus::Paid)),
            request_id: String::new(),
        })
        .await
        .unwrap();
        let approved = app.approved_deletion(&c, "race").await;
        let etag = approved.preview.as_ref().unwrap().etag.clone();
        let shared = [request_id(), request_id()];
        let barrier = Arc::new(Barrier::new(CALLERS));
        let tasks: Vec<_> = (0..CALLERS)
            .map(|i| {
                let (mut client, key) = delete_caller(&app, i, &shared);
                let request = pb::DeleteCustomerRequest {
                    customer_id: c.clone(),
                    deletion_request_id: approved.id.clone(),
                    etag: etag.clone(),
                    request_id: key,
                };
                let barrier = barrier.clone();
                tokio::spawn(async move {
                    barrier.wait().await;
                    client.delete_customer(request).await
                })
            })
            .collect();
        let mut deletion_ids = BTreeSet::new();
        for task in tasks {
            match task.await.unwrap() {
                Ok(response) => {
                    let response = response.into_inner();
                    assert_eq!(response.deleted_records, 4, "trial {trial}");
                    deletion_ids.insert(response.customer.unwrap().deletion_id);
                    ok_answers += 1;
                }
                Err(status) => tally_loser(status, &mut losers),
            }
        }
        if deletion_ids.len() != 1 {
            duplicate_deletions += 1;
        }
        assert_eq!(deletion_ids.len(), 1, "trial {trial}: {deletion_ids:?}");
        let deletion_id = deletion_ids.into_iter().next().unwrap();
        assert!(!deletion_id.is_empty());
        let gone = get_customer(&mut app.customers(), &c).await;
        assert_eq!(gone.deletion_id, deletion_id, "trial {trial}");
        let graph = app.snapshot(&c).await;
        for (kind, id, delete_time) in graph.rows() {
            if kind == "order" {
                assert_eq!(delete_time, None, "trial {trial}: the paid order is kept");
            } else {
                assert_eq!(
                    delete_time, gone.delete_time,
                    "trial {trial}: {kind} {id} deleted once, with the customer"
                );
            }
        }
        let request = app.deletion_request(&approved.id).await;
        assert_eq!(request.state, pb::DeletionRequestState::Executed as i32);
        assert_eq!(
            app.audit_count(&c, "customer.delete").await,
            1,
            "trial {trial}"
        );
    }
    assert!(app.verify_audit().await.valid);
    figure(format_args!(
        "{:?} C2: {TRIALS} trials x {CALLERS} concurrent DeleteCustomer (2 shared request_ids, \
         8 fresh, 8 none): trials with != 1 deletion id = {duplicate_deletions}; OK answers \
         {ok_answers} (replays included); losers {losers:?}; {:?}",
        app.db,
        started.elapsed()
    ));
}

const WRITERS: usize = 16;
const WRITES_EACH: usize = 2;

async fn contacts_written_while_a_delete_runs_never_end_up_live_under_a_deleted_customer(
    app: TestApp,
) {
    let started = Instant::now();
    let (mut deleted, mut stale) = (0, 0);
    let (mut committed, mut refused) = (0, 0);
    let mut orphans = 0;
    for trial in 0..TRIALS {
        let customer = app
            .create_customer(&format!("Written during delete {trial}"))
            .await;
        let c = customer.id.clone();
        for _ in 0..2 {
            app.records()
                .create_contact(pb::CreateContactRequest {
                    contact: Some(new_contact(&c)),
                    request_id: String::new(),
                })
                .await
                .unwrap();
        }
        let approved = app.approved_deletion(&c, "race").await;
        let etag = approved.preview.as_ref().unwrap().etag.clone();
        let barrier = Arc::new(Barrier::new(WRITERS + 1));
        // Writers of some trials read a little first, so that both outcomes occur: the delete
        // first (writes refused) and a write first (the delete stale).
        let warmup = trial % 4;
        let writers: Vec<_> = (0..WRITERS)
            .map(|w| {
                let records = app.records_as("acme", &format!("writer-{w}"), &["sales_rep"]);
                let customers = app.customers_as("acme", &format!("writer-{w}"), &["sales_rep"]);
                crate::common::spawn_contact_writer(
                    records,
                    customers,
                    c.clone(),
                    barrier.clone(),
                    warmup,
                    WRITES_EACH,
                )
            })
            .collect();
        let deleter = {
            let (mut customers, c, id, barrier) = (
                app.customers(),
                c.clone(),
                approved.id.clone(),
                barrier.clone(),
            );
            tokio::spawn(async move {
                barrier.wait().await;
                execute(&mut customers, &c, &id, &etag).await
            })
        };
        let mut written = Vec::new();
        let mut refusals = Vec::new();
        for writer in writers {
            for result in writer.await.unwrap() {
                match result {
                    Ok(contact) => written.push(contact),
                    Err(status) => refusals.push(status),
                }
            }
        }
        committed += written.len();
        refused += refusals.len();
        let outcome = deleter.await.unwrap();

        let live = app
            .records()
            .list_contacts(pb::ListContactsRequest {
                customer_id: c.clone(),
                page_size: 1000,
                show_deleted: false,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .contacts;
        let customer_now = get_customer(&mut app.customers(), &c).await;
        let request = app.deletion_request(&approved.id).await;
        match outcome {
            Ok(response) => {
                deleted += 1;
                orphans += live.len();
                assert!(live.is_empty(), "trial {trial}: live contacts {live:?}");
                // A write that committed first would have made the delete stale.
                assert!(written.is_empty(), "trial {trial}: {written:?}");
                assert_eq!(response.deleted_records, 2, "trial {trial}");
                for status in refusals {
                    assert_status::<()>(Err(status), Code::FailedPrecondition, "CUSTOMER_DELETED");
                }
                assert!(customer_now.delete_time.is_some());
                assert_eq!(
                    customer_now.deletion_id,
                    response.customer.unwrap().deletion_id
                );
                for contact in app.snapshot(&c).await.contacts {
                    assert_eq!(
                        contact.delete_time, customer_now.delete_time,
                        "trial {trial}: every child went with the customer"
                    );
                }
                assert_eq!(request.state, pb::DeletionRequestState::Executed as i32);
                assert_status(
                    app.customers()
                        .preview_delete_customer(pb::PreviewDeleteCustomerRequest {
                            customer_id: c.clone(),
                        })
                        .await,
                    Code::FailedPrecondition,
                    "CUSTOMER_DELETED",
                );
            }
            Err(status) => {
                stale += 1;
                assert_status::<()>(Err(status), Code::FailedPrecondition, "PREVIEW_STALE");
                assert!(refusals.is_empty(), "trial {trial}: {refusals:?}");
                assert!(!written.is_empty(), "trial {trial}: stale without a write");
                assert!(customer_now.delete_time.is_none() && customer_now.deletion_id.is_empty());
                assert_eq!(live.len(), 2 + written.len(), "trial {trial}");
                assert_eq!(request.state, pb::DeletionRequestState::Stale as i32);
            }
        }
    }
    assert!(app.verify_audit().await.valid);
    figure(format_args!(
        "{:?} C4: {TRIALS} trials x ({WRITERS} writers x {WRITES_EACH} contacts + 1 delete): \
         delete won {deleted}, stale {stale}; writes committed {committed}, refused \
         CUSTOMER_DELETED {refused}; live contacts under a deleted customer = {orphans}; {:?}",
        app.db,
        started.elapsed()
    ));
}
