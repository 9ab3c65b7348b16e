//! The test harness: starts the real server on an ephemeral port against a fresh database (a temp
//! SQLite file, or a PostgreSQL schema of its own) and hands out generated clients with tokens.
//!
//! PostgreSQL comes from `CRM_TEST_DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/test`).
//! If it cannot be reached, PostgreSQL tests print `SKIPPED` with the reason, except under
//! `CI=true`, where that is a failure.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crm_service::app::{Application, JwtSettings, Limits, Settings, Shutdown};
use crm_service::auth::{TokenRequest, mint};
use crm_service::domain::Clock;
use crm_service::domain::batches::BatchSettings;
use crm_service::domain::deletion::LifecycleSettings;
use crm_service::proto::crm::v1 as pb;
use crm_service::proto::crm::v1::customer_service_client::CustomerServiceClient;
use crm_service::proto::crm::v1::record_service_client::RecordServiceClient;
use crm_service::store::{SessionLimits, Store, StoreConfig};
use sea_orm::{ConnectionTrait, Database, TransactionTrait};
use tokio::sync::oneshot;
use tonic::metadata::MetadataValue;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic::{Code, Request, Status};
use tonic_types::StatusExt;
use uuid::Uuid;

pub const SECRET: &str = "test-secret-0123456789abcdef-0123456789";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Db {
    Sqlite,
    Postgres,
}

pub fn postgres_url() -> String {
    std::env::var("CRM_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// Runs `$scenario(app)` once per database, as `sqlite::$scenario` and `postgres::$scenario`.
#[macro_export]
macro_rules! on_both_databases {
    ($($scenario:ident),* $(,)?) => {
        mod sqlite {
            $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $scenario() {
                let app = $crate::common::TestApp::spawn($crate::common::Db::Sqlite).await.expect("sqlite");
                super::$scenario(app).await;
            }
            )*
        }
        mod postgres {
            $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $scenario() {
                let Some(app) = $crate::common::TestApp::spawn($crate::common::Db::Postgres).await else { return };
                super::$scenario(app).await;
            }
            )*
        }
    };
}

pub struct TestApp {
    pub addr: SocketAddr,
    pub db: Db,
    pub database_url: String,
    pub schema: Option<String>,
    channel: Channel,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<Result<(), String>>>,
    dir: Option<PathBuf>,
    /// What the server was started with, for `restart`.
    settings: Settings,
}

pub type AuthedChannel = InterceptedService<Channel, Bearer>;

/// Adds `authorization: Bearer <token>` to every call.
#[derive(Clone)]
pub struct Bearer(Option<MetadataValue<tonic::metadata::Ascii>>);

impl Bearer {
    /// `authorization: Bearer <token>` on every call.
    pub fn new(token: &str) -> Self {
        Bearer(Some(
            format!("Bearer {token}").parse().expect("ascii token"),
        ))
    }
}

impl tonic::service::Interceptor for Bearer {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(value) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        Ok(request)
    }
}

impl TestApp {
    /// A fresh server on a fresh database, or `None` when PostgreSQL is out of reach outside CI.
    pub async fn spawn(db: Db) -> Option<TestApp> {
        Self::start(db, None, |_| {}).await
    }

    /// Like `spawn`, with other JWT settings (e.g. a public key).
    pub async fn spawn_with(db: Db, jwt: JwtSettings) -> Option<TestApp> {
        Self::start(db, None, |settings| settings.jwt = jwt).await
    }

    /// Like `spawn`, on PostgreSQL schema `schema` (another replica of an existing test app when
    /// it names that app's schema).
    pub async fn spawn_on(db: Db, schema: Option<String>) -> Option<TestApp> {
        Self::start(db, schema, |_| {}).await
    }

    /// Like `spawn`, with other lifecycle settings (e.g. a zero retention, so that a customer is
    /// due for erasure as soon as it is deleted).
    pub async fn spawn_with_lifecycle(db: Db, lifecycle: LifecycleSettings) -> Option<TestApp> {
        Self::start(db, None, |settings| settings.lifecycle = lifecycle).await
    }

    /// Like `spawn`, with any setting changed (limits, pool, TLS…).
    pub async fn spawn_configured(
        db: Db,
        configure: impl FnOnce(&mut Settings),
    ) -> Option<TestApp> {
        Self::start(db, None, configure).await
    }

    /// A `TestApp` for a server that runs elsewhere (a child process, see `process.rs`): the
    /// same clients and helpers, talking to `addr`.
    pub async fn attach(
        addr: SocketAddr,
        db: Db,
        database_url: &str,
        schema: Option<String>,
    ) -> TestApp {
        let channel = Channel::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect()
            .await
            .expect("connects");
        TestApp {
            addr,
            db,
            database_url: database_url.to_owned(),
            schema: schema.clone(),
            channel,
            shutdown: None,
            server: None,
            dir: None,
            settings: Self::test_settings(database_url, schema),
        }
    }

