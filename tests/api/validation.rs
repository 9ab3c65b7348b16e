//! Field rules (docs/reliability.md B2, B3, E1): lengths in characters, NUL, control and bidi
//! characters, enums, ids and page sizes. Every case must give the same answer on both databases.

use crm_service::proto::crm::v1 as pb;
use tonic::{Code, Status};

use crate::common::{
    CONTACT_COLUMNS, CUSTOMER_COLUMNS, Customers, Kind, TestApp, assert_status, bad_fields,
    bare_customer, create_record, customer_names, get_customer, list_records, mask, new_activity,
    new_contact, new_contract, new_deal, new_order, new_project,
};

crate::on_both_databases!(
    every_customer_text_field_accepts_its_limit_in_characters_not_bytes,
    every_customer_text_field_one_character_over_its_limit_is_refused_by_name,
    nul_in_any_customer_text_field_is_refused_by_name_and_nothing_is_stored,
    nul_in_an_update_is_refused_by_name_and_changes_nothing,
    control_and_bidi_override_characters_are_refused_in_every_customer_text_field,
    nul_control_and_bidi_characters_are_refused_in_record_text_fields,
    a_blank_name_is_refused,
    malformed_emails_and_phones_are_refused_by_name,
    unknown_enum_numbers_are_refused_by_name,
    unspecified_where_a_value_is_required_is_refused_by_name,
    ids_that_are_not_uuids_are_refused_by_name,
    a_request_id_that_is_not_a_uuid_is_refused,
    list_filters_with_bad_text_are_refused_by_name,
    a_negative_page_size_is_invalid_argument,
    page_size_zero_means_fifty_and_above_a_thousand_means_a_thousand,
    record_page_sizes_follow_the_same_rules,
    record_text_fields_are_limited_in_characters,
    out_of_range_times_dates_amounts_and_currencies_are_refused_by_name,
);

/// The text fields of a customer, with their limit in characters.
const TEXT_FIELDS: [(&str, usize); 6] = [
    ("name", 200),
    ("phone", 32),
    ("email", 254),
    ("industry", 100),
    ("owner_id", 128),
    ("external_ref", 128),
];

fn set_field(customer: &mut pb::Customer, field: &str, value: String) {
    match field {
        "name" => customer.name = value,
        "phone" => customer.phone = value,
        "email" => customer.email = value,
        "industry" => customer.industry = value,
        "owner_id" => customer.owner_id = value,
        "external_ref" => customer.external_ref = value,
        other => panic!("no text field {other}"),
    }
}

fn get_field(customer: &pb::Customer, field: &str) -> String {
    match field {
        "name" => customer.name.clone(),
        "phone" => customer.phone.clone(),
        "email" => customer.email.clone(),
        "industry" => customer.industry.clone(),
        "owner_id" => customer.owner_id.clone(),
        "external_ref" => customer.external_ref.clone(),
        other => panic!("no text field {other}"),
    }
}

/// A value of exactly `chars` characters for `field`, multi-byte where the field allows it.
/// Phones allow ASCII only, so their limit can only be shown in ASCII.
fn value_of_length(field: &str, chars: usize, multibyte: &str) -> String {
    match field {
        "phone" => "1".repeat(chars),
        "email" => format!(
            "{}@example.com",
            multibyte.repeat(chars - "@example.com".len())
        ),
        _ => multibyte.repeat(chars),
    }
}

/// A supervisor: owner_id may name someone else, so only the field rules are under test.
fn supervisor(app: &TestApp) -> Customers {
    app.customers_as("acme", "boss", &["supervisor"])
}

fn create_with(field: &str, value: String) -> pb::CreateCustomerRequest {
    let mut request = bare_customer("Field test");
    set_field(request.customer.as_mut().unwrap(), field, value);
    request
}

async fn every_customer_text_field_accepts_its_limit_in_characters_not_bytes(app: TestApp) {
    let mut client = supervisor(&app);
    for (field, limit) in TEXT_FIELDS {
        // "é" is 2 bytes in UTF-8 and "𝄞" is 4: at the limit, both are far over it in bytes.
        for multibyte in ["é", "𝄞"] {
            let value = value_of_length(field, limit, multibyte);
            assert_eq!(value.chars().count(), limit);
            let created = client
                .create_customer(create_with(field, value.clone()))
                .await
                .unwrap_or_else(|e| panic!("{field} at {limit} chars of {multibyte}: {e:?}"))
                .into_inner()
                .customer
                .unwrap();
            assert_eq!(get_field(&created, field), value);
            let stored = get_customer(&mut client, &created.id).await;
            assert_eq!(get_field(&stored, field), value, "{field} round-trips");
        }
    }
}

