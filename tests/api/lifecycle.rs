//! The deletion lifecycle end to end: preview → submit → approve (another supervisor) → delete →
//! gone from List, visible with show_deleted and Get → restore → the whole graph back, equal field
//! by field to before.

use crm_service::proto::crm::v1 as pb;
use crm_service::proto::crm::v1::audit_service_client::AuditServiceClient;
use crm_service::proto::crm::v1::deletion_approval_service_client::DeletionApprovalServiceClient;

use crate::common::{TestApp, new_contact, new_contract, new_deal, new_order, new_project};

crate::on_both_databases!(the_golden_path_deletes_and_restores_exactly_the_previewed_graph);

struct Graph {
    contacts: Vec<pb::Contact>,
    deals: Vec<pb::Deal>,
    orders: Vec<pb::Order>,
    contracts: Vec<pb::Contract>,
    projects: Vec<pb::Project>,
}

async fn graph(app: &TestApp, customer_id: &str) -> Graph {
    let mut r = app.records();
    let c = customer_id.to_owned();
    macro_rules! all {
        ($rpc:ident, $Req:ident, $field:ident) => {
            r.$rpc(pb::$Req {
                customer_id: c.clone(),
                page_size: 1000,
                show_deleted: true,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .$field
        };
    }
    Graph {
        contacts: all!(list_contacts, ListContactsRequest, contacts),
        deals: all!(list_deals, ListDealsRequest, deals),
        orders: all!(list_orders, ListOrdersRequest, orders),
        contracts: all!(list_contracts, ListContractsRequest, contracts),
        projects: all!(list_projects, ListProjectsRequest, projects),
    }
}

fn approvals(
    app: &TestApp,
    user: &str,
    role: &str,
) -> DeletionApprovalServiceClient<crate::common::AuthedChannel> {
    let token = app.token("acme", user, &[role]);
    DeletionApprovalServiceClient::with_interceptor(
        app.channel(),
        crate::common::Bearer::new(&token),
    )
}

async fn the_golden_path_deletes_and_restores_exactly_the_previewed_graph(app: TestApp) {
    let customer = app.create_customer("Golden Path AG").await;
    let id = customer.id.clone();
    let mut records = app.records();
    for _ in 0..3 {
        records
            .create_contact(pb::CreateContactRequest {
                contact: Some(new_contact(&id)),
                request_id: String::new(),
            })
            .await
            .unwrap();
    }
    // Deleted on its own before the customer: must stay deleted after the restore.
    let gone = records
        .create_contact(pb::CreateContactRequest {
            contact: Some(new_contact(&id)),
            request_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .contact
        .unwrap();
    records
        .delete_contact(pb::DeleteContactRequest {
            contact_id: gone.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
    records
        .create_deal(pb::CreateDealRequest {
            deal: Some(new_deal(&id, pb::DealStage::Open)),
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
    records
        .create_contract(pb::CreateContractRequest {
            contract: Some(new_contract(&id, pb::ContractStatus::Draft)),
            request_id: String::new(),
        })
        .await
        .unwrap();
    records
        .create_project(pb::CreateProjectRequest {
            project: Some(new_project(&id, pb::ProjectStatus::Done)),
            request_id: String::new(),
        })
        .await
        .unwrap();
    let mut customers = app.customers();
    let before = customers
        .get_customer(pb::GetCustomerRequest {
            customer_id: id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .customer
        .unwrap();
    let graph_before = graph(&app, &id).await;

    let preview = customers
        .preview_delete_customer(pb::PreviewDeleteCustomerRequest {
            customer_id: id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .preview
        .unwrap();
    assert!(preview.blockers.is_empty(), "{:?}", preview.blockers);
    assert_eq!(preview.etag, before.etag);
    assert_eq!(
        preview.cascade_count,
        3 + 1 + 1 + 1,
        "contacts, the open deal, the draft contract, the done project"
    );
    assert_eq!(preview.keep_count, 1, "the paid order");
    assert_eq!(preview.warnings.len(), 1, "open pipeline value");
    let contacts = preview
        .impacts
        .iter()
        .find(|i| i.relation == "contact")
        .unwrap();
    assert_eq!((contacts.count, contacts.sample_ids.len()), (3, 3));

    let submitted = approvals(&app, "rep-1", "sales_rep")
        .submit_deletion_request(pb::SubmitDeletionRequestRequest {
            customer_id: id.clone(),
            preview_etag: preview.etag.clone(),
            reason: "duplicate of another account".into(),
            request_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .deletion_request
        .unwrap();
    assert_eq!(submitted.state, pb::DeletionRequestState::Pending as i32);
    let approved = approvals(&app, "sup-1", "supervisor")
        .approve_deletion_request(pb::ApproveDeletionRequestRequest {
            deletion_request_id: submitted.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .deletion_request
        .unwrap();
    assert_eq!(approved.state, pb::DeletionRequestState::Approved as i32);
    assert_eq!(approved.decided_by, "sup-1");

    let deleted = customers
        .delete_customer(pb::DeleteCustomerRequest {
            customer_id: id.clone(),
            deletion_request_id: submitted.id.clone(),
            etag: preview.etag.clone(),
            request_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(deleted.deleted_records, preview.cascade_count);
    let gone_customer = deleted.customer.unwrap();
    assert!(gone_customer.delete_time.is_some() && gone_customer.purge_time.is_some());
    assert!(!gone_customer.deletion_id.is_empty());

    let live = customers
        .list_customers(pb::ListCustomersRequest::default())
        .await
        .unwrap()
        .into_inner()
        .customers;
    assert!(
        live.iter().all(|c| c.id != id),
        "a deleted customer is not listed"
    );
    let all = customers
        .list_customers(pb::ListCustomersRequest {
            show_deleted: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .customers;
    assert!(all.iter().any(|c| c.id == id), "show_deleted lists it");
    let got = customers
        .get_customer(pb::GetCustomerRequest {
            customer_id: id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .customer
        .unwrap();
    assert_eq!(got.delete_time, gone_customer.delete_time);
    let request = approvals(&app, "rep-1", "sales_rep")
        .get_deletion_request(pb::GetDeletionRequestRequest {
            deletion_request_id: submitted.id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .deletion_request
        .unwrap();
    assert_eq!(request.state, pb::DeletionRequestState::Executed as i32);

    let restored = app
        .customers_as("acme", "sup-2", &["supervisor"])
        .restore_customer(pb::RestoreCustomerRequest {
            customer_id: id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(restored.restored_records, deleted.deleted_records);
    let after = customers
        .get_customer(pb::GetCustomerRequest {
            customer_id: id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .customer
        .unwrap();
    assert_ne!(
        after.etag, before.etag,
        "the restore is a new version of the graph"
    );
    assert_eq!(
        pb::Customer {
            etag: String::new(),
            ..after
        },
        pb::Customer {
            etag: String::new(),
            ..before
        }
    );
    let graph_after = graph(&app, &id).await;
    assert_eq!(
        graph_after.contacts, graph_before.contacts,
        "contacts back field by field; the one deleted before stays deleted"
    );
    assert_eq!(graph_after.deals, graph_before.deals);
    assert_eq!(graph_after.orders, graph_before.orders);
    assert_eq!(graph_after.contracts, graph_before.contracts);
    assert_eq!(graph_after.projects, graph_before.projects);

    let token = app.token("acme", "sup-1", &["supervisor"]);
    let mut audit =
        AuditServiceClient::with_interceptor(app.channel(), crate::common::Bearer::new(&token));
    let verdict = audit
        .verify_audit_chain(pb::VerifyAuditChainRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(verdict.valid, "{verdict:?}");
    let events = audit
        .list_audit_events(pb::ListAuditEventsRequest {
            customer_id: id.clone(),
            page_size: 1000,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .audit_events;
    let actions: Vec<&str> = events.iter().map(|e| e.action.as_str()).collect();
    for expected in [
        "customer.create",
        "deletion_request.submit",
        "deletion_request.approve",
        "customer.delete",
        "customer.restore",
    ] {
        assert!(
            actions.contains(&expected),
            "{expected} missing from {actions:?}"
        );
    }
}
