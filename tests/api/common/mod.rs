//! The test harness: starts the real server on an ephemeral port against a fresh database (a temp
//! SQLite file, or a PostgreSQL schema of its own) and hands out generated clients with tokens.
//!
//! PostgreSQL comes from `CRM_TEST_DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/test`).
//! If it cannot be reached, PostgreSQL tests print `SKIPPED` with the reason, except under
//! `CI=true`, where that is a failure.

#![allow(dead_code)]

pub mod batches;
mod customers;
mod lifecycle;
mod records;

pub use customers::*;
pub use lifecycle::*;
pub use records::*;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crm_service::app::{Application, JwtSettings, Limits, Settings, Shutdown};
use crm_service::auth::{TokenRequest, mint};
use crm_service::domain::Clock;
use crm_service::domain::batches::BatchSettings;
use crm_service::domain::deletion::LifecycleSettings;
use crm_service::domain::tenant_settings::ApprovalSettings;
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
            escalation_interval: Some(Duration::from_millis(200)),
            clock: Clock::adjustable(),
            phone_default_country_code: Some("44".into()),
            approvals: ApprovalSettings::default(),
            event_relay: None,
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
        self.token_with_claims(tenant, user, roles, &[])
    }

    /// Like `token`, with extra list claims, e.g. `&[("teams", &["emea"])]`: the teams a user
    /// belongs to or supervises, as an identity provider would put them in the token.
    pub fn token_with_claims(
        &self,
        tenant: &str,
        user: &str,
        roles: &[&str],
        claims: &[(&str, &[&str])],
    ) -> String {
        mint(
            SECRET.as_bytes(),
            &TokenRequest {
                tenant: tenant.into(),
                subject: user.into(),
                roles: roles.iter().map(|r| r.to_string()).collect(),
                ttl: Duration::from_secs(600),
                issuer: None,
                audience: None,
                claims: claims
                    .iter()
                    .map(|(name, values)| {
                        (
                            name.to_string(),
                            values.iter().map(|v| v.to_string()).collect(),
                        )
                    })
                    .collect(),
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
// Shared by every topic: the client types, ids, masks and figures.

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

/// Prints a figure where a passing test's output still shows (libtest captures eprintln!).
pub fn figure(line: impl std::fmt::Display) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr(), "[figure] {line}");
}