async fn every_customer_text_field_one_character_over_its_limit_is_refused_by_name(app: TestApp) {
    let mut client = supervisor(&app);
    for (field, limit) in TEXT_FIELDS {
        for multibyte in ["é", "x"] {
            let value = value_of_length(field, limit + 1, multibyte);
            let status = assert_status(
                client.create_customer(create_with(field, value)).await,
                Code::InvalidArgument,
                "INVALID_FIELD",
            );
            assert_eq!(bad_fields(&status), [format!("customer.{field}")]);
        }
    }
    assert!(customer_names(&mut client).await.is_empty());
}

/// A value of `field` that is valid except for `bad` in its middle.
fn tainted(field: &str, bad: &str) -> String {
    match field {
        "phone" => format!("+1 555{bad}0100"),
        "email" => format!("bu{bad}yer@example.com"),
        _ => format!("Acme{bad}Corp"),
    }
}

async fn nul_in_any_customer_text_field_is_refused_by_name_and_nothing_is_stored(app: TestApp) {
    let mut client = supervisor(&app);
    for (field, _) in TEXT_FIELDS {
        for value in [tainted(field, "\0"), "\0".into()] {
            let status = assert_status(
                client.create_customer(create_with(field, value)).await,
                Code::InvalidArgument,
                "INVALID_FIELD",
            );
            assert_eq!(bad_fields(&status), [format!("customer.{field}")]);
        }
    }
    assert!(customer_names(&mut client).await.is_empty());
}

async fn nul_in_an_update_is_refused_by_name_and_changes_nothing(app: TestApp) {
    let mut client = supervisor(&app);
    let created = client
        .create_customer(bare_customer("Clean"))
        .await
        .unwrap()
        .into_inner()
        .customer
        .unwrap();
    for (field, _) in TEXT_FIELDS {
        let mut customer = pb::Customer {
            id: created.id.clone(),
            ..Default::default()
        };
        set_field(&mut customer, field, tainted(field, "\0"));
        let status = assert_status(
            client
                .update_customer(pb::UpdateCustomerRequest {
                    customer: Some(customer),
                    update_mask: mask(&[field]),
                    etag: String::new(),
                    request_id: String::new(),
                })
                .await,
            Code::InvalidArgument,
            "INVALID_FIELD",
        );
        assert_eq!(bad_fields(&status), [format!("customer.{field}")]);
    }
    assert_eq!(get_customer(&mut client, &created.id).await, created);
}

const BAD_CHARACTERS: [&str; 10] = [
    "\u{1}", "\u{7}", "\n", "\t", "\u{7f}", "\u{85}", "\u{202A}", "\u{202E}", "\u{2066}",
    "\u{2069}",
];

async fn control_and_bidi_override_characters_are_refused_in_every_customer_text_field(
    app: TestApp,
) {
    let mut client = supervisor(&app);
    for (field, _) in TEXT_FIELDS {
        for bad in BAD_CHARACTERS {
            let status = assert_status(
                client
                    .create_customer(create_with(field, tainted(field, bad)))
                    .await,
                Code::InvalidArgument,
                "INVALID_FIELD",
            );
            assert_eq!(
                bad_fields(&status),
                [format!("customer.{field}")],
                "{bad:?} in {field}"
            );
        }
    }
    assert!(customer_names(&mut client).await.is_empty());
}