    /// The settings of a test server on `database_url`.
    pub fn test_settings(database_url: &str, schema: Option<String>) -> Settings {
        Settings {
            listen: "127.0.0.1:0".parse().unwrap(),
            limits: Limits::default(),
            tls: None,
            health_listen: None,
            shutdown: Shutdown::default(),
            database: StoreConfig {
                url: database_url.to_owned(),
                schema,
                max_connections: 4,
                reader_connections: 0,
                acquire_timeout: Duration::from_secs(5),
                session: SessionLimits::default(),
            },
            jwt: Self::test_jwt(),
            lifecycle: LifecycleSettings::default(),
            batches: BatchSettings {
                poll_interval: Duration::from_millis(200),
                ..BatchSettings::default()
            },
            idempotency_key_ttl: Duration::from_secs(24 * 3600),
            purge_interval: None,
            clock: Clock::adjustable(),
        }
    }

    /// Moves the server's clock forward: requests expire, retention passes, as they would with
    /// time, and nothing in the database is rewritten behind the service's back.
    pub fn advance_clock(&self, by: Duration) {
        self.settings.clock.advance(by);
    }

    fn test_jwt() -> JwtSettings {
        JwtSettings {
            secret: Some(SECRET.into()),
            ..Default::default()
        }
    }

    async fn start(
        db: Db,
        schema: Option<String>,
        configure: impl FnOnce(&mut Settings),
    ) -> Option<TestApp> {
        let (database_url, schema, dir) = match db {
            Db::Sqlite => {
                let dir =
                    std::env::temp_dir().join(format!("crm-test-{}", Uuid::now_v7().simple()));
                std::fs::create_dir_all(&dir).expect("temp dir");
                (
                    format!("sqlite://{}", dir.join("crm.db").display()),
                    None,
                    Some(dir),
                )
            }
            Db::Postgres => {
                let url = postgres_url();
                if let Err(why) = reachable(&url).await {
                    if std::env::var("CI").as_deref() == Ok("true") {
                        panic!("PostgreSQL at {url} is unreachable under CI=true: {why}");
                    }
                    // Straight to stderr: libtest captures eprintln! of passing tests, and a
                    // skip must show.
                    use std::io::Write as _;
                    let _ = writeln!(
                        std::io::stderr(),
                        "SKIPPED: PostgreSQL at {url} is unreachable ({why}); set CRM_TEST_DATABASE_URL"
                    );
                    return None;
                }
                let schema = schema.unwrap_or_else(|| format!("t_{}", Uuid::now_v7().simple()));
                (url, Some(schema), None)
            }
        };
        let mut settings = Self::test_settings(&database_url, schema.clone());
        configure(&mut settings);
        let app = Application::build(settings.clone())
            .await
            .expect("server starts");
        let addr = app.local_addr();
        let (tx, rx) = oneshot::channel::<()>();
        let server = tokio::spawn(app.run_until(async move {
            let _ = rx.await;
        }));
        let channel = Channel::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect()
            .await
            .expect("connects");
        Some(TestApp {
            addr,
            db,
            database_url,
            schema,
            channel,
            shutdown: Some(tx),
            server: Some(server),
            dir,
            settings,
        })
    }

