//! The bare tonic + sqlx server of the load benchmark (docs/performance.md G5), serving
//! GetCustomer from the benchmark's own database: the ceiling that issue 6 holds GetCustomer's p99
//! against, measured in the same run as everything else instead of taken from a figure measured on
//! another day.
//!
//! What it keeps from crm-service: the generated `CustomerService` (the same messages on the wire,
//! so the same client loop drives both) and the same point select by tenant and id. What it drops:
//! authentication, validation, the domain and SeaORM layers, tracing, admission and metrics. Its
//! pools are the ones that figure was measured with: sqlx's own pool with its ping on checkout, 4
//! read-only connections on SQLite, 8 on PostgreSQL. It answers every other RPC UNIMPLEMENTED.
//!
//! Started and stopped by scripts/bench.sh; prints `bare server listening on ADDR` when ready.

use std::net::SocketAddr;
use std::pin::Pin;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use clap::Parser;
use crm_service::api::convert::timestamp;
use crm_service::proto::crm::v1 as pb;
use crm_service::proto::crm::v1::customer_service_server::{
    CustomerService, CustomerServiceServer,
};
use futures_util::Stream;
use sea_orm::sqlx;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status};
use uuid::Uuid;

/// The tenant the benchmark seeds (scripts/bench.sh); the bare server serves no other.
const TENANT: &str = "demo";

#[derive(Debug, Parser)]
#[command(about = "Bare tonic + sqlx GetCustomer server (the benchmark's p99 ceiling)")]
struct Args {
    /// Address to listen on (loopback only).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// sqlite://FILE or postgres://… (the crm-service database to read).
    #[arg(long)]
    database_url: String,
    /// PostgreSQL schema of the crm-service tables.
    #[arg(long)]
    database_schema: Option<String>,
}

enum Pool {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
}

struct Bare {
    pool: Pool,
}

/// crm-service's point select (src/store/customers.rs `find_sql!`), minus the columns a
/// `Customer` message does not carry.
macro_rules! select {
    ($tenant:literal, $id:literal) => {
        concat!(
            "SELECT id, name, phone, email, industry, owner_id, lifecycle_stage, status, ",
            "external_ref, legal_hold, create_time, update_time, delete_time, purge_time, ",
            "deletion_id, version, key_account FROM customer WHERE tenant_id = ",
            $tenant,
            " AND id = ",
            $id,
            " AND erase_time IS NULL"
        )
    };
}

fn customer<R: sqlx::Row>(row: &R) -> Result<pb::Customer, sqlx::Error>
where
    usize: sqlx::ColumnIndex<R>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Uuid: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> bool: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> DateTime<Utc>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let stage = match row.try_get::<String, _>(6)?.as_str() {
        "LEAD" => pb::LifecycleStage::Lead,
        "PROSPECT" => pb::LifecycleStage::Prospect,
        "CUSTOMER" => pb::LifecycleStage::Customer,
        _ => pb::LifecycleStage::Unspecified,
    };
    let status = match row.try_get::<String, _>(7)?.as_str() {
        "ACTIVE" => pb::CustomerStatus::Active,
        "INACTIVE" => pb::CustomerStatus::Inactive,
        _ => pb::CustomerStatus::Unspecified,
    };
    Ok(pb::Customer {
        id: row.try_get::<Uuid, _>(0)?.to_string(),
        name: row.try_get(1)?,
        phone: row.try_get::<Option<String>, _>(2)?.unwrap_or_default(),
        email: row.try_get::<Option<String>, _>(3)?.unwrap_or_default(),
        industry: row.try_get::<Option<String>, _>(4)?.unwrap_or_default(),
        owner_id: row.try_get(5)?,
        lifecycle_stage: stage as i32,
        status: status as i32,
        external_ref: row.try_get::<Option<String>, _>(8)?.unwrap_or_default(),
        legal_hold: row.try_get(9)?,
        create_time: Some(timestamp(row.try_get(10)?)),
        update_time: Some(timestamp(row.try_get(11)?)),
        delete_time: row.try_get::<Option<DateTime<Utc>>, _>(12)?.map(timestamp),
        purge_time: row.try_get::<Option<DateTime<Utc>>, _>(13)?.map(timestamp),
        deletion_id: row
            .try_get::<Option<Uuid>, _>(14)?
            .map(|id| id.to_string())
            .unwrap_or_default(),
        etag: row.try_get::<i64, _>(15)?.to_string(),
        key_account: row.try_get(16)?,
    })
}

fn unimplemented<T>() -> Result<Response<T>, Status> {
    Err(Status::unimplemented(
        "the bare server serves GetCustomer only",
    ))
}

