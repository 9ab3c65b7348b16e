//! Erasure (docs/design.md section 5, "final when it must be"; docs/reliability.md C5, C12): the
//! purger erases a deleted customer once its retention has passed, an admin's PurgeCustomer erases
//! one at once, and a legal hold forbids deleting and erasing until an admin lifts it. An erased
//! customer is an anonymous tombstone: NOT_FOUND to every call, its deleted records gone for good,
//! its kept records (paid orders, ended contracts) still pointing at it. Every outcome is checked
//! through the API and in the stored rows (by SQL), and the audit trail must still verify.
//!
//! A zero retention makes a customer due the moment it is deleted, so no test sleeps.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use crm_service::domain::Clock;
use crm_service::domain::deletion::LifecycleSettings;
use crm_service::domain::purge::{PurgeReport, Purges};
use crm_service::proto::crm::v1 as pb;
use crm_service::store::Store;
use pb::DeletionRequestState as S;
use sea_orm::{ConnectionTrait, DatabaseBackend, QueryResult, Statement, TransactionTrait};
use tonic::{Code, Status};
use uuid::Uuid;

use crate::common::{
    Customers, Db, Kind, TestApp, assert_status, bad_fields, create_record, delete_record, execute,
    figure, get_customer, list_all_customers, new_contract, new_customer, new_order, new_project,
    precondition_subjects, random_id, reject, request_id, restore, submit,
};

crate::on_both_databases!(
    a_deleted_customer_past_its_retention_is_erased_by_the_purger_into_an_anonymous_tombstone,
    within_its_retention_a_deleted_customer_is_not_due_and_can_still_be_restored,
    the_purge_command_reports_in_a_dry_run_then_erases_what_is_due,
    purge_customer_is_admin_only_needs_a_deleted_customer_validates_erases_once_and_replays,
    a_legal_hold_blocks_submit_delete_and_purge_until_an_admin_lifts_it,
    a_restore_racing_the_purger_at_the_boundary_ends_restored_or_erased_never_both,
    a_restore_racing_purge_customer_ends_restored_or_erased_never_both,
);

/// PostgreSQL only: several replicas (or `crm-service purge` jobs) purging at once, each taking
/// other customers (SKIP LOCKED). On SQLite every writer waits its turn.
mod postgres_only {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_purge_passes_at_once_erase_each_due_customer_exactly_once() {
        let Some(app) = super::TestApp::spawn(super::Db::Postgres).await else {
            return;
        };
        super::two_purge_passes_at_once_erase_each_due_customer_exactly_once(app).await;
    }
}

// ----- set-up ---------------------------------------------------------------------------------

/// The same database under a server whose retention is zero: purge_time = delete_time, so a
/// deleted customer is due for erasure at once (and can no longer be restored).
pub(crate) async fn zero_retention(app: TestApp) -> TestApp {
    let db = app.db;
    drop(app);
    TestApp::spawn_with_lifecycle(
        db,
        LifecycleSettings {
            request_ttl: Duration::from_secs(72 * 3600),
            retention: Duration::ZERO,
        },
    )
    .await
    .expect("the database answered a moment ago")
}

fn admin(app: &TestApp) -> Customers {
    app.customers_as("acme", "admin-1", &["admin"])
}

fn supervisor(app: &TestApp) -> Customers {
    app.customers_as("acme", "sup-2", &["supervisor"])
}

/// The roles that are not admin, each as its own user.
const NOT_ADMINS: [(&str, &str); 3] = [
    ("rep-1", "sales_rep"),
    ("sup-1", "supervisor"),
    ("svc-1", "service"),
];

async fn purge(
    customers: &mut Customers,
    customer_id: &str,
    validate_only: bool,
    request_id: &str,
) -> Result<pb::PurgeCustomerResponse, Status> {
    Ok(customers
        .purge_customer(pb::PurgeCustomerRequest {
            customer_id: customer_id.into(),
            validate_only,
            request_id: request_id.into(),
        })
        .await?
        .into_inner())
}

async fn set_hold(
    customers: &mut Customers,
    customer_id: &str,
    legal_hold: bool,
    reason: &str,
) -> Result<pb::Customer, Status> {
    Ok(customers
        .set_legal_hold(pb::SetLegalHoldRequest {
            customer_id: customer_id.into(),
            legal_hold,
            reason: reason.into(),
            // The stored answer carries the customer's personal data: erasure must drop it.
            request_id: request_id(),
        })
        .await?
        .into_inner()
        .customer
        .unwrap())
}

/// A customer with every kind of record, and a tag that appears in its personal data (name,
/// e-mail, external_ref) and in the free text of its deletion requests, so that a search for the
/// tag finds any copy left behind.
struct Fixture {
    customer: pb::Customer,
    tag: String,
    kept_orders: Vec<String>,
    kept_contracts: Vec<String>,
}

/// Soft-deleted with the customer: two contacts, an activity, an open deal, a draft contract, a
/// done project.
const CASCADED: i64 = 6;
/// Removed by erasure: the cascaded records and the contact deleted on its own before.
const ERASED: i64 = CASCADED + 1;
/// Kept (KEEP policy): a paid and a cancelled order, an expired and a terminated contract.
const KEPT: i64 = 4;

/// Rows per record table: as created (and deleted), and once erased.
const TABLES: [&str; 6] = [
    "contact",
    "activity",
    "deal",
    "sales_order",
    "contract",
    "project",
];
const ROWS_BEFORE: [i64; 6] = [3, 1, 1, 2, 3, 1];
const ROWS_ERASED: [i64; 6] = [0, 0, 0, 2, 2, 0];

