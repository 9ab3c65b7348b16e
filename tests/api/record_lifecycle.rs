//! The lifecycle of a record deleted on its own (contact, deal, draft contract, project,
//! activity): the delete gives it a purge_time (delete_time + the retention), a supervisor or an
//! admin can restore it before then, and the purger erases it after, unless its customer is under
//! legal hold. Records deleted with their customer follow the customer instead. Every outcome is
//! checked through the API and, where erasure must be proven, in the stored rows (by SQL).
//!
//! A zero retention makes a record due the moment it is deleted, so no test sleeps.

use crm_service::domain::Clock;
use crm_service::domain::purge::{PurgeReport, Purges};
use crm_service::proto::crm::v1 as pb;
use crm_service::proto::crm::v1::customer_event_service_client::CustomerEventServiceClient;
use crm_service::store::Store;
use sea_orm::{ConnectionTrait, DatabaseBackend, Statement};
use tonic::{Code, Status};
use uuid::Uuid;

use crate::common::{
    Bearer, Kind, Records, TestApp, assert_status, create_record, get_customer, random_id,
    request_id, restore as restore_customer,
};
use crate::purge::zero_retention;

crate::on_both_databases!(
    deleting_any_record_on_its_own_sets_its_purge_time_to_delete_time_plus_the_retention,
    a_record_deleted_on_its_own_is_listed_only_with_show_deleted,
    a_supervisor_or_an_admin_restores_a_record_deleted_on_its_own_exactly_as_it_was,
    sales_reps_and_services_may_not_restore_a_record_even_one_that_does_not_exist,
    a_validate_only_restore_checks_everything_and_writes_nothing,
    restore_refuses_a_stale_etag_a_live_record_and_ids_it_cannot_see,
    a_record_of_a_deleted_customer_is_restored_only_through_its_customer,
    past_its_purge_time_a_record_cannot_be_restored_even_before_the_purger_runs,
    a_retried_restore_returns_the_first_answer_and_restores_once,
    a_restore_is_audited_with_ids_only_and_publishes_a_record_changed_event,
    a_restore_makes_an_open_deletion_request_of_the_customer_stale,
    the_purger_erases_records_deleted_on_their_own_once_their_purge_time_passes,
    the_purger_never_erases_a_record_deleted_with_its_customer_on_its_own,
    the_purger_leaves_the_deleted_records_of_a_customer_under_legal_hold,
    the_purge_command_lists_records_deleted_on_their_own_in_a_dry_run_then_erases_them,
);

/// The kinds that have a delete (and so a restore) of their own.
const DELETABLE: [Kind; 5] = [
    Kind::Contact,
    Kind::Deal,
    Kind::Contract,
    Kind::Project,
    Kind::Activity,
];

const RETENTION_SECONDS: i64 = 30 * 24 * 3600;

// ----- set-up ---------------------------------------------------------------------------------

fn supervisor(app: &TestApp) -> Records {
    app.records_as("acme", "sup-1", &["supervisor"])
}

fn admin(app: &TestApp) -> Records {
    app.records_as("acme", "admin-1", &["admin"])
}

/// A record of any kind, every field as the API returns it.
#[derive(Debug, Clone, PartialEq)]
struct Full {
    id: String,
    customer_id: String,
    etag: String,
    update_time: Option<prost_types::Timestamp>,
    delete_time: Option<prost_types::Timestamp>,
    purge_time: Option<prost_types::Timestamp>,
    /// Every other field (the kind's own, id, customer_id, create_time), as one text.
    fields: String,
}

macro_rules! full {
    ($m:expr) => {{
        let m = $m;
        Full {
            id: m.id.clone(),
            customer_id: m.customer_id.clone(),
            etag: m.etag.clone(),
            update_time: m.update_time,
            delete_time: m.delete_time,
            purge_time: m.purge_time,
            fields: format!(
                "{:?}",
                without_lifecycle_fields(m, |m| {
                    m.etag.clear();
                    m.update_time = None;
                    m.delete_time = None;
                    m.purge_time = None;
                })
            ),
        }
    }};
}

fn without_lifecycle_fields<M>(mut m: M, clear: impl FnOnce(&mut M)) -> M {
    clear(&mut m);
    m
}

async fn get(r: &mut Records, kind: Kind, id: &str) -> Result<Full, Status> {
    let id = id.to_owned();
    Ok(match kind {
        Kind::Contact => full!(
            r.get_contact(pb::GetContactRequest { contact_id: id })
                .await?
                .into_inner()
                .contact
                .unwrap()
        ),
        Kind::Deal => full!(
            r.get_deal(pb::GetDealRequest { deal_id: id })
                .await?
                .into_inner()
                .deal
                .unwrap()
        ),
        Kind::Order => full!(
            r.get_order(pb::GetOrderRequest { order_id: id })
                .await?
                .into_inner()
                .order
                .unwrap()
        ),
        Kind::Contract => full!(
            r.get_contract(pb::GetContractRequest { contract_id: id })
                .await?
                .into_inner()
                .contract
                .unwrap()
        ),
        Kind::Project => full!(
            r.get_project(pb::GetProjectRequest { project_id: id })
                .await?
                .into_inner()
                .project
                .unwrap()
        ),
        Kind::Activity => full!(
            r.get_activity(pb::GetActivityRequest { activity_id: id })
                .await?
                .into_inner()
                .activity
                .unwrap()
        ),
    })
}

