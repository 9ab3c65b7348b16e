use crm_service::proto::crm::v1 as pb;
use prost_types::{FieldMask, Timestamp};
use tonic::Code;

use crate::common::{
    TestApp, assert_status, bad_fields, bare_customer, customer_names, get_customer,
    list_all_customers, mask, new_customer, request_id,
};

crate::on_both_databases!(
    a_created_customer_reads_back_field_for_field,
    an_update_changes_only_the_masked_fields_and_moves_the_etag,
    a_stale_etag_is_aborted_and_changes_nothing,
    a_second_live_customer_with_the_same_external_ref_is_already_exists,
    an_update_to_an_external_ref_taken_by_another_live_customer_is_already_exists,
    output_only_fields_on_create_are_refused_by_name_and_nothing_is_stored,
    an_update_mask_with_output_only_or_unknown_paths_is_refused_and_changes_nothing,
    an_update_without_a_mask_is_invalid_argument,
    a_sales_rep_may_not_make_someone_else_the_owner,
    a_sales_rep_may_name_themselves_as_owner,
    supervisors_admins_and_services_may_assign_owners,
    a_retried_create_returns_the_first_customer_and_creates_only_one,
    concurrent_retries_of_a_create_create_only_one_customer,
    a_request_id_reused_with_other_arguments_is_refused_and_creates_nothing,
    a_retried_update_returns_the_first_answer_and_applies_once,
    a_query_matches_percent_underscore_and_backslash_literally,
    a_query_ignores_case_in_name_email_and_phone,
    list_filters_by_industry_owner_stage_and_status_and_combines_them,
    a_deleted_customer_reads_back_is_listed_only_with_show_deleted_and_cannot_be_updated,
    a_query_finds_a_customer_by_its_new_values_after_an_update,
    concurrent_updates_with_the_same_etag_let_exactly_one_through,
    concurrent_creates_with_the_same_external_ref_let_exactly_one_through,
    concurrent_retries_of_a_create_with_an_external_ref_all_get_the_first_answer,
    concurrent_retries_of_a_conditional_update_all_get_the_first_answer,
    concurrent_unconditional_updates_all_succeed,
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
}

fn with_external_ref(name: &str, external_ref: &str) -> pb::CreateCustomerRequest {
    let mut request = bare_customer(name);
    request.customer.as_mut().unwrap().external_ref = external_ref.into();
    request
}

async fn a_second_live_customer_with_the_same_external_ref_is_already_exists(app: TestApp) {
    let mut client = app.customers();
    let first = client
        .create_customer(with_external_ref("First", "ERP-42"))
        .await
        .unwrap()
        .into_inner()
        .customer
        .unwrap();
    assert_eq!(first.external_ref, "ERP-42");
    assert_status(
        client
            .create_customer(with_external_ref("Second", "ERP-42"))
            .await,
        Code::AlreadyExists,
        "EXTERNAL_REF_TAKEN",
    );
    assert_eq!(customer_names(&mut client).await, ["First"]);

    // Unique per tenant only: another tenant has its own namespace of references.
    let mut globex = app.customers_as("globex", "rep-9", &["sales_rep"]);
    globex
        .create_customer(with_external_ref("Globex's own", "ERP-42"))
        .await
        .expect("another tenant may use the same external_ref");

    // Unique among live customers only: once the first is deleted, the reference is free again.
    app.delete_customer(&first.id).await;
    let third = client
        .create_customer(with_external_ref("Third", "ERP-42"))
        .await
        .expect("a deleted customer's external_ref is free")
        .into_inner()
        .customer
        .unwrap();
    assert_eq!(third.external_ref, "ERP-42");
    assert_eq!(customer_names(&mut client).await, ["Third"]);
}

async fn an_update_to_an_external_ref_taken_by_another_live_customer_is_already_exists(
    app: TestApp,
) {
    let mut client = app.customers();
    client
        .create_customer(with_external_ref("Holder", "ERP-7"))
        .await
        .unwrap();
    let other = client
        .create_customer(with_external_ref("Other", "ERP-8"))
        .await
        .unwrap()
        .into_inner()
        .customer
        .unwrap();
    assert_status(
        client
            .update_customer(pb::UpdateCustomerRequest {
                customer: Some(pb::Customer {
                    id: other.id.clone(),
                    external_ref: "ERP-7".into(),
                    ..Default::default()
                }),
                update_mask: mask(&["external_ref"]),
                etag: String::new(),
                request_id: String::new(),
            })
            .await,
        Code::AlreadyExists,
        "EXTERNAL_REF_TAKEN",
    );
    assert_eq!(get_customer(&mut client, &other.id).await, other);
}

