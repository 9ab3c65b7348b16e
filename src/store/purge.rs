//! Erasure: finding deleted customers whose retention has passed and turning one into an
//! anonymous tombstone; finding records deleted on their own whose retention has passed and
//! removing them. The only queries that are not tenant-scoped are the purger's two scans for what
//! is due (`due`, `due_records`): they look across tenants by design, and every erasure they lead
//! to is tenant-scoped again.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, LockBehavior, LockType};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DbBackend, EntityTrait, ExprTrait, JoinType,
    QueryFilter, QueryOrder, QuerySelect,
};
use uuid::Uuid;

use super::entity::{customer, deletion_request, idempotency_key};
use super::records::{OnTable, RecordScope as _, RecordTable, on_table};
use super::scope::{Liveness as _, NotErased as _, TenantScoped};
use crate::domain::model::record::RecordKind;
use crate::error::Result;
use crate::reason;

/// Deleted customers (tenant, id) whose purge_time has passed, not under legal hold, oldest due
/// first. With `lock`, on PostgreSQL the rows are locked `FOR UPDATE SKIP LOCKED`: replicas
/// purging at once each take different customers, and a customer being restored is skipped.
pub async fn due(
    conn: &impl ConnectionTrait,
    now: DateTime<Utc>,
    limit: u64,
    lock: bool,
) -> Result<Vec<(String, Uuid)>> {
    use customer::Column as C;
    // Across tenants on purpose: the purger serves every tenant, and returns each customer with
    // its tenant, which scopes the erasure (`erase`).
    let mut select = customer::Entity::find()
        .select_only()
        .column(C::TenantId)
        .column(C::Id)
        .deleted()
        .not_erased()
        .filter(C::PurgeTime.lte(now))
        .filter(C::LegalHold.eq(false))
        .order_by_asc(C::PurgeTime)
        .limit(limit);
    if lock && conn.get_database_backend() == DbBackend::Postgres {
        select = select.lock_with_behavior(LockType::Update, LockBehavior::SkipLocked);
    }
    Ok(select.into_tuple().all(conn).await?)
}

/// Records of `kind` deleted on their own whose purge_time has passed, as (tenant, id,
/// customer_id), oldest due first, at most `limit`. Left out: records deleted with their customer
/// (a deletion_id: the customer's erasure removes them), records of a customer under legal hold (a
/// hold keeps everything), and records of a customer that is itself due (its erasure takes and
/// counts them). With `lock`, on PostgreSQL the record and customer rows are locked `FOR UPDATE
/// SKIP LOCKED`: replicas purging at once take different records, a record being restored is
/// skipped, and a legal hold being set waits for the pass or makes it skip the customer's records.
pub async fn due_records(
    conn: &impl ConnectionTrait,
    kind: RecordKind,
    now: DateTime<Utc>,
    limit: u64,
    lock: bool,
) -> Result<Vec<(String, Uuid, Uuid)>> {
    struct Due<'a, C> {
        conn: &'a C,
        now: DateTime<Utc>,
        limit: u64,
        lock: bool,
    }
    impl<C: ConnectionTrait> OnTable for Due<'_, C> {
        type Output = Vec<(String, Uuid, Uuid)>;
        async fn on<T: RecordTable>(self) -> Result<Vec<(String, Uuid, Uuid)>> {
            let now = self.now;
            let to_customer = T::belongs_to(customer::Entity)
                .from((T::TENANT_ID, T::CUSTOMER_ID))
                .to((customer::Column::TenantId, customer::Column::Id))
                .into();
            // Across tenants on purpose, like `due`: each record comes with its tenant, which
            // scopes its erasure (`erase_record`).
            let mut select = T::find()
                .select_only()
                .column(T::TENANT_ID)
                .column(T::ID)
                .column(T::CUSTOMER_ID)
                .join(JoinType::InnerJoin, to_customer)
                // The predicate of ix_<table>_purge_due, repeated so that SQLite uses the index.
                .filter(T::DELETION_ID.is_null())
                .filter(T::PURGE_TIME.is_not_null())
                .deleted()
                .filter(T::PURGE_TIME.lte(now))
                .filter(customer::Column::LegalHold.eq(false))
                .filter(
                    Condition::any()
                        .add(customer::Column::PurgeTime.is_null())
                        .add(customer::Column::PurgeTime.gt(now)),
                )
                .order_by_asc(T::PURGE_TIME)
                .limit(self.limit);
            if self.lock && self.conn.get_database_backend() == DbBackend::Postgres {
                select = select.lock_with_behavior(LockType::Update, LockBehavior::SkipLocked);
            }
            Ok(select.into_tuple().all(self.conn).await?)
        }
    }
    let due = Due {
        conn,
        now,
        limit,
        lock,
    };
    on_table(kind, due).await
}