async fn nul_control_and_bidi_characters_are_refused_in_record_text_fields(app: TestApp) {
    let customer = app.create_customer("Has records").await;
    let c = customer.id.as_str();
    let mut records = app.records();
    for bad in ["\0", "\u{7}", "\u{202E}"] {
        let t = |s: &str| format!("{s}{bad}x");
        let mut attempts: Vec<(&str, Result<(), Status>)> = Vec::new();
        for (field, contact) in [
            (
                "contact.full_name",
                pb::Contact {
                    full_name: t("Ana"),
                    ..new_contact(c)
                },
            ),
            (
                "contact.email",
                pb::Contact {
                    email: t("ana@example.com"),
                    ..new_contact(c)
                },
            ),
            (
                "contact.phone",
                pb::Contact {
                    phone: t("+1 555"),
                    ..new_contact(c)
                },
            ),
            (
                "contact.job_title",
                pb::Contact {
                    job_title: t("CTO"),
                    ..new_contact(c)
                },
            ),
        ] {
            let result = records
                .create_contact(pb::CreateContactRequest {
                    contact: Some(contact),
                    request_id: String::new(),
                })
                .await
                .map(drop);
            attempts.push((field, result));
        }
        let result = records
            .create_deal(pb::CreateDealRequest {
                deal: Some(pb::Deal {
                    title: t("Deal"),
                    ..new_deal(c, pb::DealStage::Open)
                }),
                request_id: String::new(),
            })
            .await
            .map(drop);
        attempts.push(("deal.title", result));
        let result = records
            .create_deal(pb::CreateDealRequest {
                deal: Some(pb::Deal {
                    currency: format!("E{bad}R"),
                    ..new_deal(c, pb::DealStage::Open)
                }),
                request_id: String::new(),
            })
            .await
            .map(drop);
        attempts.push(("deal.currency", result));
        let result = records
            .create_order(pb::CreateOrderRequest {
                order: Some(pb::Order {
                    number: t("SO-1"),
                    ..new_order(c, pb::OrderStatus::Open)
                }),
                request_id: String::new(),
            })
            .await
            .map(drop);
        attempts.push(("order.number", result));
        let result = records
            .create_contract(pb::CreateContractRequest {
                contract: Some(pb::Contract {
                    number: t("C-1"),
                    ..new_contract(c, pb::ContractStatus::Draft)
                }),
                request_id: String::new(),
            })
            .await
            .map(drop);
        attempts.push(("contract.number", result));
        let result = records
            .create_contract(pb::CreateContractRequest {
                contract: Some(pb::Contract {
                    end_date: format!("2027-01-0{bad}"),
                    ..new_contract(c, pb::ContractStatus::Draft)
                }),
                request_id: String::new(),
            })
            .await
            .map(drop);
        attempts.push(("contract.end_date", result));
        let result = records
            .create_project(pb::CreateProjectRequest {
                project: Some(pb::Project {
                    name: t("Project"),
                    ..new_project(c, pb::ProjectStatus::Active)
                }),
                request_id: String::new(),
            })
            .await
            .map(drop);
        attempts.push(("project.name", result));
        let result = records
            .create_activity(pb::CreateActivityRequest {
                activity: Some(pb::Activity {
                    subject: t("Call"),
                    ..new_activity(c)
                }),
                request_id: String::new(),
            })
            .await
            .map(drop);
        attempts.push(("activity.subject", result));
        for (field, result) in attempts {
            let status = assert_status(result, Code::InvalidArgument, "INVALID_FIELD");
            assert_eq!(bad_fields(&status), [field], "{bad:?}");
        }
    }
    for kind in Kind::ALL {
        let (page, _) = list_records(&mut records, kind, c, 0, "", true)
            .await
            .unwrap();
        assert!(page.is_empty(), "a {kind:?} was stored");
    }
    // Nothing was written, so the customer's graph version did not move.
    assert_eq!(
        get_customer(&mut app.customers(), c).await.etag,
        customer.etag
    );
}

async fn a_blank_name_is_refused(app: TestApp) {
    let mut client = app.customers();
    for name in ["", " ", "   \u{3000}  "] {
        let status = assert_status(
            client.create_customer(bare_customer(name)).await,
            Code::InvalidArgument,
            "INVALID_FIELD",
        );
        assert_eq!(bad_fields(&status), ["customer.name"], "{name:?}");
    }
    assert!(customer_names(&mut client).await.is_empty());
}

async fn malformed_emails_and_phones_are_refused_by_name(app: TestApp) {
    let mut client = app.customers();
    for email in [
        "buyer",
        "@example.com",
        "buyer@",
        "a b@example.com",
        "a@b@c",
    ] {
        let status = assert_status(
            client
                .create_customer(create_with("email", email.into()))
                .await,
            Code::InvalidArgument,
            "INVALID_FIELD",
        );
        assert_eq!(bad_fields(&status), ["customer.email"], "{email:?}");
    }
    for phone in ["call me", "+1 555 0100 ext. 7", "+-()", "555#1"] {
        let status = assert_status(
            client
                .create_customer(create_with("phone", phone.into()))
                .await,
            Code::InvalidArgument,
            "INVALID_FIELD",
        );
        assert_eq!(bad_fields(&status), ["customer.phone"], "{phone:?}");
    }
    assert!(customer_names(&mut client).await.is_empty());
}

