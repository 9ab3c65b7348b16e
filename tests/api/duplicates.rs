//! Duplicate candidates (ListDuplicateCandidates), black box: the tenant's other live customers
//! with the same external_ref, e-mail or phone number however written, or a very similar name,
//! scored and paged strongest first; keys that follow updates; deleted and other tenants'
//! customers never listed; refusals.

use crm_service::proto::crm::v1 as pb;
use tonic::{Code, Status};

use crate::common::{Customers, TestApp, assert_status, bad_fields, mask, new_customer, random_id};

crate::on_both_databases!(
    the_same_email_phone_or_external_ref_however_written_is_a_candidate_strongest_first,
    keys_follow_updates_and_deleted_or_foreign_customers_are_never_candidates,
    candidates_refuse_bad_ids_pages_and_deleted_customers_by_field,
    a_misspelled_name_is_a_weaker_candidate_than_a_shared_key_and_only_a_live_one_of_the_tenant,
);

async fn create(
    customers: &mut Customers,
    name: &str,
    email: &str,
    phone: &str,
    external_ref: &str,
) -> pb::Customer {
    let mut request = new_customer(name);
    let customer = request.customer.as_mut().unwrap();
    customer.email = email.into();
    customer.phone = phone.into();
    customer.external_ref = external_ref.into();
    customers
        .create_customer(request)
        .await
        .unwrap_or_else(|s| panic!("create {name}: {s:?}"))
        .into_inner()
        .customer
        .unwrap()
}

async fn candidates(
    customers: &mut Customers,
    customer_id: &str,
    page_size: i32,
    page_token: &str,
) -> Result<pb::ListDuplicateCandidatesResponse, Status> {
    Ok(customers
        .list_duplicate_candidates(pb::ListDuplicateCandidatesRequest {
            customer_id: customer_id.into(),
            page_size,
            page_token: page_token.into(),
        })
        .await?
        .into_inner())
}

/// (name, score, matches) of every candidate, walking pages of `page_size`.
async fn all_candidates(
    customers: &mut Customers,
    customer_id: &str,
    page_size: i32,
) -> Vec<(String, i32, Vec<pb::DuplicateMatch>)> {
    let (mut all, mut token) = (Vec::new(), String::new());
    for _ in 0..50 {
        let page = candidates(customers, customer_id, page_size, &token)
            .await
            .expect("a page of candidates");
        if page_size > 0 {
            assert!(page.candidates.len() <= page_size as usize);
        }
        all.extend(page.candidates.into_iter().map(|c| {
            let matches = c.matches().collect();
            (c.customer.unwrap().name, c.score, matches)
        }));
        if page.next_page_token.is_empty() {
            return all;
        }
        token = page.next_page_token;
    }
    panic!("the candidates never end")
}

async fn the_same_email_phone_or_external_ref_however_written_is_a_candidate_strongest_first(
    app: TestApp,
) {
    use pb::DuplicateMatch::{Email, ExternalRef, Name, Phone};
    let mut customers = app.customers();
    let target = create(
        &mut customers,
        "Northwind Traders",
        "Buyer@Northwind.example",
        "+44 20 7946 0000",
        "ERP-00123",
    )
    .await;
    create(
        &mut customers,
        "By E-mail",
        "BUYER@northwind.example",
        "",
        "",
    )
    .await;
    // The test server's default country code is 44: a national number is the same number.
    let national = create(&mut customers, "By National Phone", "", "020 7946 0000", "").await;
    create(
        &mut customers,
        "By Both",
        "buyer@northwind.example",
        "0044 (20) 7946-0000",
        "",
    )
    .await;
    create(&mut customers, "By Reference", "", "", "erp 00123").await;
    create(
        &mut customers,
        "Unrelated",
        "other@example.com",
        "+33 1 23 45 67 89",
        "ERP-9",
    )
    .await;
    // A misspelled name (trigram similarity 0.75) is a candidate on its own, weaker than any key;
    // a name that only ends alike is not.
    create(&mut customers, "Nortwind Traders", "", "", "").await;
    create(&mut customers, "Southwind Logistics", "", "", "").await;
    let expected = vec![
        ("By Both".to_owned(), 98, vec![Email, Phone]),
        ("By Reference".to_owned(), 95, vec![ExternalRef]),
        ("By E-mail".to_owned(), 90, vec![Email]),
        ("By National Phone".to_owned(), 80, vec![Phone]),
        ("Nortwind Traders".to_owned(), 45, vec![Name]),
    ];
    assert_eq!(
        all_candidates(&mut customers, &target.id, 0).await,
        expected
    );
    // Pages of one walk the same list in the same order.
    assert_eq!(
        all_candidates(&mut customers, &target.id, 1).await,
        expected
    );
    // Matching is symmetric: the national number finds the international ones.
    let found = all_candidates(&mut customers, &national.id, 0).await;
    assert_eq!(
        found,
        vec![
            ("Northwind Traders".to_owned(), 80, vec![Phone]),
            ("By Both".to_owned(), 80, vec![Phone]),
        ]
    );
}