/// Removes for good a record deleted on its own (never one deleted with its customer). Returns
/// whether it was there to remove.
pub async fn erase_record(
    conn: &impl ConnectionTrait,
    tenant: &str,
    kind: RecordKind,
    id: Uuid,
) -> Result<bool> {
    struct EraseRecord<'a, C> {
        conn: &'a C,
        tenant: &'a str,
        id: Uuid,
    }
    impl<C: ConnectionTrait> OnTable for EraseRecord<'_, C> {
        type Output = u64;
        async fn on<T: RecordTable>(self) -> Result<u64> {
            Ok(T::delete_in_tenant(self.tenant)
                .with_id(self.id)
                .filter(T::DELETION_ID.is_null())
                .deleted()
                .exec(self.conn)
                .await?
                .rows_affected)
        }
    }
    let rows = on_table(kind, EraseRecord { conn, tenant, id }).await?;
    Ok(rows == 1)
}

/// Drops the tenant's stored idempotent answers that name any of `ids` (JSON of domain values
/// that carry the erased data): one statement for a batch, as a tenant's keys live a day.
pub async fn drop_answers_naming(
    conn: &impl ConnectionTrait,
    tenant: &str,
    ids: &[Uuid],
) -> Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    use idempotency_key::Column as C;
    let naming = ids.iter().fold(Condition::any(), |any, id| {
        any.add(C::Response.contains(id.to_string()))
    });
    idempotency_key::Entity::delete_in_tenant(tenant)
        .filter(naming)
        .exec(conn)
        .await?;
    Ok(())
}

/// Counts of what erasing a customer removes (its deleted records) and keeps (its live records:
/// what the KEEP policy left).
pub async fn erasable_counts(
    conn: &impl ConnectionTrait,
    tenant: &str,
    customer_id: Uuid,
) -> Result<(u64, u64)> {
    struct Count<'a, C> {
        conn: &'a C,
        tenant: &'a str,
        customer_id: Uuid,
    }
    impl<C: ConnectionTrait> OnTable for Count<'_, C> {
        type Output = (u64, u64);
        async fn on<T: RecordTable>(self) -> Result<(u64, u64)> {
            let of_customer = || {
                T::in_tenant(self.tenant)
                    .select_only()
                    .column_as(T::ID.count(), "n")
                    .of_customer(self.customer_id)
            };
            let deleted: Option<i64> = of_customer().deleted().into_tuple().one(self.conn).await?;
            let live: Option<i64> = of_customer().live().into_tuple().one(self.conn).await?;
            Ok((deleted.unwrap_or(0) as u64, live.unwrap_or(0) as u64))
        }
    }
    let (mut erased, mut kept) = (0u64, 0u64);
    for kind in RecordKind::ALL {
        let count = Count {
            conn,
            tenant,
            customer_id,
        };
        let (deleted, live) = on_table(kind, count).await?;
        erased += deleted;
        kept += live;
    }
    Ok((erased, kept))
}