async fn unknown_enum_numbers_are_refused_by_name(app: TestApp) {
    let created = app.create_customer("Enums").await;
    let mut client = app.customers();
    for value in [42, -5] {
        let mut request = bare_customer("Stage 42");
        request.customer.as_mut().unwrap().lifecycle_stage = value;
        let status = assert_status(
            client.create_customer(request).await,
            Code::InvalidArgument,
            "INVALID_FIELD",
        );
        assert_eq!(bad_fields(&status), ["customer.lifecycle_stage"]);

        let mut request = bare_customer("Status 42");
        request.customer.as_mut().unwrap().status = value;
        let status = assert_status(
            client.create_customer(request).await,
            Code::InvalidArgument,
            "INVALID_FIELD",
        );
        assert_eq!(bad_fields(&status), ["customer.status"]);

        let status = assert_status(
            client
                .update_customer(pb::UpdateCustomerRequest {
                    customer: Some(pb::Customer {
                        id: created.id.clone(),
                        status: value,
                        ..Default::default()
                    }),
                    update_mask: mask(&["status"]),
                    etag: String::new(),
                    request_id: String::new(),
                })
                .await,
            Code::InvalidArgument,
            "INVALID_FIELD",
        );
        assert_eq!(bad_fields(&status), ["customer.status"]);

        let status = assert_status(
            client
                .list_customers(pb::ListCustomersRequest {
                    lifecycle_stage: value,
                    ..Default::default()
                })
                .await,
            Code::InvalidArgument,
            "INVALID_FIELD",
        );
        assert_eq!(bad_fields(&status), ["lifecycle_stage"]);
        let status = assert_status(
            client
                .list_customers(pb::ListCustomersRequest {
                    status: value,
                    ..Default::default()
                })
                .await,
            Code::InvalidArgument,
            "INVALID_FIELD",
        );
        assert_eq!(bad_fields(&status), ["status"]);
    }
    let c = created.id.as_str();
    let mut records = app.records();
    let status = assert_status(
        records
            .create_deal(pb::CreateDealRequest {
                deal: Some(pb::Deal {
                    stage: 42,
                    ..new_deal(c, pb::DealStage::Open)
                }),
                request_id: String::new(),
            })
            .await,
        Code::InvalidArgument,
        "INVALID_FIELD",
    );
    assert_eq!(bad_fields(&status), ["deal.stage"]);
    let status = assert_status(
        records
            .create_order(pb::CreateOrderRequest {
                order: Some(pb::Order {
                    status: 42,
                    ..new_order(c, pb::OrderStatus::Open)
                }),
                request_id: String::new(),
            })
            .await,
        Code::InvalidArgument,
        "INVALID_FIELD",
    );
    assert_eq!(bad_fields(&status), ["order.status"]);
    let status = assert_status(
        records
            .create_contract(pb::CreateContractRequest {
                contract: Some(pb::Contract {
                    status: 42,
                    ..new_contract(c, pb::ContractStatus::Draft)
                }),
                request_id: String::new(),
            })
            .await,
        Code::InvalidArgument,
        "INVALID_FIELD",
    );
    assert_eq!(bad_fields(&status), ["contract.status"]);
    let status = assert_status(
        records
            .create_project(pb::CreateProjectRequest {
                project: Some(pb::Project {
                    status: 42,
                    ..new_project(c, pb::ProjectStatus::Active)
                }),
                request_id: String::new(),
            })
            .await,
        Code::InvalidArgument,
        "INVALID_FIELD",
    );
    assert_eq!(bad_fields(&status), ["project.status"]);
    let status = assert_status(
        records
            .create_activity(pb::CreateActivityRequest {
                activity: Some(pb::Activity {
                    kind: 42,
                    ..new_activity(c)
                }),
                request_id: String::new(),
            })
            .await,
        Code::InvalidArgument,
        "INVALID_FIELD",
    );
    assert_eq!(bad_fields(&status), ["activity.kind"]);
    assert_eq!(get_customer(&mut client, c).await, created);
    assert_eq!(customer_names(&mut client).await, ["Enums"]);
}

