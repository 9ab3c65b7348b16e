//! Connections of their own for the hottest read (GetCustomer) and, on PostgreSQL, for the
//! free-text page, outside the SeaORM pool.
//!
//! PostgreSQL: sqlx pings every connection it takes back into its pool (`return_to_pool`), so
//! each pooled query costs two round trips. A point select that is the whole call pays for that
//! ping as much as for the query. These connections go back to a plain list after a successful
//! query instead; one that failed, or whose caller went away mid-query, is closed rather than
//! reused. Their sessions pin the plans of the statements they run (`reader_options`). Point
//! reads that find every connection busy queue and go out together ([`PgReaders::read_point`]).
//!
//! SQLite: see [`SqliteReaders`].

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use sea_orm::sqlx::postgres::{PgConnectOptions, PgConnection, PgRow};
use sea_orm::sqlx::{self, ConnectOptions as _};
use tokio::sync::{Semaphore, SemaphorePermit, oneshot};
use tokio::time::Instant;

/// The most point reads one statement carries: 64 calls in flight on 2 connections make batches
/// of up to 32; the cap keeps a burst from building one statement the size of the burst.
const MAX_BATCH: usize = 64;

/// A read of at most one row by key that can also run for many keys in one statement, so that
/// reads queued while every connection is busy go out together (see [`PgReaders::read_point`]).
pub(crate) trait PointRead {
    type Key: Clone + Send + Sync + 'static;
    type Row: Send + 'static;

    /// The row of one key.
    fn one(
        conn: &mut PgConnection,
        key: &Self::Key,
    ) -> impl Future<Output = Result<Option<Self::Row>, sqlx::Error>> + Send;

    /// The rows of several keys in one statement, each with its key's position in `keys`, in any
    /// order; keys without a row are left out.
    fn many(
        conn: &mut PgConnection,
        keys: &[Self::Key],
    ) -> impl Future<Output = Result<Vec<(usize, Self::Row)>, sqlx::Error>> + Send;
}

struct Queued<R: PointRead> {
    key: R::Key,
    reply: oneshot::Sender<Reply<R::Row>>,
}

enum Reply<T> {
    /// The batch that carried this read found this.
    Read(Option<T>),
    /// A connection came free, or the batch that carried this read failed: read it yourself
    /// (taking the queue along).
    Lead,
}

/// What a point read found on arrival: a free connection, or a place in the queue.
enum Turn<'a, T> {
    Now(SemaphorePermit<'a>),
    Queued(oneshot::Receiver<Reply<T>>),
}

/// PostgreSQL's reader connections (see the module's documentation), and the point reads `R`
/// queued for one of them.
pub(crate) struct PgReaders<R: PointRead> {
    options: PgConnectOptions,
    idle: Mutex<Vec<PgConnection>>,
    permits: Semaphore,
    acquire_timeout: Duration,
    queued: Mutex<VecDeque<Queued<R>>>,
    /// Statements that carried more than one read.
    batches: AtomicU64,
}

impl<R: PointRead> std::fmt::Debug for PgReaders<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgReaders")
            .field("available", &self.permits.available_permits())
            .field("batches", &self.batches())
            .finish()
    }
}

/// A reader connection's slot: given back on drop, which also wakes a queued point read to take
/// it, whether the holder finished or was dropped mid-query (its caller went away).
struct Lease<'a, R: PointRead> {
    permit: Option<SemaphorePermit<'a>>,
    readers: &'a PgReaders<R>,
}

impl<R: PointRead> Drop for Lease<'_, R> {
    fn drop(&mut self) {
        let mut queued = self.readers.queue();
        // Given back under the queue's lock: a read arriving now either finds the slot free or
        // is queued before the look below, never in between.
        drop(self.permit.take());
        while let Some(read) = queued.pop_front() {
            if read.reply.send(Reply::Lead).is_ok() {
                return;
            }
        }
    }
}

impl<R: PointRead> PgReaders<R> {
    pub(crate) fn new(options: PgConnectOptions, size: u32, acquire_timeout: Duration) -> Self {
        Self {
            options,
            idle: Mutex::new(Vec::new()),
            permits: Semaphore::new(size.max(1) as usize),
            acquire_timeout,
            queued: Mutex::new(VecDeque::new()),
            batches: AtomicU64::new(0),
        }
    }