async fn output_only_fields_on_create_are_refused_by_name_and_nothing_is_stored(app: TestApp) {
    let mut client = app.customers();
    let when = Some(Timestamp {
        seconds: 1_700_000_000,
        nanos: 0,
    });
    type Setter = Box<dyn Fn(&mut pb::Customer)>;
    let cases: Vec<(&str, Setter)> = vec![
        ("id", Box::new(|c| c.id = crate::common::random_id())),
        ("legal_hold", Box::new(|c| c.legal_hold = true)),
        ("create_time", Box::new(move |c| c.create_time = when)),
        ("update_time", Box::new(move |c| c.update_time = when)),
        ("delete_time", Box::new(move |c| c.delete_time = when)),
        ("purge_time", Box::new(move |c| c.purge_time = when)),
        ("etag", Box::new(|c| c.etag = "7".into())),
    ];
    let mut everything = bare_customer("All at once");
    for (field, set) in &cases {
        let mut request = bare_customer("Sneaky");
        set(request.customer.as_mut().unwrap());
        set(everything.customer.as_mut().unwrap());
        let status = assert_status(
            client.create_customer(request).await,
            Code::InvalidArgument,
            "INVALID_FIELD",
        );
        assert_eq!(bad_fields(&status), [format!("customer.{field}")]);
    }
    let status = assert_status(
        client.create_customer(everything).await,
        Code::InvalidArgument,
        "INVALID_FIELD",
    );
    let expected: Vec<String> = cases.iter().map(|(f, _)| format!("customer.{f}")).collect();
    assert_eq!(bad_fields(&status), expected);
    assert!(customer_names(&mut client).await.is_empty());
}

async fn an_update_mask_with_output_only_or_unknown_paths_is_refused_and_changes_nothing(
    app: TestApp,
) {
    let created = app.create_customer("Masked").await;
    let mut client = app.customers();
    for path in [
        "id",
        "legal_hold",
        "create_time",
        "update_time",
        "delete_time",
        "purge_time",
        "etag",
        "tenant",
        "tenant_id",
        "search_text",
        "customer.name",
        "Name",
        "",
    ] {
        let status = assert_status(
            client
                .update_customer(pb::UpdateCustomerRequest {
                    customer: Some(pb::Customer {
                        id: created.id.clone(),
                        name: "Changed".into(),
                        legal_hold: true,
                        etag: "999".into(),
                        ..Default::default()
                    }),
                    // A valid path beside the bad one: the whole update is refused.
                    update_mask: mask(&["name", path]),
                    etag: String::new(),
                    request_id: String::new(),
                })
                .await,
            Code::InvalidArgument,
            "INVALID_FIELD",
        );
        assert_eq!(bad_fields(&status), ["update_mask"], "path {path:?}");
    }
    assert_eq!(get_customer(&mut client, &created.id).await, created);
}

async fn an_update_without_a_mask_is_invalid_argument(app: TestApp) {
    let created = app.create_customer("Unmasked").await;
    let mut client = app.customers();
    for update_mask in [None, Some(FieldMask { paths: vec![] })] {
        let status = assert_status(
            client
                .update_customer(pb::UpdateCustomerRequest {
                    customer: Some(pb::Customer {
                        id: created.id.clone(),
                        name: "Changed".into(),
                        ..Default::default()
                    }),
                    update_mask,
                    etag: String::new(),
                    request_id: String::new(),
                })
                .await,
            Code::InvalidArgument,
            "INVALID_FIELD",
        );
        assert_eq!(bad_fields(&status), ["update_mask"]);
    }
    assert_eq!(get_customer(&mut client, &created.id).await, created);
}

fn owned_by(name: &str, owner: &str) -> pb::CreateCustomerRequest {
    let mut request = bare_customer(name);
    request.customer.as_mut().unwrap().owner_id = owner.into();
    request
}

