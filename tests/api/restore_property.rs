//! Restore exactness as a property (docs/reliability.md C6): for random graphs of every record kind
//! in every deletable state — some records deleted on their own first, some changed — preview →
//! submit → approve → delete, unrelated writes and deletions elsewhere, restore; the graph read
//! back must equal the graph before, field by field (records' etags included), and the customer
//! must equal itself but for its etag. Records outside the deletion are never touched.
//!
//! Seeded: the seed is printed; `CRM_TEST_SEED=<seed>` replays a run.

use crm_service::proto::crm::v1 as pb;

use crate::common::{
    Kind, Records, Snapshot, TestApp, bare_customer, delete_record, execute, figure, get_customer,
    mask, restore, touch_record,
};

crate::on_both_databases!(a_restore_brings_back_exactly_the_graph_its_deletion_took);

/// Cases per database: each a fresh customer with up to ~30 records.
const CASES: usize = 12;

/// SplitMix64: small, fast, good enough to draw test cases, and no new dependency (the merge
/// property draws from it too).
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in 0..n.
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }

    fn word(&mut self) -> String {
        const WORDS: &[&str] = &[
            "Nord", "Blue", "Delta", "Orion", "Sable", "Kite", "Vale", "Ruby", "Atlas", "Quill",
            "Nova", "Ümlaut", "Żółw", "東京",
        ];
        format!("{} {}", self.pick(WORDS), self.below(10_000))
    }

    fn timestamp(&mut self) -> prost_types::Timestamp {
        prost_types::Timestamp {
            seconds: 1_600_000_000 + self.below(400_000_000) as i64,
            nanos: (self.below(1_000_000) * 1000) as i32,
        }
    }
}

/// `CRM_TEST_SEED` (decimal or 0x-hex) if set, else a fresh one.
pub(crate) fn seed() -> u64 {
    match std::env::var("CRM_TEST_SEED") {
        Ok(text) => {
            let text = text.trim();
            match text.strip_prefix("0x") {
                Some(hex) => u64::from_str_radix(hex, 16),
                None => text.parse(),
            }
            .expect("CRM_TEST_SEED is a u64")
        }
        Err(_) => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap();
            now.as_nanos() as u64 ^ ((std::process::id() as u64) << 32)
        }
    }
}

/// What a random graph holds, as the preview must count it.
#[derive(Debug, Default)]
struct Expected {
    cascade: i64,
    keep: i64,
    deleted_alone: usize,
}