/// Erases a deleted customer: its deleted records go for good (one DELETE per table), the
/// customer row keeps only ids and times (a tombstone that kept records still point at), the
/// free text of its deletion requests is blanked, and stored idempotent answers that carry its
/// data are dropped. Returns (records erased, records kept).
pub async fn erase(
    conn: &impl ConnectionTrait,
    tenant: &str,
    customer_id: Uuid,
    now: DateTime<Utc>,
) -> Result<(u64, u64)> {
    struct EraseDeleted<'a, C> {
        conn: &'a C,
        tenant: &'a str,
        customer_id: Uuid,
    }
    impl<C: ConnectionTrait> OnTable for EraseDeleted<'_, C> {
        type Output = u64;
        async fn on<T: RecordTable>(self) -> Result<u64> {
            Ok(T::delete_in_tenant(self.tenant)
                .of_customer(self.customer_id)
                .deleted()
                .exec(self.conn)
                .await?
                .rows_affected)
        }
    }
    let (_, kept) = erasable_counts(conn, tenant, customer_id).await?;
    // A merged duplicate can no longer be unmerged: what its merge moved is forgotten.
    if let Some(deletion_id) = super::deletion::deletion_id_of(conn, tenant, customer_id).await? {
        super::merges::forget(conn, tenant, deletion_id).await?;
    }
    let mut erased = 0;
    for kind in RecordKind::ALL {
        let erase = EraseDeleted {
            conn,
            tenant,
            customer_id,
        };
        erased += on_table(kind, erase).await?;
    }
    {
        use customer::Column as C;
        customer::Entity::update_in_tenant(tenant)
            .col_expr(C::Name, Expr::value(""))
            .col_expr(C::Phone, Expr::value(Option::<String>::None))
            .col_expr(C::Email, Expr::value(Option::<String>::None))
            .col_expr(C::Industry, Expr::value(Option::<String>::None))
            .col_expr(C::ExternalRef, Expr::value(Option::<String>::None))
            .col_expr(C::SearchText, Expr::value(""))
            .col_expr(C::MatchEmail, Expr::value(Option::<String>::None))
            .col_expr(C::MatchPhone, Expr::value(Option::<String>::None))
            .col_expr(C::MatchRef, Expr::value(Option::<String>::None))
            .col_expr(C::MatchName, Expr::value(Option::<String>::None))
            .col_expr(C::EraseTime, Expr::value(now))
            .col_expr(C::Version, Expr::col(C::Version).add(1))
            .filter(C::Id.eq(customer_id))
            .exec(conn)
            .await?;
    }
    {
        use deletion_request::Column as C;
        deletion_request::Entity::update_in_tenant(tenant)
            .col_expr(C::Reason, Expr::value(""))
            .col_expr(C::DecisionComment, Expr::value(Option::<String>::None))
            .col_expr(C::MergeValues, Expr::value(Option::<String>::None))
            .filter(C::CustomerId.eq(customer_id))
            .exec(conn)
            .await?;
        // A merge into this customer kept its values from before the merge: its data too.
        deletion_request::Entity::update_in_tenant(tenant)
            .col_expr(C::MergeValues, Expr::value(Option::<String>::None))
            .filter(C::SurvivorId.eq(customer_id))
            .exec(conn)
            .await?;
    }
    {
        // Stored answers are JSON of domain values that name the customer by id. Keys live for
        // their TTL (a day by default), so this scans at most a day of the tenant's keys.
        use idempotency_key::Column as C;
        idempotency_key::Entity::delete_in_tenant(tenant)
            .filter(C::Response.contains(customer_id.to_string()))
            .exec(conn)
            .await?;
    }
    Ok((erased, kept))
}

/// Every table an erasure deletes rows from or blanks values in: where an erased customer's bytes
/// stay behind on PostgreSQL (dead tuples, then free space) until the table is rewritten.
pub const ERASED_TABLES: [&str; 9] = [
    "customer",
    "contact",
    "deal",
    "sales_order",
    "contract",
    "project",
    "activity",
    "deletion_request",
    "idempotency_key",
];

/// How many times a table's rewrite asks for its lock (each ask bounded by the lock timeout)
/// before giving up: a transaction holding the table that long is better waited out by the
/// operator than queued behind.
const REWRITE_LOCK_TRIES: u32 = 10;

