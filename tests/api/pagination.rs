//! Keyset pagination (AIP-158, docs/reliability.md E5): a walk sees every customer exactly once
//! even while others are inserted, and page tokens are tamper-proof and bound to their query.

use std::collections::HashSet;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use crm_service::proto::crm::v1 as pb;
use tokio::sync::watch;
use tonic::Code;

use crate::common::{
    Customers, TestApp, assert_status, bad_fields, bare_customer, list_all_customers,
};

crate::on_both_databases!(
    a_walk_sees_every_existing_customer_exactly_once_while_others_are_inserted,
    a_walk_returns_customers_in_creation_order_and_ends_with_an_empty_token,
    a_tampered_page_token_is_invalid_argument,
    a_page_token_used_with_other_filters_is_invalid_argument,
    the_page_size_may_change_between_pages,
    a_page_token_of_another_tenant_is_invalid_argument,
);

async fn create_many(client: &mut Customers, prefix: &str, n: usize) -> Vec<pb::Customer> {
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        out.push(
            client
                .create_customer(bare_customer(&format!("{prefix} {i:03}")))
                .await
                .unwrap()
                .into_inner()
                .customer
                .unwrap(),
        );
    }
    out
}

async fn a_walk_sees_every_existing_customer_exactly_once_while_others_are_inserted(app: TestApp) {
    let before = create_many(&mut app.customers(), "Before", 40).await;

    // The inserter runs on its own task for the whole walk and publishes how many it inserted;
    // the walker waits for at least one new insert before each page, so every page boundary
    // sees fresh rows (no sleeps: the count is the synchronisation).
    let (inserted_tx, mut inserted_rx) = watch::channel(0usize);
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut inserter_client = app.customers();
    let inserter = tokio::spawn(async move {
        let mut n = 0;
        while !*stop_rx.borrow() {
            inserter_client
                .create_customer(bare_customer(&format!("During {n:03}")))
                .await
                .expect("insert during the walk");
            n += 1;
            inserted_tx.send_replace(n);
        }
        n
    });

    let mut client = app.customers();
    let mut seen = Vec::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        if !*stop_tx.borrow() {
            let floor = *inserted_rx.borrow_and_update();
            inserted_rx
                .wait_for(|n| *n > floor)
                .await
                .expect("the inserter is running");
        }
        let page = client
            .list_customers(pb::ListCustomersRequest {
                page_size: 7,
                page_token: token.clone(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        pages += 1;
        seen.extend(page.customers);
        // Stop inserting once the walk is past the pre-existing rows, so the walk can end.
        if seen.len() >= before.len() {
            stop_tx.send_replace(true);
        }
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
        assert!(pages < 1000, "the walk does not end");
    }
    stop_tx.send_replace(true);
    let inserted = inserter.await.unwrap();
    assert!(inserted > 0);

    let ids: Vec<&str> = seen.iter().map(|c| c.id.as_str()).collect();
    let unique: HashSet<&str> = ids.iter().copied().collect();
    assert_eq!(unique.len(), ids.len(), "a customer was listed twice");
    for customer in &before {
        assert!(
            unique.contains(customer.id.as_str()),
            "{} was skipped",
            customer.name
        );
    }
    let mut sorted = seen.clone();
    sorted.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(sorted, seen, "pages are in id (creation) order");
    eprintln!(
        "walk: {} pages, {} customers seen, {} inserted during the walk",
        pages,
        seen.len(),
        inserted
    );
}

async fn a_walk_returns_customers_in_creation_order_and_ends_with_an_empty_token(app: TestApp) {
    let created = create_many(&mut app.customers(), "Ordered", 10).await;
    let mut client = app.customers();
    for page_size in [1, 3, 5, 10, 11] {
        let walked = list_all_customers(
            &mut client,
            pb::ListCustomersRequest {
                page_size,
                ..Default::default()
            },
        )
        .await;
        assert_eq!(walked, created, "page_size {page_size}");
    }
    // An exact multiple: the last full page already says there is no next one.
    let page = client
        .list_customers(pb::ListCustomersRequest {
            page_size: 10,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(page.customers.len(), 10);
    assert!(page.next_page_token.is_empty());
}

async fn first_token(client: &mut Customers, request: pb::ListCustomersRequest) -> String {
    let page = client
        .list_customers(pb::ListCustomersRequest {
            page_size: 1,
            ..request
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!page.next_page_token.is_empty());
    page.next_page_token
}

fn assert_bad_token(result: Result<tonic::Response<pb::ListCustomersResponse>, tonic::Status>) {
    let status = assert_status(result, Code::InvalidArgument, "INVALID_FIELD");
    assert_eq!(bad_fields(&status), ["page_token"]);
}

async fn a_tampered_page_token_is_invalid_argument(app: TestApp) {
    create_many(&mut app.customers(), "Tamper", 3).await;
    let mut client = app.customers();
    let token = first_token(&mut client, Default::default()).await;
    let raw = URL_SAFE_NO_PAD.decode(&token).expect("base64url");
    let mut variants = Vec::new();
    // Every character replaced by another (same alphabet, so it still decodes).
    for at in 0..token.len() {
        let mut bytes = token.clone().into_bytes();
        bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
        variants.push(String::from_utf8(bytes).unwrap());
    }
    // Every bit of the decoded token flipped.
    for byte in 0..raw.len() {
        for bit in 0..8 {
            let mut bad = raw.clone();
            bad[byte] ^= 1 << bit;
            variants.push(URL_SAFE_NO_PAD.encode(bad));
        }
    }
    // Truncated, extended, and not a token at all.
    variants.push(token[..token.len() - 1].to_owned());
    variants.push(token[..token.len() / 2].to_owned());
    variants.push(format!("{token}A"));
    variants.push(format!("{token}AAAA"));
    variants.push("garbage".into());
    variants.push("!!!!".into());
    variants.push("x".repeat(10_000));
    let mut tried = 0;
    for variant in variants {
        if variant == token {
            continue;
        }
        assert_bad_token(
            client
                .list_customers(pb::ListCustomersRequest {
                    page_size: 1,
                    page_token: variant,
                    ..Default::default()
                })
                .await,
        );
        tried += 1;
    }
    eprintln!("tampered tokens tried: {tried}, accepted: 0");
    // The genuine token still works.
    client
        .list_customers(pb::ListCustomersRequest {
            page_size: 1,
            page_token: token,
            ..Default::default()
        })
        .await
        .unwrap();
}

async fn a_page_token_used_with_other_filters_is_invalid_argument(app: TestApp) {
    let mut client = app.customers();
    for name in ["Alpha Retail", "Beta Retail", "Gamma Retail"] {
        let mut request = bare_customer(name);
        request.customer.as_mut().unwrap().industry = "retail".into();
        client.create_customer(request).await.unwrap();
    }
    let base = pb::ListCustomersRequest {
        query: "retail".into(),
        industry: "retail".into(),
        owner_id: "rep-1".into(),
        lifecycle_stage: pb::LifecycleStage::Lead as i32,
        status: pb::CustomerStatus::Active as i32,
        ..Default::default()
    };
    let token = first_token(&mut client, base.clone()).await;
    let changed = [
        pb::ListCustomersRequest {
            query: "Retail".into(),
            ..base.clone()
        },
        pb::ListCustomersRequest {
            query: String::new(),
            ..base.clone()
        },
        pb::ListCustomersRequest {
            industry: "energy".into(),
            ..base.clone()
        },
        pb::ListCustomersRequest {
            owner_id: "rep-2".into(),
            ..base.clone()
        },
        pb::ListCustomersRequest {
            lifecycle_stage: pb::LifecycleStage::Prospect as i32,
            ..base.clone()
        },
        pb::ListCustomersRequest {
            lifecycle_stage: 0,
            ..base.clone()
        },
        pb::ListCustomersRequest {
            status: pb::CustomerStatus::Inactive as i32,
            ..base.clone()
        },
        pb::ListCustomersRequest {
            show_deleted: true,
            ..base.clone()
        },
        pb::ListCustomersRequest::default(),
    ];
    for request in changed {
        assert_bad_token(
            client
                .list_customers(pb::ListCustomersRequest {
                    page_size: 1,
                    page_token: token.clone(),
                    ..request
                })
                .await,
        );
    }
    // With the same filters it goes on where it stopped.
    let next = client
        .list_customers(pb::ListCustomersRequest {
            page_size: 1,
            page_token: token,
            ..base
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(next.customers[0].name, "Beta Retail");
}

async fn the_page_size_may_change_between_pages(app: TestApp) {
    let created = create_many(&mut app.customers(), "Resize", 6).await;
    let mut client = app.customers();
    let token = first_token(&mut client, Default::default()).await;
    let rest = client
        .list_customers(pb::ListCustomersRequest {
            page_size: 100,
            page_token: token,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(rest.customers, created[1..]);
    assert!(rest.next_page_token.is_empty());
}

async fn a_page_token_of_another_tenant_is_invalid_argument(app: TestApp) {
    create_many(&mut app.customers(), "Acme", 3).await;
    let mut globex = app.customers_as("globex", "rep-1", &["sales_rep"]);
    create_many(&mut globex, "Globex", 3).await;
    let acme_token = first_token(&mut app.customers(), Default::default()).await;
    assert_bad_token(
        globex
            .list_customers(pb::ListCustomersRequest {
                page_size: 1,
                page_token: acme_token,
                ..Default::default()
            })
            .await,
    );
    // And the other way round.
    let globex_token = first_token(&mut globex, Default::default()).await;
    assert_bad_token(
        app.customers()
            .list_customers(pb::ListCustomersRequest {
                page_size: 1,
                page_token: globex_token,
                ..Default::default()
            })
            .await,
    );
}
