//! Connections of their own for the hottest read (GetCustomer) and, on PostgreSQL, for the
//! free-text page, outside the SeaORM pool.
//!
//! PostgreSQL: sqlx pings every connection it takes back into its pool (`return_to_pool`), so
//! each pooled query costs two round trips. A point select that is the whole call pays for that
//! ping as much as for the query. These connections go back to a plain list after a successful
//! query instead; one that failed, or whose caller went away mid-query, is closed rather than
//! reused. Their sessions pin the plans of the two statements they run (`reader_options`).
//!
//! SQLite: see [`SqliteReaders`].

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use sea_orm::sqlx::postgres::{PgConnectOptions, PgConnection, PgRow};
use sea_orm::sqlx::{self, ConnectOptions as _};
use tokio::sync::{Semaphore, SemaphorePermit};

/// PostgreSQL's reader connections (see the module's documentation).
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

    /// Runs `query` on an idle connection (or a new one) for at most one row, returning the
    /// connection to the list only if the query completed.
    pub(crate) async fn fetch_optional<'q>(
        &self,
        query: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
    ) -> Result<Option<PgRow>, sqlx::Error> {
        let (_permit, mut conn) = self.checkout().await?;
        let row = query.fetch_optional(&mut conn).await?;
        self.check_in(conn);
        Ok(row)
    }

    /// Runs `query` for all its rows, like `fetch_optional`.
    pub(crate) async fn fetch_all<'q>(
        &self,
        query: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
    ) -> Result<Vec<PgRow>, sqlx::Error> {
        let (_permit, mut conn) = self.checkout().await?;
        let rows = query.fetch_all(&mut conn).await?;
        self.check_in(conn);
        Ok(rows)
    }

    async fn checkout(&self) -> Result<(SemaphorePermit<'_>, PgConnection), sqlx::Error> {
        let permit = tokio::time::timeout(self.acquire_timeout, self.permits.acquire())
            .await
            .map_err(|_| sqlx::Error::PoolTimedOut)?
            .map_err(|_| sqlx::Error::PoolClosed)?;
        let idle = self.idle.lock().ok().and_then(|mut idle| idle.pop());
        let conn = match idle {
            Some(conn) => conn,
            None => self.options.connect().await?,
        };
        Ok((permit, conn))
    }

    fn check_in(&self, conn: PgConnection) {
        if let Ok(mut idle) = self.idle.lock() {
            idle.push(conn);
        }
    }
}

/// Connections of its own for GetCustomer on SQLite, queried synchronously on the calling thread.
///
/// sqlx runs every SQLite statement on a worker thread per connection and hands the rows back
/// through channels: two thread hops per query, which cost more CPU than the point select itself
/// (PERFORMANCE.md §2.3: 107 µs per call against 69 µs for a synchronous driver). A primary-key
/// lookup in WAL mode takes microseconds and never waits on writers, so it runs in place here.
/// There are as many connections as runtime threads; a call finding all of them taken (or the
/// database briefly busy) is told so and takes the pool's async path instead.
pub(crate) struct SqliteReaders {
    path: PathBuf,
    slots: Box<[Mutex<Option<rusqlite::Connection>>]>,
    next: AtomicUsize,
}

impl std::fmt::Debug for SqliteReaders {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteReaders")
            .field("path", &self.path)
            .field("slots", &self.slots.len())
            .finish()
    }
}

/// How long a reader waits on SQLite's own locks (WAL recovery, a checkpoint resetting the log)
/// while blocking its thread, before the call goes the async way.
const SQLITE_READER_BUSY_TIMEOUT: Duration = Duration::from_millis(20);

impl SqliteReaders {
    /// Readers of the database file `path`, which must exist (the pool has created and migrated
    /// it); `None` for an in-memory database, which other connections cannot see.
    pub(crate) fn for_file(path: &Path, size: usize) -> Option<Self> {
        path.is_file().then(|| Self {
            path: path.to_owned(),
            slots: (0..size.max(1)).map(|_| Mutex::new(None)).collect(),
            next: AtomicUsize::new(0),
        })
    }

    /// Runs `read` on a free connection, on this thread. `None` when every connection is in use,
    /// the database was busy or a connection could not be opened: the caller should take the
    /// async path.
    pub(crate) fn read<T>(
        &self,
        read: impl FnOnce(&rusqlite::Connection) -> rusqlite::Result<T>,
    ) -> Option<rusqlite::Result<T>> {
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let mut slot = (0..self.slots.len())
            .find_map(|i| self.slots[(start + i) % self.slots.len()].try_lock().ok())?;
        let conn = match slot.take() {
            Some(conn) => conn,
            None => match self.open() {
                Ok(conn) => conn,
                // The pool's path reports (and classifies) whatever keeps the file from opening.
                Err(e) => {
                    tracing::warn!(error = %e, "cannot open a SQLite reader; reading through the pool");
                    return None;
                }
            },
        };
        match read(&conn) {
            Err(e) if is_busy(&e) => {
                *slot = Some(conn);
                None
            }
            // A connection that failed otherwise is closed rather than trusted again.
            Err(e) => Some(Err(e)),
            Ok(value) => {
                *slot = Some(conn);
                Some(Ok(value))
            }
        }
    }

    fn open(&self) -> rusqlite::Result<rusqlite::Connection> {
        use rusqlite::OpenFlags;
        let conn = rusqlite::Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX
                | OpenFlags::SQLITE_OPEN_URI,
        )?;
        conn.busy_timeout(SQLITE_READER_BUSY_TIMEOUT)?;
        // Read-write (a read-only WAL connection needs the -shm file to be writable anyway), but
        // refusing any write: these connections only ever read.
        conn.pragma_update(None, "query_only", true)?;
        conn.execute_batch(&format!("PRAGMA cache_size = {}", super::SQLITE_CACHE_SIZE))?;
        Ok(conn)
    }
}

fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}
