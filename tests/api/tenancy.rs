//! Tenant isolation (docs/reliability.md A4): the `tenant` claim scopes every read and write.
//! Another tenant's id must be answered exactly as an id that exists nowhere, so that probing ids
//! tells an attacker nothing; lists never show another tenant's rows; page tokens and request ids
//! do not cross tenants.

use std::collections::BTreeMap;

use crm_service::proto::crm::v1 as pb;
use tonic::{Code, Status};
use tonic_types::StatusExt;

use crate::common::{
    Customers, Kind, Records, TestApp, assert_status, bad_fields, bare_customer, create_record,
    delete_record, get_customer, get_record, list_all_customers, list_records, mask, random_id,
    request_id, touch_record,
};

crate::on_both_databases!(
    another_tenants_ids_are_answered_exactly_like_ids_that_do_not_exist,
    listing_never_shows_another_tenants_customers,
    a_page_token_of_one_tenant_is_invalid_for_another,
    request_ids_are_scoped_to_the_tenant,
);

/// What a client can observe of an error, with `id` replaced by a placeholder.
#[derive(Debug, PartialEq, Eq)]
struct Answer {
    code: Code,
    message: String,
    reason: String,
    domain: String,
    metadata: BTreeMap<String, String>,
    bad_request: Vec<(String, String)>,
    precondition_failure: String,
    resource_info: String,
}

fn answer(result: Result<(), Status>, id: &str) -> Answer {
    let status = result.expect_err("the call should fail");
    let scrub = |s: &str| s.replace(id, "<id>");
    let details = status.get_error_details();
    let info = details
        .error_info()
        .cloned()
        .unwrap_or_else(|| panic!("no ErrorInfo in {status:?}"));
    Answer {
        code: status.code(),
        message: scrub(status.message()),
        reason: info.reason,
        domain: info.domain,
        metadata: info
            .metadata
            .iter()
            .map(|(k, v)| (k.clone(), scrub(v)))
            .collect(),
        bad_request: details
            .bad_request()
            .map(|b| {
                b.field_violations
                    .iter()
                    .map(|v| (v.field.clone(), scrub(&v.description)))
                    .collect()
            })
            .unwrap_or_default(),
        precondition_failure: scrub(&format!("{:?}", details.precondition_failure())),
        resource_info: scrub(&format!("{:?}", details.resource_info())),
    }
}

/// Tenant acme's graph: one customer and one record of each kind.
struct Seed {
    customer: pb::Customer,
    records: Vec<(Kind, String)>,
}

async fn seed_acme(app: &TestApp) -> Seed {
    let mut customers = app.customers();
    let mut request = bare_customer("Acme's secret customer");
    request.customer.as_mut().unwrap().external_ref = "ACME-ONLY-1".into();
    let customer = customers
        .create_customer(request)
        .await
        .unwrap()
        .into_inner()
        .customer
        .unwrap();
    let mut records = app.records();
    let mut ids = Vec::new();
    for kind in Kind::ALL {
        let record = create_record(&mut records, kind, &customer.id)
            .await
            .unwrap();
        ids.push((kind, record.id));
    }
    let customer = get_customer(&mut customers, &customer.id).await;
    Seed {
        customer,
        records: ids,
    }
}

async fn assert_acme_untouched(app: &TestApp, seed: &Seed) {
    let mut customers = app.customers();
    let all = list_all_customers(&mut customers, Default::default()).await;
    assert_eq!(all, std::slice::from_ref(&seed.customer));
    let mut records = app.records();
    for (kind, id) in &seed.records {
        let (page, _) = list_records(&mut records, *kind, &seed.customer.id, 0, "", true)
            .await
            .unwrap();
        assert_eq!(page.len(), 1, "{kind:?}");
        assert_eq!(&page[0].id, id);
        assert!(!page[0].deleted, "{kind:?}");
        assert_eq!(page[0].etag, "1", "{kind:?} was written");
    }
}