    /// How many statements so far carried more than one read.
    pub(crate) fn batches(&self) -> u64 {
        self.batches.load(Ordering::Relaxed)
    }

    fn queue(&self) -> std::sync::MutexGuard<'_, VecDeque<Queued<R>>> {
        // The queue holds no invariant that a panicking holder could leave half made.
        self.queued
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Up to `MAX_BATCH - 1` queued reads whose callers still wait.
    fn take_batch(&self) -> Vec<Queued<R>> {
        let mut queued = self.queue();
        let mut batch = Vec::new();
        while batch.len() < MAX_BATCH - 1 {
            match queued.pop_front() {
                Some(read) if read.reply.is_closed() => {}
                Some(read) => batch.push(read),
                None => break,
            }
        }
        batch
    }

    /// Reads `key`'s row. With a connection free, the read runs alone, at once. With every
    /// connection busy it queues, and the next read to get a connection carries the queue along
    /// in one statement (`PointRead::many`). The busier the service, the more reads a statement
    /// carries, for a fraction of the database's and this process's cost per read: pgbench here
    /// gave 4.7× the lookups per second at 8 keys a statement, and GetCustomer at 64 calls in
    /// flight went from 5.3–8.4k to 11.7–16.2k calls a second on 2 connections. A caller that goes
    /// away leaves the queue; a batch whose leader goes away, or whose statement fails, sends
    /// each of its reads back to run by itself, so one bad read cannot fail the others.
    pub(crate) async fn read_point(&self, key: R::Key) -> Result<Option<R::Row>, sqlx::Error> {
        let deadline = Instant::now() + self.acquire_timeout;
        let turn = {
            let mut queued = self.queue();
            match self.permits.try_acquire() {
                Ok(permit) => Turn::Now(permit),
                Err(_) => {
                    let (reply, answer) = oneshot::channel();
                    queued.push_back(Queued {
                        key: key.clone(),
                        reply,
                    });
                    Turn::Queued(answer)
                }
            }
        };
        let permit = match turn {
            Turn::Now(permit) => permit,
            Turn::Queued(answer) => match tokio::time::timeout_at(deadline, answer).await {
                Err(_) => return Err(sqlx::Error::PoolTimedOut),
                Ok(Ok(Reply::Read(row))) => return Ok(row),
                // Told to lead, or the batch's leader went away (dropping the reply's sender).
                Ok(Ok(Reply::Lead) | Err(_)) => {
                    tokio::time::timeout_at(deadline, self.permits.acquire())
                        .await
                        .map_err(|_| sqlx::Error::PoolTimedOut)?
                        .map_err(|_| sqlx::Error::PoolClosed)?
                }
            },
        };
        let lease = Lease {
            permit: Some(permit),
            readers: self,
        };
        let batch = self.take_batch();
        let mut conn = match self.connection().await {
            Ok(conn) => conn,
            Err(e) => {
                lead_each(batch);
                return Err(e);
            }
        };
        if batch.is_empty() {
            let row = R::one(&mut conn, &key).await?;
            self.check_in(conn);
            drop(lease);
            return Ok(row);
        }
        self.batches.fetch_add(1, Ordering::Relaxed);
        let keys: Vec<R::Key> = std::iter::once(key)
            .chain(batch.iter().map(|read| read.key.clone()))
            .collect();
        let found = match R::many(&mut conn, &keys).await {
            Ok(found) => found,
            Err(_) => {
                // Whichever read broke the statement, each one's own error (or row) is what its
                // caller should get: every read runs again alone, this one on a new connection.
                drop(conn);
                lead_each(batch);
                let mut conn = self.connection().await?;
                let row = R::one(&mut conn, &keys[0]).await?;
                self.check_in(conn);
                return Ok(row);
            }
        };
        self.check_in(conn);
        drop(lease);
        let mut rows: Vec<Option<R::Row>> =
            std::iter::repeat_with(|| None).take(keys.len()).collect();
        for (position, row) in found {
            if let Some(slot) = rows.get_mut(position) {
                *slot = Some(row);
            }
        }
        let mut rows = rows.into_iter();
        let own = rows.next().flatten();
        for (read, row) in batch.into_iter().zip(rows) {
            // A caller that went away meanwhile needs no answer.
            let _ = read.reply.send(Reply::Read(row));
        }
        Ok(own)
    }

