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

use crm_service::app::{Application, JwtSettings, Settings};
use crm_service::auth::{TokenRequest, mint};
use crm_service::proto::crm::v1 as pb;
use crm_service::proto::crm::v1::customer_service_client::CustomerServiceClient;
use crm_service::proto::crm::v1::record_service_client::RecordServiceClient;
use crm_service::store::StoreConfig;
use sea_orm::{ConnectionTrait, Database};
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
}

pub type AuthedChannel = InterceptedService<Channel, Bearer>;

/// Adds `authorization: Bearer <token>` to every call.
#[derive(Clone)]
pub struct Bearer(Option<MetadataValue<tonic::metadata::Ascii>>);

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
                    eprintln!(
                        "SKIPPED: PostgreSQL at {url} is unreachable ({why}); set CRM_TEST_DATABASE_URL"
                    );
                    return None;
                }
                (url, Some(format!("t_{}", Uuid::now_v7().simple())), None)
            }
        };
        let settings = Settings {
            listen: "127.0.0.1:0".parse().unwrap(),
            database: StoreConfig {
                url: database_url.clone(),
                schema: schema.clone(),
                max_connections: 4,
                acquire_timeout: Duration::from_secs(5),
            },
            jwt: JwtSettings {
                secret: Some(SECRET.into()),
                ..Default::default()
            },
        };
        let app = Application::build(settings).await.expect("server starts");
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
        })
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

    /// Runs SQL against this test's database (in its schema on PostgreSQL).
    pub async fn sql(&self, statement: &str) {
        let db = Database::connect(&self.database_url)
            .await
            .expect("connect");
        if let Some(schema) = &self.schema {
            db.execute_unprepared(&format!("SET search_path TO \"{schema}\""))
                .await
                .unwrap();
        }
        db.execute_unprepared(statement).await.expect("sql");
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