fn reassign(id: &str, owner: &str) -> pb::UpdateCustomerRequest {
    pb::UpdateCustomerRequest {
        customer: Some(pb::Customer {
            id: id.into(),
            owner_id: owner.into(),
            ..Default::default()
        }),
        update_mask: mask(&["owner_id"]),
        etag: String::new(),
        request_id: String::new(),
    }
}

async fn a_sales_rep_may_not_make_someone_else_the_owner(app: TestApp) {
    let mut rep = app.customers();
    assert_status(
        rep.create_customer(owned_by("Poached", "rep-2")).await,
        Code::PermissionDenied,
        "OWNER_ASSIGNMENT_FORBIDDEN",
    );
    assert!(customer_names(&mut rep).await.is_empty());

    let mine = app.create_customer("Mine").await;
    for owner in ["rep-2", "rep-1"] {
        // Even "reassigning" to yourself changes owner_id: the mask alone needs the role.
        assert_status(
            rep.update_customer(reassign(&mine.id, owner)).await,
            Code::PermissionDenied,
            "OWNER_ASSIGNMENT_FORBIDDEN",
        );
    }
    assert_eq!(get_customer(&mut rep, &mine.id).await, mine);
}

async fn a_sales_rep_may_name_themselves_as_owner(app: TestApp) {
    let mut rep = app.customers();
    let created = rep
        .create_customer(owned_by("Self-owned", "rep-1"))
        .await
        .unwrap()
        .into_inner()
        .customer
        .unwrap();
    assert_eq!(created.owner_id, "rep-1");
}

async fn supervisors_admins_and_services_may_assign_owners(app: TestApp) {
    for role in ["supervisor", "admin", "service"] {
        let mut client = app.customers_as("acme", &format!("{role}-1"), &[role]);
        let created = client
            .create_customer(owned_by(&format!("Assigned by {role}"), "rep-2"))
            .await
            .unwrap_or_else(|e| panic!("{role} creates for rep-2: {e:?}"))
            .into_inner()
            .customer
            .unwrap();
        assert_eq!(created.owner_id, "rep-2");
        let updated = client
            .update_customer(reassign(&created.id, "rep-3"))
            .await
            .unwrap_or_else(|e| panic!("{role} reassigns: {e:?}"))
            .into_inner()
            .customer
            .unwrap();
        assert_eq!(updated.owner_id, "rep-3");
        assert_eq!(
            get_customer(&mut client, &created.id).await.owner_id,
            "rep-3"
        );
    }
}

async fn a_retried_create_returns_the_first_customer_and_creates_only_one(app: TestApp) {
    let mut client = app.customers();
    let mut request = new_customer("Once Only");
    request.request_id = request_id();
    let first = client
        .create_customer(request.clone())
        .await
        .unwrap()
        .into_inner()
        .customer
        .unwrap();
    for _ in 0..3 {
        let retry = client
            .create_customer(request.clone())
            .await
            .unwrap()
            .into_inner()
            .customer
            .unwrap();
        assert_eq!(retry, first);
    }
    let all = list_all_customers(&mut client, Default::default()).await;
    assert_eq!(all, [first]);
}

async fn concurrent_retries_of_a_create_create_only_one_customer(app: TestApp) {
    let mut request = new_customer("Raced");
    request.request_id = request_id();
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let mut client = app.customers();
        let request = request.clone();
        tasks.push(tokio::spawn(async move {
            client.create_customer(request).await
        }));
    }
    let mut answers = Vec::new();
    for task in tasks {
        answers.push(
            task.await
                .unwrap()
                .expect("every duplicate gets the first answer")
                .into_inner()
                .customer
                .unwrap(),
        );
    }
    assert!(answers.iter().all(|a| *a == answers[0]), "{answers:#?}");
    let mut client = app.customers();
    let all = list_all_customers(&mut client, Default::default()).await;
    assert_eq!(all, [answers[0].clone()]);
}