/// Creates a random graph for `customer_id`: every kind, every deletable state, random fields,
/// some records changed and some deleted on their own.
async fn random_graph(r: &mut Records, rng: &mut Rng, customer_id: &str) -> Expected {
    let c = customer_id.to_owned();
    let mut expected = Expected::default();
    // (kind, id, cascades, may be deleted on its own)
    let mut made: Vec<(Kind, String, bool, bool)> = Vec::new();
    for _ in 0..rng.below(6) {
        let contact = pb::Contact {
            customer_id: c.clone(),
            full_name: rng.word(),
            email: if rng.chance(60) {
                format!("p{}@example.com", rng.below(1000))
            } else {
                String::new()
            },
            phone: if rng.chance(50) {
                format!("+1 555 {:04}", rng.below(10_000))
            } else {
                String::new()
            },
            job_title: if rng.chance(50) {
                rng.word()
            } else {
                String::new()
            },
            ..Default::default()
        };
        let id = r
            .create_contact(pb::CreateContactRequest {
                contact: Some(contact),
                request_id: String::new(),
            })
            .await
            .unwrap()
            .into_inner()
            .contact
            .unwrap()
            .id;
        made.push((Kind::Contact, id, true, true));
    }
    for _ in 0..rng.below(6) {
        let activity = pb::Activity {
            customer_id: c.clone(),
            kind: rng.pick(&[
                pb::ActivityKind::Call,
                pb::ActivityKind::Email,
                pb::ActivityKind::Meeting,
                pb::ActivityKind::Note,
            ]) as i32,
            subject: rng.word(),
            occur_time: Some(rng.timestamp()),
            ..Default::default()
        };
        let id = r
            .create_activity(pb::CreateActivityRequest {
                activity: Some(activity),
                request_id: String::new(),
            })
            .await
            .unwrap()
            .into_inner()
            .activity
            .unwrap()
            .id;
        made.push((Kind::Activity, id, true, true));
    }
    for _ in 0..rng.below(5) {
        let deal = pb::Deal {
            customer_id: c.clone(),
            title: rng.word(),
            amount_minor: rng.below(10_000_000) as i64,
            currency: rng.pick(&["EUR", "USD", "GBP", "JPY"]).into(),
            stage: rng.pick(&[pb::DealStage::Open, pb::DealStage::Won, pb::DealStage::Lost]) as i32,
            ..Default::default()
        };
        let id = r
            .create_deal(pb::CreateDealRequest {
                deal: Some(deal),
                request_id: String::new(),
            })
            .await
            .unwrap()
            .into_inner()
            .deal
            .unwrap()
            .id;
        made.push((Kind::Deal, id, true, true));
    }
    for _ in 0..rng.below(5) {
        let order = pb::Order {
            customer_id: c.clone(),
            number: format!("SO-{}", rng.below(100_000)),
            amount_minor: rng.below(1_000_000) as i64,
            currency: rng.pick(&["EUR", "USD"]).into(),
            status: rng.pick(&[pb::OrderStatus::Paid, pb::OrderStatus::Cancelled]) as i32,
            ..Default::default()
        };
        let id = r
            .create_order(pb::CreateOrderRequest {
                order: Some(order),
                request_id: String::new(),
            })
            .await
            .unwrap()
            .into_inner()
            .order
            .unwrap()
            .id;
        made.push((Kind::Order, id, false, false));
    }
    for _ in 0..rng.below(5) {
        let status = rng.pick(&[
            pb::ContractStatus::Draft,
            pb::ContractStatus::Expired,
            pb::ContractStatus::Terminated,
        ]);
        let contract = pb::Contract {
            customer_id: c.clone(),
            number: format!("C-{}", rng.below(100_000)),
            status: status as i32,
            end_date: if rng.chance(70) {
                format!(
                    "20{:02}-{:02}-{:02}",
                    20 + rng.below(20),
                    1 + rng.below(12),
                    1 + rng.below(28)
                )
            } else {
                String::new()
            },
            ..Default::default()
        };
        let id = r
            .create_contract(pb::CreateContractRequest {
                contract: Some(contract),
                request_id: String::new(),
            })
            .await
            .unwrap()
            .into_inner()
            .contract
            .unwrap()
            .id;
        let draft = status == pb::ContractStatus::Draft;
        made.push((Kind::Contract, id, draft, draft));
    }
    for _ in 0..rng.below(4) {
        // Some projects are created DONE, some finished later (an ACTIVE one would block).
        let born_done = rng.chance(50);
        let project = pb::Project {
            customer_id: c.clone(),
            name: rng.word(),
            status: if born_done {
                pb::ProjectStatus::Done
            } else {
                pb::ProjectStatus::Active
            } as i32,
            ..Default::default()
        };
        let id = r
            .create_project(pb::CreateProjectRequest {
                project: Some(project),
                request_id: String::new(),
            })
            .await
            .unwrap()
            .into_inner()
            .project
            .unwrap()
            .id;
        if !born_done {
            r.update_project(pb::UpdateProjectRequest {
                project: Some(pb::Project {
                    id: id.clone(),
                    status: pb::ProjectStatus::Done as i32,
                    ..Default::default()
                }),
                update_mask: mask(&["status"]),
                ..Default::default()
            })
            .await
            .unwrap();
        }
        made.push((Kind::Project, id, true, true));
    }
    for (kind, id, cascades, deletable) in &made {
        if rng.chance(30) {
            touch_record(r, *kind, id).await.unwrap();
        }
        if *deletable && rng.chance(25) {
            delete_record(r, *kind, id).await.unwrap().unwrap();
            expected.deleted_alone += 1;
        } else if *cascades {
            expected.cascade += 1;
        } else {
            expected.keep += 1;
        }
    }
    expected
}

