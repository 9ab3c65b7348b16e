//! A deletion batch's decision as a user meets it: not run before approval, never approved by its
//! submitter or a sales rep, its customer not submittable on its own while the batch is open,
//! then approved by another supervisor and run to COMPLETED. The whole lifecycle at volume (200
//! customers, previews summed, every graph back after the restore) is in `batches.rs`.

use crm_service::proto::crm::v1 as pb;

use crate::common::batches::{batches, wait_for};
use crate::common::{TestApp, assert_status};

crate::on_both_databases!(a_batch_is_decided_by_another_supervisor_and_runs_only_once_approved);

async fn a_batch_is_decided_by_another_supervisor_and_runs_only_once_approved(app: TestApp) {
    let c = app.create_customer("Decide me").await;
    let mut sup = batches(&app, "sup-1", &["supervisor"]);
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
    let mut rep = batches(&app, "rep-2", &["sales_rep"]);
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
    let mut other = batches(&app, "sup-2", &["supervisor"]);
    other.approve_deletion_batch(approve).await.unwrap();
    sup.run_deletion_batch(run).await.unwrap();
    wait_for(&app, &batch.id, pb::DeletionBatchState::Completed).await;
}