    /// Stops the server (dropping every open call) and starts a new one on the same database,
    /// on a new port: clients made after this talk to the new server.
    pub async fn restart(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            server.abort();
            let _ = server.await;
        }
        let settings = self.settings.clone();
        let app = Application::build(settings).await.expect("server restarts");
        self.addr = app.local_addr();
        let (tx, rx) = oneshot::channel::<()>();
        self.server = Some(tokio::spawn(app.run_until(async move {
            let _ = rx.await;
        })));
        self.shutdown = Some(tx);
        self.channel = Channel::from_shared(format!("http://{}", self.addr))
            .unwrap()
            .connect()
            .await
            .expect("connects");
    }

    pub fn token(&self, tenant: &str, user: &str, roles: &[&str]) -> String {
        mint(
            SECRET.as_bytes(),
            &TokenRequest {
                tenant: tenant.into(),
                subject: user.into(),
                roles: roles.iter().map(|r| r.to_string()).collect(),
                ttl: Duration::from_secs(600),
                issuer: None,
                audience: None,
            },
        )
        .unwrap()
    }

    fn bearer(token: Option<&str>) -> Bearer {
        Bearer(token.map(|t| format!("Bearer {t}").parse().expect("ascii token")))
    }

    pub fn channel(&self) -> Channel {
        self.channel.clone()
    }

    /// CustomerService as `user` of `tenant` with `roles`.
    pub fn customers_as(
        &self,
        tenant: &str,
        user: &str,
        roles: &[&str],
    ) -> CustomerServiceClient<AuthedChannel> {
        let token = self.token(tenant, user, roles);
        CustomerServiceClient::with_interceptor(self.channel(), Self::bearer(Some(&token)))
    }

    /// CustomerService as a sales rep of tenant `acme`.
    pub fn customers(&self) -> CustomerServiceClient<AuthedChannel> {
        self.customers_as("acme", "rep-1", &["sales_rep"])
    }

    /// CustomerService with a raw authorization value (or none).
    pub fn customers_with_token(
        &self,
        token: Option<&str>,
    ) -> CustomerServiceClient<AuthedChannel> {
        CustomerServiceClient::with_interceptor(self.channel(), Self::bearer(token))
    }

    /// CustomerService sending `header` verbatim as `authorization` (or no header at all).
    pub fn customers_with_header(&self, header: Option<&str>) -> Customers {
        let value = header.map(|h| h.parse().expect("ascii header"));
        CustomerServiceClient::with_interceptor(self.channel(), Bearer(value))
    }

    /// RecordService sending `header` verbatim as `authorization` (or no header at all).
    pub fn records_with_header(&self, header: Option<&str>) -> Records {
        let value = header.map(|h| h.parse().expect("ascii header"));
        RecordServiceClient::with_interceptor(self.channel(), Bearer(value))
    }

    pub fn records_as(
        &self,
        tenant: &str,
        user: &str,
        roles: &[&str],
    ) -> RecordServiceClient<AuthedChannel> {
        let token = self.token(tenant, user, roles);
        RecordServiceClient::with_interceptor(self.channel(), Self::bearer(Some(&token)))
    }

    pub fn records(&self) -> RecordServiceClient<AuthedChannel> {
        self.records_as("acme", "rep-1", &["sales_rep"])
    }

    /// Creates a customer in `acme` and returns it.
    pub async fn create_customer(&self, name: &str) -> pb::Customer {
        self.customers()
            .create_customer(new_customer(name))
            .await
            .expect("create")
            .into_inner()
            .customer
            .unwrap()
    }

    /// A `Store` on this test's database (in its schema on PostgreSQL), to call the library
    /// directly (the purger, sweeps) or to read rows.
    pub async fn store(&self) -> Store {
        Store::connect(&StoreConfig {
            url: self.database_url.clone(),
            schema: self.schema.clone(),
            max_connections: 4,
            reader_connections: 0,
            acquire_timeout: Duration::from_secs(5),
            session: SessionLimits::default(),
        })
        .await
        .expect("store connects")
    }

    /// Runs the real `crm-service` binary with `args` on this test's database (its URL and
    /// schema appended, no `CRM_*` database variables inherited); its stdout. A non-zero exit
    /// fails the test with the binary's stderr.
    pub async fn run_cli(&self, args: &[&str]) -> String {
        let mut args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        args.extend(["--database-url".into(), self.database_url.clone()]);
        if let Some(schema) = &self.schema {
            args.extend(["--database-schema".into(), schema.clone()]);
        }
        let output = tokio::task::spawn_blocking(move || {
            std::process::Command::new(env!("CARGO_BIN_EXE_crm-service"))
                .args(&args)
                .env_remove("CRM_DATABASE_URL")
                .env_remove("CRM_DATABASE_SCHEMA")
                .output()
        })
        .await
        .unwrap()
        .expect("crm-service runs");
        assert!(
            output.status.success(),
            "crm-service failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).expect("utf-8")
    }

    /// Runs SQL against this test's database (in its schema on PostgreSQL).
    pub async fn sql(&self, statement: &str) {
        let db = Database::connect(&self.database_url)
            .await
            .expect("connect");
        // One transaction, so the search path and the statement use the same pooled connection.
        let tx = db.begin().await.expect("begin");
        if let Some(schema) = &self.schema {
            tx.execute_unprepared(&format!("SET LOCAL search_path TO \"{schema}\""))
                .await
                .unwrap();
        }
        tx.execute_unprepared(statement).await.expect("sql");
        tx.commit().await.expect("commit");
        db.close().await.ok();
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            server.abort();
        }
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_dir_all(dir);
        }
        if let Some(schema) = self.schema.take() {
            let url = self.database_url.clone();
            // Drop runs inside the test's runtime: do the async cleanup on a runtime of its own.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async {
                    if let Ok(db) = Database::connect(&url).await {
                        let _ = db
                            .execute_unprepared(&format!(
                                "DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"
                            ))
                            .await;
                        let _ = db.close().await;
                    }
                });
            })
            .join();
        }
    }
}

async fn reachable(url: &str) -> Result<(), String> {
    let connect = Database::connect(url);
    match tokio::time::timeout(Duration::from_secs(5), connect).await {
        Ok(Ok(db)) => {
            db.close().await.ok();
            Ok(())
        }
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("timed out".into()),
    }
}

pub fn new_customer(name: &str) -> pb::CreateCustomerRequest {
    pb::CreateCustomerRequest {
        customer: Some(pb::Customer {
            name: name.into(),
            email: "buyer@example.com".into(),
            phone: "+1 555 0100".into(),
            industry: "retail".into(),
            lifecycle_stage: pb::LifecycleStage::Prospect as i32,
            ..Default::default()
        }),
        request_id: String::new(),
    }
}

/// Asserts the code and the ErrorInfo reason of a failed call, and returns the status.
pub fn assert_status<T: std::fmt::Debug>(
    result: Result<T, Status>,
    code: Code,
    reason: &str,
) -> Status {
    let status = result.expect_err("the call should fail");
    assert_eq!(status.code(), code, "{status:?}");
    let details = status.get_error_details();
    let info = details
        .error_info()
        .unwrap_or_else(|| panic!("no ErrorInfo in {status:?}"));
    assert_eq!(info.reason, reason, "{status:?}");
    assert_eq!(info.domain, "crm-service");
    status
}

