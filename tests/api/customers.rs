use crm_service::proto::crm::v1 as pb;
use prost_types::FieldMask;
use tonic::Code;

use crate::common::{TestApp, assert_status, bad_fields, new_customer};

crate::on_both_databases!(
    a_created_customer_reads_back_field_for_field,
    an_update_changes_only_the_masked_fields_and_moves_the_etag,
    a_stale_etag_is_aborted_and_changes_nothing,
);

async fn a_created_customer_reads_back_field_for_field(app: TestApp) {
    let mut client = app.customers();
    let created = client
        .create_customer(new_customer("Acme GmbH"))
        .await
        .unwrap()
        .into_inner()
        .customer
        .unwrap();
    assert_eq!(created.name, "Acme GmbH");
    assert_eq!(
        created.owner_id, "rep-1",
        "the creator owns a customer by default"
    );
    assert_eq!(created.status, pb::CustomerStatus::Active as i32);
    assert!(!created.etag.is_empty());
    assert!(created.delete_time.is_none());
    let got = client
        .get_customer(pb::GetCustomerRequest {
            customer_id: created.id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .customer
        .unwrap();
    assert_eq!(got, created);
}

async fn an_update_changes_only_the_masked_fields_and_moves_the_etag(app: TestApp) {
    let created = app.create_customer("Initech").await;
    let mut client = app.customers();
    let updated = client
        .update_customer(pb::UpdateCustomerRequest {
            customer: Some(pb::Customer {
                id: created.id.clone(),
                name: "Initech Ltd".into(),
                industry: "ignored: not in the mask".into(),
                ..Default::default()
            }),
            update_mask: Some(FieldMask {
                paths: vec!["name".into()],
            }),
            etag: created.etag.clone(),
            request_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .customer
        .unwrap();
    assert_eq!(updated.name, "Initech Ltd");
    assert_eq!(updated.industry, created.industry);
    assert_ne!(updated.etag, created.etag);
}

async fn a_stale_etag_is_aborted_and_changes_nothing(app: TestApp) {
    let created = app.create_customer("Hooli").await;
    let mut client = app.customers();
    let update = |name: &str, etag: &str| pb::UpdateCustomerRequest {
        customer: Some(pb::Customer {
            id: created.id.clone(),
            name: name.into(),
            ..Default::default()
        }),
        update_mask: Some(FieldMask {
            paths: vec!["name".into()],
        }),
        etag: etag.into(),
        request_id: String::new(),
    };
    client
        .update_customer(update("Hooli XYZ", &created.etag))
        .await
        .unwrap();
    assert_status(
        client.update_customer(update("Stale", &created.etag)).await,
        Code::Aborted,
        "ETAG_MISMATCH",
    );
    let got = client
        .get_customer(pb::GetCustomerRequest {
            customer_id: created.id.clone(),
        })
        .await
        .unwrap();
    assert_eq!(got.into_inner().customer.unwrap().name, "Hooli XYZ");
    let _ = bad_fields;
}