async fn a_request_id_reused_with_other_arguments_is_refused_and_creates_nothing(app: TestApp) {
    let mut client = app.customers();
    let key = request_id();
    let mut request = new_customer("Keyed");
    request.request_id = key.clone();
    let first = client
        .create_customer(request)
        .await
        .unwrap()
        .into_inner()
        .customer
        .unwrap();
    let mut other = new_customer("Keyed, but another one");
    other.request_id = key.clone();
    let status = assert_status(
        client.create_customer(other).await,
        Code::InvalidArgument,
        "REQUEST_ID_REUSED",
    );
    assert_eq!(bad_fields(&status), ["request_id"]);
    // The same key on another mutation is a reuse too.
    let status = assert_status(
        client
            .update_customer(pb::UpdateCustomerRequest {
                customer: Some(pb::Customer {
                    id: first.id.clone(),
                    name: "Renamed".into(),
                    ..Default::default()
                }),
                update_mask: mask(&["name"]),
                etag: String::new(),
                request_id: key,
            })
            .await,
        Code::InvalidArgument,
        "REQUEST_ID_REUSED",
    );
    assert_eq!(bad_fields(&status), ["request_id"]);
    let all = list_all_customers(&mut client, Default::default()).await;
    assert_eq!(all, [first]);
}

async fn a_retried_update_returns_the_first_answer_and_applies_once(app: TestApp) {
    let created = app.create_customer("Before").await;
    let mut client = app.customers();
    let request = pb::UpdateCustomerRequest {
        customer: Some(pb::Customer {
            id: created.id.clone(),
            name: "After".into(),
            ..Default::default()
        }),
        update_mask: mask(&["name"]),
        etag: created.etag.clone(),
        request_id: request_id(),
    };
    let first = client
        .update_customer(request.clone())
        .await
        .unwrap()
        .into_inner()
        .customer
        .unwrap();
    assert_ne!(first.etag, created.etag);
    // The retry carries the etag the first call consumed: it must replay, not fail ABORTED.
    let retry = client
        .update_customer(request.clone())
        .await
        .unwrap()
        .into_inner()
        .customer
        .unwrap();
    assert_eq!(retry, first);
    assert_eq!(get_customer(&mut client, &created.id).await, first);

    let mut changed = request;
    changed.customer.as_mut().unwrap().name = "After, again".into();
    assert_status(
        client.update_customer(changed).await,
        Code::InvalidArgument,
        "REQUEST_ID_REUSED",
    );
    assert_eq!(get_customer(&mut client, &created.id).await, first);
}

/// Creates customers with the given names (no e-mail or phone) and returns nothing.
async fn create_named(app: &TestApp, names: &[&str]) {
    let mut client = app.customers();
    for name in names {
        client.create_customer(bare_customer(name)).await.unwrap();
    }
}

async fn query_names(app: &TestApp, query: &str) -> Vec<String> {
    let mut client = app.customers();
    list_all_customers(
        &mut client,
        pb::ListCustomersRequest {
            query: query.into(),
            ..Default::default()
        },
    )
    .await
    .into_iter()
    .map(|c| c.name)
    .collect()
}