/// The fields named by the BadRequest of an error.
pub fn bad_fields(status: &Status) -> Vec<String> {
    status
        .get_error_details()
        .bad_request()
        .map(|b| b.field_violations.iter().map(|v| v.field.clone()).collect())
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// Builders and one helper per RPC shape, shared by the suites.

pub type Customers = CustomerServiceClient<AuthedChannel>;
pub type Records = RecordServiceClient<AuthedChannel>;

/// A fresh idempotency key (AIP-155: a UUID).
pub fn request_id() -> String {
    Uuid::now_v7().to_string()
}

/// A UUID that names nothing in any tenant.
pub fn random_id() -> String {
    Uuid::now_v7().to_string()
}

pub fn mask(paths: &[&str]) -> Option<prost_types::FieldMask> {
    Some(prost_types::FieldMask {
        paths: paths.iter().map(|p| p.to_string()).collect(),
    })
}

/// A CreateCustomer request with only a name and a stage: no e-mail or phone to match queries.
pub fn bare_customer(name: &str) -> pb::CreateCustomerRequest {
    pb::CreateCustomerRequest {
        customer: Some(pb::Customer {
            name: name.into(),
            lifecycle_stage: pb::LifecycleStage::Lead as i32,
            ..Default::default()
        }),
        request_id: String::new(),
    }
}

pub async fn get_customer(client: &mut Customers, id: &str) -> pb::Customer {
    client
        .get_customer(pb::GetCustomerRequest {
            customer_id: id.into(),
        })
        .await
        .expect("get customer")
        .into_inner()
        .customer
        .unwrap()
}

/// Every customer `request` matches, walking all pages of `page_size`.
pub async fn list_all_customers(
    client: &mut Customers,
    request: pb::ListCustomersRequest,
) -> Vec<pb::Customer> {
    let mut out = Vec::new();
    let mut request = request;
    loop {
        let page = client
            .list_customers(request.clone())
            .await
            .expect("list customers")
            .into_inner();
        out.extend(page.customers);
        if page.next_page_token.is_empty() {
            return out;
        }
        request.page_token = page.next_page_token;
    }
}

/// Names of every live customer of the caller's tenant, in listing order.
pub async fn customer_names(client: &mut Customers) -> Vec<String> {
    list_all_customers(client, pb::ListCustomersRequest::default())
        .await
        .into_iter()
        .map(|c| c.name)
        .collect()
}

impl TestApp {
    /// Copies every row of `table` `copies` times under fresh random ids, in one statement: a cheap
    /// way to get past page-size limits. `columns` are the columns other than `id`; the template
    /// rows must not hold unique values (e.g. external_ref).
    pub async fn clone_rows(&self, table: &str, columns: &[&str], copies: u32) {
        let new_id = match self.db {
            Db::Sqlite => "randomblob(16)",
            Db::Postgres => "gen_random_uuid()",
        };
        let cols = columns.join(", ");
        let picked = columns
            .iter()
            .map(|c| format!("t.{c}"))
            .collect::<Vec<_>>()
            .join(", ");
        self.sql(&format!(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {copies}) \
             INSERT INTO {table} (id, {cols}) SELECT {new_id}, {picked} FROM {table} t CROSS JOIN n"
        ))
        .await;
    }
}

pub const CUSTOMER_COLUMNS: &[&str] = &[
    "tenant_id",
    "name",
    "phone",
    "email",
    "industry",
    "owner_id",
    "lifecycle_stage",
    "status",
    "external_ref",
    "legal_hold",
    "search_text",
    "create_time",
    "update_time",
    "delete_time",
    "purge_time",
    "deletion_id",
    "version",
];

pub const CONTACT_COLUMNS: &[&str] = &[
    "tenant_id",
    "customer_id",
    "full_name",
    "email",
    "phone",
    "job_title",
    "create_time",
    "update_time",
    "delete_time",
    "deletion_id",
    "version",
];

// ----- records -------------------------------------------------------------------------------

/// The six record kinds, for tests that do the same thing to each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Contact,
    Deal,
    Order,
    Contract,
    Project,
    Activity,
}

impl Kind {
    pub const ALL: [Kind; 6] = [
        Kind::Contact,
        Kind::Deal,
        Kind::Order,
        Kind::Contract,
        Kind::Project,
        Kind::Activity,
    ];

    /// The resource name used in messages and request field paths.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Contact => "contact",
            Kind::Deal => "deal",
            Kind::Order => "order",
            Kind::Contract => "contract",
            Kind::Project => "project",
            Kind::Activity => "activity",
        }
    }
}

/// The fields every record kind shares.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordView {
    pub id: String,
    pub customer_id: String,
    pub etag: String,
    pub deleted: bool,
}

macro_rules! view {
    ($m:expr) => {{
        let m = $m;
        RecordView {
            id: m.id,
            customer_id: m.customer_id,
            etag: m.etag,
            deleted: m.delete_time.is_some(),
        }
    }};
}

pub fn new_contact(customer_id: &str) -> pb::Contact {
    pb::Contact {
        customer_id: customer_id.into(),
        full_name: "Ana Lima".into(),
        email: "ana@example.com".into(),
        phone: "+55 11 5555 0101".into(),
        job_title: "Buyer".into(),
        ..Default::default()
    }
}

pub fn new_deal(customer_id: &str, stage: pb::DealStage) -> pb::Deal {
    pb::Deal {
        customer_id: customer_id.into(),
        title: "Fleet renewal".into(),
        amount_minor: 125_000,
        currency: "EUR".into(),
        stage: stage as i32,
        ..Default::default()
    }
}