/// Calls `call` with acme's `foreign` id and with a fresh random id, as the other tenant, and
/// asserts both answers are the same NOT_FOUND once the ids are blanked out.
async fn assert_same_as_random<F>(what: &str, foreign: &str, mut call: F)
where
    F: AsyncFnMut(String) -> Result<(), Status>,
{
    let random = random_id();
    let with_foreign = call(foreign.to_owned()).await;
    let with_random = call(random.clone()).await;
    if let Err(status) = &with_foreign {
        let raw = format!("{} {:?}", status.message(), status.details());
        for secret in ["acme", "Acme", "ACME-ONLY-1"] {
            assert!(!raw.contains(secret), "{what} leaks {secret:?}: {status:?}");
        }
    }
    let foreign_answer = answer(with_foreign, foreign);
    let random_answer = answer(with_random, &random);
    assert_eq!(foreign_answer, random_answer, "{what}");
    assert_eq!(foreign_answer.code, Code::NotFound, "{what}");
    assert_eq!(foreign_answer.reason, "NOT_FOUND", "{what}");
}

async fn another_tenants_ids_are_answered_exactly_like_ids_that_do_not_exist(app: TestApp) {
    let seed = seed_acme(&app).await;
    let customer_id = seed.customer.id.clone();
    // The strongest role of the other tenant: roles never reach across tenants.
    let globex = |app: &TestApp| -> (Customers, Records) {
        (
            app.customers_as("globex", "root", &["admin"]),
            app.records_as("globex", "root", &["admin"]),
        )
    };
    let (mut customers, mut records) = globex(&app);
    // Globex has data of its own, so "not found" is not just an empty database.
    let own = customers
        .create_customer(bare_customer("Globex's customer"))
        .await
        .unwrap()
        .into_inner()
        .customer
        .unwrap();
    create_record(&mut records, Kind::Contact, &own.id)
        .await
        .unwrap();

    assert_same_as_random("GetCustomer", &customer_id, async |id| {
        customers
            .get_customer(pb::GetCustomerRequest { customer_id: id })
            .await
            .map(drop)
    })
    .await;
    for etag in [String::new(), seed.customer.etag.clone()] {
        assert_same_as_random("UpdateCustomer", &customer_id, async |id| {
            customers
                .update_customer(pb::UpdateCustomerRequest {
                    customer: Some(pb::Customer {
                        id,
                        name: "Taken over".into(),
                        ..Default::default()
                    }),
                    update_mask: mask(&["name"]),
                    etag: etag.clone(),
                    request_id: request_id(),
                })
                .await
                .map(drop)
        })
        .await;
    }
    for (kind, id) in &seed.records {
        let kind = *kind;
        let name = kind.name();
        assert_same_as_random(&format!("Get {name}"), id, async |id| {
            get_record(&mut records, kind, &id).await.map(drop)
        })
        .await;
        assert_same_as_random(&format!("Update {name}"), id, async |id| {
            touch_record(&mut records, kind, &id).await.map(drop)
        })
        .await;
        if kind != Kind::Order {
            assert_same_as_random(&format!("Delete {name}"), id, async |id| {
                delete_record(&mut records, kind, &id)
                    .await
                    .unwrap()
                    .map(drop)
            })
            .await;
        }
        for show_deleted in [false, true] {
            assert_same_as_random(&format!("List {name}"), &customer_id, async |id| {
                list_records(&mut records, kind, &id, 0, "", show_deleted)
                    .await
                    .map(drop)
            })
            .await;
        }
        assert_same_as_random(&format!("Create {name}"), &customer_id, async |id| {
            create_record(&mut records, kind, &id).await.map(drop)
        })
        .await;
    }
    assert_acme_untouched(&app, &seed).await;
}

async fn listing_never_shows_another_tenants_customers(app: TestApp) {
    let seed = seed_acme(&app).await;
    let mut globex = app.customers_as("globex", "rep-1", &["sales_rep"]);
    // Same user name in both tenants: only the tenant claim decides.
    for name in ["Globex One", "Globex Two"] {
        globex.create_customer(bare_customer(name)).await.unwrap();
    }
    let names = |list: Vec<pb::Customer>| list.into_iter().map(|c| c.name).collect::<Vec<_>>();
    for request in [
        pb::ListCustomersRequest::default(),
        pb::ListCustomersRequest {
            page_size: 1,
            ..Default::default()
        },
        pb::ListCustomersRequest {
            show_deleted: true,
            ..Default::default()
        },
        pb::ListCustomersRequest {
            owner_id: "rep-1".into(),
            ..Default::default()
        },
        pb::ListCustomersRequest {
            lifecycle_stage: pb::LifecycleStage::Lead as i32,
            ..Default::default()
        },
    ] {
        assert_eq!(
            names(list_all_customers(&mut globex, request.clone()).await),
            ["Globex One", "Globex Two"],
            "{request:?}"
        );
        assert_eq!(
            names(list_all_customers(&mut app.customers(), request.clone()).await),
            ["Acme's secret customer"],
            "{request:?}"
        );
    }
    let probe = pb::ListCustomersRequest {
        query: "secret".into(),
        ..Default::default()
    };
    assert!(list_all_customers(&mut globex, probe).await.is_empty());
    assert_acme_untouched(&app, &seed).await;
}

