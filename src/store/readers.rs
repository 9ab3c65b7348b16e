//! Connections of its own for the hottest read (GetCustomer) on PostgreSQL.
//!
//! sqlx pings every connection it takes back into its pool (`return_to_pool`), so each pooled
//! query costs two round trips. A point select that is the whole call pays for that ping as much
//! as for the query. These connections go back to a plain list after a successful query instead;
//! one that failed, or whose caller went away mid-query, is closed rather than reused.

use std::sync::Mutex;
use std::time::Duration;

use sea_orm::sqlx::postgres::{PgConnectOptions, PgConnection, PgRow};
use sea_orm::sqlx::{self, ConnectOptions as _};
use tokio::sync::Semaphore;

pub(crate) struct PgReaders {
    options: PgConnectOptions,
    idle: Mutex<Vec<PgConnection>>,
    permits: Semaphore,
    acquire_timeout: Duration,
}

impl std::fmt::Debug for PgReaders {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgReaders")
            .field("available", &self.permits.available_permits())
            .finish()
    }
}

impl PgReaders {
    pub(crate) fn new(options: PgConnectOptions, size: u32, acquire_timeout: Duration) -> Self {
        Self {
            options,
            idle: Mutex::new(Vec::new()),
            permits: Semaphore::new(size.max(1) as usize),
            acquire_timeout,
        }
    }

    /// Runs `query` on an idle connection (or a new one), returning the connection to the list
    /// only if the query completed.
    pub(crate) async fn fetch_optional<'q>(
        &self,
        query: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
    ) -> Result<Option<PgRow>, sqlx::Error> {
        let _permit = tokio::time::timeout(self.acquire_timeout, self.permits.acquire())
            .await
            .map_err(|_| sqlx::Error::PoolTimedOut)?
            .map_err(|_| sqlx::Error::PoolClosed)?;
        let idle = self.idle.lock().ok().and_then(|mut idle| idle.pop());
        let mut conn = match idle {
            Some(conn) => conn,
            None => self.options.connect().await?,
        };
        let row = query.fetch_optional(&mut conn).await?;
        if let Ok(mut idle) = self.idle.lock() {
            idle.push(conn);
        }
        Ok(row)
    }
}