async fn a_query_matches_percent_underscore_and_backslash_literally(app: TestApp) {
    create_named(
        &app,
        &[
            "100% Organic",
            "100 Organic",
            "1000 Organic",
            "snake_case Ltd",
            "snakeXcase Ltd",
            r"Back\slash Inc",
            "Backslash Inc",
        ],
    )
    .await;
    assert_eq!(query_names(&app, "100%").await, ["100% Organic"]);
    assert_eq!(query_names(&app, "%").await, ["100% Organic"]);
    assert_eq!(query_names(&app, "e_c").await, ["snake_case Ltd"]);
    assert_eq!(query_names(&app, "_").await, ["snake_case Ltd"]);
    assert_eq!(query_names(&app, r"k\s").await, [r"Back\slash Inc"]);
    assert_eq!(query_names(&app, r"\").await, [r"Back\slash Inc"]);
    assert!(query_names(&app, "%%").await.is_empty());
    assert!(query_names(&app, "' OR 1=1 --").await.is_empty());
    assert_eq!(query_names(&app, "").await.len(), 7);
}

async fn a_query_ignores_case_in_name_email_and_phone(app: TestApp) {
    let mut client = app.customers();
    for (name, email, phone) in [
        ("MiXeD Case AG", "", ""),
        ("Ärger GmbH", "", ""),
        ("By Mail", "Buyer@Example.COM", ""),
        ("By Phone", "", "+49 (30) 555-0199"),
        ("Unrelated", "ops@unrelated.io", "+1 202 555 0000"),
    ] {
        client
            .create_customer(pb::CreateCustomerRequest {
                customer: Some(pb::Customer {
                    name: name.into(),
                    email: email.into(),
                    phone: phone.into(),
                    lifecycle_stage: pb::LifecycleStage::Lead as i32,
                    ..Default::default()
                }),
                request_id: String::new(),
            })
            .await
            .unwrap();
    }
    assert_eq!(query_names(&app, "mixed case").await, ["MiXeD Case AG"]);
    assert_eq!(query_names(&app, "MIXED").await, ["MiXeD Case AG"]);
    assert_eq!(query_names(&app, "ärger").await, ["Ärger GmbH"]);
    assert_eq!(query_names(&app, "ÄRGER").await, ["Ärger GmbH"]);
    assert_eq!(query_names(&app, "example.com").await, ["By Mail"]);
    assert_eq!(query_names(&app, "BUYER@").await, ["By Mail"]);
    assert_eq!(query_names(&app, "555-0199").await, ["By Phone"]);
    assert_eq!(query_names(&app, "(30)").await, ["By Phone"]);
    assert_eq!(
        query_names(&app, "555").await,
        ["By Phone", "Unrelated"],
        "phone matches, in creation order"
    );
}

async fn list_filters_by_industry_owner_stage_and_status_and_combines_them(app: TestApp) {
    let mut supervisor = app.customers_as("acme", "boss", &["supervisor"]);
    use pb::CustomerStatus::{Active, Inactive};
    use pb::LifecycleStage::{Customer, Lead, Prospect};
    let rows = [
        ("A", "energy", "rep-1", Lead, Active),
        ("B", "energy", "rep-2", Prospect, Active),
        ("C", "retail", "rep-1", Customer, Inactive),
        ("D", "Energy", "rep-2", Customer, Active),
        ("E", "energy", "rep-1", Customer, Inactive),
    ];
    for (name, industry, owner, stage, status) in rows {
        supervisor
            .create_customer(pb::CreateCustomerRequest {
                customer: Some(pb::Customer {
                    name: name.into(),
                    industry: industry.into(),
                    owner_id: owner.into(),
                    lifecycle_stage: stage as i32,
                    status: status as i32,
                    ..Default::default()
                }),
                request_id: String::new(),
            })
            .await
            .unwrap();
    }
    let mut client = app.customers();
    let mut names = async |request: pb::ListCustomersRequest| -> Vec<String> {
        // A page size of 1 also proves each filter holds across pages.
        let request = pb::ListCustomersRequest {
            page_size: 1,
            ..request
        };
        list_all_customers(&mut client, request)
            .await
            .into_iter()
            .map(|c| c.name)
            .collect()
    };
    let all = pb::ListCustomersRequest::default();
    assert_eq!(names(all.clone()).await, ["A", "B", "C", "D", "E"]);
    assert_eq!(
        names(pb::ListCustomersRequest {
            industry: "energy".into(),
            ..all.clone()
        })
        .await,
        ["A", "B", "E"],
        "industry matches exactly"
    );
    assert_eq!(
        names(pb::ListCustomersRequest {
            owner_id: "rep-2".into(),
            ..all.clone()
        })
        .await,
        ["B", "D"]
    );
    assert_eq!(
        names(pb::ListCustomersRequest {
            lifecycle_stage: Customer as i32,
            ..all.clone()
        })
        .await,
        ["C", "D", "E"]
    );
    assert_eq!(
        names(pb::ListCustomersRequest {
            status: Inactive as i32,
            ..all.clone()
        })
        .await,
        ["C", "E"]
    );
    assert_eq!(
        names(pb::ListCustomersRequest {
            industry: "energy".into(),
            owner_id: "rep-1".into(),
            lifecycle_stage: Customer as i32,
            status: Inactive as i32,
            ..all.clone()
        })
        .await,
        ["E"]
    );
    assert!(
        names(pb::ListCustomersRequest {
            industry: "retail".into(),
            status: Active as i32,
            ..all.clone()
        })
        .await
        .is_empty()
    );
}

async fn a_deleted_customer_reads_back_is_listed_only_with_show_deleted_and_cannot_be_updated(
    app: TestApp,
) {
    let kept = app.create_customer("Kept").await;
    let gone = app.create_customer("Gone").await;
    app.delete_customer(&gone.id).await;
    let mut client = app.customers();
    let got = get_customer(&mut client, &gone.id).await;
    assert!(got.delete_time.is_some());
    assert!(got.purge_time.is_some());
    assert_eq!(customer_names(&mut client).await, ["Kept"]);
    let with_deleted = list_all_customers(
        &mut client,
        pb::ListCustomersRequest {
            show_deleted: true,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(
        with_deleted
            .iter()
            .map(|c| c.id.as_str())
            .collect::<Vec<_>>(),
        [kept.id.as_str(), gone.id.as_str()]
    );
    assert_status(
        client
            .update_customer(pb::UpdateCustomerRequest {
                customer: Some(pb::Customer {
                    id: gone.id.clone(),
                    name: "Back from the dead".into(),
                    ..Default::default()
                }),
                update_mask: mask(&["name"]),
                etag: String::new(),
                request_id: String::new(),
            })
            .await,
        Code::FailedPrecondition,
        "CUSTOMER_DELETED",
    );
    assert_eq!(get_customer(&mut client, &gone.id).await, got);
}

async fn a_query_finds_a_customer_by_its_new_values_after_an_update(app: TestApp) {
    let created = app.create_customer("Oldname Corp").await;
    let mut client = app.customers();
    client
        .update_customer(pb::UpdateCustomerRequest {
            customer: Some(pb::Customer {
                id: created.id.clone(),
                name: "Newname Corp".into(),
                email: "sales@fresh.example".into(),
                ..Default::default()
            }),
            update_mask: mask(&["name", "email"]),
            etag: String::new(),
            request_id: String::new(),
        })
        .await
        .unwrap();
    assert_eq!(query_names(&app, "newname").await, ["Newname Corp"]);
    assert_eq!(query_names(&app, "FRESH.example").await, ["Newname Corp"]);
    assert!(query_names(&app, "oldname").await.is_empty());
    assert!(query_names(&app, "buyer@example.com").await.is_empty());
    // The phone was not in the mask: still searchable.
    assert_eq!(query_names(&app, "555 0100").await, ["Newname Corp"]);
}

async fn concurrent_updates_with_the_same_etag_let_exactly_one_through(app: TestApp) {
    const WRITERS: usize = 8;
    for trial in 0..5 {
        let created = app.create_customer(&format!("Contended {trial}")).await;
        let mut tasks = Vec::new();
        for writer in 0..WRITERS {
            let mut client = app.customers();
            let request = pb::UpdateCustomerRequest {
                customer: Some(pb::Customer {
                    id: created.id.clone(),
                    name: format!("Writer {writer}"),
                    ..Default::default()
                }),
                update_mask: mask(&["name"]),
                etag: created.etag.clone(),
                request_id: String::new(),
            };
            tasks.push(tokio::spawn(async move {
                client.update_customer(request).await
            }));
        }
        let mut winners = Vec::new();
        for task in tasks {
            match task.await.unwrap() {
                Ok(response) => winners.push(response.into_inner().customer.unwrap()),
                Err(status) => {
                    assert_status(Err::<(), _>(status), Code::Aborted, "ETAG_MISMATCH");
                }
            }
        }
        assert_eq!(winners.len(), 1, "trial {trial}: {winners:#?}");
        let stored = get_customer(&mut app.customers(), &created.id).await;
        assert_eq!(stored, winners[0]);
        let version: i64 = stored.etag.parse().unwrap();
        assert_eq!(version, created.etag.parse::<i64>().unwrap() + 1);
    }
}

async fn concurrent_creates_with_the_same_external_ref_let_exactly_one_through(app: TestApp) {
    for trial in 0..5 {
        let external_ref = format!("RACE-{trial}");
        let mut tasks = Vec::new();
        for writer in 0..8 {
            let mut client = app.customers();
            let request = with_external_ref(&format!("Racer {trial}.{writer}"), &external_ref);
            tasks.push(tokio::spawn(async move {
                client.create_customer(request).await
            }));
        }
        let mut winners = 0;
        for task in tasks {
            match task.await.unwrap() {
                Ok(_) => winners += 1,
                Err(status) => {
                    assert_status(
                        Err::<(), _>(status),
                        Code::AlreadyExists,
                        "EXTERNAL_REF_TAKEN",
                    );
                }
            }
        }
        assert_eq!(winners, 1, "trial {trial}");
    }
    assert_eq!(customer_names(&mut app.customers()).await.len(), 5);
}

/// Sends `request` from `n` tasks at once and returns every answer.
async fn all_at_once<T, F, Fut>(n: usize, call: F) -> Vec<Result<T, tonic::Status>>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<T, tonic::Status>> + Send + 'static,
    T: Send + 'static,
{
    let tasks: Vec<_> = (0..n).map(|_| tokio::spawn(call())).collect();
    let mut out = Vec::new();
    for task in tasks {
        out.push(task.await.unwrap());
    }
    out
}

async fn concurrent_retries_of_a_create_with_an_external_ref_all_get_the_first_answer(
    app: TestApp,
) {
    for trial in 0..5 {
        let mut request = with_external_ref(&format!("Retried {trial}"), &format!("RETRY-{trial}"));
        request.request_id = request_id();
        let answers = all_at_once(8, || {
            let mut client = app.customers();
            let request = request.clone();
            async move { client.create_customer(request).await }
        })
        .await;
        // A client retrying its own request must get the first answer, whatever the timing:
        // never the conflict its first attempt caused.
        let answers: Vec<pb::Customer> = answers
            .into_iter()
            .map(|a| {
                a.unwrap_or_else(|e| panic!("trial {trial}: a retry failed: {e:?}"))
                    .into_inner()
                    .customer
                    .unwrap()
            })
            .collect();
        assert!(answers.iter().all(|a| *a == answers[0]), "trial {trial}");
    }
    assert_eq!(customer_names(&mut app.customers()).await.len(), 5);
}

async fn concurrent_retries_of_a_conditional_update_all_get_the_first_answer(app: TestApp) {
    for trial in 0..5 {
        let created = app.create_customer(&format!("Conditional {trial}")).await;
        let request = pb::UpdateCustomerRequest {
            customer: Some(pb::Customer {
                id: created.id.clone(),
                name: format!("Conditional {trial}, renamed"),
                ..Default::default()
            }),
            update_mask: mask(&["name"]),
            etag: created.etag.clone(),
            request_id: request_id(),
        };
        let answers = all_at_once(8, || {
            let mut client = app.customers();
            let request = request.clone();
            async move { client.update_customer(request).await }
        })
        .await;
        let answers: Vec<pb::Customer> = answers
            .into_iter()
            .map(|a| {
                a.unwrap_or_else(|e| panic!("trial {trial}: a retry failed: {e:?}"))
                    .into_inner()
                    .customer
                    .unwrap()
            })
            .collect();
        assert!(answers.iter().all(|a| *a == answers[0]), "trial {trial}");
        let stored = get_customer(&mut app.customers(), &created.id).await;
        assert_eq!(stored, answers[0]);
        assert_eq!(
            stored.etag.parse::<i64>().unwrap(),
            created.etag.parse::<i64>().unwrap() + 1,
            "applied once"
        );
    }
}

async fn concurrent_unconditional_updates_all_succeed(app: TestApp) {
    let created = app.create_customer("Busy").await;
    let answers = all_at_once(8, || {
        let mut client = app.customers();
        let request = pb::UpdateCustomerRequest {
            customer: Some(pb::Customer {
                id: created.id.clone(),
                industry: "logistics".into(),
                ..Default::default()
            }),
            update_mask: mask(&["industry"]),
            etag: String::new(),
            request_id: String::new(),
        };
        async move { client.update_customer(request).await }
    })
    .await;
    for answer in answers {
        answer.expect("an unconditional update has no precondition");
    }
    let stored = get_customer(&mut app.customers(), &created.id).await;
    assert_eq!(
        stored.etag.parse::<i64>().unwrap(),
        created.etag.parse::<i64>().unwrap() + 8
    );
}
