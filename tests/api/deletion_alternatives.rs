//! The preview's alternatives: a customer with history the books keep (KEEP records, won or lost
//! deals) gets MARK_INACTIVE, saying what history; one without, or already INACTIVE, gets none;
//! the preview a deletion request stores carries it too.

use crm_service::proto::crm::v1 as pb;

use crate::common::{TestApp, mask, new_deal, new_order, submit};

crate::on_both_databases!(
    history_the_books_keep_suggests_marking_the_customer_inactive_instead,
    no_history_or_an_inactive_customer_gets_no_alternative,
);

async fn create_deal(app: &TestApp, customer_id: &str, stage: pb::DealStage) {
    app.records()
        .create_deal(pb::CreateDealRequest {
            deal: Some(new_deal(customer_id, stage)),
            request_id: String::new(),
        })
        .await
        .expect("create deal");
}

fn mark_inactive(preview: &pb::DeletionPreview) -> Option<&pb::DeletionAlternative> {
    assert!(preview.alternatives.len() <= 1, "{preview:?}");
    preview
        .alternatives
        .iter()
        .find(|a| a.code == "MARK_INACTIVE")
}

async fn history_the_books_keep_suggests_marking_the_customer_inactive_instead(app: TestApp) {
    let paid = app.create_customer("Paid Up").await;
    app.records()
        .create_order(pb::CreateOrderRequest {
            order: Some(new_order(&paid.id, pb::OrderStatus::Paid)),
            request_id: String::new(),
        })
        .await
        .expect("create order");
    let preview = app.preview(&paid.id).await;
    assert_eq!(preview.keep_count, 1);
    let alternative = mark_inactive(&preview).expect("MARK_INACTIVE for a paid order");
    assert!(
        alternative
            .explanation
            .contains("1 record(s) kept for the books")
            && alternative.explanation.contains("INACTIVE"),
        "{alternative:?}"
    );

    let closed = app.create_customer("Closed Pipeline").await;
    create_deal(&app, &closed.id, pb::DealStage::Won).await;
    create_deal(&app, &closed.id, pb::DealStage::Lost).await;
    let preview = app.preview(&closed.id).await;
    assert_eq!(preview.keep_count, 0, "won and lost deals cascade");
    let alternative = mark_inactive(&preview).expect("MARK_INACTIVE for a closed pipeline");
    assert!(
        alternative.explanation.contains("2 won or lost deal(s)"),
        "{alternative:?}"
    );

    // The request stores the preview it was submitted on, alternatives included.
    let request = submit(
        &mut app.approvals_as("acme", "rep-1", &["sales_rep"]),
        &closed.id,
        &preview.etag,
        "closed region",
    )
    .await
    .expect("submit");
    let stored = app.deletion_request(&request.id).await;
    assert_eq!(stored.preview.unwrap().alternatives, preview.alternatives);
}

async fn no_history_or_an_inactive_customer_gets_no_alternative(app: TestApp) {
    let fresh = app.create_customer("Never Bought").await;
    create_deal(&app, &fresh.id, pb::DealStage::Open).await;
    assert!(app.preview(&fresh.id).await.alternatives.is_empty());

    let former = app.create_customer("Former Client").await;
    create_deal(&app, &former.id, pb::DealStage::Won).await;
    let etag = app.preview(&former.id).await.etag;
    app.customers()
        .update_customer(pb::UpdateCustomerRequest {
            customer: Some(pb::Customer {
                id: former.id.clone(),
                status: pb::CustomerStatus::Inactive as i32,
                ..Default::default()
            }),
            update_mask: mask(&["status"]),
            etag,
            request_id: String::new(),
        })
        .await
        .expect("mark inactive");
    assert!(
        app.preview(&former.id).await.alternatives.is_empty(),
        "already INACTIVE: nothing gentler to suggest"
    );
}