async fn fixture(app: &TestApp, name: &str) -> Fixture {
    let tag = format!("tag{}", Uuid::now_v7().simple());
    let mut create = new_customer(&format!("{name} {tag}"));
    let c = create.customer.as_mut().unwrap();
    c.email = format!("{tag}@example.com");
    c.external_ref = format!("ext-{tag}");
    // With a request_id: the stored answer carries the personal data too.
    create.request_id = request_id();
    let customer = app
        .customers()
        .create_customer(create)
        .await
        .expect("create")
        .into_inner()
        .customer
        .unwrap();
    let id = customer.id.as_str();
    let mut r = app.records();
    for kind in [Kind::Contact, Kind::Contact, Kind::Activity, Kind::Deal] {
        create_record(&mut r, kind, id)
            .await
            .expect("create record");
    }
    let alone = create_record(&mut r, Kind::Contact, id).await.unwrap();
    delete_record(&mut r, Kind::Contact, &alone.id)
        .await
        .unwrap()
        .expect("contact deleted on its own");
    r.create_contract(pb::CreateContractRequest {
        contract: Some(new_contract(id, pb::ContractStatus::Draft)),
        request_id: String::new(),
    })
    .await
    .unwrap();
    r.create_project(pb::CreateProjectRequest {
        project: Some(new_project(id, pb::ProjectStatus::Done)),
        request_id: String::new(),
    })
    .await
    .unwrap();
    let mut kept_orders = Vec::new();
    for status in [pb::OrderStatus::Paid, pb::OrderStatus::Cancelled] {
        let order = r
            .create_order(pb::CreateOrderRequest {
                order: Some(new_order(id, status)),
                request_id: String::new(),
            })
            .await
            .unwrap()
            .into_inner()
            .order
            .unwrap();
        kept_orders.push(order.id);
    }
    let mut kept_contracts = Vec::new();
    for status in [pb::ContractStatus::Expired, pb::ContractStatus::Terminated] {
        let contract = r
            .create_contract(pb::CreateContractRequest {
                contract: Some(new_contract(id, status)),
                request_id: String::new(),
            })
            .await
            .unwrap()
            .into_inner()
            .contract
            .unwrap();
        kept_contracts.push(contract.id);
    }
    let customer = get_customer(&mut app.customers(), id).await;
    Fixture {
        customer,
        tag,
        kept_orders,
        kept_contracts,
    }
}

/// Deletes the fixture's customer after a first request was rejected, both requests' free text
/// naming the tag: the DeleteCustomer response.
async fn delete_with_history(app: &TestApp, f: &Fixture) -> pb::DeleteCustomerResponse {
    let id = f.customer.id.as_str();
    let first = app
        .pending_deletion(id, &format!("{} wants out (first ask)", f.tag))
        .await;
    reject(
        &mut app.approvals_as("acme", "sup-1", &["supervisor"]),
        &first.id,
        &format!("call {} back first", f.tag),
    )
    .await
    .expect("reject");
    let approved = app
        .approved_deletion(id, &format!("{} asked to be forgotten", f.tag))
        .await;
    let deleted = execute(
        &mut app.customers(),
        id,
        &approved.id,
        &approved.preview.as_ref().unwrap().etag,
    )
    .await
    .expect("delete");
    assert_eq!(deleted.deleted_records, CASCADED);
    deleted
}

/// A customer with a contact, an activity and a paid order, for the many-trial tests.
async fn small_customer(app: &TestApp, name: &str) -> pb::Customer {
    let customer = app.create_customer(name).await;
    let mut r = app.records();
    create_record(&mut r, Kind::Contact, &customer.id)
        .await
        .unwrap();
    create_record(&mut r, Kind::Activity, &customer.id)
        .await
        .unwrap();
    r.create_order(pb::CreateOrderRequest {
        order: Some(new_order(&customer.id, pb::OrderStatus::Paid)),
        request_id: String::new(),
    })
    .await
    .unwrap();
    get_customer(&mut app.customers(), &customer.id).await
}

/// One purge pass of the in-server purger's kind (what `crm-service purge` runs), as `Purges`
/// on a store of the test's database.
async fn purge_pass(store: &Store, dry_run: bool) -> PurgeReport {
    Purges::new(store.clone(), Clock::system())
        .run_due(100, dry_run)
        .await
        .expect("purge pass")
}

fn ids_of(report: &PurgeReport) -> Vec<String> {
    report
        .erased
        .iter()
        .map(|(_, e)| e.customer_id.to_string())
        .collect()
}

/// Runs `crm-service purge` (the real binary) on the test's database; its stdout lines.
pub(crate) async fn purge_command(app: &TestApp, dry_run: bool) -> Vec<String> {
    let args: &[&str] = if dry_run {
        &["purge", "--dry-run"]
    } else {
        &["purge"]
    };
    app.run_cli(args).await.lines().map(str::to_owned).collect()
}

// ----- reading the stored rows ----------------------------------------------------------------

/// Plain SQL on the test's database, to see what the API no longer shows.
struct Sql {
    store: Store,
}

impl Sql {
    async fn open(app: &TestApp) -> Sql {
        Sql {
            store: app.store().await,
        }
    }

    /// `id` as a literal of the uuid column type (a 16-byte blob on SQLite).
    fn uuid(&self, id: &str) -> String {
        let id = Uuid::parse_str(id).expect("a uuid");
        match self.store.backend() {
            DatabaseBackend::Sqlite => format!("x'{}'", id.simple()),
            _ => format!("'{id}'"),
        }
    }

