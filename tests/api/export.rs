//! ExportCustomer: the whole graph, streamed in bounded chunks, equal to what Get/List return.

use crm_service::proto::crm::v1 as pb;
use tonic::Code;

use crate::common::{
    CONTACT_COLUMNS, TestApp, assert_status, new_activity, new_contact, new_order, random_id,
};

crate::on_both_databases!(
    an_export_of_a_ten_thousand_record_customer_is_complete_and_equals_the_lists,
    only_supervisors_and_admins_export_and_a_missing_customer_is_not_found,
);

const ACTIVITY_COLUMNS: &[&str] = &[
    "tenant_id",
    "customer_id",
    "kind",
    "subject",
    "occur_time",
    "create_time",
    "update_time",
    "delete_time",
    "deletion_id",
    "version",
];

async fn an_export_of_a_ten_thousand_record_customer_is_complete_and_equals_the_lists(
    app: TestApp,
) {
    let customer = app.create_customer("Exported Oy").await;
    let id = customer.id.clone();
    let mut records = app.records();
    records
        .create_contact(pb::CreateContactRequest {
            contact: Some(new_contact(&id)),
            request_id: String::new(),
        })
        .await
        .unwrap();
    records
        .create_activity(pb::CreateActivityRequest {
            activity: Some(new_activity(&id)),
            request_id: String::new(),
        })
        .await
        .unwrap();
    records
        .create_order(pb::CreateOrderRequest {
            order: Some(new_order(&id, pb::OrderStatus::Paid)),
            request_id: String::new(),
        })
        .await
        .unwrap();
    // 1 + 4,999 contacts and 1 + 4,999 activities: 10,000 of them, plus the order.
    app.clone_rows("contact", CONTACT_COLUMNS, 4999).await;
    app.clone_rows("activity", ACTIVITY_COLUMNS, 4999).await;

    let mut client = app.customers_as("acme", "sup-1", &["supervisor"]);
    let mut stream = client
        .export_customer(pb::ExportCustomerRequest {
            customer_id: id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    let mut chunks = Vec::new();
    while let Some(chunk) = stream.message().await.unwrap() {
        chunks.push(chunk);
    }
    assert_eq!(
        chunks[0].customer.as_ref().map(|c| c.id.as_str()),
        Some(id.as_str()),
        "the customer comes first"
    );
    let largest = chunks
        .iter()
        .map(|c| c.contacts.len() + c.activities.len() + c.orders.len())
        .max()
        .unwrap();
    assert!(largest <= 500, "chunks stay bounded, got {largest}");
    let exported_contacts: Vec<pb::Contact> =
        chunks.iter().flat_map(|c| c.contacts.clone()).collect();
    let exported_activities: Vec<pb::Activity> =
        chunks.iter().flat_map(|c| c.activities.clone()).collect();
    let exported_orders: Vec<pb::Order> = chunks.iter().flat_map(|c| c.orders.clone()).collect();
    assert_eq!(exported_contacts.len() + exported_activities.len(), 10_000);

    let got = client
        .get_customer(pb::GetCustomerRequest {
            customer_id: id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .customer;
    assert_eq!(chunks[0].customer, got, "the exported customer equals Get");
    let mut listed_contacts = Vec::new();
    let mut token = String::new();
    loop {
        let page = records
            .list_contacts(pb::ListContactsRequest {
                customer_id: id.clone(),
                page_size: 1000,
                page_token: token.clone(),
                show_deleted: true,
            })
            .await
            .unwrap()
            .into_inner();
        listed_contacts.extend(page.contacts);
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(
        exported_contacts, listed_contacts,
        "the exported contacts equal ListContacts, in order"
    );
    let orders = records
        .list_orders(pb::ListOrdersRequest {
            customer_id: id.clone(),
            show_deleted: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .orders;
    assert_eq!(exported_orders, orders);
    assert_eq!(exported_activities.len(), 5000);
}

async fn only_supervisors_and_admins_export_and_a_missing_customer_is_not_found(app: TestApp) {
    let customer = app.create_customer("Private GmbH").await;
    let request = || pb::ExportCustomerRequest {
        customer_id: customer.id.clone(),
    };
    for role in ["sales_rep", "service"] {
        let result = app
            .customers_as("acme", "someone", &[role])
            .export_customer(request())
            .await;
        assert_status(
            result.map(|_| ()),
            Code::PermissionDenied,
            "ROLE_NOT_ALLOWED",
        );
    }
    let mut admin = app.customers_as("acme", "admin-1", &["admin"]);
    assert!(admin.export_customer(request()).await.is_ok());
    let missing = admin
        .export_customer(pb::ExportCustomerRequest {
            customer_id: random_id(),
        })
        .await;
    assert_status(missing.map(|_| ()), Code::NotFound, "NOT_FOUND");
    let foreign = app
        .customers_as("globex", "admin-2", &["admin"])
        .export_customer(request())
        .await;
    assert_status(foreign.map(|_| ()), Code::NotFound, "NOT_FOUND");
}