    /// Runs `query` for all its rows on an idle connection (or a new one), returning the
    /// connection to the list only if the query completed.
    pub(crate) async fn fetch_all<'q>(
        &self,
        query: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
    ) -> Result<Vec<PgRow>, sqlx::Error> {
        let permit = tokio::time::timeout(self.acquire_timeout, self.permits.acquire())
            .await
            .map_err(|_| sqlx::Error::PoolTimedOut)?
            .map_err(|_| sqlx::Error::PoolClosed)?;
        let _lease = Lease {
            permit: Some(permit),
            readers: self,
        };
        let mut conn = self.connection().await?;
        let rows = query.fetch_all(&mut conn).await?;
        self.check_in(conn);
        Ok(rows)
    }

    async fn connection(&self) -> Result<PgConnection, sqlx::Error> {
        let idle = self.idle.lock().ok().and_then(|mut idle| idle.pop());
        match idle {
            Some(conn) => Ok(conn),
            None => self.options.connect().await,
        }
    }

    fn check_in(&self, conn: PgConnection) {
        if let Ok(mut idle) = self.idle.lock() {
            idle.push(conn);
        }
    }
}

/// Sends each read of a batch that could not run back to run by itself.
fn lead_each<R: PointRead>(batch: Vec<Queued<R>>) {
    for read in batch {
        let _ = read.reply.send(Reply::Lead);
    }
}