/// A new record of `kind` for `customer_id`, read back whole.
async fn create(r: &mut Records, kind: Kind, customer_id: &str) -> Full {
    let created = create_record(r, kind, customer_id)
        .await
        .expect("create record");
    get(r, kind, &created.id).await.expect("get record")
}

/// Delete<Kind> (not for orders) with `request_id` (empty: none).
async fn delete_with(
    r: &mut Records,
    kind: Kind,
    id: &str,
    request_id: &str,
) -> Result<Full, Status> {
    let (id, etag, request_id) = (id.to_owned(), String::new(), request_id.to_owned());
    Ok(match kind {
        Kind::Contact => full!(
            r.delete_contact(pb::DeleteContactRequest {
                contact_id: id,
                etag,
                request_id
            })
            .await?
            .into_inner()
            .contact
            .unwrap()
        ),
        Kind::Deal => full!(
            r.delete_deal(pb::DeleteDealRequest {
                deal_id: id,
                etag,
                request_id
            })
            .await?
            .into_inner()
            .deal
            .unwrap()
        ),
        Kind::Contract => full!(
            r.delete_contract(pb::DeleteContractRequest {
                contract_id: id,
                etag,
                request_id
            })
            .await?
            .into_inner()
            .contract
            .unwrap()
        ),
        Kind::Project => full!(
            r.delete_project(pb::DeleteProjectRequest {
                project_id: id,
                etag,
                request_id
            })
            .await?
            .into_inner()
            .project
            .unwrap()
        ),
        Kind::Activity => full!(
            r.delete_activity(pb::DeleteActivityRequest {
                activity_id: id,
                etag,
                request_id
            })
            .await?
            .into_inner()
            .activity
            .unwrap()
        ),
        Kind::Order => panic!("orders have no delete"),
    })
}

async fn delete(r: &mut Records, kind: Kind, id: &str) -> Full {
    delete_with(r, kind, id, "").await.expect("delete record")
}

/// Restore<Kind> (not for orders).
async fn restore(
    r: &mut Records,
    kind: Kind,
    id: &str,
    etag: &str,
    validate_only: bool,
    request_id: &str,
) -> Result<Full, Status> {
    let (id, etag, request_id) = (id.to_owned(), etag.to_owned(), request_id.to_owned());
    Ok(match kind {
        Kind::Contact => full!(
            r.restore_contact(pb::RestoreContactRequest {
                contact_id: id,
                etag,
                validate_only,
                request_id
            })
            .await?
            .into_inner()
            .contact
            .unwrap()
        ),
        Kind::Deal => full!(
            r.restore_deal(pb::RestoreDealRequest {
                deal_id: id,
                etag,
                validate_only,
                request_id
            })
            .await?
            .into_inner()
            .deal
            .unwrap()
        ),
        Kind::Contract => full!(
            r.restore_contract(pb::RestoreContractRequest {
                contract_id: id,
                etag,
                validate_only,
                request_id
            })
            .await?
            .into_inner()
            .contract
            .unwrap()
        ),
        Kind::Project => full!(
            r.restore_project(pb::RestoreProjectRequest {
                project_id: id,
                etag,
                validate_only,
                request_id
            })
            .await?
            .into_inner()
            .project
            .unwrap()
        ),
        Kind::Activity => full!(
            r.restore_activity(pb::RestoreActivityRequest {
                activity_id: id,
                etag,
                validate_only,
                request_id
            })
            .await?
            .into_inner()
            .activity
            .unwrap()
        ),
        Kind::Order => panic!("orders have no restore"),
    })
}

/// Every record of `kind` of the customer, with or without the deleted ones.
async fn list(r: &mut Records, kind: Kind, customer_id: &str, show_deleted: bool) -> Vec<Full> {
    macro_rules! all {
        ($rpc:ident, $Req:ident, $field:ident) => {
            r.$rpc(pb::$Req {
                customer_id: customer_id.into(),
                page_size: 1000,
                page_token: String::new(),
                show_deleted,
            })
            .await
            .expect("list records")
            .into_inner()
            .$field
            .into_iter()
            .map(|m| full!(m))
            .collect()
        };
    }
    match kind {
        Kind::Contact => all!(list_contacts, ListContactsRequest, contacts),
        Kind::Deal => all!(list_deals, ListDealsRequest, deals),
        Kind::Order => all!(list_orders, ListOrdersRequest, orders),
        Kind::Contract => all!(list_contracts, ListContractsRequest, contracts),
        Kind::Project => all!(list_projects, ListProjectsRequest, projects),
        Kind::Activity => all!(list_activities, ListActivitiesRequest, activities),
    }
}

