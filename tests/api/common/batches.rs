//! DeletionBatchService clients and one helper per call, for the suites that drive batches.

use std::time::{Duration, Instant};

use crm_service::proto::crm::v1 as pb;
use crm_service::proto::crm::v1::deletion_batch_service_client::DeletionBatchServiceClient;
use pb::DeletionBatchItemState as I;
use pb::DeletionBatchState as B;
use tonic::Status;

use super::{AuthedChannel, Bearer, TestApp};

pub type Batches = DeletionBatchServiceClient<AuthedChannel>;

/// DeletionBatchService as `user` of `tenant` with `roles`.
pub fn batches_of(app: &TestApp, tenant: &str, user: &str, roles: &[&str]) -> Batches {
    let token = app.token(tenant, user, roles);
    DeletionBatchServiceClient::with_interceptor(app.channel(), Bearer::new(&token))
}

/// DeletionBatchService as `user` of `acme` with `roles`.
pub fn batches(app: &TestApp, user: &str, roles: &[&str]) -> Batches {
    batches_of(app, "acme", user, roles)
}

/// `rep-1`, the sales rep of `acme` who submits most batches here.
pub fn rep(app: &TestApp) -> Batches {
    batches(app, "rep-1", &["sales_rep"])
}

/// `sup-1`, a supervisor of `acme` who approves them.
pub fn sup(app: &TestApp) -> Batches {
    batches(app, "sup-1", &["supervisor"])
}

pub fn by_ids(ids: &[String], reason: &str) -> pb::SubmitDeletionBatchRequest {
    pb::SubmitDeletionBatchRequest {
        customer_ids: ids.to_vec(),
        reason: reason.into(),
        ..Default::default()
    }
}

pub fn by_filter(filter: pb::DeletionBatchFilter, reason: &str) -> pb::SubmitDeletionBatchRequest {
    pb::SubmitDeletionBatchRequest {
        filter: Some(filter),
        reason: reason.into(),
        ..Default::default()
    }
}

pub async fn submit(
    client: &mut Batches,
    request: pb::SubmitDeletionBatchRequest,
) -> Result<pb::SubmitDeletionBatchResponse, Status> {
    Ok(client.submit_deletion_batch(request).await?.into_inner())
}

/// Submits `ids` as `rep-1`; the PENDING batch and its items.
pub async fn submitted(
    app: &TestApp,
    ids: &[String],
    reason: &str,
) -> (pb::DeletionBatch, Vec<pb::DeletionBatchItem>) {
    let response = submit(&mut rep(app), by_ids(ids, reason))
        .await
        .unwrap_or_else(|s| panic!("submit {reason}: {s:?}"));
    (response.batch.unwrap(), response.items)
}

pub async fn approve(client: &mut Batches, id: &str) -> Result<pb::DeletionBatch, Status> {
    Ok(client
        .approve_deletion_batch(pb::ApproveDeletionBatchRequest {
            batch_id: id.into(),
            ..Default::default()
        })
        .await?
        .into_inner()
        .batch
        .unwrap())
}

pub async fn reject(
    client: &mut Batches,
    id: &str,
    comment: &str,
) -> Result<pb::DeletionBatch, Status> {
    Ok(client
        .reject_deletion_batch(pb::RejectDeletionBatchRequest {
            batch_id: id.into(),
            comment: comment.into(),
            ..Default::default()
        })
        .await?
        .into_inner()
        .batch
        .unwrap())
}

pub async fn cancel(client: &mut Batches, id: &str) -> Result<pb::DeletionBatch, Status> {
    Ok(client
        .cancel_deletion_batch(pb::CancelDeletionBatchRequest {
            batch_id: id.into(),
            ..Default::default()
        })
        .await?
        .into_inner()
        .batch
        .unwrap())
}

pub async fn run(client: &mut Batches, id: &str) -> Result<pb::DeletionBatch, Status> {
    Ok(client
        .run_deletion_batch(pb::RunDeletionBatchRequest {
            batch_id: id.into(),
            ..Default::default()
        })
        .await?
        .into_inner()
        .batch
        .unwrap())
}

pub async fn restore(
    client: &mut Batches,
    id: &str,
    validate_only: bool,
) -> Result<pb::RestoreDeletionBatchResponse, Status> {
    Ok(client
        .restore_deletion_batch(pb::RestoreDeletionBatchRequest {
            batch_id: id.into(),
            validate_only,
            ..Default::default()
        })
        .await?
        .into_inner())
}