/// Writes that have nothing to do with the customer under test.
async fn unrelated_writes(app: &TestApp, rng: &mut Rng, bystanders: &[pb::Customer]) -> usize {
    let mut r = app.records_as("acme", "bystander-rep", &["sales_rep"]);
    let n = 3 + rng.below(6) as usize;
    for _ in 0..n {
        let customer = &bystanders[rng.below(bystanders.len() as u64) as usize];
        match rng.below(4) {
            0 => {
                crate::common::create_record(
                    &mut r,
                    rng.pick(&[Kind::Contact, Kind::Deal, Kind::Activity]),
                    &customer.id,
                )
                .await
                .unwrap();
            }
            1 => {
                let contacts = crate::common::list_records(
                    &mut r,
                    Kind::Contact,
                    &customer.id,
                    1000,
                    "",
                    false,
                )
                .await
                .unwrap()
                .0;
                if let Some(contact) = contacts.first() {
                    touch_record(&mut r, Kind::Contact, &contact.id)
                        .await
                        .unwrap();
                }
            }
            2 => {
                let deals =
                    crate::common::list_records(&mut r, Kind::Deal, &customer.id, 1000, "", false)
                        .await
                        .unwrap()
                        .0;
                if let Some(deal) = deals.last() {
                    delete_record(&mut r, Kind::Deal, &deal.id)
                        .await
                        .unwrap()
                        .unwrap();
                }
            }
            _ => {
                app.customers()
                    .update_customer(pb::UpdateCustomerRequest {
                        customer: Some(pb::Customer {
                            id: customer.id.clone(),
                            industry: rng.word(),
                            ..Default::default()
                        }),
                        update_mask: mask(&["industry"]),
                        ..Default::default()
                    })
                    .await
                    .unwrap();
            }
        }
    }
    n
}

async fn a_restore_brings_back_exactly_the_graph_its_deletion_took(app: TestApp) {
    let seed = seed();
    figure(format_args!(
        "{:?} C6: restore property seed {seed} (replay with CRM_TEST_SEED={seed})",
        app.db
    ));
    let mut rng = Rng(seed);
    let mut rep = app.customers();
    let mut records = app.records();
    let mut sup = app.customers_as("acme", "sup-2", &["supervisor"]);

    // Customers nobody deletes: some written to between each deletion and its restore, one never.
    let mut bystanders = Vec::new();
    for i in 0..3 {
        let customer = app.create_customer(&format!("Bystander {i}")).await;
        random_graph(&mut records, &mut rng, &customer.id).await;
        bystanders.push(customer);
    }
    let quiet = app.create_customer("Never touched").await;
    random_graph(&mut records, &mut rng, &quiet.id).await;
    let quiet_before = (
        get_customer(&mut rep, &quiet.id).await,
        app.snapshot(&quiet.id).await,
    );

    let (mut records_checked, mut unrelated, mut diffs) = (0, 0, 0);
    for case in 0..CASES {
        let case_seed = rng.next();
        let mut rng = Rng(case_seed);
        let ctx = format!("case {case} (seed {seed}, case seed {case_seed})");

        let mut request = bare_customer(&rng.word());
        {
            let c = request.customer.as_mut().unwrap();
            c.email = format!("buyer{}@example.com", rng.below(1000));
            c.phone = format!("+49 30 {:06}", rng.below(1_000_000));
            c.industry = rng.word();
            c.lifecycle_stage = rng.pick(&[
                pb::LifecycleStage::Lead,
                pb::LifecycleStage::Prospect,
                pb::LifecycleStage::Customer,
            ]) as i32;
            c.status = rng.pick(&[pb::CustomerStatus::Active, pb::CustomerStatus::Inactive]) as i32;
            if rng.chance(50) {
                c.external_ref = format!("ERP-{seed}-{case}");
            }
        }
        let customer = rep
            .create_customer(request)
            .await
            .unwrap()
            .into_inner()
            .customer
            .unwrap();
        let c = customer.id.clone();
        let expected = random_graph(&mut records, &mut rng, &c).await;
        let customer_before = get_customer(&mut rep, &c).await;
        let before = app.snapshot(&c).await;
        records_checked += before.rows().len();

        let preview = app.preview(&c).await;
        assert!(preview.blockers.is_empty(), "{ctx}: {:?}", preview.blockers);
        assert_eq!(
            (preview.cascade_count, preview.keep_count),
            (expected.cascade, expected.keep),
            "{ctx}: {expected:?}"
        );
        assert_eq!(preview.etag, customer_before.etag, "{ctx}");
        let approved = app.approved_deletion(&c, &format!("property {case}")).await;
        let deleted = execute(&mut rep, &c, &approved.id, &preview.etag)
            .await
            .unwrap_or_else(|s| panic!("{ctx}: {s:?}"));
        assert_eq!(deleted.deleted_records, expected.cascade, "{ctx}");
        let gone = deleted.customer.unwrap();

        // While deleted: the cascaded records carry the customer's delete_time and purge_time
        // and nothing else changed; kept records and records deleted before are exactly as they
        // were.
        let during = app.snapshot(&c).await;
        assert_deleted_view(&before, &during, (gone.delete_time, gone.purge_time), &ctx);

        // Meanwhile, elsewhere: writes to other customers, and sometimes a whole other deletion
        // that must stay deleted when this one is restored.
        unrelated += unrelated_writes(&app, &mut rng, &bystanders).await;
        let neighbour = if rng.chance(50) {
            let n = app.create_customer(&format!("Neighbour {case}")).await;
            random_graph(&mut records, &mut rng, &n.id).await;
            app.delete_customer(&n.id).await;
            Some((
                n.id.clone(),
                get_customer(&mut rep, &n.id).await,
                app.snapshot(&n.id).await,
            ))
        } else {
            None
        };

        let restored = restore(&mut sup, &c, false)
            .await
            .unwrap_or_else(|s| panic!("{ctx}: {s:?}"));
        assert_eq!(restored.restored_records, expected.cascade, "{ctx}");
        let after = app.snapshot(&c).await;
        let customer_after = get_customer(&mut rep, &c).await;
        if after != before {
            diffs += 1;
        }
        assert_eq!(after, before, "{ctx}: the graph, field by field");
        assert_ne!(
            customer_after.etag, customer_before.etag,
            "{ctx}: a new graph version"
        );
        assert_eq!(
            pb::Customer {
                etag: String::new(),
                ..customer_after.clone()
            },
            pb::Customer {
                etag: String::new(),
                ..customer_before.clone()
            },
            "{ctx}: the customer"
        );
        assert_eq!(restored.customer.as_ref(), Some(&customer_after), "{ctx}");
        if let Some((id, customer, graph)) = neighbour {
            assert_eq!(
                get_customer(&mut rep, &id).await,
                customer,
                "{ctx}: neighbour"
            );
            assert_eq!(app.snapshot(&id).await, graph, "{ctx}: neighbour's graph");
        }
    }
    assert_eq!(
        (
            get_customer(&mut rep, &quiet.id).await,
            app.snapshot(&quiet.id).await
        ),
        quiet_before,
        "a customer outside every deletion is untouched"
    );
    assert!(app.verify_audit().await.valid);
    figure(format_args!(
        "{:?} C6: {CASES} cases, {records_checked} records compared field by field, \
         {unrelated} unrelated writes; cases whose restored graph differs = {diffs}",
        app.db
    ));
}

