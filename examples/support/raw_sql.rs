//! The raw-SQL side of the benchmarks: the server's database reached directly, one connection,
//! for the floors the service is divided by. Included by `load_bench` and `merge_bench` with
//! `#[macro_use] #[path]` (examples share no library of their own); each adds the statements it measures in
//! its own `impl Raw`.

use std::str::FromStr;
use std::time::Duration;

use crm_service::domain::records::RecordKind;
use sea_orm::sqlx;

/// The server's database, reached directly (one connection), for the raw-SQL floors.
pub enum Raw {
    Pg(sqlx::PgPool),
    Lite(sqlx::SqlitePool),
}

/// Runs `$body` with `$pool` bound to the pool of either database, and `$begin` to the statement
/// that opens a write transaction there (SQLite: IMMEDIATE, as the store does).
macro_rules! on_pool {
    ($raw:expr, $pool:ident, $begin:ident => $body:expr) => {
        match $raw {
            Raw::Pg($pool) => {
                let $begin = "BEGIN";
                $body
            }
            Raw::Lite($pool) => {
                let $begin = "BEGIN IMMEDIATE";
                $body
            }
        }
    };
}

/// Table and state column of each record kind (src/store/entity, migration m0001).
pub fn table_of(kind: RecordKind) -> (&'static str, Option<&'static str>) {
    match kind {
        RecordKind::Contact => ("contact", None),
        RecordKind::Activity => ("activity", None),
        RecordKind::Deal => ("deal", Some("stage")),
        RecordKind::Order => ("sales_order", Some("status")),
        RecordKind::Contract => ("contract", Some("status")),
        RecordKind::Project => ("project", Some("status")),
    }
}

pub type Sql = sqlx::AssertSqlSafe<String>;

pub fn sql(text: String) -> Sql {
    sqlx::AssertSqlSafe(text)
}

impl Raw {
    pub async fn connect(url: &str, schema: Option<&str>) -> Result<Self, sqlx::Error> {
        use sqlx::pool::PoolOptions;
        if url.starts_with("sqlite:") {
            let options = sqlx::sqlite::SqliteConnectOptions::from_str(url)?
                .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
                .synchronous(sqlx::sqlite::SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(5))
                .foreign_keys(true);
            let pool = PoolOptions::new()
                .max_connections(1)
                .test_before_acquire(false)
                .connect_with(options)
                .await?;
            Ok(Raw::Lite(pool))
        } else {
            let mut options = sqlx::postgres::PgConnectOptions::from_str(url)?;
            if let Some(schema) = schema {
                options = options.options([("search_path", schema)]);
            }
            let pool = PoolOptions::new()
                .max_connections(1)
                .test_before_acquire(false)
                .connect_with(options)
                .await?;
            Ok(Raw::Pg(pool))
        }
    }
}