pub fn new_order(customer_id: &str, status: pb::OrderStatus) -> pb::Order {
    pb::Order {
        customer_id: customer_id.into(),
        number: "SO-1001".into(),
        amount_minor: 9_900,
        currency: "USD".into(),
        status: status as i32,
        ..Default::default()
    }
}

pub fn new_contract(customer_id: &str, status: pb::ContractStatus) -> pb::Contract {
    pb::Contract {
        customer_id: customer_id.into(),
        number: "C-2027-01".into(),
        status: status as i32,
        end_date: "2027-12-31".into(),
        ..Default::default()
    }
}

pub fn new_project(customer_id: &str, status: pb::ProjectStatus) -> pb::Project {
    pb::Project {
        customer_id: customer_id.into(),
        name: "Warehouse roll-out".into(),
        status: status as i32,
        ..Default::default()
    }
}

pub fn new_activity(customer_id: &str) -> pb::Activity {
    pb::Activity {
        customer_id: customer_id.into(),
        kind: pb::ActivityKind::Call as i32,
        subject: "Kick-off call".into(),
        occur_time: Some(prost_types::Timestamp {
            seconds: 1_767_225_600,
            nanos: 123_456_000,
        }),
        ..Default::default()
    }
}

/// Creates a record of `kind` (in its initial status) for `customer_id`.
pub async fn create_record(
    records: &mut Records,
    kind: Kind,
    customer_id: &str,
) -> Result<RecordView, Status> {
    let c = customer_id;
    Ok(match kind {
        Kind::Contact => view!(
            records
                .create_contact(pb::CreateContactRequest {
                    contact: Some(new_contact(c)),
                    request_id: String::new(),
                })
                .await?
                .into_inner()
                .contact
                .unwrap()
        ),
        Kind::Deal => view!(
            records
                .create_deal(pb::CreateDealRequest {
                    deal: Some(new_deal(c, pb::DealStage::Open)),
                    request_id: String::new(),
                })
                .await?
                .into_inner()
                .deal
                .unwrap()
        ),
        Kind::Order => view!(
            records
                .create_order(pb::CreateOrderRequest {
                    order: Some(new_order(c, pb::OrderStatus::Open)),
                    request_id: String::new(),
                })
                .await?
                .into_inner()
                .order
                .unwrap()
        ),
        Kind::Contract => view!(
            records
                .create_contract(pb::CreateContractRequest {
                    contract: Some(new_contract(c, pb::ContractStatus::Draft)),
                    request_id: String::new(),
                })
                .await?
                .into_inner()
                .contract
                .unwrap()
        ),
        Kind::Project => view!(
            records
                .create_project(pb::CreateProjectRequest {
                    project: Some(new_project(c, pb::ProjectStatus::Active)),
                    request_id: String::new(),
                })
                .await?
                .into_inner()
                .project
                .unwrap()
        ),
        Kind::Activity => view!(
            records
                .create_activity(pb::CreateActivityRequest {
                    activity: Some(new_activity(c)),
                    request_id: String::new(),
                })
                .await?
                .into_inner()
                .activity
                .unwrap()
        ),
    })
}

pub async fn get_record(records: &mut Records, kind: Kind, id: &str) -> Result<RecordView, Status> {
    let id = id.to_owned();
    Ok(match kind {
        Kind::Contact => view!(
            records
                .get_contact(pb::GetContactRequest { contact_id: id })
                .await?
                .into_inner()
                .contact
                .unwrap()
        ),
        Kind::Deal => view!(
            records
                .get_deal(pb::GetDealRequest { deal_id: id })
                .await?
                .into_inner()
                .deal
                .unwrap()
        ),
        Kind::Order => view!(
            records
                .get_order(pb::GetOrderRequest { order_id: id })
                .await?
                .into_inner()
                .order
                .unwrap()
        ),
        Kind::Contract => view!(
            records
                .get_contract(pb::GetContractRequest { contract_id: id })
                .await?
                .into_inner()
                .contract
                .unwrap()
        ),
        Kind::Project => view!(
            records
                .get_project(pb::GetProjectRequest { project_id: id })
                .await?
                .into_inner()
                .project
                .unwrap()
        ),
        Kind::Activity => view!(
            records
                .get_activity(pb::GetActivityRequest { activity_id: id })
                .await?
                .into_inner()
                .activity
                .unwrap()
        ),
    })
}

/// One page of a customer's records of `kind`, and the next page's token.
pub async fn list_records(
    records: &mut Records,
    kind: Kind,
    customer_id: &str,
    page_size: i32,
    page_token: &str,
    show_deleted: bool,
) -> Result<(Vec<RecordView>, String), Status> {
    macro_rules! list {
        ($method:ident, $Req:ident, $field:ident) => {{
            let page = records
                .$method(pb::$Req {
                    customer_id: customer_id.into(),
                    page_size,
                    page_token: page_token.into(),
                    show_deleted,
                })
                .await?
                .into_inner();
            (
                page.$field.into_iter().map(|m| view!(m)).collect(),
                page.next_page_token,
            )
        }};
    }
    Ok(match kind {
        Kind::Contact => list!(list_contacts, ListContactsRequest, contacts),
        Kind::Deal => list!(list_deals, ListDealsRequest, deals),
        Kind::Order => list!(list_orders, ListOrdersRequest, orders),
        Kind::Contract => list!(list_contracts, ListContractsRequest, contracts),
        Kind::Project => list!(list_projects, ListProjectsRequest, projects),
        Kind::Activity => list!(list_activities, ListActivitiesRequest, activities),
    })
}

