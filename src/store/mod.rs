//! Persistence: the only module that talks to the database. SeaORM entities and migrations, and a
//! small query vocabulary per table in which every read and write is scoped by tenant.
//!
//! SQLite is the embedded default (WAL, busy timeout, foreign keys, `BEGIN IMMEDIATE` for every
//! write transaction so contended writers queue instead of failing with "database is locked");
//! PostgreSQL is the production database.

pub mod audit;
pub mod customers;
pub mod deletion;
pub mod entity;
pub mod idempotency;
pub mod migration;
pub mod purge;
pub mod records;
pub mod secrets;

use std::time::Duration;

use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseBackend, DatabaseConnection,
    DatabaseTransaction, DbErr, SqliteTransactionMode, TransactionOptions, TransactionTrait,
};
use sea_orm_migration::MigratorTrait;

use crate::error::Result;

pub use customers::GraphBump;

/// How to reach the database.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// `sqlite://path/to/file.db` or `postgres://user@host/db`.
    pub url: String,
    /// PostgreSQL schema to work in (created if missing); `None` means the server's default.
    pub schema: Option<String>,
    pub max_connections: u32,
    /// How long a request waits for a pooled connection before it fails `UNAVAILABLE`.
    pub acquire_timeout: Duration,
}

/// Handle on the database; cheap to clone, shared by every request.
#[derive(Clone, Debug)]
pub struct Store {
    db: DatabaseConnection,
}

/// A write transaction: holds SQLite's write lock from its first statement. Dropped without
/// `commit`, it rolls back.
pub struct WriteTx(DatabaseTransaction);

impl WriteTx {
    pub fn conn(&self) -> &DatabaseTransaction {
        &self.0
    }

    pub async fn commit(self) -> Result<()> {
        Ok(self.0.commit().await?)
    }
}

impl Store {
    pub async fn connect(config: &StoreConfig) -> std::result::Result<Self, DbErr> {
        let mut options = ConnectOptions::new(config.url.clone());
        options
            .max_connections(config.max_connections)
            .acquire_timeout(config.acquire_timeout)
            .connect_timeout(Duration::from_secs(10))
            .sqlx_logging(false)
            .map_sqlx_sqlite_opts(|o| {
                o.create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Normal)
                    .busy_timeout(Duration::from_secs(5))
                    .foreign_keys(true)
            });
        if let Some(schema) = config
            .schema
            .as_ref()
            .filter(|_| config.url.starts_with("postgres"))
        {
            create_schema(&config.url, schema).await?;
            options.set_schema_search_path(schema.clone());
        }
        let db = Database::connect(options).await?;
        Ok(Self { db })
    }

    pub fn backend(&self) -> DatabaseBackend {
        self.db.get_database_backend()
    }

    /// The PostgreSQL pool underneath, for LISTEN; `None` on SQLite.
    pub fn postgres_pool(&self) -> Option<sea_orm::sqlx::PgPool> {
        match self.backend() {
            DatabaseBackend::Postgres => Some(self.db.get_postgres_connection_pool().clone()),
            _ => None,
        }
    }

    /// The pool, for reads outside a transaction.
    pub fn conn(&self) -> &DatabaseConnection {
        &self.db
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> Result<()> {
        Ok(self.db.ping().await?)
    }

    pub async fn begin_write(&self) -> Result<WriteTx> {
        let options = match self.backend() {
            DatabaseBackend::Sqlite => TransactionOptions {
                sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
                ..Default::default()
            },
            _ => TransactionOptions::default(),
        };
        Ok(WriteTx(self.db.begin_with_options(options).await?))
    }

    /// A read-only transaction that sees one snapshot of the database for its whole life
    /// (REPEATABLE READ on PostgreSQL; a WAL read transaction on SQLite), for exports.
    pub async fn begin_snapshot(&self) -> Result<WriteTx> {
        let options = match self.backend() {
            DatabaseBackend::Postgres => TransactionOptions {
                isolation_level: Some(sea_orm::IsolationLevel::RepeatableRead),
                access_mode: Some(sea_orm::AccessMode::ReadOnly),
                ..Default::default()
            },
            _ => TransactionOptions::default(),
        };
        Ok(WriteTx(self.db.begin_with_options(options).await?))
    }

    /// Applies pending migrations. On PostgreSQL, replicas starting together take turns on an
    /// advisory lock (sea-orm-migration takes none), so only one of them migrates.
    pub async fn migrate(&self) -> std::result::Result<(), DbErr> {
        if self.backend() != DatabaseBackend::Postgres {
            return migration::Migrator::up(&self.db, None).await;
        }
        // The lock must be held by one session for the whole run: use a dedicated transaction's
        // connection, whose advisory lock is released at its end (pg_advisory_xact_lock).
        let tx = self.db.begin().await?;
        tx.execute_unprepared(
            "SELECT pg_advisory_xact_lock(hashtext(current_schema() || '.crm-service.migrate'))",
        )
        .await?;
        let outcome = migration::Migrator::up(&tx, None).await;
        match outcome {
            Ok(()) => tx.commit().await,
            Err(e) => {
                tx.rollback().await?;
                Err(e)
            }
        }
    }
}

/// Creates a PostgreSQL schema before the pool points its search path at it.
async fn create_schema(url: &str, schema: &str) -> std::result::Result<(), DbErr> {
    if !schema
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_')
        || schema.is_empty()
    {
        return Err(DbErr::Custom(format!(
            "schema name {schema:?} must be letters, digits and _"
        )));
    }
    let db = Database::connect(url).await?;
    // IF NOT EXISTS is not atomic: two replicas creating the schema at once can both pass the
    // check, and the loser fails on the catalog's unique index. Losing that race is fine.
    let created = db
        .execute_unprepared(&format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\""))
        .await;
    match created {
        Err(e)
            if matches!(
                e.sql_err(),
                Some(sea_orm::SqlErr::UniqueConstraintViolation(_))
            ) => {}
        other => {
            other?;
        }
    }
    db.close().await
}
