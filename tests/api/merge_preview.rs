//! PreviewMergeCustomers, black box: every live record of the duplicate, per relation and state,
//! moves (an open order too); the fields that differ come with both values; a legal hold on either
//! customer blocks; both etags are the customers' own; nothing is written; refusals by field.

use std::collections::BTreeMap;

use crm_service::proto::crm::v1 as pb;
use tonic::{Code, Status};

use crate::common::{
    Customers, Kind, TestApp, assert_status, bad_fields, create_record, get_customer, new_order,
    random_id,
};

crate::on_both_databases!(
    the_preview_moves_every_live_record_lists_differing_fields_and_writes_nothing,
    a_legal_hold_on_either_blocks_and_bad_pairs_are_refused_by_field,
);

async fn preview(
    customers: &mut Customers,
    duplicate_id: &str,
    survivor_id: &str,
) -> Result<pb::MergePreview, Status> {
    Ok(customers
        .preview_merge_customers(pb::PreviewMergeCustomersRequest {
            duplicate_id: duplicate_id.into(),
            survivor_id: survivor_id.into(),
        })
        .await?
        .into_inner()
        .preview
        .unwrap())
}

async fn create_order(app: &TestApp, customer_id: &str, status: pb::OrderStatus) -> String {
    app.records()
        .create_order(pb::CreateOrderRequest {
            order: Some(new_order(customer_id, status)),
            request_id: String::new(),
        })
        .await
        .expect("create order")
        .into_inner()
        .order
        .unwrap()
        .id
}

async fn the_preview_moves_every_live_record_lists_differing_fields_and_writes_nothing(
    app: TestApp,
) {
    let duplicate = app.create_customer("ACME Ltd").await;
    let survivor = app.create_customer("Acme Limited").await;
    let mut records = app.records();
    let mut contacts = Vec::new();
    for _ in 0..2 {
        contacts.push(
            create_record(&mut records, Kind::Contact, &duplicate.id)
                .await
                .unwrap()
                .id,
        );
    }
    let open = create_order(&app, &duplicate.id, pb::OrderStatus::Open).await;
    let paid = create_order(&app, &duplicate.id, pb::OrderStatus::Paid).await;
    // A record deleted on its own is not live: it stays where it is.
    let note = create_record(&mut records, Kind::Activity, &duplicate.id)
        .await
        .unwrap();
    crate::common::delete_record(&mut records, Kind::Activity, &note.id)
        .await
        .expect("activities are deleted one by one")
        .unwrap();
    // The survivor's own records are not counted.
    create_record(&mut records, Kind::Contact, &survivor.id)
        .await
        .unwrap();

    let mut customers = app.customers();
    let before = get_customer(&mut customers, &duplicate.id).await;
    let preview = preview(&mut customers, &duplicate.id, &survivor.id)
        .await
        .unwrap();
    let moves: BTreeMap<(String, String), (i64, Vec<String>)> = preview
        .moves
        .iter()
        .map(|m| {
            assert_eq!(m.policy(), pb::DeletionPolicy::Unspecified, "{m:?}");
            let mut ids = m.sample_ids.clone();
            ids.sort();
            ((m.relation.clone(), m.state.clone()), (m.count, ids))
        })
        .collect();
    contacts.sort();
    let expected = BTreeMap::from([
        (("contact".to_owned(), String::new()), (2, contacts)),
        (("order".to_owned(), "OPEN".to_owned()), (1, vec![open])),
        (("order".to_owned(), "PAID".to_owned()), (1, vec![paid])),
    ]);
    assert_eq!(moves, expected);
    assert_eq!(preview.move_count, 4);
    assert!(
        preview.blockers.is_empty(),
        "an open order moves, it does not block"
    );
    let conflicts: Vec<(&str, &str, &str)> = preview
        .conflicts
        .iter()
        .map(|c| {
            (
                c.field.as_str(),
                c.duplicate_value.as_str(),
                c.survivor_value.as_str(),
            )
        })
        .collect();
    assert_eq!(conflicts, [("name", "ACME Ltd", "Acme Limited")]);
    let survivor_now = get_customer(&mut customers, &survivor.id).await;
    assert_eq!(
        (
            preview.duplicate_etag.as_str(),
            preview.survivor_etag.as_str()
        ),
        (before.etag.as_str(), survivor_now.etag.as_str())
    );
    assert_eq!(
        get_customer(&mut customers, &duplicate.id).await,
        before,
        "nothing written"
    );
}

async fn a_legal_hold_on_either_blocks_and_bad_pairs_are_refused_by_field(app: TestApp) {
    let duplicate = app.create_customer("Held Duplicate").await;
    let survivor = app.create_customer("Survivor").await;
    let mut customers = app.customers();
    app.customers_as("acme", "admin-1", &["admin"])
        .set_legal_hold(pb::SetLegalHoldRequest {
            customer_id: survivor.id.clone(),
            legal_hold: true,
            reason: "case 2026-17".into(),
            request_id: String::new(),
        })
        .await
        .expect("an admin sets a legal hold");
    let held = preview(&mut customers, &duplicate.id, &survivor.id)
        .await
        .unwrap();
    let blockers: Vec<(&str, &[String])> = held
        .blockers
        .iter()
        .map(|b| (b.reason.as_str(), b.sample_ids.as_slice()))
        .collect();
    assert_eq!(
        blockers,
        [("LEGAL_HOLD", std::slice::from_ref(&survivor.id))]
    );

    let same = preview(&mut customers, &duplicate.id, &duplicate.id).await;
    assert_eq!(
        bad_fields(&assert_status(same, Code::InvalidArgument, "INVALID_FIELD")),
        ["survivor_id"]
    );
    let garbled = preview(&mut customers, "nope", &survivor.id).await;
    assert_eq!(bad_fields(&garbled.unwrap_err()), ["duplicate_id"]);
    let unknown = preview(&mut customers, &duplicate.id, &random_id()).await;
    assert_status(unknown, Code::NotFound, "NOT_FOUND");
    let mut globex = app.customers_as("globex", "rep-1", &["sales_rep"]);
    let foreign = preview(&mut globex, &duplicate.id, &survivor.id).await;
    assert_status(foreign, Code::NotFound, "NOT_FOUND");
    app.delete_customer(&duplicate.id).await;
    let deleted = preview(&mut customers, &duplicate.id, &survivor.id).await;
    assert_status(deleted, Code::FailedPrecondition, "CUSTOMER_DELETED");
}