/// One table rewritten: how long it held its lock and its size (with indexes and TOAST) before
/// and after.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rewritten {
    pub table: String,
    pub took: std::time::Duration,
    pub bytes_before: i64,
    pub bytes_after: i64,
}

/// Rewrites the database so that no file keeps the bytes of erased rows.
///
/// PostgreSQL: `VACUUM FULL` of each of `ERASED_TABLES`, one at a time: a new copy of the table,
/// its TOAST and its indexes with the live rows only; the old files are truncated when it commits.
/// Each holds an ACCESS EXCLUSIVE lock on its table for its whole run, so calls touching that
/// table wait (and fail `DATABASE_BUSY` after the lock timeout). Asking for the lock is bounded by
/// the lock timeout and retried, so a long transaction delays the rewrite instead of every call.
///
/// SQLite: `VACUUM` rebuilds the whole file from its live content (free pages from before
/// `secure_delete` was on included), then a TRUNCATE checkpoint empties the WAL it went through.
pub async fn rewrite(store: &super::Store) -> Result<Vec<Rewritten>> {
    use sea_orm::sqlx::{AssertSqlSafe, Row as _};
    let Some(mut conn) = store.maintenance_connection().await? else {
        let size = async || {
            let row = store
                .conn()
                .query_one_raw(sea_orm::Statement::from_string(
                    DbBackend::Sqlite,
                    "SELECT page_count * page_size AS bytes \
                     FROM pragma_page_count(), pragma_page_size()",
                ))
                .await?
                .ok_or_else(|| crate::Error::internal("no page count"))?;
            Ok::<i64, crate::Error>(row.try_get::<i64>("", "bytes")?)
        };
        let bytes_before = size().await?;
        let started = std::time::Instant::now();
        store.conn().execute_unprepared("VACUUM").await?;
        if !store.checkpoint_erasure().await? {
            return Err(crate::Error::Unavailable(crate::error::Problem::new(
                reason::DATABASE_BUSY,
                "the rewrite is done but a reader kept the WAL from being emptied; run it again",
            )));
        }
        return Ok(vec![Rewritten {
            table: "(the whole SQLite file)".into(),
            took: started.elapsed(),
            bytes_before,
            bytes_after: size().await?,
        }]);
    };
    let from_sqlx = |e: sea_orm::sqlx::Error| {
        crate::Error::from(sea_orm::DbErr::Exec(sea_orm::RuntimeErr::SqlxError(
            e.into(),
        )))
    };
    let mut done = Vec::new();
    let size = async |conn: &mut sea_orm::sqlx::PgConnection, table: &str| {
        sea_orm::sqlx::query("SELECT pg_total_relation_size($1::regclass) AS bytes")
            .bind(table)
            .fetch_one(conn)
            .await
            .and_then(|row| row.try_get::<i64, _>("bytes"))
            .map_err(from_sqlx)
    };
    for table in ERASED_TABLES {
        let bytes_before = size(&mut conn, table).await?;
        let mut tries = 0;
        let took = loop {
            let started = std::time::Instant::now();
            let vacuum = sea_orm::sqlx::query(AssertSqlSafe(format!("VACUUM FULL {table}")));
            match vacuum.execute(&mut conn).await {
                Ok(_) => break started.elapsed(),
                Err(sea_orm::sqlx::Error::Database(e))
                    if e.code().as_deref() == Some("55P03") && tries + 1 < REWRITE_LOCK_TRIES =>
                {
                    tries += 1;
                    tracing::warn!(
                        table,
                        tries,
                        "the table is in use: asking for its lock again"
                    );
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                }
                Err(e) => return Err(from_sqlx(e)),
            }
        };
        let bytes_after = size(&mut conn, table).await?;
        done.push(Rewritten {
            table: table.to_owned(),
            took,
            bytes_before,
            bytes_after,
        });
    }
    Ok(done)
}