async fn unspecified_where_a_value_is_required_is_refused_by_name(app: TestApp) {
    let created = app.create_customer("Unspecified").await;
    let mut client = app.customers();
    let mut request = bare_customer("No stage");
    request.customer.as_mut().unwrap().lifecycle_stage = 0;
    let status = assert_status(
        client.create_customer(request).await,
        Code::InvalidArgument,
        "INVALID_FIELD",
    );
    assert_eq!(bad_fields(&status), ["customer.lifecycle_stage"]);
    for field in ["lifecycle_stage", "status"] {
        let status = assert_status(
            client
                .update_customer(pb::UpdateCustomerRequest {
                    customer: Some(pb::Customer {
                        id: created.id.clone(),
                        ..Default::default()
                    }),
                    update_mask: mask(&[field]),
                    etag: String::new(),
                    request_id: String::new(),
                })
                .await,
            Code::InvalidArgument,
            "INVALID_FIELD",
        );
        assert_eq!(bad_fields(&status), [format!("customer.{field}")]);
    }
    assert_eq!(get_customer(&mut client, &created.id).await, created);

    let c = created.id.as_str();
    let mut records = app.records();
    let status = assert_status(
        records
            .create_deal(pb::CreateDealRequest {
                deal: Some(new_deal(c, pb::DealStage::Unspecified)),
                request_id: String::new(),
            })
            .await,
        Code::InvalidArgument,
        "INVALID_FIELD",
    );
    assert_eq!(bad_fields(&status), ["deal.stage"]);
    let status = assert_status(
        records
            .create_order(pb::CreateOrderRequest {
                order: Some(new_order(c, pb::OrderStatus::Unspecified)),
                request_id: String::new(),
            })
            .await,
        Code::InvalidArgument,
        "INVALID_FIELD",
    );
    assert_eq!(bad_fields(&status), ["order.status"]);
    let status = assert_status(
        records
            .create_contract(pb::CreateContractRequest {
                contract: Some(new_contract(c, pb::ContractStatus::Unspecified)),
                request_id: String::new(),
            })
            .await,
        Code::InvalidArgument,
        "INVALID_FIELD",
    );
    assert_eq!(bad_fields(&status), ["contract.status"]);
    let status = assert_status(
        records
            .create_project(pb::CreateProjectRequest {
                project: Some(new_project(c, pb::ProjectStatus::Unspecified)),
                request_id: String::new(),
            })
            .await,
        Code::InvalidArgument,
        "INVALID_FIELD",
    );
    assert_eq!(bad_fields(&status), ["project.status"]);
    let status = assert_status(
        records
            .create_activity(pb::CreateActivityRequest {
                activity: Some(pb::Activity {
                    kind: pb::ActivityKind::Unspecified as i32,
                    occur_time: None,
                    ..new_activity(c)
                }),
                request_id: String::new(),
            })
            .await,
        Code::InvalidArgument,
        "INVALID_FIELD",
    );
    assert_eq!(
        bad_fields(&status),
        ["activity.kind", "activity.occur_time"]
    );

    // The same on update, with the status in the mask.
    let deal = create_record(&mut records, Kind::Deal, c).await.unwrap();
    let status = assert_status(
        records
            .update_deal(pb::UpdateDealRequest {
                deal: Some(pb::Deal {
                    id: deal.id.clone(),
                    ..Default::default()
                }),
                update_mask: mask(&["stage"]),
                etag: String::new(),
                request_id: String::new(),
            })
            .await,
        Code::InvalidArgument,
        "INVALID_FIELD",
    );
    assert_eq!(bad_fields(&status), ["deal.stage"]);
    let after = crate::common::get_record(&mut records, Kind::Deal, &deal.id)
        .await
        .unwrap();
    assert_eq!(after, deal);
}