fn seconds_between(from: &prost_types::Timestamp, to: &prost_types::Timestamp) -> (i64, i32) {
    (to.seconds - from.seconds, to.nanos - from.nanos)
}

async fn customer_etag(app: &TestApp, id: &str) -> String {
    get_customer(&mut app.customers(), id).await.etag
}

/// The customer's events as a service reads them.
async fn customer_events(app: &TestApp, customer_id: &str) -> Vec<pb::CustomerEvent> {
    let token = app.token("acme", "billing", &["service"]);
    let mut events =
        CustomerEventServiceClient::with_interceptor(app.channel(), Bearer::new(&token));
    let mut out = Vec::new();
    let mut after = 0;
    loop {
        let page = events
            .list_customer_events(pb::ListCustomerEventsRequest {
                after_sequence: after,
                page_size: 1000,
            })
            .await
            .expect("list events")
            .into_inner();
        if page.events.is_empty() {
            break;
        }
        after = page.last_sequence;
        out.extend(
            page.events
                .into_iter()
                .filter(|e| e.customer_id == customer_id),
        );
    }
    out
}

/// One pass of the purger, in process, on a store of the test's database.
async fn purge_pass(store: &Store, dry_run: bool) -> PurgeReport {
    Purges::new(store.clone(), Clock::system())
        .run_due(100, dry_run)
        .await
        .expect("purge pass")
}

/// (tenant, kind, id) of every record the pass erased on its own.
fn records_of(report: &PurgeReport) -> Vec<(String, &'static str, String)> {
    report
        .records
        .iter()
        .map(|r| (r.tenant.clone(), r.kind.name(), r.id.to_string()))
        .collect()
}

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

    fn uuid(&self, id: &str) -> String {
        let id = Uuid::parse_str(id).expect("a uuid");
        match self.store.backend() {
            DatabaseBackend::Sqlite => format!("x'{}'", id.simple()),
            _ => format!("'{id}'"),
        }
    }

    async fn count(&self, sql: &str) -> i64 {
        self.store
            .conn()
            .query_all_raw(Statement::from_string(self.store.backend(), sql))
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))[0]
            .try_get_by_index::<i64>(0)
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    async fn execute(&self, sql: &str) {
        self.store
            .conn()
            .execute_raw(Statement::from_string(self.store.backend(), sql))
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    /// Rows of the record `id` of `kind` (0 once erased).
    async fn rows(&self, kind: Kind, id: &str) -> i64 {
        self.count(&format!(
            "SELECT COUNT(*) FROM {} WHERE id = {}",
            table(kind),
            self.uuid(id)
        ))
        .await
    }

    /// Stored idempotent answers that name `id`.
    async fn stored_answers_naming(&self, id: &str) -> i64 {
        self.count(&format!(
            "SELECT COUNT(*) FROM idempotency_key WHERE response LIKE '%{id}%'"
        ))
        .await
    }
}

fn table(kind: Kind) -> &'static str {
    match kind {
        Kind::Order => "sales_order",
        other => other.name(),
    }
}

// ----- the scenarios --------------------------------------------------------------------------

async fn deleting_any_record_on_its_own_sets_its_purge_time_to_delete_time_plus_the_retention(
    app: TestApp,
) {
    let customer = app.create_customer("Retention Ltd").await;
    let mut r = app.records();
    for kind in DELETABLE {
        let live = create(&mut r, kind, &customer.id).await;
        assert!(
            live.purge_time.is_none(),
            "{kind:?}: a live record has none"
        );
        let deleted = delete(&mut r, kind, &live.id).await;
        let (delete_time, purge_time) = (
            deleted.delete_time.expect("delete_time"),
            deleted
                .purge_time
                .unwrap_or_else(|| panic!("{kind:?}: no purge_time")),
        );
        assert_eq!(
            seconds_between(&delete_time, &purge_time),
            (RETENTION_SECONDS, 0),
            "{kind:?}: purge_time is delete_time + 30 days, the default retention"
        );
        assert_eq!(
            get(&mut r, kind, &live.id).await.unwrap(),
            deleted,
            "{kind:?}: Get shows delete_time and purge_time as the delete returned them"
        );
    }
    // Orders have no delete of their own: a live order has no purge_time.
    let order = create(&mut r, Kind::Order, &customer.id).await;
    assert!(order.delete_time.is_none() && order.purge_time.is_none());
}