#[tonic::async_trait]
impl CustomerService for Bare {
    async fn get_customer(
        &self,
        request: Request<pb::GetCustomerRequest>,
    ) -> Result<Response<pb::GetCustomerResponse>, Status> {
        let id = Uuid::parse_str(&request.get_ref().customer_id)
            .map_err(|_| Status::invalid_argument("customer_id: not a UUID"))?;
        let found = match &self.pool {
            Pool::Sqlite(pool) => sqlx::query(select!("?1", "?2"))
                .bind(TENANT)
                .bind(id)
                .fetch_optional(pool)
                .await
                .and_then(|row| row.as_ref().map(customer).transpose()),
            Pool::Postgres(pool) => sqlx::query(select!("$1", "$2"))
                .bind(TENANT)
                .bind(id)
                .fetch_optional(pool)
                .await
                .and_then(|row| row.as_ref().map(customer).transpose()),
        };
        match found {
            Ok(Some(customer)) => Ok(Response::new(pb::GetCustomerResponse {
                customer: Some(customer),
            })),
            Ok(None) => Err(Status::not_found("no such customer")),
            Err(e) => Err(Status::internal(e.to_string())),
        }
    }

    type ExportCustomerStream =
        Pin<Box<dyn Stream<Item = Result<pb::ExportCustomerResponse, Status>> + Send>>;

    async fn create_customer(
        &self,
        _: Request<pb::CreateCustomerRequest>,
    ) -> Result<Response<pb::CreateCustomerResponse>, Status> {
        unimplemented()
    }
    async fn batch_create_customers(
        &self,
        _: Request<pb::BatchCreateCustomersRequest>,
    ) -> Result<Response<pb::BatchCreateCustomersResponse>, Status> {
        unimplemented()
    }
    async fn list_customers(
        &self,
        _: Request<pb::ListCustomersRequest>,
    ) -> Result<Response<pb::ListCustomersResponse>, Status> {
        unimplemented()
    }
    async fn update_customer(
        &self,
        _: Request<pb::UpdateCustomerRequest>,
    ) -> Result<Response<pb::UpdateCustomerResponse>, Status> {
        unimplemented()
    }
    async fn preview_delete_customer(
        &self,
        _: Request<pb::PreviewDeleteCustomerRequest>,
    ) -> Result<Response<pb::PreviewDeleteCustomerResponse>, Status> {
        unimplemented()
    }
    async fn delete_customer(
        &self,
        _: Request<pb::DeleteCustomerRequest>,
    ) -> Result<Response<pb::DeleteCustomerResponse>, Status> {
        unimplemented()
    }
    async fn restore_customer(
        &self,
        _: Request<pb::RestoreCustomerRequest>,
    ) -> Result<Response<pb::RestoreCustomerResponse>, Status> {
        unimplemented()
    }
    async fn purge_customer(
        &self,
        _: Request<pb::PurgeCustomerRequest>,
    ) -> Result<Response<pb::PurgeCustomerResponse>, Status> {
        unimplemented()
    }
    async fn set_legal_hold(
        &self,
        _: Request<pb::SetLegalHoldRequest>,
    ) -> Result<Response<pb::SetLegalHoldResponse>, Status> {
        unimplemented()
    }
    async fn export_customer(
        &self,
        _: Request<pb::ExportCustomerRequest>,
    ) -> Result<Response<Self::ExportCustomerStream>, Status> {
        unimplemented()
    }
    async fn list_deleted_customers(
        &self,
        _: Request<pb::ListDeletedCustomersRequest>,
    ) -> Result<Response<pb::ListDeletedCustomersResponse>, Status> {
        unimplemented()
    }
    async fn list_duplicate_candidates(
        &self,
        _: Request<pb::ListDuplicateCandidatesRequest>,
    ) -> Result<Response<pb::ListDuplicateCandidatesResponse>, Status> {
        unimplemented()
    }
    async fn preview_merge_customers(
        &self,
        _: Request<pb::PreviewMergeCustomersRequest>,
    ) -> Result<Response<pb::PreviewMergeCustomersResponse>, Status> {
        unimplemented()
    }
    async fn merge_customers(
        &self,
        _: Request<pb::MergeCustomersRequest>,
    ) -> Result<Response<pb::MergeCustomersResponse>, Status> {
        unimplemented()
    }
    async fn unmerge_customers(
        &self,
        _: Request<pb::UnmergeCustomersRequest>,
    ) -> Result<Response<pb::UnmergeCustomersResponse>, Status> {
        unimplemented()
    }
}

async fn connect(args: &Args) -> Result<Pool, sqlx::Error> {
    use sqlx::pool::PoolOptions;
    if args.database_url.starts_with("sqlite:") {
        let options = sqlx::sqlite::SqliteConnectOptions::from_str(&args.database_url)?
            .read_only(true)
            .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal);
        let pool = PoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await?;
        Ok(Pool::Sqlite(pool))
    } else {
        let mut options = sqlx::postgres::PgConnectOptions::from_str(&args.database_url)?;
        if let Some(schema) = &args.database_schema {
            options = options.options([("search_path", schema.as_str())]);
        }
        let pool = PoolOptions::new()
            .max_connections(8)
            .connect_with(options)
            .await?;
        Ok(Pool::Postgres(pool))
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    assert!(
        args.listen.ip().is_loopback(),
        "the bare server listens on loopback only, not {}",
        args.listen
    );
    let pool = connect(&args).await?;
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    println!("bare server listening on {}", listener.local_addr()?);
    Server::builder()
        .add_service(CustomerServiceServer::new(Bare { pool }))
        .serve_with_incoming(TcpIncoming::from(listener).with_nodelay(Some(true)))
        .await?;
    Ok(())
}