async fn ids_that_are_not_uuids_are_refused_by_name(app: TestApp) {
    let mut client = app.customers();
    let mut records = app.records();
    for bad in [
        "",
        "not-a-uuid",
        "42",
        "0190a0b4-7d3c-7000-8000-00000000000g",
    ] {
        let check = |result: Result<(), Status>, field: &str| {
            let status = assert_status(result, Code::InvalidArgument, "INVALID_FIELD");
            assert_eq!(bad_fields(&status), [field], "{bad:?}");
        };
        check(
            client
                .get_customer(pb::GetCustomerRequest {
                    customer_id: bad.into(),
                })
                .await
                .map(drop),
            "customer_id",
        );
        check(
            client
                .update_customer(pb::UpdateCustomerRequest {
                    customer: Some(pb::Customer {
                        id: bad.into(),
                        name: "X".into(),
                        ..Default::default()
                    }),
                    update_mask: mask(&["name"]),
                    etag: String::new(),
                    request_id: String::new(),
                })
                .await
                .map(drop),
            "customer.id",
        );
        check(
            records
                .create_contact(pb::CreateContactRequest {
                    contact: Some(new_contact(bad)),
                    request_id: String::new(),
                })
                .await
                .map(drop),
            "contact.customer_id",
        );
        check(
            records
                .create_order(pb::CreateOrderRequest {
                    order: Some(new_order(bad, pb::OrderStatus::Open)),
                    request_id: String::new(),
                })
                .await
                .map(drop),
            "order.customer_id",
        );
        for kind in Kind::ALL {
            let id_field = format!("{}_id", kind.name());
            check(
                crate::common::get_record(&mut records, kind, bad)
                    .await
                    .map(drop),
                &id_field,
            );
            check(
                list_records(&mut records, kind, bad, 0, "", false)
                    .await
                    .map(drop),
                "customer_id",
            );
            check(
                crate::common::touch_record(&mut records, kind, bad)
                    .await
                    .map(drop),
                &format!("{}.id", kind.name()),
            );
            if let Some(result) = crate::common::delete_record(&mut records, kind, bad).await {
                check(result.map(drop), &id_field);
            }
        }
    }
}

async fn a_request_id_that_is_not_a_uuid_is_refused(app: TestApp) {
    let mut client = app.customers();
    let mut request = bare_customer("Keyed");
    request.request_id = "retry-1".into();
    let status = assert_status(
        client.create_customer(request).await,
        Code::InvalidArgument,
        "INVALID_FIELD",
    );
    assert_eq!(bad_fields(&status), ["request_id"]);
    let customer = app.create_customer("Has records").await;
    let status = assert_status(
        app.records()
            .create_contact(pb::CreateContactRequest {
                contact: Some(new_contact(&customer.id)),
                request_id: "retry-1".into(),
            })
            .await,
        Code::InvalidArgument,
        "INVALID_FIELD",
    );
    assert_eq!(bad_fields(&status), ["request_id"]);
    assert_eq!(customer_names(&mut client).await, ["Has records"]);
}

async fn list_filters_with_bad_text_are_refused_by_name(app: TestApp) {
    let mut client = app.customers();
    type Filter = fn(String) -> pb::ListCustomersRequest;
    let cases: [(&str, Filter, usize); 3] = [
        (
            "query",
            |v| pb::ListCustomersRequest {
                query: v,
                ..Default::default()
            },
            100,
        ),
        (
            "industry",
            |v| pb::ListCustomersRequest {
                industry: v,
                ..Default::default()
            },
            100,
        ),
        (
            "owner_id",
            |v| pb::ListCustomersRequest {
                owner_id: v,
                ..Default::default()
            },
            128,
        ),
    ];
    for (field, request, limit) in cases {
        client
            .list_customers(request("é".repeat(limit)))
            .await
            .unwrap_or_else(|e| panic!("{field} at its limit: {e:?}"));
        for bad in ["é".repeat(limit + 1), "a\0b".into(), "a\u{202E}b".into()] {
            let status = assert_status(
                client.list_customers(request(bad)).await,
                Code::InvalidArgument,
                "INVALID_FIELD",
            );
            assert_eq!(bad_fields(&status), [field]);
        }
    }
}

async fn a_negative_page_size_is_invalid_argument(app: TestApp) {
    let customer = app.create_customer("Paged").await;
    let mut client = app.customers();
    for page_size in [-1, i32::MIN] {
        let status = assert_status(
            client
                .list_customers(pb::ListCustomersRequest {
                    page_size,
                    ..Default::default()
                })
                .await,
            Code::InvalidArgument,
            "INVALID_FIELD",
        );
        assert_eq!(bad_fields(&status), ["page_size"]);
    }
    let mut records = app.records();
    for kind in Kind::ALL {
        let status = assert_status(
            list_records(&mut records, kind, &customer.id, -1, "", false).await,
            Code::InvalidArgument,
            "INVALID_FIELD",
        );
        assert_eq!(bad_fields(&status), ["page_size"], "{kind:?}");
    }
}

