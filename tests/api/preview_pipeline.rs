//! The preview's open pipeline (issue 16): deals of any amount sum without overflow, a total past
//! int64 is given as its maximum and says so, and exact totals stay exact — through
//! PreviewDeleteCustomer and through the preview SubmitDeletionRequest stores with the request.

use crm_service::proto::crm::v1 as pb;

use crate::common::{TestApp, new_deal, submit};

crate::on_both_databases!(
    two_or_three_deals_of_the_largest_amount_saturate_the_open_pipeline_and_say_so,
    a_pipeline_just_below_the_int64_maximum_is_exact_and_not_flagged,
);

/// A customer of `acme` with open deals of `amounts` (in EUR) and one USD deal of 1.
async fn customer_with_open_deals(app: &TestApp, name: &str, amounts: &[i64]) -> pb::Customer {
    let customer = app.create_customer(name).await;
    let mut records = app.records();
    let usd = pb::Deal {
        amount_minor: 1,
        currency: "USD".into(),
        ..new_deal(&customer.id, pb::DealStage::Open)
    };
    let eur = amounts.iter().map(|&amount| pb::Deal {
        amount_minor: amount,
        ..new_deal(&customer.id, pb::DealStage::Open)
    });
    for deal in eur.chain([usd]) {
        records
            .create_deal(pb::CreateDealRequest {
                deal: Some(deal),
                request_id: String::new(),
            })
            .await
            .expect("create deal");
    }
    customer
}

/// The preview's warning for `currency`.
fn warning<'a>(preview: &'a pb::DeletionPreview, currency: &str) -> &'a pb::PipelineWarning {
    preview
        .warnings
        .iter()
        .find(|w| w.currency == currency)
        .unwrap_or_else(|| panic!("no {currency} warning in {:?}", preview.warnings))
}

/// The preview as PreviewDeleteCustomer gives it, and as SubmitDeletionRequest stores it.
async fn previews(app: &TestApp, customer_id: &str) -> [pb::DeletionPreview; 2] {
    let previewed = app.preview(customer_id).await;
    let submitted = submit(
        &mut app.approvals_as("acme", "rep-1", &["sales_rep"]),
        customer_id,
        &previewed.etag,
        "a big pipeline",
    )
    .await
    .expect("submit");
    let stored = submitted.preview.expect("the request carries its preview");
    [previewed, stored]
}

async fn two_or_three_deals_of_the_largest_amount_saturate_the_open_pipeline_and_say_so(
    app: TestApp,
) {
    for deals in [2, 3] {
        let customer = customer_with_open_deals(
            &app,
            &format!("{deals} maximal deals"),
            &vec![i64::MAX; deals],
        )
        .await;
        for preview in previews(&app, &customer.id).await {
            let eur = warning(&preview, "EUR");
            assert_eq!(eur.open_amount_minor, i64::MAX, "{deals} deals: {eur:?}");
            assert!(eur.open_amount_saturated, "{deals} deals: {eur:?}");
            assert_eq!(eur.open_deals, deals as i64);
            // Another currency of the same customer is summed on its own, exactly.
            let usd = warning(&preview, "USD");
            assert_eq!((usd.open_amount_minor, usd.open_deals), (1, 1));
            assert!(!usd.open_amount_saturated);
        }
    }
}

async fn a_pipeline_just_below_the_int64_maximum_is_exact_and_not_flagged(app: TestApp) {
    // The last case carries between the low 32-bit halves: (2^63 - 1 - 2^32) + (2^32 - 1).
    let cases: [(&str, Vec<i64>, i64); 3] = [
        ("one maximal deal", vec![i64::MAX], i64::MAX),
        ("exactly the maximum", vec![i64::MAX - 1, 1], i64::MAX),
        (
            "just below the maximum",
            vec![i64::MAX - 4_294_967_296, 4_294_967_295],
            i64::MAX - 1,
        ),
    ];
    for (name, amounts, total) in cases {
        let customer = customer_with_open_deals(&app, name, &amounts).await;
        for preview in previews(&app, &customer.id).await {
            let eur = warning(&preview, "EUR");
            assert_eq!(eur.open_amount_minor, total, "{name}: {eur:?}");
            assert!(!eur.open_amount_saturated, "{name}: {eur:?}");
            assert_eq!(eur.open_deals, amounts.len() as i64);
        }
    }
}