/// Changes a plain text field of a record (never its status), unconditionally.
pub async fn touch_record(
    records: &mut Records,
    kind: Kind,
    id: &str,
) -> Result<RecordView, Status> {
    let id = id.to_owned();
    Ok(match kind {
        Kind::Contact => view!(
            records
                .update_contact(pb::UpdateContactRequest {
                    contact: Some(pb::Contact {
                        id,
                        job_title: "Head of Buying".into(),
                        ..Default::default()
                    }),
                    update_mask: mask(&["job_title"]),
                    etag: String::new(),
                    request_id: String::new(),
                })
                .await?
                .into_inner()
                .contact
                .unwrap()
        ),
        Kind::Deal => view!(
            records
                .update_deal(pb::UpdateDealRequest {
                    deal: Some(pb::Deal {
                        id,
                        title: "Fleet renewal, phase 2".into(),
                        ..Default::default()
                    }),
                    update_mask: mask(&["title"]),
                    etag: String::new(),
                    request_id: String::new(),
                })
                .await?
                .into_inner()
                .deal
                .unwrap()
        ),
        Kind::Order => view!(
            records
                .update_order(pb::UpdateOrderRequest {
                    order: Some(pb::Order {
                        id,
                        number: "SO-1001-B".into(),
                        ..Default::default()
                    }),
                    update_mask: mask(&["number"]),
                    etag: String::new(),
                    request_id: String::new(),
                })
                .await?
                .into_inner()
                .order
                .unwrap()
        ),
        Kind::Contract => view!(
            records
                .update_contract(pb::UpdateContractRequest {
                    contract: Some(pb::Contract {
                        id,
                        number: "C-2027-01-B".into(),
                        ..Default::default()
                    }),
                    update_mask: mask(&["number"]),
                    etag: String::new(),
                    request_id: String::new(),
                })
                .await?
                .into_inner()
                .contract
                .unwrap()
        ),
        Kind::Project => view!(
            records
                .update_project(pb::UpdateProjectRequest {
                    project: Some(pb::Project {
                        id,
                        name: "Warehouse roll-out, wave 2".into(),
                        ..Default::default()
                    }),
                    update_mask: mask(&["name"]),
                    etag: String::new(),
                    request_id: String::new(),
                })
                .await?
                .into_inner()
                .project
                .unwrap()
        ),
        Kind::Activity => view!(
            records
                .update_activity(pb::UpdateActivityRequest {
                    activity: Some(pb::Activity {
                        id,
                        subject: "Kick-off call (moved)".into(),
                        ..Default::default()
                    }),
                    update_mask: mask(&["subject"]),
                    etag: String::new(),
                    request_id: String::new(),
                })
                .await?
                .into_inner()
                .activity
                .unwrap()
        ),
    })
}

/// Deletes a record; `None` for orders, which have no delete.
pub async fn delete_record(
    records: &mut Records,
    kind: Kind,
    id: &str,
) -> Option<Result<RecordView, Status>> {
    let id = id.to_owned();
    let etag = String::new();
    let request_id = String::new();
    let result = match kind {
        Kind::Order => return None,
        Kind::Contact => records
            .delete_contact(pb::DeleteContactRequest {
                contact_id: id,
                etag,
                request_id,
            })
            .await
            .map(|r| view!(r.into_inner().contact.unwrap())),
        Kind::Deal => records
            .delete_deal(pb::DeleteDealRequest {
                deal_id: id,
                etag,
                request_id,
            })
            .await
            .map(|r| view!(r.into_inner().deal.unwrap())),
        Kind::Contract => records
            .delete_contract(pb::DeleteContractRequest {
                contract_id: id,
                etag,
                request_id,
            })
            .await
            .map(|r| view!(r.into_inner().contract.unwrap())),
        Kind::Project => records
            .delete_project(pb::DeleteProjectRequest {
                project_id: id,
                etag,
                request_id,
            })
            .await
            .map(|r| view!(r.into_inner().project.unwrap())),
        Kind::Activity => records
            .delete_activity(pb::DeleteActivityRequest {
                activity_id: id,
                etag,
                request_id,
            })
            .await
            .map(|r| view!(r.into_inner().activity.unwrap())),
    };
    Some(result)
}

// ----- the deletion lifecycle and the audit trail --------------------------------------------

use crm_service::proto::crm::v1::audit_service_client::AuditServiceClient;
use crm_service::proto::crm::v1::deletion_approval_service_client::DeletionApprovalServiceClient;

pub type Approvals = DeletionApprovalServiceClient<AuthedChannel>;
pub type Audit = AuditServiceClient<AuthedChannel>;

impl TestApp {
    /// DeletionApprovalService as `user` of `tenant` with `roles`.
    pub fn approvals_as(&self, tenant: &str, user: &str, roles: &[&str]) -> Approvals {
        let token = self.token(tenant, user, roles);
        DeletionApprovalServiceClient::with_interceptor(self.channel(), Bearer::new(&token))
    }