    async fn rows(&self, sql: &str) -> Vec<QueryResult> {
        self.store
            .conn()
            .query_all_raw(Statement::from_string(self.store.backend(), sql))
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    async fn count(&self, sql: &str) -> i64 {
        self.rows(sql).await[0]
            .try_get_by_index::<i64>(0)
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// Rows of each record table that belong to `customer_id`, deleted or not.
    async fn record_rows(&self, customer_id: &str) -> [i64; 6] {
        let mut out = [0; 6];
        for (n, table) in TABLES.iter().enumerate() {
            out[n] = self
                .count(&format!(
                    "SELECT COUNT(*) FROM {table} WHERE customer_id = {}",
                    self.uuid(customer_id)
                ))
                .await;
        }
        out
    }

    /// Live rows of `table` that belong to `customer_id`.
    async fn live_rows(&self, table: &str, customer_id: &str) -> i64 {
        self.count(&format!(
            "SELECT COUNT(*) FROM {table} WHERE customer_id = {} AND delete_time IS NULL",
            self.uuid(customer_id)
        ))
        .await
    }

    /// The customer row's (name, email, phone, industry, external_ref, search_text, erased).
    async fn customer_row(&self, id: &str) -> CustomerRow {
        let rows = self
            .rows(&format!(
                "SELECT name, email, phone, industry, external_ref, search_text, \
                 CASE WHEN erase_time IS NULL THEN 0 ELSE 1 END \
                 FROM customer WHERE id = {}",
                self.uuid(id)
            ))
            .await;
        assert_eq!(rows.len(), 1, "the customer row of {id} exists");
        let row = &rows[0];
        CustomerRow {
            name: row.try_get_by_index(0).unwrap(),
            email: row.try_get_by_index(1).unwrap(),
            phone: row.try_get_by_index(2).unwrap(),
            industry: row.try_get_by_index(3).unwrap(),
            external_ref: row.try_get_by_index(4).unwrap(),
            search_text: row.try_get_by_index(5).unwrap(),
            erased: row.try_get_by_index::<i32>(6).unwrap() == 1,
        }
    }

    /// (reason, decision_comment) of every deletion request of the customer.
    async fn request_texts(&self, customer_id: &str) -> Vec<(String, Option<String>)> {
        self.rows(&format!(
            "SELECT reason, decision_comment FROM deletion_request WHERE customer_id = {}",
            self.uuid(customer_id)
        ))
        .await
        .iter()
        .map(|r| {
            (
                r.try_get_by_index(0).unwrap(),
                r.try_get_by_index(1).unwrap(),
            )
        })
        .collect()
    }

    /// Where `text` still appears: (table, rows), for the tables that hold a customer's free text.
    async fn copies_of(&self, text: &str) -> Vec<(&'static str, i64)> {
        let mut out = Vec::new();
        for (table, column) in [
            ("customer", "name"),
            ("customer", "email"),
            ("customer", "external_ref"),
            ("customer", "search_text"),
            ("deletion_request", "reason"),
            ("deletion_request", "decision_comment"),
            ("idempotency_key", "response"),
            ("audit_event", "summary"),
        ] {
            let n = self
                .count(&format!(
                    "SELECT COUNT(*) FROM {table} WHERE {column} LIKE '%{text}%'"
                ))
                .await;
            if n > 0 {
                out.push((table, n));
            }
        }
        out
    }

    /// On PostgreSQL, takes and releases the row lock of `id` in `table`: returns once no other
    /// transaction holds it. (SQLite has no row locks: its write lock is waited for by the next
    /// writer.)
    async fn wait_for_row_lock(&self, table: &str, id: &str) {
        if self.store.backend() != DatabaseBackend::Postgres {
            return;
        }
        let tx = self.store.conn().begin().await.unwrap();
        tx.query_all_raw(Statement::from_string(
            DatabaseBackend::Postgres,
            format!(
                "SELECT id FROM {table} WHERE id = {} FOR UPDATE",
                self.uuid(id)
            ),
        ))
        .await
        .unwrap();
        tx.commit().await.unwrap();
    }

    async fn erased_customers(&self) -> i64 {
        self.count("SELECT COUNT(*) FROM customer WHERE erase_time IS NOT NULL")
            .await
    }
}

#[derive(Debug, PartialEq)]
struct CustomerRow {
    name: String,
    email: Option<String>,
    phone: Option<String>,
    industry: Option<String>,
    external_ref: Option<String>,
    search_text: String,
    erased: bool,
}

// ----- what an erased customer looks like ----------------------------------------------------

async fn get_is_not_found(app: &TestApp, id: &str) {
    assert_status(
        app.customers()
            .get_customer(pb::GetCustomerRequest {
                customer_id: id.into(),
            })
            .await,
        Code::NotFound,
        "NOT_FOUND",
    );
}

async fn listed_with_deleted(app: &TestApp, id: &str) -> bool {
    list_all_customers(
        &mut app.customers(),
        pb::ListCustomersRequest {
            show_deleted: true,
            page_size: 1000,
            ..Default::default()
        },
    )
    .await
    .iter()
    .any(|c| c.id == id)
}

/// The fixture's customer is an anonymous tombstone, by the API and in the stored rows, and the
/// audit trail holds exactly one `customer.purge` for it: that event.
async fn assert_erased(app: &TestApp, sql: &Sql, f: &Fixture) -> pb::AuditEvent {
    let id = f.customer.id.as_str();
    get_is_not_found(app, id).await;
    for validate_only in [true, false] {
        assert_status(
            restore(&mut supervisor(app), id, validate_only).await,
            Code::NotFound,
            "NOT_FOUND",
        );
    }
    assert!(
        !listed_with_deleted(app, id).await,
        "not even show_deleted lists it"
    );

    assert_eq!(
        sql.customer_row(id).await,
        CustomerRow {
            name: String::new(),
            email: None,
            phone: None,
            industry: None,
            external_ref: None,
            search_text: String::new(),
            erased: true,
        },
        "the tombstone keeps no personal data"
    );
    let texts = sql.request_texts(id).await;
    assert_eq!(texts.len(), 2, "both deletion requests stay, blanked");
    assert!(
        texts
            .iter()
            .all(|(reason, comment)| reason.is_empty() && comment.is_none()),
        "deletion requests keep no free text: {texts:?}"
    );
    assert_eq!(
        sql.copies_of(&f.tag).await,
        Vec::<(&str, i64)>::new(),
        "no copy of the personal data anywhere"
    );
    assert_eq!(
        sql.record_rows(id).await,
        ROWS_ERASED,
        "CASCADE rows (and the one deleted alone) gone, KEEP rows stay; tables {TABLES:?}"
    );
    assert_eq!(sql.live_rows("sales_order", id).await, 2);
    assert_eq!(sql.live_rows("contract", id).await, 2);

    let mut r = app.records();
    for order_id in &f.kept_orders {
        let order = r
            .get_order(pb::GetOrderRequest {
                order_id: order_id.clone(),
            })
            .await
            .expect("a kept order stays readable")
            .into_inner()
            .order
            .unwrap();
        assert_eq!(order.customer_id, id, "and still points at the tombstone");
        assert!(order.delete_time.is_none());
    }
    for contract_id in &f.kept_contracts {
        let contract = r
            .get_contract(pb::GetContractRequest {
                contract_id: contract_id.clone(),
            })
            .await
            .expect("a kept contract stays readable")
            .into_inner()
            .contract
            .unwrap();
        assert_eq!(contract.customer_id, id);
        assert!(contract.delete_time.is_none());
    }

    let purges = app
        .audit_events(pb::ListAuditEventsRequest {
            customer_id: id.into(),
            action: "customer.purge".into(),
            ..Default::default()
        })
        .await;
    assert_eq!(purges.len(), 1, "erased exactly once: {purges:?}");
    assert_eq!(app.audit_count(id, "customer.restore").await, 0);
    let verdict = app.verify_audit().await;
    assert!(verdict.valid, "the audit chain still verifies: {verdict:?}");
    purges.into_iter().next().unwrap()
}

/// The fixture's customer is deleted, not erased: every row as it was after the delete.
async fn assert_deleted_not_erased(app: &TestApp, sql: &Sql, f: &Fixture) {
    let id = f.customer.id.as_str();
    let got = get_customer(&mut app.customers(), id).await;
    assert!(got.delete_time.is_some(), "still deleted: {got:?}");
    assert!(listed_with_deleted(app, id).await);
    let row = sql.customer_row(id).await;
    assert!(!row.erased, "{row:?}");
    assert_eq!(row.email.as_deref(), Some(f.customer.email.as_str()));
    assert_eq!(
        row.external_ref.as_deref(),
        Some(f.customer.external_ref.as_str())
    );
    assert_eq!(sql.record_rows(id).await, ROWS_BEFORE);
    assert!(
        sql.request_texts(id)
            .await
            .iter()
            .all(|(reason, _)| reason.contains(&f.tag))
    );
    assert_eq!(app.audit_count(id, "customer.purge").await, 0);
}

// ----- the scenarios --------------------------------------------------------------------------

async fn a_deleted_customer_past_its_retention_is_erased_by_the_purger_into_an_anonymous_tombstone(
    app: TestApp,
) {
    let app = zero_retention(app).await;
    let sql = Sql::open(&app).await;
    let bystander = fixture(&app, "Bystander").await;
    let f = fixture(&app, "Forget Me GmbH").await;
    let id = f.customer.id.clone();
    let deleted = delete_with_history(&app, &f).await;
    let gone = deleted.customer.unwrap();
    assert_eq!(
        gone.purge_time, gone.delete_time,
        "zero retention: due at once"
    );
    assert_eq!(sql.record_rows(&id).await, ROWS_BEFORE);
    assert!(
        !sql.copies_of(&f.tag).await.is_empty(),
        "the personal data is there before"
    );

    let report = purge_pass(&sql.store, false).await;
    assert_eq!(report.erased.len(), 1, "{report:?}");
    let (tenant, erased) = &report.erased[0];
    assert_eq!(tenant, "acme");
    assert_eq!(erased.customer_id.to_string(), id);
    assert_eq!(
        (erased.erased_records, erased.kept_records),
        (ERASED as u64, KEPT as u64)
    );
    // The bystander's contact deleted on its own was due as well (zero retention): it goes on
    // its own. The erased customer's went with it, counted in ERASED, not listed again.
    assert_eq!(report.records.len(), 1, "{report:?}");
    assert_eq!(
        report.records[0].customer_id.to_string(),
        bystander.customer.id
    );

    let event = assert_erased(&app, &sql, &f).await;
    assert_eq!(event.actor, "system:purger");
    assert_eq!(event.target_id, id);
    assert_eq!(
        event.summary,
        format!("erased={ERASED} kept={KEPT} by=retention")
    );

    // The live customer next to it is untouched but for that contact.
    assert_eq!(
        get_customer(&mut app.customers(), &bystander.customer.id).await,
        bystander.customer
    );
    let mut rows = ROWS_BEFORE;
    rows[0] -= 1;
    assert_eq!(sql.record_rows(&bystander.customer.id).await, rows);
    assert_eq!(sql.erased_customers().await, 1);
    // Nothing is due any more: a second pass erases nothing.
    assert_eq!(purge_pass(&sql.store, false).await, PurgeReport::default());
    assert_eq!(app.audit_count(&id, "customer.purge").await, 1);
}

async fn within_its_retention_a_deleted_customer_is_not_due_and_can_still_be_restored(
    app: TestApp,
) {
    let sql = Sql::open(&app).await;
    let f = fixture(&app, "Thirty Days Ltd").await;
    let id = f.customer.id.clone();
    let before = app.snapshot(&id).await;
    let deleted = delete_with_history(&app, &f).await.customer.unwrap();
    let (deleted_at, purge_at) = (deleted.delete_time.unwrap(), deleted.purge_time.unwrap());
    assert_eq!(
        (purge_at.seconds - deleted_at.seconds, purge_at.nanos),
        (30 * 24 * 3600, deleted_at.nanos),
        "the default retention is 30 days"
    );

    assert_eq!(purge_pass(&sql.store, true).await, PurgeReport::default());
    assert_eq!(purge_pass(&sql.store, false).await, PurgeReport::default());
    assert_eq!(
        purge_command(&app, true).await,
        [
            "0 customer(s) due for erasure",
            "0 record(s) deleted on their own due for erasure"
        ]
    );
    assert_eq!(
        purge_command(&app, false).await,
        [
            "0 customer(s) erased",
            "0 record(s) deleted on their own erased"
        ]
    );
    assert_deleted_not_erased(&app, &sql, &f).await;
    assert_eq!(sql.erased_customers().await, 0);

    let restored = restore(&mut supervisor(&app), &id, false)
        .await
        .expect("restore within the retention");
    assert_eq!(restored.restored_records, CASCADED);
    let back = get_customer(&mut app.customers(), &id).await;
    assert!(back.delete_time.is_none() && back.purge_time.is_none());
    assert_eq!(
        pb::Customer {
            etag: String::new(),
            ..back
        },
        pb::Customer {
            etag: String::new(),
            ..f.customer.clone()
        }
    );
    assert_eq!(
        app.snapshot(&id).await,
        before,
        "the records are back as they were"
    );
    assert_eq!(sql.record_rows(&id).await, ROWS_BEFORE);
    assert_eq!(app.audit_count(&id, "customer.purge").await, 0);
}

async fn the_purge_command_reports_in_a_dry_run_then_erases_what_is_due(app: TestApp) {
    let app = zero_retention(app).await;
    let sql = Sql::open(&app).await;
    let first = fixture(&app, "First Due").await;
    let second = fixture(&app, "Second Due").await;
    let held = fixture(&app, "Held Due").await;
    let live = fixture(&app, "Still Live").await;
    for f in [&first, &second, &held] {
        delete_with_history(&app, f).await;
    }
    set_hold(&mut admin(&app), &held.customer.id, true, "case 2027-17")
        .await
        .expect("hold");
    let line = |verb: &str, gone: &str, f: &Fixture| {
        format!(
            "{verb} tenant acme customer {}: {ERASED} deleted records {gone}, {KEPT} kept records stay",
            f.customer.id
        )
    };
    // The live customer's contact deleted on its own is due too (zero retention); the held
    // customer's is kept by the hold.
    let live_contacts = app.snapshot(&live.customer.id).await.contacts;
    let alone = live_contacts
        .iter()
        .find(|c| c.delete_time.is_some())
        .expect("the fixture's contact deleted on its own");
    let record_line = |verb: &str| {
        format!(
            "{verb} tenant acme contact {} of customer {} (deleted on its own)",
            alone.id, live.customer.id
        )
    };

    // Oldest due first; the held one is not due.
    assert_eq!(
        purge_command(&app, true).await,
        [
            line("would erase", "would go", &first),
            line("would erase", "would go", &second),
            record_line("would erase"),
            "2 customer(s) due for erasure".to_owned(),
            "1 record(s) deleted on their own due for erasure".to_owned(),
        ]
    );
    for f in [&first, &second, &held] {
        assert_deleted_not_erased(&app, &sql, f).await;
    }
    assert_eq!(sql.erased_customers().await, 0, "a dry run erases nothing");

    assert_eq!(
        purge_command(&app, false).await,
        [
            line("erased", "gone", &first),
            line("erased", "gone", &second),
            record_line("erased"),
            "2 customer(s) erased".to_owned(),
            "1 record(s) deleted on their own erased".to_owned(),
        ]
    );
    for f in [&first, &second] {
        let event = assert_erased(&app, &sql, f).await;
        assert_eq!(event.actor, "system:purger");
    }
    assert_deleted_not_erased(&app, &sql, &held).await;
    assert_eq!(
        get_customer(&mut app.customers(), &live.customer.id).await,
        live.customer
    );
    assert_eq!(sql.erased_customers().await, 2);
    assert_eq!(
        purge_command(&app, false).await,
        [
            "0 customer(s) erased",
            "0 record(s) deleted on their own erased"
        ]
    );
}

async fn purge_customer_is_admin_only_needs_a_deleted_customer_validates_erases_once_and_replays(
    app: TestApp,
) {
    let sql = Sql::open(&app).await;
    let f = fixture(&app, "Right To Erasure SA").await;
    let id = f.customer.id.clone();

    // A live customer must go through approval first.
    for validate_only in [true, false] {
        assert_status(
            purge(&mut admin(&app), &id, validate_only, "").await,
            Code::FailedPrecondition,
            "CUSTOMER_NOT_DELETED",
        );
    }
    assert_eq!(get_customer(&mut app.customers(), &id).await, f.customer);

    // Deleted, with the default 30-day retention: PurgeCustomer does not wait for it.
    delete_with_history(&app, &f).await;
    let deleted = get_customer(&mut app.customers(), &id).await;
    for (user, role) in NOT_ADMINS {
        for validate_only in [true, false] {
            assert_status(
                purge(
                    &mut app.customers_as("acme", user, &[role]),
                    &id,
                    validate_only,
                    "",
                )
                .await,
                Code::PermissionDenied,
                "ROLE_NOT_ALLOWED",
            );
        }
    }
    // Another tenant's admin sees no such customer, exactly like a random id.
    for (tenant, customer_id) in [("globex", id.clone()), ("acme", random_id())] {
        assert_status(
            purge(
                &mut app.customers_as(tenant, "admin-9", &["admin"]),
                &customer_id,
                false,
                "",
            )
            .await,
            Code::NotFound,
            "NOT_FOUND",
        );
    }
    assert_deleted_not_erased(&app, &sql, &f).await;

    // validate_only: every check, the counts, nothing written.
    let would = purge(&mut admin(&app), &id, true, &request_id())
        .await
        .expect("validate_only");
    assert_eq!(
        would,
        pb::PurgeCustomerResponse {
            customer_id: id.clone(),
            erased_records: ERASED,
            kept_records: KEPT,
        }
    );
    assert_eq!(get_customer(&mut app.customers(), &id).await, deleted);
    assert_deleted_not_erased(&app, &sql, &f).await;
    restore(&mut supervisor(&app), &id, true)
        .await
        .expect("still restorable after a validate_only purge");

    // The erasure, with a request_id.
    let key = request_id();
    let erased = purge(&mut admin(&app), &id, false, &key)
        .await
        .expect("purge");
    assert_eq!(erased, would, "the counts validate_only reported");
    let event = assert_erased(&app, &sql, &f).await;
    assert_eq!(event.actor, "admin-1");
    assert_eq!(event.request_id, key);
    assert_eq!(
        event.summary,
        format!("erased={ERASED} kept={KEPT} by=request")
    );

    // Erased: NOT_FOUND from then on, whatever the call.
    for validate_only in [false, true] {
        assert_status(
            purge(&mut admin(&app), &id, validate_only, "").await,
            Code::NotFound,
            "NOT_FOUND",
        );
    }
    // A retry of the first call gets the first answer, and erases nothing twice.
    assert_eq!(
        purge(&mut admin(&app), &id, false, &key).await.unwrap(),
        erased
    );
    assert_eq!(app.audit_count(&id, "customer.purge").await, 1);
    assert_eq!(sql.erased_customers().await, 1);
    // The purger has nothing left to do for it (its retention has not even passed).
    assert_eq!(purge_pass(&sql.store, false).await, PurgeReport::default());
}

async fn a_legal_hold_blocks_submit_delete_and_purge_until_an_admin_lifts_it(app: TestApp) {
    let app = zero_retention(app).await;
    let sql = Sql::open(&app).await;
    let f = fixture(&app, "Litigated Inc").await;
    let id = f.customer.id.clone();
    let mut rep = app.approvals_as("acme", "rep-1", &["sales_rep"]);

    // SetLegalHold: admin only, and a reason is required.
    for (user, role) in NOT_ADMINS {
        assert_status(
            set_hold(
                &mut app.customers_as("acme", user, &[role]),
                &id,
                true,
                "case 1",
            )
            .await,
            Code::PermissionDenied,
            "ROLE_NOT_ALLOWED",
        );
    }
    for reason in [String::new(), "x".repeat(1001)] {
        let status = assert_status(
            set_hold(&mut admin(&app), &id, true, &reason).await,
            Code::InvalidArgument,
            "INVALID_FIELD",
        );
        assert_eq!(bad_fields(&status), ["reason"]);
    }
    assert_status(
        set_hold(&mut admin(&app), &random_id(), true, "case 1").await,
        Code::NotFound,
        "NOT_FOUND",
    );
    assert_eq!(
        get_customer(&mut app.customers(), &id).await,
        f.customer,
        "refused calls change nothing"
    );

    // Held: the preview lists the hold as a blocker, and submit is refused.
    let held = set_hold(&mut admin(&app), &id, true, "case 2027-17")
        .await
        .expect("hold");
    assert!(held.legal_hold);
    assert_ne!(held.etag, f.customer.etag, "the hold moves the etag on");
    assert_eq!(get_customer(&mut app.customers(), &id).await, held);
    let preview = app.preview(&id).await;
    assert_eq!(preview.etag, held.etag);
    let blockers: Vec<(&str, &str, &[String])> = preview
        .blockers
        .iter()
        .map(|b| {
            (
                b.reason.as_str(),
                b.relation.as_str(),
                b.sample_ids.as_slice(),
            )
        })
        .collect();
    assert_eq!(blockers, [("LEGAL_HOLD", "", std::slice::from_ref(&id))]);
    let status = assert_status(
        submit(&mut rep, &id, &preview.etag, "held").await,
        Code::FailedPrecondition,
        "CUSTOMER_HAS_BLOCKERS",
    );
    assert_eq!(
        precondition_subjects(&status),
        [(
            "CUSTOMER_HAS_BLOCKERS".to_owned(),
            "customer:LEGAL_HOLD".to_owned()
        )]
    );
    assert_eq!(app.audit_count(&id, "deletion_request.submit").await, 0);

    // Lifted: submit and approval go through.
    let lifted = set_hold(&mut admin(&app), &id, false, "case 2027-17 settled")
        .await
        .expect("lift");
    assert!(!lifted.legal_hold);
    assert_ne!(lifted.etag, held.etag);
    assert!(app.preview(&id).await.blockers.is_empty());
    let approved = app.approved_deletion(&id, "held, then settled").await;

    // Held again after the approval: the etag moved, so the approved request is stale and
    // nothing is deleted; a fresh request cannot even be submitted.
    let held = set_hold(&mut admin(&app), &id, true, "case 2027-18")
        .await
        .unwrap();
    let graph = app.snapshot(&id).await;
    assert_status(
        execute(
            &mut app.customers(),
            &id,
            &approved.id,
            &approved.preview.as_ref().unwrap().etag,
        )
        .await,
        Code::FailedPrecondition,
        "PREVIEW_STALE",
    );
    assert_eq!(
        S::try_from(app.deletion_request(&approved.id).await.state).unwrap(),
        S::Stale
    );
    assert_eq!(get_customer(&mut app.customers(), &id).await, held);
    assert_eq!(app.snapshot(&id).await, graph, "nothing deleted");
    assert_eq!(app.audit_count(&id, "customer.delete").await, 0);
    let preview = app.preview(&id).await;
    assert_status(
        submit(&mut rep, &id, &preview.etag, "again").await,
        Code::FailedPrecondition,
        "CUSTOMER_HAS_BLOCKERS",
    );

    // Lifted again: the deletion goes through.
    set_hold(&mut admin(&app), &id, false, "case 2027-18 settled")
        .await
        .unwrap();
    let approved = app.approved_deletion(&id, "settled for good").await;
    let deleted = execute(
        &mut app.customers(),
        &id,
        &approved.id,
        &approved.preview.as_ref().unwrap().etag,
    )
    .await
    .expect("delete once the hold is lifted");
    assert_eq!(deleted.deleted_records, CASCADED);

    // Held while deleted (and due, at zero retention): neither the purger nor PurgeCustomer
    // erases it.
    let held = set_hold(&mut admin(&app), &id, true, "case 2027-19")
        .await
        .expect("a deleted customer can be held");
    assert!(held.legal_hold && held.delete_time.is_some());
    assert_eq!(purge_pass(&sql.store, true).await, PurgeReport::default());
    assert_eq!(purge_pass(&sql.store, false).await, PurgeReport::default());
    for validate_only in [true, false] {
        assert_status(
            purge(&mut admin(&app), &id, validate_only, "").await,
            Code::FailedPrecondition,
            "LEGAL_HOLD",
        );
    }
    assert_eq!(get_customer(&mut app.customers(), &id).await, held);
    let row = sql.customer_row(&id).await;
    assert!(!row.erased && row.email.is_some(), "{row:?}");
    assert_eq!(sql.record_rows(&id).await, ROWS_BEFORE);
    assert_eq!(app.audit_count(&id, "customer.purge").await, 0);

    // Lifted: the next pass erases it.
    set_hold(&mut admin(&app), &id, false, "case 2027-19 closed")
        .await
        .unwrap();
    let report = purge_pass(&sql.store, false).await;
    assert_eq!(ids_of(&report), [id.as_str()]);
    assert_erased(&app, &sql, &f).await;
    assert_status(
        set_hold(&mut admin(&app), &id, true, "too late").await,
        Code::NotFound,
        "NOT_FOUND",
    );
    assert_eq!(app.audit_count(&id, "customer.legal_hold.set").await, 3);
    assert_eq!(app.audit_count(&id, "customer.legal_hold.lift").await, 3);
}

/// How one trial of the restore/purger race ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum RaceEnd {
    /// The restore won: live, every record back, no erasure.
    Restored,
    /// The racing pass erased it; the restore was refused.
    ErasedByTheRacingPass,
    /// The restore was refused, but held the row while the racing pass ran, so the pass skipped
    /// it (SKIP LOCKED); the next pass erased it.
    ErasedByTheNextPass,
}

async fn a_restore_racing_the_purger_at_the_boundary_ends_restored_or_erased_never_both(
    app: TestApp,
) {
    const TRIALS: usize = 20;
    let app = zero_retention(app).await;
    let sql = Sql::open(&app).await;
    let mut ends: BTreeMap<RaceEnd, usize> = BTreeMap::new();
    let mut refusals: BTreeMap<String, usize> = BTreeMap::new();
    for trial in 0..TRIALS {
        let customer = small_customer(&app, &format!("Racer {trial}")).await;
        let id = customer.id.clone();
        let before = app.snapshot(&id).await;
        let rows_before = sql.record_rows(&id).await;
        app.delete_customer(&id).await;

        let (mut sup, purger) = (
            supervisor(&app),
            Purges::new(sql.store.clone(), Clock::system()),
        );
        let (restored, pass) =
            tokio::join!(restore(&mut sup, &id, false), purger.run_due(100, false));
        let pass = pass.expect("purge pass");
        let erased_by_pass = ids_of(&pass).contains(&id);
        assert!(pass.erased.len() <= 1, "trial {trial}: {pass:?}");

        let end = match restored {
            Ok(restored) => {
                assert!(!erased_by_pass, "trial {trial}: restored AND erased");
                assert_eq!(restored.restored_records, 2);
                let back = get_customer(&mut app.customers(), &id).await;
                assert!(back.delete_time.is_none(), "trial {trial}: {back:?}");
                assert_eq!(
                    app.snapshot(&id).await,
                    before,
                    "trial {trial}: all records back"
                );
                assert_eq!(sql.record_rows(&id).await, rows_before);
                assert_eq!(app.audit_count(&id, "customer.purge").await, 0);
                RaceEnd::Restored
            }
            Err(status) => {
                let (code, reason) = match status.code() {
                    Code::NotFound => (Code::NotFound, "NOT_FOUND"),
                    _ => (Code::FailedPrecondition, "RETENTION_EXPIRED"),
                };
                assert_status::<()>(Err(status), code, reason);
                *refusals.entry(reason.to_owned()).or_default() += 1;
                let end = if erased_by_pass {
                    RaceEnd::ErasedByTheRacingPass
                } else {
                    assert_eq!(
                        reason, "RETENTION_EXPIRED",
                        "trial {trial}: NOT_FOUND means it was erased, yet the pass did not"
                    );
                    let still = get_customer(&mut app.customers(), &id).await;
                    assert!(still.delete_time.is_some(), "trial {trial}: {still:?}");
                    // The refused restore's rollback is flushed when its connection goes back to
                    // the pool, a moment after the answer: wait for its row lock to be released.
                    sql.wait_for_row_lock("customer", &id).await;
                    assert_eq!(
                        ids_of(&purge_pass(&sql.store, false).await),
                        [id.as_str()],
                        "trial {trial}: the next pass erases it"
                    );
                    RaceEnd::ErasedByTheNextPass
                };
                get_is_not_found(&app, &id).await;
                assert_eq!(
                    sql.record_rows(&id).await,
                    [0, 0, 0, 1, 0, 0],
                    "trial {trial}: cascade rows gone, the paid order kept"
                );
                assert_eq!(sql.live_rows("sales_order", &id).await, 1);
                assert_eq!(app.audit_count(&id, "customer.purge").await, 1);
                assert_eq!(app.audit_count(&id, "customer.restore").await, 0);
                end
            }
        };
        *ends.entry(end).or_default() += 1;
    }
    assert_eq!(ends.values().sum::<usize>(), TRIALS);
    assert!(app.verify_audit().await.valid);
    figure(format_args!(
        "restore vs purger at purge_time ({:?}, {TRIALS} trials): {ends:?}; restore refused with {refusals:?}",
        app.db
    ));
}

/// At zero retention the restore can never win against the purger (it refuses once purge_time
/// has passed); within the retention it races an admin's PurgeCustomer, and either may win.
async fn a_restore_racing_purge_customer_ends_restored_or_erased_never_both(app: TestApp) {
    const TRIALS: usize = 20;
    let sql = Sql::open(&app).await;
    let (mut restored_n, mut erased_n) = (0, 0);
    for trial in 0..TRIALS {
        let customer = small_customer(&app, &format!("Contested {trial}")).await;
        let id = customer.id.clone();
        let before = app.snapshot(&id).await;
        let rows_before = sql.record_rows(&id).await;
        app.delete_customer(&id).await;

        let (mut sup, mut adm) = (supervisor(&app), admin(&app));
        let (restored, purged) = tokio::join!(
            restore(&mut sup, &id, false),
            purge(&mut adm, &id, false, "")
        );
        match (restored, purged) {
            (Ok(restored), Err(refused)) => {
                assert_status::<()>(
                    Err(refused),
                    Code::FailedPrecondition,
                    "CUSTOMER_NOT_DELETED",
                );
                assert_eq!(restored.restored_records, 2);
                let back = get_customer(&mut app.customers(), &id).await;
                assert!(back.delete_time.is_none(), "trial {trial}: {back:?}");
                assert_eq!(app.snapshot(&id).await, before, "trial {trial}");
                assert_eq!(sql.record_rows(&id).await, rows_before);
                assert!(!sql.customer_row(&id).await.erased);
                assert_eq!(app.audit_count(&id, "customer.purge").await, 0);
                assert_eq!(app.audit_count(&id, "customer.restore").await, 1);
                restored_n += 1;
            }
            (Err(refused), Ok(erased)) => {
                assert_status::<()>(Err(refused), Code::NotFound, "NOT_FOUND");
                assert_eq!((erased.erased_records, erased.kept_records), (2, 1));
                get_is_not_found(&app, &id).await;
                assert_eq!(sql.record_rows(&id).await, [0, 0, 0, 1, 0, 0]);
                assert!(sql.customer_row(&id).await.erased);
                assert_eq!(app.audit_count(&id, "customer.purge").await, 1);
                assert_eq!(app.audit_count(&id, "customer.restore").await, 0);
                erased_n += 1;
            }
            other => panic!("trial {trial}: exactly one must win: {other:?}"),
        }
    }
    assert!(app.verify_audit().await.valid);
    figure(format_args!(
        "restore vs PurgeCustomer within the retention ({:?}, {TRIALS} trials): {restored_n} restored, {erased_n} erased",
        app.db
    ));
}

async fn two_purge_passes_at_once_erase_each_due_customer_exactly_once(app: TestApp) {
    const CUSTOMERS: usize = 20;
    const BATCH: u64 = 3;
    let app = zero_retention(app).await;
    let sql = Sql::open(&app).await;
    let mut due = BTreeSet::new();
    for n in 0..CUSTOMERS {
        let customer = small_customer(&app, &format!("Due {n}")).await;
        app.delete_customer(&customer.id).await;
        due.insert(customer.id);
    }

    // Two replicas' purgers, each on its own pool, each draining in batches as the server does.
    let (a, b) = (
        Purges::new(app.store().await, Clock::system()),
        Purges::new(app.store().await, Clock::system()),
    );
    async fn drain(purges: &Purges) -> Vec<String> {
        let mut out = Vec::new();
        loop {
            let report = purges.run_due(BATCH, false).await.expect("purge pass");
            out.extend(ids_of(&report));
            if (report.erased.len() as u64) < BATCH {
                return out;
            }
        }
    }
    let (by_a, by_b) = tokio::join!(drain(&a), drain(&b));
    let all: BTreeSet<String> = by_a.iter().chain(&by_b).cloned().collect();
    assert_eq!(
        by_a.len() + by_b.len(),
        CUSTOMERS,
        "no customer erased twice: {by_a:?} {by_b:?}"
    );
    assert_eq!(all, due, "every due customer erased");
    for id in &due {
        assert_eq!(
            app.audit_count(id, "customer.purge").await,
            1,
            "{id} erased once"
        );
        get_is_not_found(&app, id).await;
        assert_eq!(sql.record_rows(id).await, [0, 0, 0, 1, 0, 0]);
    }
    assert_eq!(sql.erased_customers().await, CUSTOMERS as i64);
    assert!(app.verify_audit().await.valid);
    assert_eq!(purge_pass(&sql.store, false).await, PurgeReport::default());
    figure(format_args!(
        "two purgers at once over {CUSTOMERS} due customers (batch {BATCH}): {} + {} erased",
        by_a.len(),
        by_b.len()
    ));
}