async fn a_record_deleted_on_its_own_is_listed_only_with_show_deleted(app: TestApp) {
    let customer = app.create_customer("Listing Ltd").await;
    let mut r = app.records();
    for kind in DELETABLE {
        let kept = create(&mut r, kind, &customer.id).await;
        let gone = create(&mut r, kind, &customer.id).await;
        let gone = delete(&mut r, kind, &gone.id).await;
        assert_eq!(
            list(&mut r, kind, &customer.id, false).await,
            std::slice::from_ref(&kept),
            "{kind:?}"
        );
        assert_eq!(
            list(&mut r, kind, &customer.id, true).await,
            [kept, gone.clone()],
            "{kind:?}: with show_deleted, with its delete_time and purge_time"
        );
        assert!(gone.purge_time.is_some());
    }
}

async fn a_supervisor_or_an_admin_restores_a_record_deleted_on_its_own_exactly_as_it_was(
    app: TestApp,
) {
    let customer = app.create_customer("Second Chance GmbH").await;
    let mut rep = app.records();
    for (who, mut restorer) in [("supervisor", supervisor(&app)), ("admin", admin(&app))] {
        for kind in DELETABLE {
            let before = create(&mut rep, kind, &customer.id).await;
            let deleted = delete(&mut rep, kind, &before.id).await;
            let etag_deleted = customer_etag(&app, &customer.id).await;

            let restored = restore(&mut restorer, kind, &before.id, "", false, "")
                .await
                .unwrap_or_else(|e| panic!("{who} restores a {kind:?}: {e:?}"));
            assert_eq!(
                restored.fields, before.fields,
                "{who} {kind:?}: every field back"
            );
            assert!(restored.delete_time.is_none() && restored.purge_time.is_none());
            assert_ne!(
                restored.etag, deleted.etag,
                "{who} {kind:?}: the record etag moves"
            );
            assert_ne!(restored.etag, before.etag);
            assert_ne!(
                customer_etag(&app, &customer.id).await,
                etag_deleted,
                "{who} {kind:?}: the customer's graph etag moves"
            );
            assert_eq!(get(&mut rep, kind, &before.id).await.unwrap(), restored);
            assert!(
                list(&mut rep, kind, &customer.id, false)
                    .await
                    .contains(&restored),
                "{who} {kind:?}: listed as live again"
            );
        }
    }
    // A restored active project blocks the customer's deletion again, as before it was deleted.
    let preview = app.preview(&customer.id).await;
    assert!(
        preview
            .blockers
            .iter()
            .any(|b| b.reason == "ACTIVE_PROJECT"),
        "{preview:?}"
    );
}

async fn sales_reps_and_services_may_not_restore_a_record_even_one_that_does_not_exist(
    app: TestApp,
) {
    let customer = app.create_customer("No Way Back Inc").await;
    let mut rep = app.records();
    let contact = create(&mut rep, Kind::Contact, &customer.id).await;
    let deleted = delete(&mut rep, Kind::Contact, &contact.id).await;
    for role in ["sales_rep", "service"] {
        let mut r = app.records_as("acme", "someone", &[role]);
        for validate_only in [false, true] {
            assert_status(
                restore(&mut r, Kind::Contact, &contact.id, "", validate_only, "").await,
                Code::PermissionDenied,
                "ROLE_NOT_ALLOWED",
            );
        }
        // Checked before anything is read: an unknown id is not told apart.
        assert_status(
            restore(&mut r, Kind::Deal, &random_id(), "", false, "").await,
            Code::PermissionDenied,
            "ROLE_NOT_ALLOWED",
        );
    }
    assert_eq!(
        get(&mut rep, Kind::Contact, &contact.id).await.unwrap(),
        deleted
    );
}

async fn a_validate_only_restore_checks_everything_and_writes_nothing(app: TestApp) {
    let customer = app.create_customer("Dry Run AG").await;
    let mut rep = app.records();
    let mut sup = supervisor(&app);
    for kind in DELETABLE {
        let live = create(&mut rep, kind, &customer.id).await;
        assert_status(
            restore(&mut sup, kind, &live.id, "", true, "").await,
            Code::FailedPrecondition,
            "RECORD_NOT_DELETED",
        );
        let deleted = delete(&mut rep, kind, &live.id).await;
        let etag = customer_etag(&app, &customer.id).await;
        let answer = restore(&mut sup, kind, &live.id, &deleted.etag, true, &request_id())
            .await
            .expect("validate_only");
        assert_eq!(
            answer, deleted,
            "{kind:?}: the record as it is, still deleted"
        );
        assert_status(
            restore(&mut sup, kind, &live.id, "0", true, "").await,
            Code::Aborted,
            "ETAG_MISMATCH",
        );
        assert_eq!(get(&mut rep, kind, &live.id).await.unwrap(), deleted);
        assert_eq!(customer_etag(&app, &customer.id).await, etag);
    }
    assert_eq!(app.audit_count(&customer.id, "contact.restore").await, 0);
}

