//! RecordService: the six kinds round-trip, every write moves the customer's graph etag, status
//! transitions follow the contract, and deletion rules hold.

use crm_service::proto::crm::v1 as pb;
use tonic::{Code, Status};

use crate::common::{
    Kind, Records, TestApp, assert_status, bad_fields, create_record, delete_record, get_customer,
    get_record, list_records, mask, new_activity, new_contact, new_contract, new_deal, new_order,
    new_project, random_id, touch_record,
};

crate::on_both_databases!(
    a_contact_round_trips_through_create_get_list_and_update,
    a_deal_round_trips_through_create_get_list_and_update,
    an_order_round_trips_through_create_get_list_and_update,
    a_contract_round_trips_through_create_get_list_and_update,
    a_project_round_trips_through_create_get_list_and_update,
    an_activity_round_trips_through_create_get_list_and_update,
    every_record_create_update_and_delete_moves_the_customers_etag,
    a_refused_record_write_leaves_the_customers_etag_alone,
    deal_stage_transitions_follow_the_contract,
    order_status_transitions_follow_the_contract,
    contract_status_transitions_follow_the_contract,
    project_status_transitions_follow_the_contract,
    a_contract_past_draft_cannot_be_deleted_and_a_draft_one_can,
    a_deleted_record_cannot_be_updated,
    a_deleted_record_is_listed_only_with_show_deleted,
    record_lists_page_through_every_record_once_in_creation_order,
    a_record_page_token_is_bound_to_its_customer_and_kind,
    creating_a_record_for_a_customer_that_does_not_exist_is_not_found,
    record_output_only_fields_and_immutable_paths_are_refused,
    a_record_update_with_a_stale_etag_is_aborted,
    a_retried_record_create_returns_the_first_record,
    no_record_of_a_deleted_customer_can_be_written,
    concurrent_status_changes_never_break_the_transition_rules,
    concurrent_retries_of_a_conditional_record_update_all_get_the_first_answer,
    concurrent_unconditional_record_updates_all_succeed,
);

async fn customer_etag(app: &TestApp, id: &str) -> String {
    get_customer(&mut app.customers(), id).await.etag
}

/// The shared output-only fields of a freshly created record.
macro_rules! assert_fresh {
    ($created:expr, $customer_id:expr) => {{
        let c = &$created;
        uuid::Uuid::try_parse(&c.id).expect("id is a UUID");
        assert_eq!(c.customer_id, $customer_id);
        assert!(c.create_time.is_some());
        assert_eq!(c.create_time, c.update_time);
        assert!(c.delete_time.is_none());
        assert!(!c.etag.is_empty());
    }};
}