    /// AuditService as `user` of `tenant` with `roles`.
    pub fn audit_as(&self, tenant: &str, user: &str, roles: &[&str]) -> Audit {
        let token = self.token(tenant, user, roles);
        AuditServiceClient::with_interceptor(self.channel(), Bearer::new(&token))
    }

    /// AuditService as supervisor `auditor` of `acme`.
    pub fn audit(&self) -> Audit {
        self.audit_as("acme", "auditor", &["supervisor"])
    }

    /// The preview of `customer_id`'s deletion, as a sales rep of `acme`.
    pub async fn preview(&self, customer_id: &str) -> pb::DeletionPreview {
        self.customers()
            .preview_delete_customer(pb::PreviewDeleteCustomerRequest {
                customer_id: customer_id.into(),
            })
            .await
            .expect("preview")
            .into_inner()
            .preview
            .unwrap()
    }

    /// Preview, then submit as `rep-1` (a sales rep of `acme`) with `reason`: the PENDING request.
    pub async fn pending_deletion(&self, customer_id: &str, reason: &str) -> pb::DeletionRequest {
        let preview = self.preview(customer_id).await;
        submit(
            &mut self.approvals_as("acme", "rep-1", &["sales_rep"]),
            customer_id,
            &preview.etag,
            reason,
        )
        .await
        .expect("submit")
    }

    /// Preview, submit as `rep-1`, approve as `sup-1`: the APPROVED request.
    pub async fn approved_deletion(&self, customer_id: &str, reason: &str) -> pb::DeletionRequest {
        let pending = self.pending_deletion(customer_id, reason).await;
        approve(
            &mut self.approvals_as("acme", "sup-1", &["supervisor"]),
            &pending.id,
        )
        .await
        .expect("approve")
    }

    /// Preview, submit, approve and execute the deletion of `customer_id` (as `rep-1`, the
    /// requester): the DeleteCustomer response.
    pub async fn delete_customer(&self, customer_id: &str) -> pb::DeleteCustomerResponse {
        let approved = self
            .approved_deletion(customer_id, "no longer needed")
            .await;
        execute(
            &mut self.customers(),
            customer_id,
            &approved.id,
            &approved.preview.as_ref().unwrap().etag,
        )
        .await
        .expect("delete")
    }

    /// A deletion request as anyone of `acme` sees it.
    pub async fn deletion_request(&self, id: &str) -> pb::DeletionRequest {
        self.approvals_as("acme", "reader", &["sales_rep"])
            .get_deletion_request(pb::GetDeletionRequestRequest {
                deletion_request_id: id.into(),
            })
            .await
            .expect("get deletion request")
            .into_inner()
            .deletion_request
            .unwrap()
    }

    /// Every audit event of `acme` matching `filter`, walking all pages.
    pub async fn audit_events(&self, filter: pb::ListAuditEventsRequest) -> Vec<pb::AuditEvent> {
        let mut audit = self.audit();
        let mut request = pb::ListAuditEventsRequest {
            page_size: 1000,
            ..filter
        };
        let mut out = Vec::new();
        loop {
            let page = audit
                .list_audit_events(request.clone())
                .await
                .expect("list audit events")
                .into_inner();
            out.extend(page.audit_events);
            if page.next_page_token.is_empty() {
                return out;
            }
            request.page_token = page.next_page_token;
        }
    }

    /// How many audit events of `acme` have `action` for `customer_id`.
    pub async fn audit_count(&self, customer_id: &str, action: &str) -> usize {
        self.audit_events(pb::ListAuditEventsRequest {
            customer_id: customer_id.into(),
            action: action.into(),
            ..Default::default()
        })
        .await
        .len()
    }

    /// `acme`'s audit chain, verified.
    pub async fn verify_audit(&self) -> pb::VerifyAuditChainResponse {
        self.audit()
            .verify_audit_chain(pb::VerifyAuditChainRequest {})
            .await
            .expect("verify audit chain")
            .into_inner()
    }

    /// Every record of `customer_id`'s graph, deleted ones included, field by field.
    pub async fn snapshot(&self, customer_id: &str) -> Snapshot {
        let mut r = self.records_as("acme", "snapshotter", &["supervisor"]);
        macro_rules! all {
            ($rpc:ident, $Req:ident, $field:ident) => {{
                let mut out = Vec::new();
                let mut page_token = String::new();
                loop {
                    let page = r
                        .$rpc(pb::$Req {
                            customer_id: customer_id.into(),
                            page_size: 1000,
                            page_token: page_token.clone(),
                            show_deleted: true,
                        })
                        .await
                        .expect("list records")
                        .into_inner();
                    out.extend(page.$field);
                    if page.next_page_token.is_empty() {
                        break out;
                    }
                    page_token = page.next_page_token;
                }
            }};
        }
        Snapshot {
            contacts: all!(list_contacts, ListContactsRequest, contacts),
            deals: all!(list_deals, ListDealsRequest, deals),
            orders: all!(list_orders, ListOrdersRequest, orders),
            contracts: all!(list_contracts, ListContractsRequest, contracts),
            projects: all!(list_projects, ListProjectsRequest, projects),
            activities: all!(list_activities, ListActivitiesRequest, activities),
        }
    }
}

/// A customer's whole graph of records, deleted ones included.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub contacts: Vec<pb::Contact>,
    pub deals: Vec<pb::Deal>,
    pub orders: Vec<pb::Order>,
    pub contracts: Vec<pb::Contract>,
    pub projects: Vec<pb::Project>,
    pub activities: Vec<pb::Activity>,
}