async fn restore_refuses_a_stale_etag_a_live_record_and_ids_it_cannot_see(app: TestApp) {
    let customer = app.create_customer("Careful Co").await;
    let mut rep = app.records();
    let mut sup = supervisor(&app);
    for kind in DELETABLE {
        let live = create(&mut rep, kind, &customer.id).await;
        let status = assert_status(
            restore(&mut sup, kind, &live.id, "", false, "").await,
            Code::FailedPrecondition,
            "RECORD_NOT_DELETED",
        );
        assert!(status.message().contains(kind.name()), "{status:?}");
        let deleted = delete(&mut rep, kind, &live.id).await;
        assert_status(
            restore(&mut sup, kind, &live.id, &live.etag, false, "").await,
            Code::Aborted,
            "ETAG_MISMATCH",
        );
        assert_eq!(get(&mut rep, kind, &live.id).await.unwrap(), deleted);
        // An id of another kind is unknown to this kind.
        let other = if kind == Kind::Contact {
            Kind::Deal
        } else {
            Kind::Contact
        };
        assert_status(
            restore(&mut sup, other, &live.id, "", false, "").await,
            Code::NotFound,
            "NOT_FOUND",
        );
        // Another tenant's supervisor sees exactly what a random id gets.
        let mut stranger = app.records_as("globex", "sup-9", &["supervisor"]);
        assert_status(
            restore(&mut stranger, kind, &live.id, "", false, "").await,
            Code::NotFound,
            "NOT_FOUND",
        );
        assert_status(
            restore(&mut sup, kind, &random_id(), "", false, "").await,
            Code::NotFound,
            "NOT_FOUND",
        );
        assert_eq!(get(&mut rep, kind, &live.id).await.unwrap(), deleted);
        // The matching etag restores.
        let restored = restore(&mut sup, kind, &live.id, &deleted.etag, false, "")
            .await
            .expect("restore with the current etag");
        assert!(restored.delete_time.is_none());
    }
    assert_status(
        sup.restore_contact(pb::RestoreContactRequest {
            contact_id: "not-a-uuid".into(),
            ..Default::default()
        })
        .await,
        Code::InvalidArgument,
        "INVALID_FIELD",
    );
}

async fn a_record_of_a_deleted_customer_is_restored_only_through_its_customer(app: TestApp) {
    let customer = app.create_customer("Gone Together SARL").await;
    let mut rep = app.records();
    let mut sup = supervisor(&app);
    let alone = create(&mut rep, Kind::Contact, &customer.id).await;
    let alone = delete(&mut rep, Kind::Contact, &alone.id).await;
    let with_customer = create(&mut rep, Kind::Activity, &customer.id).await;

    let deleted = app.delete_customer(&customer.id).await.customer.unwrap();
    let cascaded = get(&mut rep, Kind::Activity, &with_customer.id)
        .await
        .unwrap();
    assert_eq!(cascaded.delete_time, deleted.delete_time);
    assert_eq!(
        cascaded.purge_time, deleted.purge_time,
        "a record deleted with its customer shows the customer's purge_time"
    );
    assert_eq!(
        get(&mut rep, Kind::Contact, &alone.id).await.unwrap(),
        alone,
        "a record deleted on its own before keeps its own times"
    );
    for (kind, id) in [(Kind::Contact, &alone.id), (Kind::Activity, &cascaded.id)] {
        for validate_only in [true, false] {
            let status = assert_status(
                restore(&mut sup, kind, id, "", validate_only, "").await,
                Code::FailedPrecondition,
                "CUSTOMER_DELETED",
            );
            assert!(status.message().contains("restore"), "{status:?}");
        }
    }

    restore_customer(
        &mut app.customers_as("acme", "sup-1", &["supervisor"]),
        &customer.id,
        false,
    )
    .await
    .expect("restore the customer");
    let back = get(&mut rep, Kind::Activity, &with_customer.id)
        .await
        .unwrap();
    assert_eq!(back, with_customer, "the cascaded record is back as it was");
    assert_eq!(
        get(&mut rep, Kind::Contact, &alone.id).await.unwrap(),
        alone,
        "the record deleted on its own stays deleted"
    );
    let restored = restore(&mut sup, Kind::Contact, &alone.id, "", false, "")
        .await
        .expect("and can now be restored on its own");
    assert!(restored.delete_time.is_none() && restored.purge_time.is_none());
}

async fn past_its_purge_time_a_record_cannot_be_restored_even_before_the_purger_runs(app: TestApp) {
    let app = zero_retention(app).await;
    let sql = Sql::open(&app).await;
    let customer = app.create_customer("Too Late Ltd").await;
    let mut rep = app.records();
    let mut sup = supervisor(&app);
    for kind in DELETABLE {
        let live = create(&mut rep, kind, &customer.id).await;
        let deleted = delete(&mut rep, kind, &live.id).await;
        assert_eq!(
            deleted.purge_time, deleted.delete_time,
            "zero retention: due at once"
        );
        for validate_only in [true, false] {
            assert_status(
                restore(&mut sup, kind, &live.id, "", validate_only, "").await,
                Code::FailedPrecondition,
                "RETENTION_EXPIRED",
            );
        }
        assert_eq!(get(&mut rep, kind, &live.id).await.unwrap(), deleted);
        assert_eq!(sql.rows(kind, &live.id).await, 1, "the purger has not run");
    }
}