async fn a_contact_round_trips_through_create_get_list_and_update(app: TestApp) {
    let customer = app.create_customer("Contacts Inc").await;
    let mut records = app.records();
    let input = new_contact(&customer.id);
    let created = records
        .create_contact(pb::CreateContactRequest {
            contact: Some(input.clone()),
            request_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .contact
        .unwrap();
    assert_fresh!(created, customer.id);
    assert_eq!(
        (
            &created.full_name,
            &created.email,
            &created.phone,
            &created.job_title
        ),
        (
            &input.full_name,
            &input.email,
            &input.phone,
            &input.job_title
        )
    );
    let got = records
        .get_contact(pb::GetContactRequest {
            contact_id: created.id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .contact
        .unwrap();
    assert_eq!(got, created);
    let listed = records
        .list_contacts(pb::ListContactsRequest {
            customer_id: customer.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.contacts, std::slice::from_ref(&created));
    assert!(listed.next_page_token.is_empty());
    let updated = records
        .update_contact(pb::UpdateContactRequest {
            contact: Some(pb::Contact {
                id: created.id.clone(),
                job_title: "Chief Buyer".into(),
                email: "".into(),
                full_name: "ignored: not in the mask".into(),
                ..Default::default()
            }),
            update_mask: mask(&["job_title", "email"]),
            etag: created.etag.clone(),
            request_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .contact
        .unwrap();
    assert_eq!(updated.job_title, "Chief Buyer");
    assert_eq!(updated.email, "", "an optional field can be cleared");
    assert_eq!(updated.full_name, created.full_name);
    assert_eq!(updated.create_time, created.create_time);
    assert_ne!(updated.etag, created.etag);
    let got = records
        .get_contact(pb::GetContactRequest {
            contact_id: created.id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .contact
        .unwrap();
    assert_eq!(got, updated);
}

async fn a_deal_round_trips_through_create_get_list_and_update(app: TestApp) {
    let customer = app.create_customer("Deals Inc").await;
    let mut records = app.records();
    let input = new_deal(&customer.id, pb::DealStage::Open);
    let created = records
        .create_deal(pb::CreateDealRequest {
            deal: Some(input.clone()),
            request_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .deal
        .unwrap();
    assert_fresh!(created, customer.id);
    assert_eq!(
        (
            &created.title,
            created.amount_minor,
            &created.currency,
            created.stage
        ),
        (
            &input.title,
            input.amount_minor,
            &input.currency,
            input.stage
        )
    );
    let got = records
        .get_deal(pb::GetDealRequest {
            deal_id: created.id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .deal
        .unwrap();
    assert_eq!(got, created);
    let listed = records
        .list_deals(pb::ListDealsRequest {
            customer_id: customer.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.deals, std::slice::from_ref(&created));
    let updated = records
        .update_deal(pb::UpdateDealRequest {
            deal: Some(pb::Deal {
                id: created.id.clone(),
                amount_minor: i64::MAX,
                currency: "CHF".into(),
                stage: pb::DealStage::Won as i32,
                title: "ignored".into(),
                ..Default::default()
            }),
            update_mask: mask(&["amount_minor", "currency", "stage"]),
            etag: created.etag.clone(),
            request_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .deal
        .unwrap();
    assert_eq!(updated.amount_minor, i64::MAX);
    assert_eq!(updated.currency, "CHF");
    assert_eq!(updated.stage, pb::DealStage::Won as i32);
    assert_eq!(updated.title, created.title);
    assert_ne!(updated.etag, created.etag);
    let got = records
        .get_deal(pb::GetDealRequest {
            deal_id: created.id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .deal
        .unwrap();
    assert_eq!(got, updated);
}

async fn an_order_round_trips_through_create_get_list_and_update(app: TestApp) {
    let customer = app.create_customer("Orders Inc").await;
    let mut records = app.records();
    let input = new_order(&customer.id, pb::OrderStatus::Open);
    let created = records
        .create_order(pb::CreateOrderRequest {
            order: Some(input.clone()),
            request_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .order
        .unwrap();
    assert_fresh!(created, customer.id);
    assert_eq!(
        (
            &created.number,
            created.amount_minor,
            &created.currency,
            created.status
        ),
        (
            &input.number,
            input.amount_minor,
            &input.currency,
            input.status
        )
    );
    let got = records
        .get_order(pb::GetOrderRequest {
            order_id: created.id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .order
        .unwrap();
    assert_eq!(got, created);
    let listed = records
        .list_orders(pb::ListOrdersRequest {
            customer_id: customer.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.orders, std::slice::from_ref(&created));
    let updated = records
        .update_order(pb::UpdateOrderRequest {
            order: Some(pb::Order {
                id: created.id.clone(),
                number: "SO-2002".into(),
                amount_minor: 0,
                status: pb::OrderStatus::Paid as i32,
                ..Default::default()
            }),
            update_mask: mask(&["number", "amount_minor", "status"]),
            etag: created.etag.clone(),
            request_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .order
        .unwrap();
    assert_eq!(updated.number, "SO-2002");
    assert_eq!(updated.amount_minor, 0);
    assert_eq!(updated.status, pb::OrderStatus::Paid as i32);
    assert_eq!(updated.currency, created.currency);
    assert_ne!(updated.etag, created.etag);
    let got = records
        .get_order(pb::GetOrderRequest {
            order_id: created.id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .order
        .unwrap();
    assert_eq!(got, updated);
}

async fn a_contract_round_trips_through_create_get_list_and_update(app: TestApp) {
    let customer = app.create_customer("Contracts Inc").await;
    let mut records = app.records();
    let input = new_contract(&customer.id, pb::ContractStatus::Draft);
    let created = records
        .create_contract(pb::CreateContractRequest {
            contract: Some(input.clone()),
            request_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .contract
        .unwrap();
    assert_fresh!(created, customer.id);
    assert_eq!(
        (&created.number, created.status, &created.end_date),
        (&input.number, input.status, &input.end_date)
    );
    let got = records
        .get_contract(pb::GetContractRequest {
            contract_id: created.id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .contract
        .unwrap();
    assert_eq!(got, created);
    let listed = records
        .list_contracts(pb::ListContractsRequest {
            customer_id: customer.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.contracts, std::slice::from_ref(&created));
    let updated = records
        .update_contract(pb::UpdateContractRequest {
            contract: Some(pb::Contract {
                id: created.id.clone(),
                end_date: String::new(),
                status: pb::ContractStatus::Active as i32,
                number: "ignored".into(),
                ..Default::default()
            }),
            update_mask: mask(&["end_date", "status"]),
            etag: created.etag.clone(),
            request_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .contract
        .unwrap();
    assert_eq!(updated.end_date, "", "open-ended");
    assert_eq!(updated.status, pb::ContractStatus::Active as i32);
    assert_eq!(updated.number, created.number);
    assert_ne!(updated.etag, created.etag);
    let got = records
        .get_contract(pb::GetContractRequest {
            contract_id: created.id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .contract
        .unwrap();
    assert_eq!(got, updated);
}

async fn a_project_round_trips_through_create_get_list_and_update(app: TestApp) {
    let customer = app.create_customer("Projects Inc").await;
    let mut records = app.records();
    let input = new_project(&customer.id, pb::ProjectStatus::Active);
    let created = records
        .create_project(pb::CreateProjectRequest {
            project: Some(input.clone()),
            request_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .project
        .unwrap();
    assert_fresh!(created, customer.id);
    assert_eq!((&created.name, created.status), (&input.name, input.status));
    let got = records
        .get_project(pb::GetProjectRequest {
            project_id: created.id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .project
        .unwrap();
    assert_eq!(got, created);
    let listed = records
        .list_projects(pb::ListProjectsRequest {
            customer_id: customer.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.projects, std::slice::from_ref(&created));
    let updated = records
        .update_project(pb::UpdateProjectRequest {
            project: Some(pb::Project {
                id: created.id.clone(),
                name: "Warehouse roll-out (Ω)".into(),
                ..Default::default()
            }),
            update_mask: mask(&["name"]),
            etag: created.etag.clone(),
            request_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .project
        .unwrap();
    assert_eq!(updated.name, "Warehouse roll-out (Ω)");
    assert_eq!(updated.status, created.status);
    assert_ne!(updated.etag, created.etag);
    let got = records
        .get_project(pb::GetProjectRequest {
            project_id: created.id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .project
        .unwrap();
    assert_eq!(got, updated);
}

async fn an_activity_round_trips_through_create_get_list_and_update(app: TestApp) {
    let customer = app.create_customer("Activities Inc").await;
    let mut records = app.records();
    let input = new_activity(&customer.id);
    let created = records
        .create_activity(pb::CreateActivityRequest {
            activity: Some(input.clone()),
            request_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .activity
        .unwrap();
    assert_fresh!(created, customer.id);
    assert_eq!(
        (created.kind, &created.subject, created.occur_time),
        (input.kind, &input.subject, input.occur_time)
    );
    let got = records
        .get_activity(pb::GetActivityRequest {
            activity_id: created.id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .activity
        .unwrap();
    assert_eq!(got, created);
    let listed = records
        .list_activities(pb::ListActivitiesRequest {
            customer_id: customer.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.activities, std::slice::from_ref(&created));
    let later = prost_types::Timestamp {
        seconds: 1_767_312_000,
        nanos: 999_999_000,
    };
    let updated = records
        .update_activity(pb::UpdateActivityRequest {
            activity: Some(pb::Activity {
                id: created.id.clone(),
                kind: pb::ActivityKind::Meeting as i32,
                occur_time: Some(later),
                ..Default::default()
            }),
            update_mask: mask(&["kind", "occur_time"]),
            etag: created.etag.clone(),
            request_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .activity
        .unwrap();
    assert_eq!(updated.kind, pb::ActivityKind::Meeting as i32);
    assert_eq!(updated.occur_time, Some(later));
    assert_eq!(updated.subject, created.subject);
    assert_ne!(updated.etag, created.etag);
    let got = records
        .get_activity(pb::GetActivityRequest {
            activity_id: created.id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .activity
        .unwrap();
    assert_eq!(got, updated);
}

async fn every_record_create_update_and_delete_moves_the_customers_etag(app: TestApp) {
    let customer = app.create_customer("Graph").await;
    let mut records = app.records();
    let mut seen = vec![customer.etag.clone()];
    let mut step = |etag: String, what: String| {
        assert!(
            !seen.contains(&etag),
            "{what} left the etag at a seen value {etag}"
        );
        seen.push(etag);
    };
    for kind in Kind::ALL {
        let created = create_record(&mut records, kind, &customer.id)
            .await
            .unwrap();
        step(
            customer_etag(&app, &customer.id).await,
            format!("create {kind:?}"),
        );
        let touched = touch_record(&mut records, kind, &created.id).await.unwrap();
        assert_ne!(touched.etag, created.etag, "{kind:?}'s own etag");
        step(
            customer_etag(&app, &customer.id).await,
            format!("update {kind:?}"),
        );
        if let Some(deleted) = delete_record(&mut records, kind, &created.id).await {
            let deleted = deleted.unwrap();
            assert!(deleted.deleted);
            assert_ne!(deleted.etag, touched.etag, "{kind:?}'s own etag");
            step(
                customer_etag(&app, &customer.id).await,
                format!("delete {kind:?}"),
            );
        }
    }
    // 6 creates, 6 updates, 5 deletes.
    assert_eq!(seen.len(), 1 + 6 + 6 + 5);
    // The customer's own fields did not change: only its graph version did.
    let after = get_customer(&mut app.customers(), &customer.id).await;
    assert_eq!(after.update_time, customer.update_time);
    assert_eq!(after.name, customer.name);
}

async fn a_refused_record_write_leaves_the_customers_etag_alone(app: TestApp) {
    let customer = app.create_customer("Stable").await;
    let mut records = app.records();
    let order = create_record(&mut records, Kind::Order, &customer.id)
        .await
        .unwrap();
    set_order_status(&mut records, &order.id, pb::OrderStatus::Paid)
        .await
        .unwrap();
    let etag = customer_etag(&app, &customer.id).await;
    // A forbidden transition, a failed validation, an unknown id: none of them is a write.
    for to in [pb::OrderStatus::Open, pb::OrderStatus::Cancelled] {
        assert_status(
            set_order_status(&mut records, &order.id, to).await,
            Code::FailedPrecondition,
            "INVALID_STATUS_TRANSITION",
        );
    }
    assert_status(
        records
            .create_deal(pb::CreateDealRequest {
                deal: Some(pb::Deal {
                    currency: "euro".into(),
                    ..new_deal(&customer.id, pb::DealStage::Open)
                }),
                request_id: String::new(),
            })
            .await,
        Code::InvalidArgument,
        "INVALID_FIELD",
    );
    assert_status(
        touch_record(&mut records, Kind::Contact, &random_id()).await,
        Code::NotFound,
        "NOT_FOUND",
    );
    assert_eq!(customer_etag(&app, &customer.id).await, etag);
}

// ----- status transitions --------------------------------------------------------------------

async fn set_deal_stage(
    records: &mut Records,
    id: &str,
    stage: pb::DealStage,
) -> Result<(), Status> {
    let deal = records
        .update_deal(pb::UpdateDealRequest {
            deal: Some(pb::Deal {
                id: id.into(),
                stage: stage as i32,
                ..Default::default()
            }),
            update_mask: mask(&["stage"]),
            etag: String::new(),
            request_id: String::new(),
        })
        .await?
        .into_inner()
        .deal
        .unwrap();
    assert_eq!(deal.stage, stage as i32);
    Ok(())
}

async fn set_order_status(
    records: &mut Records,
    id: &str,
    status: pb::OrderStatus,
) -> Result<(), Status> {
    let order = records
        .update_order(pb::UpdateOrderRequest {
            order: Some(pb::Order {
                id: id.into(),
                status: status as i32,
                ..Default::default()
            }),
            update_mask: mask(&["status"]),
            etag: String::new(),
            request_id: String::new(),
        })
        .await?
        .into_inner()
        .order
        .unwrap();
    assert_eq!(order.status, status as i32);
    Ok(())
}

async fn set_contract_status(
    records: &mut Records,
    id: &str,
    status: pb::ContractStatus,
) -> Result<(), Status> {
    let contract = records
        .update_contract(pb::UpdateContractRequest {
            contract: Some(pb::Contract {
                id: id.into(),
                status: status as i32,
                ..Default::default()
            }),
            update_mask: mask(&["status"]),
            etag: String::new(),
            request_id: String::new(),
        })
        .await?
        .into_inner()
        .contract
        .unwrap();
    assert_eq!(contract.status, status as i32);
    Ok(())
}

async fn set_project_status(
    records: &mut Records,
    id: &str,
    status: pb::ProjectStatus,
) -> Result<(), Status> {
    let project = records
        .update_project(pb::UpdateProjectRequest {
            project: Some(pb::Project {
                id: id.into(),
                status: status as i32,
                ..Default::default()
            }),
            update_mask: mask(&["status"]),
            etag: String::new(),
            request_id: String::new(),
        })
        .await?
        .into_inner()
        .project
        .unwrap();
    assert_eq!(project.status, status as i32);
    Ok(())
}

/// Asserts a forbidden transition: FAILED_PRECONDITION, and the record unchanged.
async fn assert_forbidden(
    records: &mut Records,
    kind: Kind,
    id: &str,
    result: Result<(), Status>,
    what: &str,
) {
    let before = get_record(records, kind, id).await.unwrap();
    let status = result.expect_err(&format!("{what} should be refused"));
    assert_status(
        Err::<(), _>(status),
        Code::FailedPrecondition,
        "INVALID_STATUS_TRANSITION",
    );
    assert_eq!(
        get_record(records, kind, id).await.unwrap(),
        before,
        "{what}"
    );
}

async fn deal_stage_transitions_follow_the_contract(app: TestApp) {
    use pb::DealStage::*;
    let customer = app.create_customer("Deal flow").await;
    let mut r = app.records();
    let deal = create_record(&mut r, Kind::Deal, &customer.id)
        .await
        .unwrap();
    let id = deal.id.as_str();
    set_deal_stage(&mut r, id, Open)
        .await
        .expect("OPEN stays OPEN");
    set_deal_stage(&mut r, id, Won).await.expect("OPEN → WON");
    let refused = set_deal_stage(&mut r, id, Lost).await;
    assert_forbidden(&mut r, Kind::Deal, id, refused, "WON → LOST").await;
    set_deal_stage(&mut r, id, Open).await.expect("WON → OPEN");
    set_deal_stage(&mut r, id, Lost).await.expect("OPEN → LOST");
    let refused = set_deal_stage(&mut r, id, Won).await;
    assert_forbidden(&mut r, Kind::Deal, id, refused, "LOST → WON").await;
    set_deal_stage(&mut r, id, Open).await.expect("LOST → OPEN");
}

async fn order_status_transitions_follow_the_contract(app: TestApp) {
    use pb::OrderStatus::*;
    let customer = app.create_customer("Order flow").await;
    let mut r = app.records();
    let paid = create_record(&mut r, Kind::Order, &customer.id)
        .await
        .unwrap();
    set_order_status(&mut r, &paid.id, Paid)
        .await
        .expect("OPEN → PAID");
    for to in [Open, Cancelled] {
        let refused = set_order_status(&mut r, &paid.id, to).await;
        assert_forbidden(
            &mut r,
            Kind::Order,
            &paid.id,
            refused,
            &format!("PAID → {to:?}"),
        )
        .await;
    }
    let cancelled = create_record(&mut r, Kind::Order, &customer.id)
        .await
        .unwrap();
    set_order_status(&mut r, &cancelled.id, Cancelled)
        .await
        .expect("OPEN → CANCELLED");
    for to in [Open, Paid] {
        let refused = set_order_status(&mut r, &cancelled.id, to).await;
        let what = format!("CANCELLED → {to:?}");
        assert_forbidden(&mut r, Kind::Order, &cancelled.id, refused, &what).await;
    }
    // Any status may be given on create, to import history; the rules then apply from there.
    let imported = r
        .create_order(pb::CreateOrderRequest {
            order: Some(new_order(&customer.id, Paid)),
            request_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .order
        .unwrap();
    let refused = set_order_status(&mut r, &imported.id, Open).await;
    assert_forbidden(
        &mut r,
        Kind::Order,
        &imported.id,
        refused,
        "imported PAID → OPEN",
    )
    .await;
}

async fn contract_status_transitions_follow_the_contract(app: TestApp) {
    use pb::ContractStatus::*;
    let customer = app.create_customer("Contract flow").await;
    let mut r = app.records();
    let mut contract_in = async |status: pb::ContractStatus| -> String {
        r.create_contract(pb::CreateContractRequest {
            contract: Some(new_contract(&customer.id, status)),
            request_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .contract
        .unwrap()
        .id
    };
    let allowed = [
        (Draft, Active),
        (Draft, Terminated),
        (Active, Expired),
        (Active, Terminated),
        (Draft, Draft),
        (Active, Active),
    ];
    let forbidden = [
        (Draft, Expired),
        (Active, Draft),
        (Expired, Active),
        (Expired, Draft),
        (Expired, Terminated),
        (Terminated, Active),
        (Terminated, Draft),
        (Terminated, Expired),
    ];
    let mut cases = Vec::new();
    for (from, to) in allowed.iter().chain(forbidden.iter()) {
        cases.push((*from, *to, contract_in(*from).await));
    }
    for (from, to, id) in cases {
        let result = set_contract_status(&mut r, &id, to).await;
        let what = format!("{from:?} → {to:?}");
        if allowed.contains(&(from, to)) {
            result.unwrap_or_else(|e| panic!("{what}: {e:?}"));
        } else {
            assert_forbidden(&mut r, Kind::Contract, &id, result, &what).await;
        }
    }
}

async fn project_status_transitions_follow_the_contract(app: TestApp) {
    use pb::ProjectStatus::*;
    let customer = app.create_customer("Project flow").await;
    let mut r = app.records();
    let project = create_record(&mut r, Kind::Project, &customer.id)
        .await
        .unwrap();
    set_project_status(&mut r, &project.id, Done)
        .await
        .expect("ACTIVE → DONE");
    set_project_status(&mut r, &project.id, Active)
        .await
        .expect("DONE → ACTIVE");
    set_project_status(&mut r, &project.id, Done)
        .await
        .expect("ACTIVE → DONE again");
}

async fn a_contract_past_draft_cannot_be_deleted_and_a_draft_one_can(app: TestApp) {
    use pb::ContractStatus::*;
    let customer = app.create_customer("Contract deletion").await;
    let mut r = app.records();
    for status in [Active, Expired, Terminated] {
        let contract = r
            .create_contract(pb::CreateContractRequest {
                contract: Some(new_contract(&customer.id, status)),
                request_id: String::new(),
            })
            .await
            .unwrap()
            .into_inner()
            .contract
            .unwrap();
        let etag = customer_etag(&app, &customer.id).await;
        assert_status(
            delete_record(&mut r, Kind::Contract, &contract.id)
                .await
                .unwrap(),
            Code::FailedPrecondition,
            "RECORD_NOT_DELETABLE",
        );
        let after = get_record(&mut r, Kind::Contract, &contract.id)
            .await
            .unwrap();
        assert!(!after.deleted, "{status:?}");
        assert_eq!(after.etag, contract.etag, "{status:?}");
        assert_eq!(customer_etag(&app, &customer.id).await, etag);
    }
    let draft = create_record(&mut r, Kind::Contract, &customer.id)
        .await
        .unwrap();
    let deleted = delete_record(&mut r, Kind::Contract, &draft.id)
        .await
        .unwrap()
        .expect("a DRAFT contract can be deleted");
    assert!(deleted.deleted);
    let got = get_record(&mut r, Kind::Contract, &draft.id).await.unwrap();
    assert_eq!(got, deleted, "a deleted record can still be read");
}

async fn a_deleted_record_cannot_be_updated(app: TestApp) {
    let customer = app.create_customer("Deleted records").await;
    let mut r = app.records();
    for kind in Kind::ALL {
        if kind == Kind::Order {
            continue;
        }
        let record = create_record(&mut r, kind, &customer.id).await.unwrap();
        let deleted = delete_record(&mut r, kind, &record.id)
            .await
            .unwrap()
            .unwrap();
        let etag = customer_etag(&app, &customer.id).await;
        assert_status(
            touch_record(&mut r, kind, &record.id).await,
            Code::FailedPrecondition,
            "RECORD_DELETED",
        );
        assert_eq!(get_record(&mut r, kind, &record.id).await.unwrap(), deleted);
        assert_eq!(customer_etag(&app, &customer.id).await, etag, "{kind:?}");
    }
}

async fn a_deleted_record_is_listed_only_with_show_deleted(app: TestApp) {
    let customer = app.create_customer("Show deleted").await;
    let mut r = app.records();
    let kept = create_record(&mut r, Kind::Activity, &customer.id)
        .await
        .unwrap();
    let gone = create_record(&mut r, Kind::Activity, &customer.id)
        .await
        .unwrap();
    let gone = delete_record(&mut r, Kind::Activity, &gone.id)
        .await
        .unwrap()
        .unwrap();
    let (live, _) = list_records(&mut r, Kind::Activity, &customer.id, 0, "", false)
        .await
        .unwrap();
    assert_eq!(live, std::slice::from_ref(&kept));
    let (all, _) = list_records(&mut r, Kind::Activity, &customer.id, 0, "", true)
        .await
        .unwrap();
    assert_eq!(all, [kept, gone]);
}

async fn record_lists_page_through_every_record_once_in_creation_order(app: TestApp) {
    let customer = app.create_customer("Paged records").await;
    let other = app.create_customer("Someone else").await;
    let mut r = app.records();
    for kind in Kind::ALL {
        let mut created = Vec::new();
        for _ in 0..5 {
            created.push(create_record(&mut r, kind, &customer.id).await.unwrap());
        }
        // Records of another customer never show up.
        create_record(&mut r, kind, &other.id).await.unwrap();
        for page_size in [1, 2, 4, 5] {
            let mut walked = Vec::new();
            let mut token = String::new();
            let mut pages = 0;
            loop {
                let (page, next) =
                    list_records(&mut r, kind, &customer.id, page_size, &token, false)
                        .await
                        .unwrap();
                assert!(page.len() <= page_size as usize);
                pages += 1;
                walked.extend(page);
                if next.is_empty() {
                    break;
                }
                token = next;
            }
            let ids: Vec<_> = walked.iter().map(|v| v.id.clone()).collect();
            let expected: Vec<_> = created.iter().map(|v| v.id.clone()).collect();
            assert_eq!(ids, expected, "{kind:?}, page_size {page_size}");
            assert_eq!(pages, 5usize.div_ceil(page_size as usize), "{kind:?}");
        }
    }
}

async fn a_record_page_token_is_bound_to_its_customer_and_kind(app: TestApp) {
    let customer = app.create_customer("Token owner").await;
    let other = app.create_customer("Token thief").await;
    let mut r = app.records();
    for _ in 0..3 {
        create_record(&mut r, Kind::Contact, &customer.id)
            .await
            .unwrap();
        create_record(&mut r, Kind::Contact, &other.id)
            .await
            .unwrap();
        create_record(&mut r, Kind::Deal, &customer.id)
            .await
            .unwrap();
    }
    let (_, token) = list_records(&mut r, Kind::Contact, &customer.id, 1, "", false)
        .await
        .unwrap();
    assert!(!token.is_empty());
    for (kind, customer_id, show_deleted) in [
        (Kind::Contact, other.id.as_str(), false),
        (Kind::Deal, customer.id.as_str(), false),
        (Kind::Contact, customer.id.as_str(), true),
    ] {
        let status = assert_status(
            list_records(&mut r, kind, customer_id, 1, &token, show_deleted).await,
            Code::InvalidArgument,
            "INVALID_FIELD",
        );
        assert_eq!(bad_fields(&status), ["page_token"]);
    }
    let mut tampered = token.clone().into_bytes();
    tampered[3] = if tampered[3] == b'A' { b'B' } else { b'A' };
    let status = assert_status(
        list_records(
            &mut r,
            Kind::Contact,
            &customer.id,
            1,
            &String::from_utf8(tampered).unwrap(),
            false,
        )
        .await,
        Code::InvalidArgument,
        "INVALID_FIELD",
    );
    assert_eq!(bad_fields(&status), ["page_token"]);
    let (page, _) = list_records(&mut r, Kind::Contact, &customer.id, 1, &token, false)
        .await
        .unwrap();
    assert_eq!(page.len(), 1);
}

async fn creating_a_record_for_a_customer_that_does_not_exist_is_not_found(app: TestApp) {
    let real = app.create_customer("Real").await;
    let mut r = app.records();
    let ghost = random_id();
    for kind in Kind::ALL {
        let status = assert_status(
            create_record(&mut r, kind, &ghost).await,
            Code::NotFound,
            "NOT_FOUND",
        );
        assert!(status.message().contains(&ghost), "{status:?}");
        assert_status(
            list_records(&mut r, kind, &ghost, 0, "", true).await,
            Code::NotFound,
            "NOT_FOUND",
        );
        let (page, _) = list_records(&mut r, kind, &real.id, 0, "", true)
            .await
            .unwrap();
        assert!(page.is_empty());
    }
    assert_eq!(customer_etag(&app, &real.id).await, real.etag);
}

async fn record_output_only_fields_and_immutable_paths_are_refused(app: TestApp) {
    let customer = app.create_customer("Strict records").await;
    let mut r = app.records();
    let status = assert_status(
        r.create_contact(pb::CreateContactRequest {
            contact: Some(pb::Contact {
                id: random_id(),
                etag: "1".into(),
                create_time: Some(prost_types::Timestamp::default()),
                ..new_contact(&customer.id)
            }),
            request_id: String::new(),
        })
        .await,
        Code::InvalidArgument,
        "INVALID_FIELD",
    );
    assert_eq!(
        bad_fields(&status),
        ["contact.id", "contact.create_time", "contact.etag"]
    );
    let contact = create_record(&mut r, Kind::Contact, &customer.id)
        .await
        .unwrap();
    for path in ["customer_id", "id", "etag", "delete_time", "nickname"] {
        let status = assert_status(
            r.update_contact(pb::UpdateContactRequest {
                contact: Some(pb::Contact {
                    id: contact.id.clone(),
                    customer_id: random_id(),
                    ..Default::default()
                }),
                update_mask: mask(&[path]),
                etag: String::new(),
                request_id: String::new(),
            })
            .await,
            Code::InvalidArgument,
            "INVALID_FIELD",
        );
        assert_eq!(bad_fields(&status), ["update_mask"], "{path}");
    }
    assert_eq!(
        get_record(&mut r, Kind::Contact, &contact.id)
            .await
            .unwrap(),
        contact
    );
}

async fn a_record_update_with_a_stale_etag_is_aborted(app: TestApp) {
    let customer = app.create_customer("Stale records").await;
    let mut r = app.records();
    let deal = create_record(&mut r, Kind::Deal, &customer.id)
        .await
        .unwrap();
    let touched = touch_record(&mut r, Kind::Deal, &deal.id).await.unwrap();
    assert_status(
        r.update_deal(pb::UpdateDealRequest {
            deal: Some(pb::Deal {
                id: deal.id.clone(),
                title: "Stale".into(),
                ..Default::default()
            }),
            update_mask: mask(&["title"]),
            etag: deal.etag.clone(),
            request_id: String::new(),
        })
        .await,
        Code::Aborted,
        "ETAG_MISMATCH",
    );
    assert_status(
        r.delete_deal(pb::DeleteDealRequest {
            deal_id: deal.id.clone(),
            etag: deal.etag.clone(),
            request_id: String::new(),
        })
        .await,
        Code::Aborted,
        "ETAG_MISMATCH",
    );
    assert_eq!(
        get_record(&mut r, Kind::Deal, &deal.id).await.unwrap(),
        touched
    );
}

async fn a_retried_record_create_returns_the_first_record(app: TestApp) {
    let customer = app.create_customer("Idempotent records").await;
    let mut r = app.records();
    let request = pb::CreateProjectRequest {
        project: Some(new_project(&customer.id, pb::ProjectStatus::Active)),
        request_id: crate::common::request_id(),
    };
    let first = r
        .create_project(request.clone())
        .await
        .unwrap()
        .into_inner();
    let etag = customer_etag(&app, &customer.id).await;
    let retry = r
        .create_project(request.clone())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(retry, first);
    assert_eq!(
        customer_etag(&app, &customer.id).await,
        etag,
        "the retry wrote"
    );
    let (all, _) = list_records(&mut r, Kind::Project, &customer.id, 0, "", true)
        .await
        .unwrap();
    assert_eq!(all.len(), 1);
    let mut other = request;
    other.project.as_mut().unwrap().name = "Another project".into();
    assert_status(
        r.create_project(other).await,
        Code::InvalidArgument,
        "REQUEST_ID_REUSED",
    );
}

async fn no_record_of_a_deleted_customer_can_be_written(app: TestApp) {
    let customer = app.create_customer("Soon deleted").await;
    let mut r = app.records();
    let mut existing = Vec::new();
    for kind in Kind::ALL {
        existing.push((
            kind,
            create_record(&mut r, kind, &customer.id).await.unwrap(),
        ));
    }
    // Only SQL reaches this state: DeleteCustomer deletes every record with its customer (or
    // keeps it for the books), so through the API no kind is left live and writable under a
    // deleted customer. The guard is proved on each kind's write path all the same, so that a
    // record some future policy leaves live cannot be written either.
    app.sql(&format!(
        "UPDATE customer SET delete_time = update_time, purge_time = update_time \
         WHERE tenant_id = 'acme' AND name = '{}'",
        customer.name
    ))
    .await;
    let etag = customer_etag(&app, &customer.id).await;
    for (kind, record) in &existing {
        let kind = *kind;
        assert_status(
            create_record(&mut r, kind, &customer.id).await,
            Code::FailedPrecondition,
            "CUSTOMER_DELETED",
        );
        assert_status(
            touch_record(&mut r, kind, &record.id).await,
            Code::FailedPrecondition,
            "CUSTOMER_DELETED",
        );
        if let Some(result) = delete_record(&mut r, kind, &record.id).await {
            assert_status(result, Code::FailedPrecondition, "CUSTOMER_DELETED");
        }
        // Reads still work, and nothing changed.
        assert_eq!(&get_record(&mut r, kind, &record.id).await.unwrap(), record);
        let (all, _) = list_records(&mut r, kind, &customer.id, 0, "", true)
            .await
            .unwrap();
        assert_eq!(all, std::slice::from_ref(record), "{kind:?}");
    }
    assert_eq!(customer_etag(&app, &customer.id).await, etag);
}

async fn concurrent_status_changes_never_break_the_transition_rules(app: TestApp) {
    use pb::OrderStatus::{Cancelled, Open, Paid};
    let customer = app.create_customer("Contended orders").await;
    for trial in 0..5 {
        let order = create_record(&mut app.records(), Kind::Order, &customer.id)
            .await
            .unwrap();
        // Half try OPEN → PAID, half OPEN → CANCELLED, all unconditionally (no etag): PAID and
        // CANCELLED are final, so exactly one may win.
        let mut tasks = Vec::new();
        for writer in 0..8 {
            let mut records = app.records();
            let id = order.id.clone();
            let to = if writer % 2 == 0 { Paid } else { Cancelled };
            tasks.push(tokio::spawn(async move {
                (to, set_order_status(&mut records, &id, to).await)
            }));
        }
        let mut winners = Vec::new();
        for task in tasks {
            let (to, result) = task.await.unwrap();
            match result {
                Ok(()) => winners.push(to),
                // Unconditional writes are checked against the latest status, never refused
                // as stale: a loser's transition starts from the winner's final status.
                Err(status) => {
                    assert_status(
                        Err::<(), _>(status),
                        Code::FailedPrecondition,
                        "INVALID_STATUS_TRANSITION",
                    );
                }
            }
        }
        // A writer asking for the status the winner already set is a no-op that may succeed:
        // every winner must agree on one final status.
        assert!(!winners.is_empty(), "trial {trial}: nobody won");
        assert!(
            winners.iter().all(|w| *w == winners[0]),
            "trial {trial}: both PAID and CANCELLED were accepted: {winners:?}"
        );
        let stored = records_get_order(&app, &order.id).await;
        assert_eq!(stored.status, winners[0] as i32);
        assert_ne!(stored.status, Open as i32);
    }
}

async fn records_get_order(app: &TestApp, id: &str) -> pb::Order {
    app.records()
        .get_order(pb::GetOrderRequest {
            order_id: id.into(),
        })
        .await
        .unwrap()
        .into_inner()
        .order
        .unwrap()
}

async fn concurrent_retries_of_a_conditional_record_update_all_get_the_first_answer(app: TestApp) {
    let customer = app.create_customer("Retried records").await;
    for trial in 0..5 {
        let deal = create_record(&mut app.records(), Kind::Deal, &customer.id)
            .await
            .unwrap();
        let request = pb::UpdateDealRequest {
            deal: Some(pb::Deal {
                id: deal.id.clone(),
                stage: pb::DealStage::Won as i32,
                ..Default::default()
            }),
            update_mask: mask(&["stage"]),
            etag: deal.etag.clone(),
            request_id: crate::common::request_id(),
        };
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let mut records = app.records();
                let request = request.clone();
                tokio::spawn(async move { records.update_deal(request).await })
            })
            .collect();
        let mut answers = Vec::new();
        for task in tasks {
            answers.push(
                task.await
                    .unwrap()
                    .unwrap_or_else(|e| panic!("trial {trial}: a retry failed: {e:?}"))
                    .into_inner()
                    .deal
                    .unwrap(),
            );
        }
        assert!(answers.iter().all(|a| *a == answers[0]), "trial {trial}");
        let stored = get_record(&mut app.records(), Kind::Deal, &deal.id)
            .await
            .unwrap();
        assert_eq!(stored.etag, answers[0].etag);
        assert_eq!(
            stored.etag.parse::<i64>().unwrap(),
            deal.etag.parse::<i64>().unwrap() + 1,
            "applied once"
        );
    }
}

async fn concurrent_unconditional_record_updates_all_succeed(app: TestApp) {
    // Without an etag an update has no precondition: concurrent writers take turns (the last one
    // wins), and none may be refused as if it had sent a stale etag.
    let customer = app.create_customer("Busy records").await;
    for kind in Kind::ALL {
        let record = create_record(&mut app.records(), kind, &customer.id)
            .await
            .unwrap();
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let mut records = app.records();
                let id = record.id.clone();
                tokio::spawn(async move { touch_record(&mut records, kind, &id).await })
            })
            .collect();
        for task in tasks {
            task.await
                .unwrap()
                .unwrap_or_else(|e| panic!("{kind:?}: an unconditional update failed: {e:?}"));
        }
        let stored = get_record(&mut app.records(), kind, &record.id)
            .await
            .unwrap();
        assert_eq!(
            stored.etag.parse::<i64>().unwrap(),
            record.etag.parse::<i64>().unwrap() + 8,
            "{kind:?}: every update applied once"
        );
    }
}