/// The graph while deleted: each record live before is either kept unchanged (KEEP) or equal but
/// for the deletion's delete_time and purge_time (CASCADE); records deleted before are unchanged.
fn assert_deleted_view(
    before: &Snapshot,
    during: &Snapshot,
    (delete_time, purge_time): (
        Option<prost_types::Timestamp>,
        Option<prost_types::Timestamp>,
    ),
    ctx: &str,
) {
    macro_rules! check {
        ($field:ident, $cascades:expr) => {{
            assert_eq!(before.$field.len(), during.$field.len(), "{ctx}");
            for (was, now) in before.$field.iter().zip(&during.$field) {
                let cascades: fn(&_) -> bool = $cascades;
                if was.delete_time.is_some() || !cascades(was) {
                    assert_eq!(now, was, "{ctx}: untouched");
                } else {
                    assert_eq!(now.delete_time, delete_time, "{ctx}");
                    assert_eq!(now.purge_time, purge_time, "{ctx}");
                    let mut undeleted = now.clone();
                    undeleted.delete_time = None;
                    undeleted.purge_time = None;
                    assert_eq!(
                        &undeleted, was,
                        "{ctx}: only delete_time and purge_time changed"
                    );
                }
            }
        }};
    }
    check!(contacts, |_| true);
    check!(activities, |_| true);
    check!(deals, |_| true);
    check!(orders, |_| false);
    check!(contracts, |c: &pb::Contract| c.status
        == pb::ContractStatus::Draft as i32);
    check!(projects, |_| true);
}