async fn a_retried_restore_returns_the_first_answer_and_restores_once(app: TestApp) {
    let customer = app.create_customer("Say It Twice").await;
    let mut rep = app.records();
    let mut sup = supervisor(&app);
    let contact = create(&mut rep, Kind::Contact, &customer.id).await;
    delete(&mut rep, Kind::Contact, &contact.id).await;
    let key = request_id();
    let first = restore(&mut sup, Kind::Contact, &contact.id, "", false, &key)
        .await
        .expect("restore");
    // Deleted again in between: a retry replays the first answer, it does not restore again.
    let deleted_again = delete(&mut rep, Kind::Contact, &contact.id).await;
    let retry = restore(&mut sup, Kind::Contact, &contact.id, "", false, &key)
        .await
        .expect("retry");
    assert_eq!(retry, first);
    assert_eq!(
        get(&mut rep, Kind::Contact, &contact.id).await.unwrap(),
        deleted_again
    );
    assert_eq!(app.audit_count(&customer.id, "contact.restore").await, 1);
    // The same key with other arguments is a mistake.
    assert_status(
        restore(&mut sup, Kind::Contact, &contact.id, "7", false, &key).await,
        Code::InvalidArgument,
        "REQUEST_ID_REUSED",
    );
}

async fn a_restore_is_audited_with_ids_only_and_publishes_a_record_changed_event(app: TestApp) {
    let customer = app.create_customer("Paper Trail plc").await;
    let mut rep = app.records();
    let mut sup = supervisor(&app);
    let mut restored_ids = Vec::new();
    for kind in DELETABLE {
        let live = create(&mut rep, kind, &customer.id).await;
        delete(&mut rep, kind, &live.id).await;
        let key = request_id();
        restore(&mut sup, kind, &live.id, "", false, &key)
            .await
            .expect("restore");
        let action = format!("{}.restore", kind.name());
        let events = app
            .audit_events(pb::ListAuditEventsRequest {
                customer_id: customer.id.clone(),
                action: action.clone(),
                ..Default::default()
            })
            .await;
        assert_eq!(events.len(), 1, "{events:?}");
        let event = &events[0];
        assert_eq!(
            (
                event.actor.as_str(),
                event.target_type.as_str(),
                event.target_id.as_str(),
                event.customer_id.as_str(),
                event.request_id.as_str()
            ),
            (
                "sup-1",
                kind.name(),
                live.id.as_str(),
                customer.id.as_str(),
                key.as_str()
            )
        );
        assert_eq!(event.summary, "restored", "ids only, no personal data");
        restored_ids.push((kind.name(), live.id.clone(), action));
    }
    let verdict = app.verify_audit().await;
    assert!(verdict.valid, "{verdict:?}");

    let events = customer_events(&app, &customer.id).await;
    for (kind, id, action) in restored_ids {
        let found: Vec<_> = events.iter().filter(|e| e.action == action).collect();
        assert_eq!(found.len(), 1, "{action}: {events:?}");
        assert_eq!(
            found[0].r#type(),
            pb::CustomerEventType::RecordChanged,
            "{action}"
        );
        assert_eq!(
            (found[0].record_type.as_str(), &found[0].record_id),
            (kind, &id)
        );
    }
}

async fn a_restore_makes_an_open_deletion_request_of_the_customer_stale(app: TestApp) {
    let customer = app.create_customer("Moving Target").await;
    let mut rep = app.records();
    let contact = create(&mut rep, Kind::Contact, &customer.id).await;
    delete(&mut rep, Kind::Contact, &contact.id).await;
    let pending = app.pending_deletion(&customer.id, "duplicate").await;
    restore(
        &mut supervisor(&app),
        Kind::Contact,
        &contact.id,
        "",
        false,
        "",
    )
    .await
    .expect("restore");
    assert_status(
        crate::common::approve(
            &mut app.approvals_as("acme", "sup-2", &["supervisor"]),
            &pending.id,
        )
        .await,
        Code::FailedPrecondition,
        "PREVIEW_STALE",
    );
}