async fn list_page(client: &mut Customers, page_size: i32, page_token: &str) -> (usize, String) {
    let page = client
        .list_customers(pb::ListCustomersRequest {
            page_size,
            page_token: page_token.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    (page.customers.len(), page.next_page_token)
}

async fn page_size_zero_means_fifty_and_above_a_thousand_means_a_thousand(app: TestApp) {
    app.create_customer("Template").await;
    // 1 + 1000 copies = 1001 customers, in one SQL statement (creating them one by one through
    // the API would cost seconds).
    app.clone_rows("customer", CUSTOMER_COLUMNS, 1000).await;
    let mut client = app.customers();
    let (len, next) = list_page(&mut client, 0, "").await;
    assert_eq!(len, 50);
    assert!(!next.is_empty());
    for page_size in [1001, 5000, i32::MAX] {
        let (len, next) = list_page(&mut client, page_size, "").await;
        assert_eq!(len, 1000, "page_size {page_size}");
        let (rest, last) = list_page(&mut client, page_size, &next).await;
        assert_eq!((rest, last.as_str()), (1, ""), "page_size {page_size}");
    }
    let (len, next) = list_page(&mut client, 1000, "").await;
    assert_eq!(len, 1000);
    assert!(!next.is_empty());
    let (len, next) = list_page(&mut client, 1, "").await;
    assert_eq!(len, 1);
    assert!(!next.is_empty());
}

async fn record_page_sizes_follow_the_same_rules(app: TestApp) {
    let customer = app.create_customer("Many contacts").await;
    let mut records = app.records();
    create_record(&mut records, Kind::Contact, &customer.id)
        .await
        .unwrap();
    app.clone_rows("contact", CONTACT_COLUMNS, 1000).await;
    let c = customer.id.as_str();
    let (page, next) = list_records(&mut records, Kind::Contact, c, 0, "", false)
        .await
        .unwrap();
    assert_eq!(page.len(), 50);
    assert!(!next.is_empty());
    let (page, next) = list_records(&mut records, Kind::Contact, c, 1001, "", false)
        .await
        .unwrap();
    assert_eq!(page.len(), 1000);
    let (rest, last) = list_records(&mut records, Kind::Contact, c, 1001, &next, false)
        .await
        .unwrap();
    assert_eq!((rest.len(), last.as_str()), (1, ""));
}

/// Creates a record of `kind` with its main text field set to `value`; returns that field's path.
async fn create_with_text(
    records: &mut crate::common::Records,
    kind: Kind,
    customer_id: &str,
    field: &str,
    value: String,
) -> Result<(), Status> {
    let c = customer_id;
    match (kind, field) {
        (Kind::Contact, "full_name") => records
            .create_contact(pb::CreateContactRequest {
                contact: Some(pb::Contact {
                    full_name: value,
                    ..new_contact(c)
                }),
                request_id: String::new(),
            })
            .await
            .map(drop),
        (Kind::Contact, "job_title") => records
            .create_contact(pb::CreateContactRequest {
                contact: Some(pb::Contact {
                    job_title: value,
                    ..new_contact(c)
                }),
                request_id: String::new(),
            })
            .await
            .map(drop),
        (Kind::Deal, "title") => records
            .create_deal(pb::CreateDealRequest {
                deal: Some(pb::Deal {
                    title: value,
                    ..new_deal(c, pb::DealStage::Open)
                }),
                request_id: String::new(),
            })
            .await
            .map(drop),
        (Kind::Order, "number") => records
            .create_order(pb::CreateOrderRequest {
                order: Some(pb::Order {
                    number: value,
                    ..new_order(c, pb::OrderStatus::Open)
                }),
                request_id: String::new(),
            })
            .await
            .map(drop),
        (Kind::Contract, "number") => records
            .create_contract(pb::CreateContractRequest {
                contract: Some(pb::Contract {
                    number: value,
                    ..new_contract(c, pb::ContractStatus::Draft)
                }),
                request_id: String::new(),
            })
            .await
            .map(drop),
        (Kind::Project, "name") => records
            .create_project(pb::CreateProjectRequest {
                project: Some(pb::Project {
                    name: value,
                    ..new_project(c, pb::ProjectStatus::Active)
                }),
                request_id: String::new(),
            })
            .await
            .map(drop),
        (Kind::Activity, "subject") => records
            .create_activity(pb::CreateActivityRequest {
                activity: Some(pb::Activity {
                    subject: value,
                    ..new_activity(c)
                }),
                request_id: String::new(),
            })
            .await
            .map(drop),
        other => panic!("no text field {other:?}"),
    }
}

async fn record_text_fields_are_limited_in_characters(app: TestApp) {
    let customer = app.create_customer("Record limits").await;
    let mut records = app.records();
    let fields = [
        (Kind::Contact, "full_name", 200),
        (Kind::Contact, "job_title", 100),
        (Kind::Deal, "title", 200),
        (Kind::Order, "number", 64),
        (Kind::Contract, "number", 64),
        (Kind::Project, "name", 200),
        (Kind::Activity, "subject", 200),
    ];
    for (kind, field, limit) in fields {
        create_with_text(&mut records, kind, &customer.id, field, "𝄞".repeat(limit))
            .await
            .unwrap_or_else(|e| panic!("{kind:?}.{field} at {limit} characters: {e:?}"));
        let status = assert_status(
            create_with_text(
                &mut records,
                kind,
                &customer.id,
                field,
                "é".repeat(limit + 1),
            )
            .await,
            Code::InvalidArgument,
            "INVALID_FIELD",
        );
        assert_eq!(bad_fields(&status), [format!("{}.{field}", kind.name())]);
    }
    // Exactly one record per accepted case, and the 4-byte characters came back intact.
    let (contacts, _) = list_records(&mut records, Kind::Contact, &customer.id, 0, "", false)
        .await
        .unwrap();
    assert_eq!(contacts.len(), 2);
    let contact = records
        .get_contact(pb::GetContactRequest {
            contact_id: contacts[0].id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .contact
        .unwrap();
    assert_eq!(contact.full_name, "𝄞".repeat(200));
    for kind in [
        Kind::Deal,
        Kind::Order,
        Kind::Contract,
        Kind::Project,
        Kind::Activity,
    ] {
        let (page, _) = list_records(&mut records, kind, &customer.id, 0, "", false)
            .await
            .unwrap();
        assert_eq!(page.len(), 1, "{kind:?}");
    }
}

async fn out_of_range_times_dates_amounts_and_currencies_are_refused_by_name(app: TestApp) {
    let customer = app.create_customer("Ranges").await;
    let c = customer.id.as_str();
    let mut records = app.records();
    let times = [
        prost_types::Timestamp {
            seconds: 0,
            nanos: -1,
        },
        prost_types::Timestamp {
            seconds: 0,
            nanos: 1_000_000_000,
        },
        prost_types::Timestamp {
            seconds: 253_402_300_800, // 10000-01-01
            nanos: 0,
        },
        prost_types::Timestamp {
            seconds: i64::MIN,
            nanos: 0,
        },
    ];
    for time in times {
        let status = assert_status(
            records
                .create_activity(pb::CreateActivityRequest {
                    activity: Some(pb::Activity {
                        occur_time: Some(time),
                        ..new_activity(c)
                    }),
                    request_id: String::new(),
                })
                .await,
            Code::InvalidArgument,
            "INVALID_FIELD",
        );
        assert_eq!(bad_fields(&status), ["activity.occur_time"], "{time:?}");
    }
    for end_date in [
        "2027-02-30",
        "2027-2-1",
        "31.12.2027",
        "2027-12-31T00:00:00Z",
        "tomorrow",
    ] {
        let status = assert_status(
            records
                .create_contract(pb::CreateContractRequest {
                    contract: Some(pb::Contract {
                        end_date: end_date.into(),
                        ..new_contract(c, pb::ContractStatus::Draft)
                    }),
                    request_id: String::new(),
                })
                .await,
            Code::InvalidArgument,
            "INVALID_FIELD",
        );
        assert_eq!(bad_fields(&status), ["contract.end_date"], "{end_date}");
    }
    for (currency, amount) in [("eur", 1), ("EURO", 1), ("€", 1), ("EUR", -1)] {
        let status = assert_status(
            records
                .create_order(pb::CreateOrderRequest {
                    order: Some(pb::Order {
                        currency: currency.into(),
                        amount_minor: amount,
                        ..new_order(c, pb::OrderStatus::Open)
                    }),
                    request_id: String::new(),
                })
                .await,
            Code::InvalidArgument,
            "INVALID_FIELD",
        );
        let expected = if amount < 0 {
            "order.amount_minor"
        } else {
            "order.currency"
        };
        assert_eq!(bad_fields(&status), [expected], "{currency} {amount}");
    }
    for kind in Kind::ALL {
        let (page, _) = list_records(&mut records, kind, c, 0, "", true)
            .await
            .unwrap();
        assert!(page.is_empty(), "{kind:?}");
    }
    assert_eq!(
        get_customer(&mut app.customers(), c).await.etag,
        customer.etag
    );
}