async fn a_page_token_of_one_tenant_is_invalid_for_another(app: TestApp) {
    let seed = seed_acme(&app).await;
    app.customers()
        .create_customer(bare_customer("Acme's second"))
        .await
        .unwrap();
    let mut globex = app.customers_as("globex", "rep-1", &["sales_rep"]);
    for name in ["Globex One", "Globex Two", "Globex Three"] {
        globex.create_customer(bare_customer(name)).await.unwrap();
    }
    let first = app
        .customers()
        .list_customers(pb::ListCustomersRequest {
            page_size: 1,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!first.next_page_token.is_empty());
    let status = assert_status(
        globex
            .list_customers(pb::ListCustomersRequest {
                page_size: 1,
                page_token: first.next_page_token.clone(),
                ..Default::default()
            })
            .await,
        Code::InvalidArgument,
        "INVALID_FIELD",
    );
    assert_eq!(bad_fields(&status), ["page_token"]);

    // Record lists too: acme's token for its customer's contacts, replayed by globex.
    let mut records = app.records();
    create_record(&mut records, Kind::Contact, &seed.customer.id)
        .await
        .unwrap();
    let (_, token) = list_records(&mut records, Kind::Contact, &seed.customer.id, 1, "", false)
        .await
        .unwrap();
    assert!(!token.is_empty());
    let mut globex_records = app.records_as("globex", "rep-1", &["sales_rep"]);
    let globex_customer = list_all_customers(&mut globex, Default::default()).await[0]
        .id
        .clone();
    for customer_id in [seed.customer.id.as_str(), globex_customer.as_str()] {
        let status = assert_status(
            list_records(
                &mut globex_records,
                Kind::Contact,
                customer_id,
                1,
                &token,
                false,
            )
            .await,
            Code::InvalidArgument,
            "INVALID_FIELD",
        );
        assert_eq!(bad_fields(&status), ["page_token"]);
    }
}

async fn request_ids_are_scoped_to_the_tenant(app: TestApp) {
    let key = request_id();
    let mut acme = app.customers();
    let mut request = bare_customer("Acme's keyed");
    request.request_id = key.clone();
    let acme_first = acme
        .create_customer(request.clone())
        .await
        .unwrap()
        .into_inner()
        .customer
        .unwrap();
    let mut globex = app.customers_as("globex", "rep-1", &["sales_rep"]);
    // The same key with other arguments: for globex it is a new key, neither a replay of acme's
    // answer nor REQUEST_ID_REUSED (which would tell globex that acme used it).
    let mut other = bare_customer("Globex's keyed");
    other.request_id = key.clone();
    let globex_first = globex
        .create_customer(other.clone())
        .await
        .expect("keys are per tenant")
        .into_inner()
        .customer
        .unwrap();
    assert_ne!(globex_first.id, acme_first.id);
    assert_eq!(globex_first.name, "Globex's keyed");
    // From there on the key is globex's own: a retry replays globex's answer, and other
    // arguments are a reuse within globex.
    assert_eq!(
        globex
            .create_customer(other)
            .await
            .unwrap()
            .into_inner()
            .customer
            .unwrap(),
        globex_first
    );
    assert_status(
        globex.create_customer(request.clone()).await,
        Code::InvalidArgument,
        "REQUEST_ID_REUSED",
    );
    assert_eq!(
        list_all_customers(&mut globex, Default::default()).await,
        [globex_first]
    );
    assert_eq!(
        acme.create_customer(request)
            .await
            .unwrap()
            .into_inner()
            .customer
            .unwrap(),
        acme_first
    );
    let acme_all = list_all_customers(&mut acme, Default::default()).await;
    assert_eq!(acme_all, [acme_first]);
}