async fn the_purger_erases_records_deleted_on_their_own_once_their_purge_time_passes(app: TestApp) {
    let app = zero_retention(app).await;
    let sql = Sql::open(&app).await;
    let customer = app.create_customer("Forget The Details").await;
    let bystander = app.create_customer("Bystander").await;
    let mut rep = app.records();
    let live_contact = create(&mut rep, Kind::Contact, &customer.id).await;
    let bystander_contact = create(&mut rep, Kind::Contact, &bystander.id).await;
    let mut gone = Vec::new();
    for kind in DELETABLE {
        let record = create(&mut rep, kind, &customer.id).await;
        // With a request_id: the stored answer carries the record's data, erasure must drop it.
        delete_with(&mut rep, kind, &record.id, &request_id())
            .await
            .expect("delete");
        assert_eq!(sql.rows(kind, &record.id).await, 1);
        assert_eq!(sql.stored_answers_naming(&record.id).await, 1);
        gone.push((kind, record.id));
    }
    let etag = customer_etag(&app, &customer.id).await;

    let dry = purge_pass(&sql.store, true).await;
    let expected: Vec<_> = gone
        .iter()
        .map(|(kind, id)| ("acme".to_owned(), kind.name(), id.clone()))
        .collect();
    let mut listed = records_of(&dry);
    listed.sort();
    let mut sorted = expected.clone();
    sorted.sort();
    assert_eq!(listed, sorted, "a dry run lists them");
    assert!(dry.erased.is_empty());
    for (kind, id) in &gone {
        assert_eq!(sql.rows(*kind, id).await, 1, "a dry run erases nothing");
    }

    let report = purge_pass(&sql.store, false).await;
    let mut erased = records_of(&report);
    erased.sort();
    assert_eq!(erased, sorted);
    assert!(report.erased.is_empty(), "no customer was due");
    assert!(
        report
            .records
            .iter()
            .all(|r| r.customer_id.to_string() == customer.id)
    );
    for (kind, id) in &gone {
        assert_eq!(sql.rows(*kind, id).await, 0, "{kind:?} erased for good");
        assert_eq!(
            sql.stored_answers_naming(id).await,
            0,
            "{kind:?}: no stored answer names it any more"
        );
        assert_status(get(&mut rep, *kind, id).await, Code::NotFound, "NOT_FOUND");
        assert_status(
            restore(&mut supervisor(&app), *kind, id, "", false, "").await,
            Code::NotFound,
            "NOT_FOUND",
        );
        let action = format!("{}.purge", kind.name());
        let events = app
            .audit_events(pb::ListAuditEventsRequest {
                customer_id: customer.id.clone(),
                action: action.clone(),
                ..Default::default()
            })
            .await;
        assert_eq!(events.len(), 1, "{action}: {events:?}");
        assert_eq!(
            (
                events[0].actor.as_str(),
                events[0].target_type.as_str(),
                events[0].target_id.as_str(),
                events[0].summary.as_str()
            ),
            ("system:purger", kind.name(), id.as_str(), "by=retention")
        );
    }
    let verdict = app.verify_audit().await;
    assert!(verdict.valid, "the audit chain still verifies: {verdict:?}");
    let events = customer_events(&app, &customer.id).await;
    for (kind, id) in &gone {
        let action = format!("{}.purge", kind.name());
        assert!(
            events.iter().any(|e| e.action == action
                && e.r#type() == pb::CustomerEventType::RecordChanged
                && &e.record_id == id),
            "{action}: {events:?}"
        );
    }

    // Live records and the customers stay as they were; the live graph did not change.
    assert_eq!(
        get(&mut rep, Kind::Contact, &live_contact.id)
            .await
            .unwrap(),
        live_contact
    );
    assert_eq!(
        get(&mut rep, Kind::Contact, &bystander_contact.id)
            .await
            .unwrap(),
        bystander_contact
    );
    assert_eq!(customer_etag(&app, &customer.id).await, etag);
    // Nothing is due any more.
    assert_eq!(purge_pass(&sql.store, false).await, PurgeReport::default());
}

async fn the_purger_never_erases_a_record_deleted_with_its_customer_on_its_own(app: TestApp) {
    let sql = Sql::open(&app).await;
    let customer = app.create_customer("Still Restorable").await;
    let mut rep = app.records();
    let before = create(&mut rep, Kind::Contact, &customer.id).await;
    app.delete_customer(&customer.id).await;
    // Even with its own purge_time in the past (the customer's is 30 days away), the record
    // follows its customer: only the customer's erasure removes it.
    sql.execute(&format!(
        "UPDATE contact SET purge_time = delete_time WHERE id = {}",
        sql.uuid(&before.id)
    ))
    .await;
    assert_eq!(purge_pass(&sql.store, true).await, PurgeReport::default());
    assert_eq!(purge_pass(&sql.store, false).await, PurgeReport::default());
    assert_eq!(sql.rows(Kind::Contact, &before.id).await, 1);
    restore_customer(
        &mut app.customers_as("acme", "sup-1", &["supervisor"]),
        &customer.id,
        false,
    )
    .await
    .expect("restore the customer");
    assert_eq!(
        get(&mut rep, Kind::Contact, &before.id).await.unwrap(),
        before,
        "back with its customer"
    );

    // With the customer due too, the customer's erasure takes its records and counts them; they
    // are not listed again as records erased on their own.
    let app = zero_retention(app).await;
    let sql = Sql::open(&app).await;
    let customer = app.create_customer("Erased Together").await;
    let mut rep = app.records();
    let cascaded = create(&mut rep, Kind::Contact, &customer.id).await;
    let alone = create(&mut rep, Kind::Deal, &customer.id).await;
    delete(&mut rep, Kind::Deal, &alone.id).await;
    app.delete_customer(&customer.id).await;
    let report = purge_pass(&sql.store, false).await;
    assert_eq!(report.erased.len(), 1, "{report:?}");
    assert_eq!(report.erased[0].1.erased_records, 2);
    assert!(report.records.is_empty(), "{report:?}");
    assert_eq!(sql.rows(Kind::Contact, &cascaded.id).await, 0);
    assert_eq!(sql.rows(Kind::Deal, &alone.id).await, 0);
    assert_eq!(app.audit_count(&customer.id, "contact.purge").await, 0);
    assert_eq!(app.audit_count(&customer.id, "customer.purge").await, 1);
}