/// Connections of its own for GetCustomer on SQLite, queried synchronously on the calling thread.
///
/// sqlx runs every SQLite statement on a worker thread per connection and hands the rows back
/// through channels: two thread hops per query, which cost more CPU than the point select itself
/// (docs/performance.md P2: 107 µs per call against 69 µs for a synchronous driver). A primary-key
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
        // Like every connection of the service (`Store::connect`), though a query-only one never
        // deletes anything.
        conn.pragma_update(None, "secure_delete", true)?;
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    /// A point read with no table: key k's row is 10·k, none for multiples of 7. Key 13 makes
    /// the statement fail (division by zero) and a negative key sleeps −k ms first.
    struct TenTimes;

    impl PointRead for TenTimes {
        type Key = i32;
        type Row = i32;

        async fn one(conn: &mut PgConnection, key: &i32) -> Result<Option<i32>, sqlx::Error> {
            sqlx::query_scalar(
                "SELECT k * 10 FROM (SELECT $1::int AS k) key, \
                 pg_sleep(greatest(-k, 0) / 1000.0) WHERE k % 7 <> 0 AND 1 / (k - 13) IS NOT NULL",
            )
            .bind(key)
            .fetch_optional(conn)
            .await
        }

        async fn many(
            conn: &mut PgConnection,
            keys: &[i32],
        ) -> Result<Vec<(usize, i32)>, sqlx::Error> {
            let rows: Vec<(i64, i32)> = sqlx::query_as(
                "SELECT position, k * 10 FROM unnest($1::int[]) WITH ORDINALITY AS key(k, position), \
                 pg_sleep(greatest(-k, 0) / 1000.0) WHERE k % 7 <> 0 AND 1 / (k - 13) IS NOT NULL",
            )
            .bind(keys)
            .fetch_all(conn)
            .await?;
            Ok(rows
                .into_iter()
                .map(|(position, row)| (position as usize - 1, row))
                .collect())
        }
    }

    fn expected(key: i32) -> Option<i32> {
        (key % 7 != 0).then_some(key * 10)
    }

    /// One reader connection on the test PostgreSQL; `None` (reported as skipped) when it is
    /// unreachable outside CI.
    async fn one_connection(acquire_timeout: Duration) -> Option<Arc<PgReaders<TenTimes>>> {
        let options: PgConnectOptions = super::super::test_postgres_url().await?.parse().unwrap();
        Some(Arc::new(PgReaders::new(options, 1, acquire_timeout)))
    }

    fn spawn_read(
        readers: &Arc<PgReaders<TenTimes>>,
        key: i32,
    ) -> tokio::task::JoinHandle<Result<Option<i32>, sqlx::Error>> {
        let readers = Arc::clone(readers);
        tokio::spawn(async move { readers.read_point(key).await })
    }

    /// Reads queued behind the one busy connection go out together and each gets its own row.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_reads_queued_behind_a_busy_connection_go_out_together() {
        let Some(readers) = one_connection(Duration::from_secs(10)).await else {
            return;
        };
        let busy = spawn_read(&readers, -300);
        tokio::time::sleep(Duration::from_millis(50)).await;
        let keys: Vec<i32> = (1..=40).filter(|&k| k != 13).collect();
        let reads: Vec<_> = keys.iter().map(|&k| spawn_read(&readers, k)).collect();
        assert_eq!(busy.await.unwrap().unwrap(), Some(-3000));
        for (key, read) in keys.into_iter().zip(reads) {
            assert_eq!(read.await.unwrap().unwrap(), expected(key), "key {key}");
        }
        assert_eq!(
            readers.batches(),
            1,
            "the 39 queued reads took one statement"
        );
    }

    /// A batch whose statement fails sends its reads back to run alone: only the bad one fails.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_a_failing_batch_fails_only_its_bad_read() {
        let Some(readers) = one_connection(Duration::from_secs(10)).await else {
            return;
        };
        let busy = spawn_read(&readers, -300);
        tokio::time::sleep(Duration::from_millis(50)).await;
        let keys: Vec<i32> = (1..=20).collect();
        let reads: Vec<_> = keys.iter().map(|&k| spawn_read(&readers, k)).collect();
        busy.await.unwrap().unwrap();
        for (key, read) in keys.into_iter().zip(reads) {
            match read.await.unwrap() {
                Err(sqlx::Error::Database(e)) if key == 13 => {
                    assert_eq!(e.code().as_deref(), Some("22012"), "division by zero");
                }
                got => assert_eq!(got.unwrap(), expected(key), "key {key}"),
            }
        }
        assert!(readers.batches() >= 1);
        // The connection that failed was closed, not reused: a new one serves.
        assert_eq!(readers.read_point(2).await.unwrap(), Some(20));
    }

    /// A batch's leader whose caller goes away mid-statement leaves its reads to run themselves.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_reads_outlive_a_batch_leader_that_goes_away() {
        let Some(readers) = one_connection(Duration::from_secs(10)).await else {
            return;
        };
        let busy = spawn_read(&readers, -200);
        tokio::time::sleep(Duration::from_millis(50)).await;
        // First in the queue, so it leads the next batch, which sleeps 2 s on its key.
        let leader = spawn_read(&readers, -2000);
        tokio::time::sleep(Duration::from_millis(20)).await;
        let keys: Vec<i32> = (1..=10).collect();
        let reads: Vec<_> = keys.iter().map(|&k| spawn_read(&readers, k)).collect();
        busy.await.unwrap().unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(readers.batches(), 1, "the leader's batch is under way");
        leader.abort();
        let started = Instant::now();
        for (key, read) in keys.into_iter().zip(reads) {
            assert_eq!(read.await.unwrap().unwrap(), expected(key), "key {key}");
        }
        assert!(
            started.elapsed() < Duration::from_millis(1500),
            "answered without waiting for the abandoned statement ({:?})",
            started.elapsed()
        );
    }

    /// A queued read gives up at the acquire timeout, and the queue carries on without it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_a_queued_read_times_out_and_leaves_the_queue() {
        let Some(readers) = one_connection(Duration::from_millis(300)).await else {
            return;
        };
        let busy = spawn_read(&readers, -600);
        tokio::time::sleep(Duration::from_millis(50)).await;
        let late = spawn_read(&readers, 1);
        assert!(matches!(
            late.await.unwrap(),
            Err(sqlx::Error::PoolTimedOut)
        ));
        assert_eq!(busy.await.unwrap().unwrap(), Some(-6000));
        assert_eq!(readers.read_point(3).await.unwrap(), Some(30));
        assert_eq!(readers.batches(), 0, "the timed-out read was not carried");
    }
}