/// The batch as a supervisor of `acme` reads it.
pub async fn get(app: &TestApp, id: &str) -> pb::DeletionBatch {
    batches(app, "reader", &["supervisor"])
        .get_deletion_batch(pb::GetDeletionBatchRequest {
            batch_id: id.into(),
        })
        .await
        .unwrap_or_else(|s| panic!("get batch {id}: {s:?}"))
        .into_inner()
        .batch
        .unwrap()
}

/// Polls GetDeletionBatch every 20 ms until the batch reads `want`; fails after 20 s.
pub async fn wait_for(app: &TestApp, id: &str, want: B) -> pb::DeletionBatch {
    let started = Instant::now();
    loop {
        let batch = get(app, id).await;
        if batch.state == want as i32 {
            return batch;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "batch {id} still {:?} after 20 s, waiting for {want:?}; progress {:?}",
            B::try_from(batch.state),
            batch.progress
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Every item of a batch (in `state`, or any), walking pages of `page_size`; also checks that
/// no page is larger than asked.
pub async fn items_paged(
    app: &TestApp,
    id: &str,
    state: Option<I>,
    page_size: i32,
) -> Vec<pb::DeletionBatchItem> {
    let mut client = batches(app, "reader", &["supervisor"]);
    let mut out = Vec::new();
    let mut page_token = String::new();
    for _ in 0..10_000 {
        let page = client
            .list_deletion_batch_items(pb::ListDeletionBatchItemsRequest {
                batch_id: id.into(),
                page_size,
                page_token: page_token.clone(),
                state: state.map_or(0, |s| s as i32),
            })
            .await
            .unwrap_or_else(|s| panic!("list items of {id}: {s:?}"))
            .into_inner();
        if page_size > 0 {
            assert!(
                page.items.len() <= page_size as usize,
                "a page of {} items for page_size {page_size}",
                page.items.len()
            );
        }
        out.extend(page.items);
        if page.next_page_token.is_empty() {
            return out;
        }
        page_token = page.next_page_token;
    }
    panic!("ListDeletionBatchItems never ends")
}

pub async fn items(app: &TestApp, id: &str) -> Vec<pb::DeletionBatchItem> {
    items_paged(app, id, None, 1000).await
}

/// Every batch of `acme` in `state` (or any), newest first, walking pages of `page_size`.
pub async fn list_batches(
    app: &TestApp,
    state: Option<B>,
    page_size: i32,
) -> Vec<pb::DeletionBatch> {
    let mut client = batches(app, "reader", &["supervisor"]);
    let mut out = Vec::new();
    let mut page_token = String::new();
    for _ in 0..10_000 {
        let page = client
            .list_deletion_batches(pb::ListDeletionBatchesRequest {
                page_size,
                page_token: page_token.clone(),
                state: state.map_or(0, |s| s as i32),
                awaiting_my_decision: false,
            })
            .await
            .unwrap_or_else(|s| panic!("list batches: {s:?}"))
            .into_inner();
        if page_size > 0 {
            assert!(
                page.batches.len() <= page_size as usize,
                "a page of {} batches for page_size {page_size}",
                page.batches.len()
            );
        }
        out.extend(page.batches);
        if page.next_page_token.is_empty() {
            return out;
        }
        page_token = page.next_page_token;
    }
    panic!("ListDeletionBatches never ends")
}

/// Submitted by `rep-1`, approved by `sup-1`, run by `rep-1`: the COMPLETED batch.
pub async fn completed(app: &TestApp, ids: &[String], reason: &str) -> pb::DeletionBatch {
    let (batch, _) = submitted(app, ids, reason).await;
    approve(&mut sup(app), &batch.id).await.expect("approve");
    let started = run(&mut rep(app), &batch.id).await.expect("run");
    assert!(
        [B::Running as i32, B::Completed as i32].contains(&started.state),
        "RunDeletionBatch answers RUNNING (or COMPLETED): {started:?}"
    );
    wait_for(app, &batch.id, B::Completed).await
}

pub fn batch_state(b: &pb::DeletionBatch) -> B {
    B::try_from(b.state).expect("known batch state")
}

pub fn item_state(i: &pb::DeletionBatchItem) -> I {
    I::try_from(i.state).expect("known item state")
}