async fn the_purger_leaves_the_deleted_records_of_a_customer_under_legal_hold(app: TestApp) {
    let app = zero_retention(app).await;
    let sql = Sql::open(&app).await;
    let held = app.create_customer("Held Corp").await;
    let free = app.create_customer("Free Corp").await;
    let mut rep = app.records();
    let held_contact = create(&mut rep, Kind::Contact, &held.id).await;
    let held_contact = delete(&mut rep, Kind::Contact, &held_contact.id).await;
    let free_contact = create(&mut rep, Kind::Contact, &free.id).await;
    delete(&mut rep, Kind::Contact, &free_contact.id).await;
    let mut admin_customers = app.customers_as("acme", "admin-1", &["admin"]);
    let set_hold = |hold: bool| pb::SetLegalHoldRequest {
        customer_id: held.id.clone(),
        legal_hold: hold,
        reason: "case 2027-17".into(),
        request_id: String::new(),
    };
    admin_customers
        .set_legal_hold(set_hold(true))
        .await
        .expect("hold");

    for dry_run in [true, false] {
        let report = purge_pass(&sql.store, dry_run).await;
        assert_eq!(
            records_of(&report),
            [("acme".to_owned(), "contact", free_contact.id.clone())],
            "dry_run={dry_run}: a hold keeps everything"
        );
    }
    assert_eq!(sql.rows(Kind::Contact, &free_contact.id).await, 0);
    assert_eq!(sql.rows(Kind::Contact, &held_contact.id).await, 1);
    assert_eq!(
        get(&mut rep, Kind::Contact, &held_contact.id)
            .await
            .unwrap(),
        held_contact
    );
    assert_eq!(app.audit_count(&held.id, "contact.purge").await, 0);

    admin_customers
        .set_legal_hold(set_hold(false))
        .await
        .expect("lift");
    let report = purge_pass(&sql.store, false).await;
    assert_eq!(
        records_of(&report),
        [("acme".to_owned(), "contact", held_contact.id.clone())],
        "erased once the hold is lifted"
    );
    assert_eq!(sql.rows(Kind::Contact, &held_contact.id).await, 0);
}

async fn the_purge_command_lists_records_deleted_on_their_own_in_a_dry_run_then_erases_them(
    app: TestApp,
) {
    let app = zero_retention(app).await;
    let sql = Sql::open(&app).await;
    let customer = app.create_customer("Command Line Ltd").await;
    let mut rep = app.records();
    let contact = create(&mut rep, Kind::Contact, &customer.id).await;
    delete(&mut rep, Kind::Contact, &contact.id).await;
    let project = create(&mut rep, Kind::Project, &customer.id).await;
    delete(&mut rep, Kind::Project, &project.id).await;
    let line = |verb: &str, kind: &str, id: &str| {
        format!(
            "{verb} tenant acme {kind} {id} of customer {} (deleted on its own)",
            customer.id
        )
    };

    assert_eq!(
        crate::purge::purge_command(&app, true).await,
        [
            line("would erase", "contact", &contact.id),
            line("would erase", "project", &project.id),
            "0 customer(s) due for erasure".to_owned(),
            "2 record(s) deleted on their own due for erasure".to_owned(),
        ]
    );
    assert_eq!(sql.rows(Kind::Contact, &contact.id).await, 1);
    assert_eq!(sql.rows(Kind::Project, &project.id).await, 1);

    assert_eq!(
        crate::purge::purge_command(&app, false).await,
        [
            line("erased", "contact", &contact.id),
            line("erased", "project", &project.id),
            "0 customer(s) erased".to_owned(),
            "2 record(s) deleted on their own erased".to_owned(),
        ]
    );
    assert_eq!(sql.rows(Kind::Contact, &contact.id).await, 0);
    assert_eq!(sql.rows(Kind::Project, &project.id).await, 0);
    assert_eq!(
        crate::purge::purge_command(&app, false).await,
        [
            "0 customer(s) erased",
            "0 record(s) deleted on their own erased"
        ]
    );
}