async fn keys_follow_updates_and_deleted_or_foreign_customers_are_never_candidates(app: TestApp) {
    let mut customers = app.customers();
    let target = create(&mut customers, "Target", "shared@example.com", "", "").await;
    let gone = create(&mut customers, "Deleted Twin", "shared@example.com", "", "").await;
    app.delete_customer(&gone.id).await;
    let mut globex = app.customers_as("globex", "rep-1", &["sales_rep"]);
    create(
        &mut globex,
        "Other Tenant's Twin",
        "shared@example.com",
        "",
        "",
    )
    .await;
    assert_eq!(all_candidates(&mut customers, &target.id, 0).await, vec![]);

    let later = create(&mut customers, "Later", "someone@else.example", "", "").await;
    assert_eq!(all_candidates(&mut customers, &target.id, 0).await, vec![]);
    customers
        .update_customer(pb::UpdateCustomerRequest {
            customer: Some(pb::Customer {
                id: later.id.clone(),
                email: "SHARED@example.com".into(),
                ..Default::default()
            }),
            update_mask: mask(&["email"]),
            etag: String::new(),
            request_id: String::new(),
        })
        .await
        .expect("update e-mail");
    let found = all_candidates(&mut customers, &target.id, 0).await;
    assert_eq!(
        found,
        vec![("Later".to_owned(), 90, vec![pb::DuplicateMatch::Email])]
    );
    // The restored twin is live again, and a candidate again.
    app.customers_as("acme", "sup-1", &["supervisor"])
        .restore_customer(pb::RestoreCustomerRequest {
            customer_id: gone.id.clone(),
            ..Default::default()
        })
        .await
        .expect("restore");
    let names: Vec<String> = all_candidates(&mut customers, &target.id, 0)
        .await
        .into_iter()
        .map(|(name, ..)| name)
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(names.contains(&"Deleted Twin".to_owned()));
}

async fn candidates_refuse_bad_ids_pages_and_deleted_customers_by_field(app: TestApp) {
    let mut customers = app.customers();
    let target = create(&mut customers, "Refusals", "r@example.com", "", "").await;
    let garbled = candidates(&mut customers, "not-a-uuid", 0, "").await;
    assert_eq!(bad_fields(&garbled.unwrap_err()), ["customer_id"]);
    let unknown = candidates(&mut customers, &random_id(), 0, "").await;
    assert_status(unknown, Code::NotFound, "NOT_FOUND");
    let mut globex = app.customers_as("globex", "rep-1", &["sales_rep"]);
    let foreign = candidates(&mut globex, &target.id, 0, "").await;
    assert_status(foreign, Code::NotFound, "NOT_FOUND");
    let negative = candidates(&mut customers, &target.id, -1, "").await;
    assert_eq!(bad_fields(&negative.unwrap_err()), ["page_size"]);
    let forged = candidates(&mut customers, &target.id, 0, "bm90LWEtdG9rZW4").await;
    assert_eq!(bad_fields(&forged.unwrap_err()), ["page_token"]);
    app.delete_customer(&target.id).await;
    let deleted = candidates(&mut customers, &target.id, 0, "").await;
    assert_status(deleted, Code::FailedPrecondition, "CUSTOMER_DELETED");
}

async fn a_misspelled_name_is_a_weaker_candidate_than_a_shared_key_and_only_a_live_one_of_the_tenant(
    app: TestApp,
) {
    use pb::DuplicateMatch::{Email, Name};
    let mut customers = app.customers();
    let target = create(
        &mut customers,
        "Northwind Traders Ltd.",
        "buyer@northwind.example",
        "",
        "",
    )
    .await;
    // Case, punctuation and the legal form do not count; one letter missing does, a little.
    create(&mut customers, "NORTWIND TRADERS", "", "", "").await;
    create(
        &mut customers,
        "Northwind Traders GmbH",
        "Buyer@Northwind.example",
        "",
        "",
    )
    .await;
    create(&mut customers, "Northwind Logistics", "", "", "").await;
    create(&mut customers, "Southwind Traders Inc", "", "", "").await;
    let gone = create(&mut customers, "Northwind Trader", "", "", "").await;
    app.delete_customer(&gone.id).await;
    let mut globex = app.customers_as("globex", "rep-1", &["sales_rep"]);
    create(&mut globex, "Northwind Traders", "", "", "").await;
    let renamed = create(&mut customers, "Unrelated", "", "", "").await;

    let expected = vec![
        // 1 - (1 - 0.90) × (1 - 0.6 × 1.0)
        ("Northwind Traders GmbH".to_owned(), 96, vec![Email, Name]),
        ("NORTWIND TRADERS".to_owned(), 45, vec![Name]),
    ];
    assert_eq!(
        all_candidates(&mut customers, &target.id, 0).await,
        expected
    );
    assert_eq!(
        all_candidates(&mut customers, &target.id, 1).await,
        expected
    );

    // The name's key follows an update.
    customers
        .update_customer(pb::UpdateCustomerRequest {
            customer: Some(pb::Customer {
                id: renamed.id.clone(),
                name: "Northwind Tradrs".into(),
                ..Default::default()
            }),
            update_mask: mask(&["name"]),
            etag: String::new(),
            request_id: String::new(),
        })
        .await
        .expect("rename");
    let found = all_candidates(&mut customers, &target.id, 1).await;
    assert_eq!(found.len(), 3, "{found:?}");
    assert_eq!(
        found[2],
        ("Northwind Tradrs".to_owned(), 45, vec![Name]),
        "ties in id order"
    );
}