impl Snapshot {
    /// (kind, id, delete_time) of every record.
    pub fn rows(&self) -> Vec<(&'static str, String, Option<prost_types::Timestamp>)> {
        let mut out = Vec::new();
        macro_rules! rows {
            ($field:ident, $kind:literal) => {
                out.extend(
                    self.$field
                        .iter()
                        .map(|m| ($kind, m.id.clone(), m.delete_time)),
                )
            };
        }
        rows!(contacts, "contact");
        rows!(deals, "deal");
        rows!(orders, "order");
        rows!(contracts, "contract");
        rows!(projects, "project");
        rows!(activities, "activity");
        out
    }

    /// How many records are live.
    pub fn live(&self) -> usize {
        self.rows().iter().filter(|r| r.2.is_none()).count()
    }
}

/// SubmitDeletionRequest without a request_id.
pub async fn submit(
    approvals: &mut Approvals,
    customer_id: &str,
    preview_etag: &str,
    reason: &str,
) -> Result<pb::DeletionRequest, Status> {
    Ok(approvals
        .submit_deletion_request(pb::SubmitDeletionRequestRequest {
            customer_id: customer_id.into(),
            preview_etag: preview_etag.into(),
            reason: reason.into(),
            request_id: String::new(),
        })
        .await?
        .into_inner()
        .deletion_request
        .unwrap())
}

/// ApproveDeletionRequest without a comment or request_id.
pub async fn approve(approvals: &mut Approvals, id: &str) -> Result<pb::DeletionRequest, Status> {
    Ok(approvals
        .approve_deletion_request(pb::ApproveDeletionRequestRequest {
            deletion_request_id: id.into(),
            ..Default::default()
        })
        .await?
        .into_inner()
        .deletion_request
        .unwrap())
}

/// RejectDeletionRequest with `comment`.
pub async fn reject(
    approvals: &mut Approvals,
    id: &str,
    comment: &str,
) -> Result<pb::DeletionRequest, Status> {
    Ok(approvals
        .reject_deletion_request(pb::RejectDeletionRequestRequest {
            deletion_request_id: id.into(),
            comment: comment.into(),
            request_id: String::new(),
        })
        .await?
        .into_inner()
        .deletion_request
        .unwrap())
}

/// CancelDeletionRequest without a comment.
pub async fn cancel(approvals: &mut Approvals, id: &str) -> Result<pb::DeletionRequest, Status> {
    Ok(approvals
        .cancel_deletion_request(pb::CancelDeletionRequestRequest {
            deletion_request_id: id.into(),
            ..Default::default()
        })
        .await?
        .into_inner()
        .deletion_request
        .unwrap())
}

/// DeleteCustomer without a request_id.
pub async fn execute(
    customers: &mut Customers,
    customer_id: &str,
    deletion_request_id: &str,
    etag: &str,
) -> Result<pb::DeleteCustomerResponse, Status> {
    Ok(customers
        .delete_customer(pb::DeleteCustomerRequest {
            customer_id: customer_id.into(),
            deletion_request_id: deletion_request_id.into(),
            etag: etag.into(),
            request_id: String::new(),
        })
        .await?
        .into_inner())
}

/// RestoreCustomer without a request_id.
pub async fn restore(
    customers: &mut Customers,
    customer_id: &str,
    validate_only: bool,
) -> Result<pb::RestoreCustomerResponse, Status> {
    Ok(customers
        .restore_customer(pb::RestoreCustomerRequest {
            customer_id: customer_id.into(),
            validate_only,
            request_id: String::new(),
        })
        .await?
        .into_inner())
}

/// The PreconditionFailure violations of an error, as (type, subject).
pub fn precondition_subjects(status: &Status) -> Vec<(String, String)> {
    status
        .get_error_details()
        .precondition_failure()
        .map(|p| {
            p.violations
                .iter()
                .map(|v| (v.r#type.clone(), v.subject.clone()))
                .collect()
        })
        .unwrap_or_default()
}

/// Prints a figure where a passing test's output still shows (libtest captures eprintln!).
pub fn figure(line: impl std::fmt::Display) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr(), "[figure] {line}");
}

/// A writer racing a deletion: waits at `barrier`, reads the customer `warmup` times (so that
/// either side can win the race), then adds `writes` contacts to it, returning each outcome.
pub fn spawn_contact_writer(
    mut records: Records,
    mut customers: Customers,
    customer_id: String,
    barrier: std::sync::Arc<tokio::sync::Barrier>,
    warmup: usize,
    writes: usize,
) -> tokio::task::JoinHandle<Vec<Result<pb::Contact, Status>>> {
    tokio::spawn(async move {
        barrier.wait().await;
        for _ in 0..warmup {
            let _ = customers
                .get_customer(pb::GetCustomerRequest {
                    customer_id: customer_id.clone(),
                })
                .await;
        }
        let mut results = Vec::new();
        for _ in 0..writes {
            results.push(
                records
                    .create_contact(pb::CreateContactRequest {
                        contact: Some(new_contact(&customer_id)),
                        request_id: String::new(),
                    })
                    .await
                    .map(|r| r.into_inner().contact.unwrap()),
            );
        }
        results
    })
}
