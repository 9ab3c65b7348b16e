//! A deletion batch end to end, as a user meets it: submit by id (one customer excluded for its
//! open order), the aggregate impact equal to the sum of the single previews, approval by another
//! supervisor, the run in the background, every included customer deleted with its records, then
//! the batch restored and every graph equal, field by field, to before.

use std::time::{Duration, Instant};

use crm_service::proto::crm::v1 as pb;
use crm_service::proto::crm::v1::deletion_batch_service_client::DeletionBatchServiceClient;

use crate::common::{
    AuthedChannel, Bearer, TestApp, assert_status, figure, new_contact, new_deal, new_order,
};

crate::on_both_databases!(
    a_batch_deletes_what_it_previewed_and_its_restore_brings_every_graph_back,
    a_batch_is_decided_by_another_supervisor_and_runs_only_once_approved
);

fn batches(app: &TestApp, user: &str, role: &str) -> DeletionBatchServiceClient<AuthedChannel> {
    let token = app.token("acme", user, &[role]);
    DeletionBatchServiceClient::with_interceptor(app.channel(), Bearer::new(&token))
}

async fn wait_for(
    client: &mut DeletionBatchServiceClient<AuthedChannel>,
    id: &str,
    state: pb::DeletionBatchState,
) -> pb::DeletionBatch {
    let started = Instant::now();
    loop {
        let batch = client
            .get_deletion_batch(pb::GetDeletionBatchRequest {
                batch_id: id.to_owned(),
            })
            .await
            .unwrap()
            .into_inner()
            .batch
            .unwrap();
        if batch.state == state as i32 {
            return batch;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "batch still {:?} after 30 s, waiting for {state:?}: {:?}",
            batch.state,
            batch.progress
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn a_batch_deletes_what_it_previewed_and_its_restore_brings_every_graph_back(app: TestApp) {
    let mut records = app.records();
    let mut ids = Vec::new();
    for n in 0..6 {
        let c = app.create_customer(&format!("Batch {n}")).await;
        for _ in 0..n {
            records
                .create_contact(pb::CreateContactRequest {
                    contact: Some(new_contact(&c.id)),
                    ..Default::default()
                })
                .await
                .unwrap();
        }
        if n % 2 == 0 {
            records
                .create_deal(pb::CreateDealRequest {
                    deal: Some(new_deal(&c.id, pb::DealStage::Open)),
                    ..Default::default()
                })
                .await
                .unwrap();
        }
        ids.push(c.id);
    }
    let blocked = app.create_customer("Has an open order").await;
    records
        .create_order(pb::CreateOrderRequest {
            order: Some(new_order(&blocked.id, pb::OrderStatus::Open)),
            ..Default::default()
        })
        .await
        .unwrap();

    let mut before = Vec::new();
    let (mut cascade, mut keep) = (0, 0);
    let mut customers = app.customers();
    for id in &ids {
        let p = customers
            .preview_delete_customer(pb::PreviewDeleteCustomerRequest {
                customer_id: id.clone(),
            })
            .await
            .unwrap()
            .into_inner()
            .preview
            .unwrap();
        cascade += p.cascade_count;
        keep += p.keep_count;
        before.push(app.snapshot(id).await);
    }

    let mut rep = batches(&app, "rep-1", "sales_rep");
    let mut named = ids.clone();
    named.push(blocked.id.clone());
    let submitted = rep
        .submit_deletion_batch(pb::SubmitDeletionBatchRequest {
            customer_ids: named,
            reason: "duplicates from the March import".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let batch = submitted.batch.unwrap();
    let impact = batch.impact.clone().unwrap();
    assert_eq!((impact.included_count, impact.excluded_count), (6, 1));
    assert_eq!((impact.cascade_count, impact.keep_count), (cascade, keep));
    let excluded = submitted.items.last().unwrap();
    assert_eq!(excluded.state, pb::DeletionBatchItemState::Excluded as i32);
    assert_eq!(excluded.excluded_reason, "CUSTOMER_HAS_BLOCKERS");
    assert_eq!(excluded.blockers[0].reason, "OPEN_ORDER");

    let mut sup = batches(&app, "sup-1", "supervisor");
    sup.approve_deletion_batch(pb::ApproveDeletionBatchRequest {
        batch_id: batch.id.clone(),
        ..Default::default()
    })
    .await
    .unwrap();
    let started = Instant::now();
    rep.run_deletion_batch(pb::RunDeletionBatchRequest {
        batch_id: batch.id.clone(),
        ..Default::default()
    })
    .await
    .unwrap();
    let done = wait_for(&mut rep, &batch.id, pb::DeletionBatchState::Completed).await;
    figure(format!(
        "{:?}: 6-customer batch ran in {:?}",
        app.db,
        started.elapsed()
    ));
    let progress = done.progress.unwrap();
    assert_eq!((progress.deleted, progress.excluded), (6, 1));
    assert_eq!(progress.deleted_records, cascade);
    for (id, snapshot) in ids.iter().zip(&before) {
        let gone = app.snapshot(id).await;
        // Contacts and open deals cascade: nothing of these graphs stays live.
        assert_eq!((gone.rows().len(), gone.live()), (snapshot.rows().len(), 0));
        let customer = customers
            .get_customer(pb::GetCustomerRequest {
                customer_id: id.clone(),
            })
            .await
            .unwrap()
            .into_inner()
            .customer
            .unwrap();
        assert!(customer.delete_time.is_some(), "{id} deleted");
    }

    sup.restore_deletion_batch(pb::RestoreDeletionBatchRequest {
        batch_id: batch.id.clone(),
        ..Default::default()
    })
    .await
    .unwrap();
    let restored = wait_for(&mut sup, &batch.id, pb::DeletionBatchState::Restored).await;
    assert_eq!(restored.progress.unwrap().restored, 6);
    for (id, snapshot) in ids.iter().zip(&before) {
        assert_eq!(&app.snapshot(id).await, snapshot, "{id} is back as it was");
    }
}

async fn a_batch_is_decided_by_another_supervisor_and_runs_only_once_approved(app: TestApp) {
    let c = app.create_customer("Decide me").await;
    let mut sup = batches(&app, "sup-1", "supervisor");
    let batch = sup
        .submit_deletion_batch(pb::SubmitDeletionBatchRequest {
            customer_ids: vec![c.id.clone()],
            reason: "churned".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .batch
        .unwrap();
    let run = pb::RunDeletionBatchRequest {
        batch_id: batch.id.clone(),
        ..Default::default()
    };
    assert_status(
        sup.run_deletion_batch(run.clone()).await,
        tonic::Code::FailedPrecondition,
        "DELETION_BATCH_NOT_APPROVED",
    );
    let approve = pb::ApproveDeletionBatchRequest {
        batch_id: batch.id.clone(),
        ..Default::default()
    };
    assert_status(
        sup.approve_deletion_batch(approve.clone()).await,
        tonic::Code::PermissionDenied,
        "SELF_APPROVAL_FORBIDDEN",
    );
    let mut rep = batches(&app, "rep-2", "sales_rep");
    assert_status(
        rep.approve_deletion_batch(approve.clone()).await,
        tonic::Code::PermissionDenied,
        "ROLE_NOT_ALLOWED",
    );
    // While the batch is open, its customer cannot be asked for on its own as well.
    let mut approvals = app.approvals_as("acme", "rep-3", &["sales_rep"]);
    assert_status(
        approvals
            .submit_deletion_request(pb::SubmitDeletionRequestRequest {
                customer_id: c.id.clone(),
                preview_etag: c.etag.clone(),
                reason: "also this one".into(),
                ..Default::default()
            })
            .await,
        tonic::Code::FailedPrecondition,
        "DELETION_ALREADY_REQUESTED",
    );
    let mut other = batches(&app, "sup-2", "supervisor");
    other.approve_deletion_batch(approve).await.unwrap();
    sup.run_deletion_batch(run).await.unwrap();
    wait_for(&mut sup, &batch.id, pb::DeletionBatchState::Completed).await;
}
