//! Customer rows. Every query filters by tenant; callers choose whether deleted rows count.

use sea_orm::sea_query::{Alias, Expr, LikeExpr};
use sea_orm::{
    ActiveValue::{NotSet, Set},
    ColumnTrait, ConnectionTrait, DatabaseBackend, EntityTrait, ExprTrait, QueryFilter, QueryOrder,
    QuerySelect, QueryTrait, SqlErr, Statement,
};
use uuid::Uuid;

use super::entity::customer::{self, Column, Entity};
use super::scope::{Liveness as _, NotErased as _, TenantScoped as _};
use crate::domain::model::customer::{
    Customer, CustomerQuery, CustomerStatus, LifecycleStage, search_text,
};
use crate::domain::model::matching::{self, MatchKey};
use crate::error::{Error, Problem, Result};
use crate::reason;
use crate::store::{RawPool, Store, Written};

fn stage_str(stage: LifecycleStage) -> &'static str {
    match stage {
        LifecycleStage::Lead => "LEAD",
        LifecycleStage::Prospect => "PROSPECT",
        LifecycleStage::Customer => "CUSTOMER",
    }
}

fn status_str(status: CustomerStatus) -> &'static str {
    match status {
        CustomerStatus::Active => "ACTIVE",
        CustomerStatus::Inactive => "INACTIVE",
    }
}

fn none_if_empty(value: &str) -> Option<String> {
    (!value.is_empty()).then(|| value.to_owned())
}

pub(crate) fn into_domain(row: customer::Model) -> Result<Customer> {
    let lifecycle_stage = match row.lifecycle_stage.as_str() {
        "LEAD" => LifecycleStage::Lead,
        "PROSPECT" => LifecycleStage::Prospect,
        "CUSTOMER" => LifecycleStage::Customer,
        other => {
            return Err(Error::internal(format!(
                "unknown lifecycle stage {other:?} in customer {}",
                row.id
            )));
        }
    };
    let status = match row.status.as_str() {
        "ACTIVE" => CustomerStatus::Active,
        "INACTIVE" => CustomerStatus::Inactive,
        other => {
            return Err(Error::internal(format!(
                "unknown status {other:?} in customer {}",
                row.id
            )));
        }
    };
    Ok(Customer {
        id: row.id,
        name: row.name,
        phone: row.phone.unwrap_or_default(),
        email: row.email.unwrap_or_default(),
        industry: row.industry.unwrap_or_default(),
        owner_id: row.owner_id,
        lifecycle_stage,
        status,
        external_ref: row.external_ref.unwrap_or_default(),
        legal_hold: row.legal_hold,
        key_account: row.key_account,
        create_time: row.create_time,
        update_time: row.update_time,
        delete_time: row.delete_time,
        purge_time: row.purge_time,
        version: row.version,
        deletion_id: row.deletion_id,
    })
}

/// Every column but the key and the deletion bookkeeping, from a domain value.
fn writable_columns(c: &Customer) -> customer::ActiveModel {
    customer::ActiveModel {
        tenant_id: NotSet,
        id: NotSet,
        name: Set(c.name.clone()),
        phone: Set(none_if_empty(&c.phone)),
        email: Set(none_if_empty(&c.email)),
        industry: Set(none_if_empty(&c.industry)),
        owner_id: Set(c.owner_id.clone()),
        lifecycle_stage: Set(stage_str(c.lifecycle_stage).to_owned()),
        status: Set(status_str(c.status).to_owned()),
        external_ref: Set(none_if_empty(&c.external_ref)),
        legal_hold: Set(c.legal_hold),
        key_account: Set(c.key_account),
        search_text: Set(search_text(&c.name, &c.email, &c.phone)),
        create_time: Set(c.create_time),
        update_time: Set(c.update_time),
        delete_time: NotSet,
        purge_time: NotSet,
        deletion_id: NotSet,
        version: Set(c.version),
        erase_time: NotSet,
        match_email: Set(matching::email_key(&c.email)),
        match_phone: Set(matching::phone_key(&c.phone)),
        match_ref: Set(matching::external_ref_key(&c.external_ref)),
        match_name: Set(matching::name_key(&c.name)),
    }
}

/// The one unique constraint a customer write can break is the live external_ref.
fn external_ref_taken(external_ref: &str) -> Error {
    Error::AlreadyExists(
        Problem::new(
            reason::EXTERNAL_REF_TAKEN,
            "another live customer of this tenant already has this external_ref",
        )
        .with("field", "customer.external_ref")
        .with("externalRef", external_ref),
    )
}

fn map_unique(err: sea_orm::DbErr, c: &Customer) -> Error {
    match err.sql_err() {
        Some(SqlErr::UniqueConstraintViolation(_)) => external_ref_taken(&c.external_ref),
        _ => err.into(),
    }
}

pub async fn insert(conn: &impl ConnectionTrait, tenant: &str, c: &Customer) -> Result<()> {
    let mut row = writable_columns(c);
    row.tenant_id = Set(tenant.to_owned());
    row.id = Set(c.id);
    row.delete_time = Set(c.delete_time);
    row.purge_time = Set(c.purge_time);
    row.deletion_id = Set(None);
    row.erase_time = Set(None);
    Entity::insert(row)
        .exec_without_returning(conn)
        .await
        .map_err(|e| map_unique(e, c))?;
    Ok(())
}

/// Bind parameters one statement may carry: SQLite's `SQLITE_MAX_VARIABLE_NUMBER` (32,766 since
/// 3.32) and PostgreSQL's protocol limit (65,535, a 16-bit count).
fn max_binds(backend: DatabaseBackend) -> usize {
    match backend {
        DatabaseBackend::Sqlite => 32_766,
        _ => 65_535,
    }
}

/// Inserts new customers set-based, in their order: one multi-row INSERT per chunk, each chunk as
/// many rows as the database's bind-parameter limit allows (every column is one parameter, so
/// 1,365 rows on SQLite, 2,730 on PostgreSQL). The caller has checked that no external_ref is
/// taken; a unique violation here means a concurrent call took one since (PostgreSQL: SQLite's
/// single writer cannot interleave), which is reported as a conflict so that the mutation runs
/// again and its check names the customer at fault.
pub async fn insert_all(
    conn: &impl ConnectionTrait,
    tenant: &str,
    customers: &[Customer],
) -> Result<()> {
    use sea_orm::Iterable as _;
    let rows_per_statement = max_binds(conn.get_database_backend()) / Column::iter().count();
    for chunk in customers.chunks(rows_per_statement) {
        let rows = chunk.iter().map(|c| {
            let mut row = writable_columns(c);
            row.tenant_id = Set(tenant.to_owned());
            row.id = Set(c.id);
            row.delete_time = Set(c.delete_time);
            row.purge_time = Set(c.purge_time);
            row.deletion_id = Set(None);
            row.erase_time = Set(None);
            row
        });
        Entity::insert_many(rows)
            .exec_without_returning(conn)
            .await
            .map_err(|e| match e.sql_err() {
                Some(SqlErr::UniqueConstraintViolation(_)) => Error::Aborted(Problem::new(
                    reason::TRANSACTION_CONFLICT,
                    "a concurrent call took an external_ref of this batch; retry",
                )),
                _ => e.into(),
            })?;
    }
    Ok(())
}

/// Which of `external_refs` live customers of the tenant hold (through the unique index of live
/// external_refs).
pub async fn live_external_refs(
    conn: &impl ConnectionTrait,
    tenant: &str,
    external_refs: &[&str],
) -> Result<std::collections::HashSet<String>> {
    let mut taken = std::collections::HashSet::new();
    // Below either database's bind-parameter limit, with room for the tenant.
    for chunk in external_refs.chunks(10_000) {
        let rows: Vec<Option<String>> = Entity::in_tenant(tenant)
            .live()
            .filter(Column::ExternalRef.is_in(chunk.iter().copied()))
            .select_only()
            .column(Column::ExternalRef)
            .into_tuple()
            .all(conn)
            .await?;
        taken.extend(rows.into_iter().flatten());
    }
    Ok(taken)
}

/// A customer, live or deleted; an erased one (a tombstone) is not found.
pub async fn find(conn: &impl ConnectionTrait, tenant: &str, id: Uuid) -> Result<Option<Customer>> {
    Entity::in_tenant(tenant)
        .filter(Column::Id.eq(id))
        .not_erased()
        .one(conn)
        .await?
        .map(into_domain)
        .transpose()
}

/// `customer::Model`'s columns in order, for the raw statements decoded by `read_row!`.
macro_rules! columns {
    () => {
        "tenant_id, id, name, phone, email, industry, owner_id, lifecycle_stage, status, \
         external_ref, legal_hold, search_text, create_time, update_time, delete_time, purge_time, \
         deletion_id, version, erase_time, key_account"
    };
}

/// The raw point select of `find_fast`, by tenant and id.
macro_rules! find_sql {
    ($tenant:literal, $id:literal) => {
        concat!(
            "SELECT ",
            columns!(),
            " FROM customer WHERE tenant_id = ",
            $tenant,
            " AND id = ",
            $id,
            " AND erase_time IS NULL"
        )
    };
}

/// Decodes a sqlx row of `columns!()` by position.
macro_rules! read_row {
    ($row:expr) => {{
        let row = $row;
        use sea_orm::sqlx::Row as _;
        customer::Model {
            tenant_id: row.try_get(0)?,
            id: row.try_get(1)?,
            name: row.try_get(2)?,
            phone: row.try_get(3)?,
            email: row.try_get(4)?,
            industry: row.try_get(5)?,
            owner_id: row.try_get(6)?,
            lifecycle_stage: row.try_get(7)?,
            status: row.try_get(8)?,
            external_ref: row.try_get(9)?,
            legal_hold: row.try_get(10)?,
            search_text: row.try_get(11)?,
            create_time: row.try_get(12)?,
            update_time: row.try_get(13)?,
            delete_time: row.try_get(14)?,
            purge_time: row.try_get(15)?,
            deletion_id: row.try_get(16)?,
            version: row.try_get(17)?,
            erase_time: row.try_get(18)?,
            key_account: row.try_get(19)?,
            // Not selected: a read needs no duplicate keys.
            match_email: None,
            match_phone: None,
            match_ref: None,
            match_name: None,
        }
    }};
}

fn from_sqlx(e: sea_orm::sqlx::Error) -> Error {
    Error::from(sea_orm::DbErr::Query(sea_orm::RuntimeErr::SqlxError(
        e.into(),
    )))
}

/// `find` on the hot read path (GetCustomer): one prepared point select straight on the sqlx pool,
/// skipping SeaORM's query building and row conversion, which cost about as much CPU as the
/// query itself (docs/performance.md P3). Same statement, same result as `find`.
pub async fn find_fast(store: &Store, tenant: &str, id: Uuid) -> Result<Option<Customer>> {
    use sea_orm::sqlx;
    if let RawPool::Sqlite {
        readers: Some(readers),
        ..
    } = store.pool()
        && let Some(read) = readers.read(|c| find_sqlite(c, tenant, id))
    {
        return read
            .map_err(|e| Error::internal(format!("reading customer {id}: {e}")))?
            .map(into_domain)
            .transpose();
    }
    let fetched = match store.pool() {
        RawPool::Postgres(readers) => readers.read_point((tenant.to_owned(), id)).await,
        RawPool::Sqlite { pool, .. } => {
            async {
                match sqlx::query(find_sql!("?1", "?2"))
                    .bind(tenant)
                    .bind(id)
                    .fetch_optional(pool)
                    .await?
                {
                    Some(row) => Ok(Some(read_row!(row))),
                    None => Ok(None),
                }
            }
            .await
        }
    };
    fetched.map_err(from_sqlx)?.map(into_domain).transpose()
}

/// GetCustomer's read on PostgreSQL's reader connections: by tenant and id, alone or with the
/// reads queued behind it (`PgReaders::read_point`).
#[derive(Debug)]
pub(crate) struct CustomerById;

impl super::readers::PointRead for CustomerById {
    type Key = (String, Uuid);
    type Row = customer::Model;

    async fn one(
        conn: &mut sea_orm::sqlx::PgConnection,
        (tenant, id): &Self::Key,
    ) -> std::result::Result<Option<Self::Row>, sea_orm::sqlx::Error> {
        let row = sea_orm::sqlx::query(find_sql!("$1", "$2"))
            .bind(tenant)
            .bind(id)
            .fetch_optional(conn)
            .await?;
        Ok(match row {
            Some(row) => Some(read_row!(row)),
            None => None,
        })
    }

    async fn many(
        conn: &mut sea_orm::sqlx::PgConnection,
        keys: &[Self::Key],
    ) -> std::result::Result<Vec<(usize, Self::Row)>, sea_orm::sqlx::Error> {
        use sea_orm::sqlx::Row as _;
        let tenants: Vec<&str> = keys.iter().map(|(tenant, _)| tenant.as_str()).collect();
        let ids: Vec<Uuid> = keys.iter().map(|(_, id)| *id).collect();
        // LATERAL: one primary-key probe per key, whatever the generic plan guesses of the
        // arrays' length; a join could hash a scan of the whole table.
        let rows = sea_orm::sqlx::query(concat!(
            "SELECT c.*, k.position FROM unnest($1::text[], $2::uuid[]) WITH ORDINALITY \
             AS k(tenant_id, id, position) CROSS JOIN LATERAL (",
            find_sql!("k.tenant_id", "k.id"),
            ") c"
        ))
        .bind(tenants)
        .bind(ids)
        .fetch_all(conn)
        .await?;
        rows.into_iter()
            .map(|row| {
                // After the customer's columns (`columns!()`).
                let position: i64 = row.try_get(20)?;
                Ok((
                    usize::try_from(position - 1).unwrap_or(usize::MAX),
                    read_row!(row),
                ))
            })
            .collect()
    }
}

/// `find_fast`'s statement on one of SQLite's synchronous reader connections. Values are decoded
/// as sqlx stores them: UUIDs as 16-byte blobs, timestamps as RFC 3339 text, booleans as integers.
fn find_sqlite(
    conn: &rusqlite::Connection,
    tenant: &str,
    id: Uuid,
) -> rusqlite::Result<Option<customer::Model>> {
    use rusqlite::OptionalExtension as _;
    let mut statement = conn.prepare_cached(find_sql!("?1", "?2"))?;
    statement
        .query_row(rusqlite::params![tenant, &id.as_bytes()[..]], |row| {
            Ok(customer::Model {
                tenant_id: row.get(0)?,
                id: sqlite_uuid(row, 1)?,
                name: row.get(2)?,
                phone: row.get(3)?,
                email: row.get(4)?,
                industry: row.get(5)?,
                owner_id: row.get(6)?,
                lifecycle_stage: row.get(7)?,
                status: row.get(8)?,
                external_ref: row.get(9)?,
                legal_hold: row.get(10)?,
                search_text: row.get(11)?,
                create_time: sqlite_time(row, 12)?,
                update_time: sqlite_time(row, 13)?,
                delete_time: sqlite_optional(row, 14, sqlite_time)?,
                purge_time: sqlite_optional(row, 15, sqlite_time)?,
                deletion_id: sqlite_optional(row, 16, sqlite_uuid)?,
                version: row.get(17)?,
                erase_time: sqlite_optional(row, 18, sqlite_time)?,
                key_account: row.get(19)?,
                match_email: None,
                match_phone: None,
                match_ref: None,
                match_name: None,
            })
        })
        .optional()
}

fn sqlite_optional<T>(
    row: &rusqlite::Row<'_>,
    index: usize,
    decode: impl Fn(&rusqlite::Row<'_>, usize) -> rusqlite::Result<T>,
) -> rusqlite::Result<Option<T>> {
    match row.get_ref(index)? {
        rusqlite::types::ValueRef::Null => Ok(None),
        _ => decode(row, index).map(Some),
    }
}

fn sqlite_uuid(row: &rusqlite::Row<'_>, index: usize) -> rusqlite::Result<Uuid> {
    let bytes = row.get_ref(index)?.as_blob()?;
    Uuid::from_slice(bytes).map_err(|e| sqlite_conversion(index, e))
}

fn sqlite_time(
    row: &rusqlite::Row<'_>,
    index: usize,
) -> rusqlite::Result<chrono::DateTime<chrono::Utc>> {
    let text = row.get_ref(index)?.as_str()?;
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&chrono::Utc))
        .map_err(|e| sqlite_conversion(index, e))
}

fn sqlite_conversion(
    index: usize,
    cause: impl std::error::Error + Send + Sync + 'static,
) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(index, rusqlite::types::Type::Text, Box::new(cause))
}

/// A customer, locked for the rest of the transaction on PostgreSQL (SQLite's write transaction
/// already excludes every other writer).
pub async fn find_for_update(
    conn: &impl ConnectionTrait,
    tenant: &str,
    id: Uuid,
) -> Result<Option<Customer>> {
    Entity::in_tenant(tenant)
        .filter(Column::Id.eq(id))
        .not_erased()
        .lock_exclusive()
        .one(conn)
        .await?
        .map(into_domain)
        .transpose()
}

/// `find_for_update` of several customers in one statement, locked in id order (the order
/// every multi-customer lock takes, so two of them cannot deadlock).
pub async fn find_many_for_update(
    conn: &impl ConnectionTrait,
    tenant: &str,
    ids: &[Uuid],
) -> Result<Vec<Customer>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    Entity::in_tenant(tenant)
        .filter(Column::Id.is_in(ids.iter().copied()))
        .not_erased()
        .order_by_asc(Column::Id)
        .lock_exclusive()
        .all(conn)
        .await?
        .into_iter()
        .map(into_domain)
        .collect()
}

/// Writes `c` over the stored row if the row is still at `expected_version`.
pub async fn update(
    conn: &impl ConnectionTrait,
    tenant: &str,
    c: &Customer,
    expected_version: i64,
) -> Result<Written> {
    let result = Entity::update_in_tenant(tenant)
        .set(writable_columns(c))
        .filter(Column::Id.eq(c.id))
        .filter(Column::Version.eq(expected_version))
        .exec(conn)
        .await
        .map_err(|e| map_unique(e, c))?;
    Ok(if result.rows_affected == 1 {
        Written::Applied
    } else {
        Written::VersionMoved
    })
}

/// What bumping a customer's graph version found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GraphBump {
    /// The customer is live; its version moved on and its row is locked until the end of the
    /// transaction.
    Bumped,
    /// The customer is deleted: its graph must not change.
    Deleted,
    /// No such customer in this tenant.
    Missing,
}

/// Moves a live customer's graph version on, as every write to one of its records must, in the
/// record write's transaction. The UPDATE takes the customer's row lock, so it waits for (and is
/// then refused by) a concurrent deletion instead of slipping a live record under a deleted
/// customer, which a foreign key alone allows (docs/reliability.md M8).
pub async fn bump_graph(conn: &impl ConnectionTrait, tenant: &str, id: Uuid) -> Result<GraphBump> {
    let result = Entity::update_in_tenant(tenant)
        .col_expr(Column::Version, Expr::col(Column::Version).add(1))
        .filter(Column::Id.eq(id))
        .live()
        .exec(conn)
        .await?;
    if result.rows_affected == 1 {
        return Ok(GraphBump::Bumped);
    }
    Ok(match find(conn, tenant, id).await? {
        Some(_) => GraphBump::Deleted,
        None => GraphBump::Missing,
    })
}

/// Escapes LIKE's metacharacters so that user text matches itself only.
fn like_literal(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A page of customers after `after` in id order (creation order: ids are UUIDv7).
///
/// A free-text query of three characters or more walks a trigram index in id order, so that the
/// page stops after its last match however rare the term, instead of reading every customer when
/// few match: on PostgreSQL the GiST index of m0008 (`search_pg`), on SQLite the FTS5 index of
/// m0007 in rowid order, which is the tenant's id order unless the index has seen it broken.
/// Otherwise the page walks the customers in id order.
pub async fn list(
    store: &Store,
    tenant: &str,
    query: &CustomerQuery,
    after: Option<Uuid>,
    limit: u64,
) -> Result<Vec<Customer>> {
    let needle = query.text.to_lowercase();
    if needle.chars().count() < 3 {
        return list_page(store.conn(), tenant, query, Walk::Ids { after }, limit).await;
    }
    if let Some(sql) = store.search_sql().await? {
        return search_pg(store, sql, tenant, query, &needle, after, limit).await;
    }
    let walk = if store.is_postgres() {
        None
    } else {
        trigram_walk(store.conn(), tenant, &needle, after).await?
    };
    let walk = walk.unwrap_or(Walk::Ids { after });
    list_page(store.conn(), tenant, query, walk, limit).await
}

/// A customer's place in the ordered trigram index: `SEARCH_KEY_SQL` computed here.
fn search_key(id: Uuid) -> i64 {
    // The shift leaves the sign bit clear, so the cast keeps the value.
    (id.as_u64_pair().0 >> 1) as i64
}

/// PostgreSQL: the statement of a free-text page (`search_pg`), with btree_gist's `<->` named
/// in `btree_gist_schema` (the reader sessions' search path holds only the service's schema).
///
/// Parameters: $1 tenant, $2 LIKE pattern, $3 the cursor's `search_key` (0 for the first page),
/// $4 the cursor's id (the nil UUID for the first page), $5 the row limit, $6 show deleted, $7–$10
/// industry, owner, stage and status (NULL for any).
///
/// `head` takes the first `limit` matches nearest the cursor in the index, which is id order but
/// for ties: ids drawn in the same millisecond share a key, and the index returns them in no
/// particular order. Every match keyed below the last key of `head` is in it; those with the
/// last key are read again, all of them (at most one millisecond's ids), so that the page ends on
/// the right ones. That re-read names its group twice, by key and by id range, which select the
/// same rows: whichever index the plan takes, the GiST or the primary key, reads that group only.
pub(crate) fn search_pg_sql(btree_gist_schema: &str) -> String {
    use super::migration::m0008_ordered_trigram_search::SEARCH_KEY_SQL as KEY;
    let columns = columns!();
    let filters = "hashtextextended(tenant_id, 0) = hashtextextended($1, 0) AND tenant_id = $1 \
        AND erase_time IS NULL AND ($6 OR delete_time IS NULL) \
        AND search_text LIKE $2 ESCAPE '\\' \
        AND ($7::text IS NULL OR industry = $7) AND ($8::text IS NULL OR owner_id = $8) \
        AND ($9::text IS NULL OR lifecycle_stage = $9) AND ($10::text IS NULL OR status = $10)";
    format!(
        "WITH head AS MATERIALIZED (\
           SELECT {columns}, {KEY} AS search_key FROM customer \
           WHERE {filters} AND {KEY} >= $3 AND ({KEY} > $3 OR id > $4) \
           ORDER BY {KEY} OPERATOR({btree_gist_schema}.<->) $3 LIMIT $5), \
         last AS MATERIALIZED (\
           SELECT max(search_key) AS search_key, max(search_key)::bit(64) << 1 AS prefix \
           FROM head) \
         SELECT {columns} FROM head WHERE search_key < (SELECT search_key FROM last) \
         UNION ALL (\
           SELECT {columns} FROM customer \
           WHERE {filters} AND id > $4 AND {KEY} = (SELECT search_key FROM last) \
           AND id >= (SELECT (lpad(to_hex(prefix::bigint), 16, '0') \
                      || '0000000000000000')::uuid FROM last) \
           AND id <= (SELECT (lpad(to_hex((prefix | 1::bigint::bit(64))::bigint), 16, '0') \
                      || 'ffffffffffffffff')::uuid FROM last) \
           ORDER BY id LIMIT $5) \
         ORDER BY id LIMIT $5"
    )
}

/// PostgreSQL: a free-text page through the ordered trigram index (m0008), on the reader
/// connections, whose sessions pin its plan (`store::reader_options`).
async fn search_pg(
    store: &Store,
    sql: std::sync::Arc<str>,
    tenant: &str,
    query: &CustomerQuery,
    needle: &str,
    after: Option<Uuid>,
    limit: u64,
) -> Result<Vec<Customer>> {
    let RawPool::Postgres(readers) = store.pool() else {
        return Err(Error::internal("the ordered trigram index is PostgreSQL's"));
    };
    let rows = readers
        .fetch_all(
            // Built from constants and the extension's schema as the catalog names it.
            sea_orm::sqlx::query(sea_orm::sqlx::AssertSqlSafe(sql))
                .bind(tenant)
                .bind(format!("%{}%", like_literal(needle)))
                .bind(after.map_or(0, search_key))
                .bind(after.unwrap_or(Uuid::nil()))
                .bind(i64::try_from(limit).unwrap_or(i64::MAX))
                .bind(query.show_deleted)
                .bind(none_if_empty(&query.industry))
                .bind(none_if_empty(&query.owner_id))
                .bind(query.lifecycle_stage.map(stage_str))
                .bind(query.status.map(status_str)),
        )
        .await
        .map_err(from_sqlx)?;
    let models = rows
        .into_iter()
        .map(|row| Ok(read_row!(row)))
        .collect::<std::result::Result<Vec<_>, sea_orm::sqlx::Error>>()
        .map_err(from_sqlx)?;
    models.into_iter().map(into_domain).collect()
}

/// SQLite's FTS5 trigram index over `customer.search_text` (m0007).
const SEARCH_INDEX: &str = "customer_search";

/// How a page reaches its rows.
enum Walk {
    /// The customers in id order, after this id.
    Ids { after: Option<Uuid> },
    /// SQLite: the trigram index's matches of `phrase` in rowid order, after this rowid.
    Trigrams {
        phrase: String,
        after_rowid: Option<i64>,
    },
}

/// SQLite: the trigram walk for `needle`, or `None` when the tenant's rowid order is not its id
/// order (or the cursor's row is unknown) and the page must walk ids.
async fn trigram_walk(
    conn: &impl ConnectionTrait,
    tenant: &str,
    needle: &str,
    after: Option<Uuid>,
) -> Result<Option<Walk>> {
    // One round trip for both questions: each statement costs a hop to sqlx's SQLite thread,
    // several times the index lookup itself. A tenant put out of order between this statement
    // and the page's gets one page in rowid order; its next page walks ids.
    let plan = conn
        .query_one_raw(Statement::from_sql_and_values(
            DatabaseBackend::Sqlite,
            "SELECT EXISTS (SELECT 1 FROM customer_search_disorder WHERE tenant_id = ?1), \
             (SELECT rowid FROM customer WHERE tenant_id = ?1 AND id = ?2)",
            [tenant.into(), after.into()],
        ))
        .await?
        .ok_or_else(|| Error::internal("a SELECT without FROM returned no row"))?;
    let disordered: bool = plan.try_get_by_index(0)?;
    let after_rowid: Option<i64> = plan.try_get_by_index(1)?;
    if disordered || after.is_some() && after_rowid.is_none() {
        return Ok(None);
    }
    // A quoted FTS5 string is one phrase of the needle's trigrams, in order: a substring match,
    // whatever the needle holds (operators, `*`, `:` are literal inside the quotes).
    let phrase = format!("\"{}\"", needle.replace('"', "\"\""));
    Ok(Some(Walk::Trigrams {
        phrase,
        after_rowid,
    }))
}

async fn list_page(
    conn: &impl ConnectionTrait,
    tenant: &str,
    query: &CustomerQuery,
    walk: Walk,
    limit: u64,
) -> Result<Vec<Customer>> {
    let mut select = Entity::in_tenant(tenant).not_erased();
    if !query.show_deleted {
        select = select.live();
    }
    if !query.text.is_empty() {
        let pattern = format!("%{}%", like_literal(&query.text.to_lowercase()));
        select = select.filter(Column::SearchText.like(LikeExpr::new(pattern).escape('\\')));
    }
    if !query.industry.is_empty() {
        select = select.filter(Column::Industry.eq(query.industry.as_str()));
    }
    if !query.owner_id.is_empty() {
        select = select.filter(Column::OwnerId.eq(query.owner_id.as_str()));
    }
    if let Some(stage) = query.lifecycle_stage {
        select = select.filter(Column::LifecycleStage.eq(stage_str(stage)));
    }
    if let Some(status) = query.status {
        select = select.filter(Column::Status.eq(status_str(status)));
    }
    let select = match walk {
        Walk::Ids { after } => {
            if let Some(after) = after {
                select = select.filter(Column::Id.gt(after));
            }
            select.order_by_asc(Column::Id)
        }
        Walk::Trigrams {
            phrase,
            after_rowid,
        } => {
            let index_rowid = || Expr::col((Alias::new(SEARCH_INDEX), Alias::new("rowid")));
            select = select.filter(Expr::cust_with_values(
                format!("\"{SEARCH_INDEX}\" MATCH ?"),
                [phrase],
            ));
            if let Some(after_rowid) = after_rowid {
                select = select.filter(index_rowid().gt(after_rowid));
            }
            // SQLite keeps a CROSS JOIN's order: the index's matches drive the page in rowid
            // order and stop it at its last row. Left to choose, SQLite 3.51 walks the tenant's
            // customers and probes the index for each (1.5 s for a page on 1M customers).
            QueryTrait::query(&mut select)
                .from_clear()
                .from(Alias::new(SEARCH_INDEX))
                .cross_join(Alias::new("customer"));
            select =
                select.filter(index_rowid().equals((Alias::new("customer"), Alias::new("rowid"))));
            select.order_by_asc(index_rowid())
        }
    };
    let rows = select.limit(limit).all(conn).await?;
    rows.into_iter().map(into_domain).collect()
}

/// Up to `limit` live customers of the tenant, other than `except`, whose `key` is one of
/// `values`, in id order.
pub async fn live_with_key(
    conn: &impl ConnectionTrait,
    tenant: &str,
    key: MatchKey,
    values: &[String],
    except: Uuid,
    limit: u64,
) -> Result<Vec<Customer>> {
    if values.is_empty() {
        return Ok(Vec::new());
    }
    let column = match key {
        MatchKey::Email => Column::MatchEmail,
        MatchKey::Phone => Column::MatchPhone,
        MatchKey::ExternalRef => Column::MatchRef,
        // Equal name keys; similar ones are `live_with_similar_name`'s.
        MatchKey::Name => Column::MatchName,
    };
    let select = Entity::in_tenant(tenant)
        .live()
        .filter(column.is_not_null())
        .filter(column.is_in(values.iter().cloned()))
        .filter(Column::Id.ne(except));
    // SQLite, without statistics, walks the tenant's primary key to return ids in order rather
    // than sort the few rows the key's partial index finds: 230-300 ms per key on 1,000,000
    // customers against 0.1 ms. The unary `+` keeps the order but hides the column from the
    // planner's ordering (PostgreSQL has no `+` on a uuid, and plans it right).
    let select = if conn.get_database_backend() == DatabaseBackend::Sqlite {
        select.order_by(Expr::cust("+\"customer\".\"id\""), sea_orm::Order::Asc)
    } else {
        select.order_by_asc(Column::Id)
    };
    select
        .limit(limit)
        .all(conn)
        .await?
        .into_iter()
        .map(into_domain)
        .collect()
}

/// The ids and name keys of up to `limit` live customers of the tenant, other than `except`, whose
/// name key may be at least `matching::NAME_THRESHOLD` similar to `key`, in id order: a superset
/// of the similar ones (the caller scores them), found through the trigram index of names (m0013).
///
/// - PostgreSQL: pg_trgm's `%`, with its threshold set for this transaction just below ours so
///   that rounding in pg_trgm's `real` arithmetic cannot drop a name the exact Rust comparison
///   keeps. Without the index, the names whose key is equal.
/// - SQLite: the names holding every trigram of one of `name_trigram_groups(key)`, which every
///   similar name does (AND within a group, OR across them).
pub async fn live_with_similar_name(
    store: &Store,
    conn: &impl ConnectionTrait,
    tenant: &str,
    key: &str,
    except: Uuid,
    limit: u64,
) -> Result<Vec<(Uuid, String)>> {
    use super::migration::m0013_name_match_key::NAME_SEARCH;
    let mut select = Entity::in_tenant(tenant)
        .live()
        .filter(Column::MatchName.is_not_null())
        .filter(Column::Id.ne(except));
    if store.is_postgres() {
        match store.name_trgm_schema().await? {
            Some(schema) => {
                conn.execute_raw(Statement::from_string(
                    DatabaseBackend::Postgres,
                    format!(
                        "SELECT set_config('pg_trgm.similarity_threshold', '{}', true)",
                        matching::NAME_THRESHOLD.value() - 0.01
                    ),
                ))
                .await?;
                select = select.filter(Expr::cust_with_values(
                    format!("match_name OPERATOR({schema}.%) $1"),
                    [key],
                ));
            }
            None => select = select.filter(Column::MatchName.eq(key)),
        }
    } else {
        let groups = matching::name_trigram_groups(key, matching::NAME_THRESHOLD);
        let phrase =
            |t: &[u8; 3]| format!("\"{}\"", String::from_utf8_lossy(t).replace('"', "\"\""));
        let expression = groups
            .iter()
            .map(|g| {
                format!(
                    "({})",
                    g.iter().map(phrase).collect::<Vec<_>>().join(" AND ")
                )
            })
            .collect::<Vec<_>>()
            .join(" OR ");
        let index_rowid = || Expr::col((Alias::new(NAME_SEARCH), Alias::new("rowid")));
        select = select.filter(Expr::cust_with_values(
            format!("\"{NAME_SEARCH}\" MATCH ?"),
            [expression],
        ));
        // The index's matches drive the join (a CROSS JOIN keeps its order in SQLite), each
        // reaching its customer by rowid.
        QueryTrait::query(&mut select)
            .from_clear()
            .from(Alias::new(NAME_SEARCH))
            .cross_join(Alias::new("customer"));
        select = select.filter(index_rowid().equals((Alias::new("customer"), Alias::new("rowid"))));
    }
    // Only the id and the key: most offered names score below the threshold, and decoding whole
    // customers for them cost SQLite 12 ms for 555 names (the caller loads the similar ones).
    let rows: Vec<(Uuid, Option<String>)> = select
        .select_only()
        .column(Column::Id)
        .column(Column::MatchName)
        .order_by_asc(Column::Id)
        .limit(limit)
        .into_tuple()
        .all(conn)
        .await?;
    Ok(rows
        .into_iter()
        .map(|(id, key)| (id, key.unwrap_or_default()))
        .collect())
}

/// The tenant's live customers among `ids`, in id order.
pub async fn live_among(
    conn: &impl ConnectionTrait,
    tenant: &str,
    ids: &[Uuid],
) -> Result<Vec<Customer>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    Entity::in_tenant(tenant)
        .live()
        .filter(Column::Id.is_in(ids.iter().copied()))
        .order_by_asc(Column::Id)
        .all(conn)
        .await?
        .into_iter()
        .map(into_domain)
        .collect()
}

/// Inserts many customers at once (seeding), one multi-row INSERT per batch.
pub async fn insert_many(
    conn: &impl ConnectionTrait,
    tenant: &str,
    customers: &[Customer],
    batch: usize,
) -> Result<()> {
    for chunk in customers.chunks(batch.max(1)) {
        let rows = chunk.iter().map(|c| {
            let mut row = writable_columns(c);
            row.tenant_id = Set(tenant.to_owned());
            row.id = Set(c.id);
            row.delete_time = Set(None);
            row.purge_time = Set(None);
            row.deletion_id = Set(None);
            row.erase_time = Set(None);
            row
        });
        Entity::insert_many(rows)
            .exec_without_returning(conn)
            .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn temp_sqlite_store(name: &str, migrations: Option<u32>) -> (Store, std::path::PathBuf) {
        use sea_orm_migration::MigratorTrait as _;
        let dir = std::env::temp_dir().join(format!("crm-{name}-{}", Uuid::now_v7()));
        std::fs::create_dir_all(&dir).unwrap();
        let store = Store::connect(&crate::store::StoreConfig {
            url: format!("sqlite://{}", dir.join("crm.db").display()),
            schema: None,
            max_connections: 2,
            reader_connections: 0,
            acquire_timeout: std::time::Duration::from_secs(5),
            session: Default::default(),
        })
        .await
        .unwrap();
        match migrations {
            // As the server migrates: see `Store::migrate`.
            None => store.migrate().await.unwrap(),
            // In one transaction, as `Store::migrate` does, so that no pooled connection caches
            // the schema between two migrations.
            Some(_) => {
                use sea_orm::TransactionTrait as _;
                let tx = store.conn().begin().await.unwrap();
                crate::store::migration::Migrator::up(&tx, migrations)
                    .await
                    .unwrap();
                tx.commit().await.unwrap();
            }
        }
        (store, dir)
    }

    fn customers(tenant: &str, names: &[&str], n: usize) -> Vec<Customer> {
        let now = chrono::Utc::now();
        (0..n)
            .map(|i| Customer {
                id: Uuid::now_v7(),
                name: format!("{} {tenant}-{i}", names[i % names.len()]),
                phone: format!("+1 555 {i:04}"),
                email: format!("c{i}@{tenant}.example"),
                industry: String::new(),
                owner_id: "rep-1".into(),
                lifecycle_stage: LifecycleStage::Lead,
                status: CustomerStatus::Active,
                external_ref: String::new(),
                legal_hold: false,
                key_account: false,
                create_time: now,
                update_time: now,
                delete_time: None,
                purge_time: None,
                version: 1,
                deletion_id: None,
            })
            .collect()
    }

    /// Every page of `tenant`'s listing for `needle`, 4 rows a call: through `list` and through
    /// the plain walk in id order.
    async fn pages(
        store: &Store,
        tenant: &str,
        needle: &str,
        show_deleted: bool,
    ) -> [Vec<Uuid>; 2] {
        let query = CustomerQuery {
            show_deleted,
            text: needle.into(),
            ..Default::default()
        };
        let mut out = [Vec::new(), Vec::new()];
        for (walk_ids, ids) in [false, true].into_iter().zip(&mut out) {
            let mut after = None;
            for call in 0.. {
                assert!(call < 100, "{needle:?}: the pages do not end");
                let mut rows = if walk_ids {
                    list_page(store.conn(), tenant, &query, Walk::Ids { after }, 5).await
                } else {
                    list(store, tenant, &query, after, 5).await
                }
                .unwrap();
                let more = rows.len() > 4;
                rows.truncate(4);
                ids.extend(rows.iter().map(|c| c.id));
                after = rows.last().map(|c| c.id);
                if !more {
                    break;
                }
            }
        }
        out
    }

    async fn in_id_order(store: &Store, tenant: &str) -> bool {
        let walk = trigram_walk(store.conn(), tenant, "abc", None)
            .await
            .unwrap();
        matches!(walk, Some(Walk::Trigrams { .. }))
    }

    /// SQLite's trigram index pages in rowid order: for terms matching none, a few and many
    /// customers, across tenants, with deleted, renamed and erased rows and LIKE's and FTS5's
    /// metacharacters, every page equals the walk in id order. Once a customer is inserted out
    /// of id order, its tenant's searches walk ids, and still page the same.
    #[tokio::test]
    async fn insert_all_chunks_past_the_bind_limit_and_reports_a_taken_external_ref_as_a_conflict()
    {
        let (store, dir) = temp_sqlite_store("insert-all", None).await;
        // 3,000 rows: three statements of at most 32,766 / 24 = 1,365 rows each on SQLite.
        let mut many = customers("t0", &["Bulk"], 3000);
        many[2999].external_ref = "ERP-1".into();
        insert_all(store.conn(), "t0", &many).await.unwrap();
        let stored = Entity::in_tenant("t0").all(store.conn()).await.unwrap();
        assert_eq!(stored.len(), 3000);
        let taken = live_external_refs(store.conn(), "t0", &["ERP-1", "ERP-2"])
            .await
            .unwrap();
        assert_eq!(taken, ["ERP-1".to_owned()].into());
        assert!(
            live_external_refs(store.conn(), "t1", &["ERP-1"])
                .await
                .unwrap()
                .is_empty()
        );

        // A clash the caller's check did not see (a concurrent commit) is a conflict to retry,
        // and the statement wrote none of its rows.
        let mut clash = customers("t0", &["Late"], 2);
        clash[1].external_ref = "ERP-1".into();
        let err = insert_all(store.conn(), "t0", &clash).await.unwrap_err();
        assert!(
            matches!(&err, Error::Aborted(p) if p.reason == reason::TRANSACTION_CONFLICT),
            "{err:?}"
        );
        let stored = Entity::in_tenant("t0").all(store.conn()).await.unwrap();
        assert_eq!(stored.len(), 3000);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test]
    async fn free_text_pages_from_the_trigram_index_equal_the_walk_in_id_order() {
        use sea_orm::sea_query::Expr;
        let (store, dir) = temp_sqlite_store("search", None).await;
        let now = chrono::Utc::now();
        let names = [
            "Northwind",
            "Southwind",
            "Windmill",
            "Ärger",
            "100% Pure",
            "Quote\"d",
        ];
        for tenant in ["t0", "t1"] {
            insert_many(store.conn(), tenant, &customers(tenant, &names, 120), 50)
                .await
                .unwrap();
        }
        let t0: Vec<customer::Model> = Entity::in_tenant("t0")
            .order_by_asc(Column::Id)
            .all(store.conn())
            .await
            .unwrap();
        Entity::update_in_tenant("t0")
            .col_expr(Column::DeleteTime, Expr::value(Some(now)))
            .filter(Column::Id.is_in(t0.iter().step_by(7).map(|c| c.id)))
            .exec(store.conn())
            .await
            .unwrap();
        Entity::update_in_tenant("t0")
            .col_expr(
                Column::SearchText,
                Expr::value(search_text("Renamed GmbH", "", "")),
            )
            .filter(Column::Id.eq(t0[3].id))
            .exec(store.conn())
            .await
            .unwrap();
        Entity::update_in_tenant("t0")
            .col_expr(Column::SearchText, Expr::value(""))
            .col_expr(Column::EraseTime, Expr::value(Some(now)))
            .filter(Column::Id.eq(t0[4].id))
            .exec(store.conn())
            .await
            .unwrap();
        let needles = [
            "northwind",
            "NORTHWIND t0-6",
            "wind",
            "ärger",
            "100%",
            "% p",
            "quote\"d",
            "e\"d",
            "555 00",
            "t1.example",
            "renamed",
            "c3@t0",
            "no such",
            "zz",
            "w",
            "",
        ];
        let check_all = |label: &'static str| {
            let store = &store;
            async move {
                for needle in needles {
                    for show_deleted in [false, true] {
                        let [listed, walked] = pages(store, "t0", needle, show_deleted).await;
                        assert_eq!(
                            listed, walked,
                            "{label}: {needle:?}, deleted {show_deleted}"
                        );
                    }
                }
            }
        };
        assert!(in_id_order(&store, "t0").await && in_id_order(&store, "t1").await);
        check_all("in id order").await;
        let [renamed, _] = pages(&store, "t0", "renamed", false).await;
        assert_eq!(renamed, [t0[3].id]);
        // The index itself forgets what was renamed away or erased.
        for gone in [&t0[3], &t0[4]] {
            let phrase = format!("\"{}\"", gone.email.as_deref().unwrap());
            let hits = store
                .conn()
                .query_all_raw(Statement::from_sql_and_values(
                    DatabaseBackend::Sqlite,
                    "SELECT rowid FROM customer_search WHERE customer_search MATCH ?",
                    [phrase.into()],
                ))
                .await
                .unwrap();
            assert!(hits.is_empty(), "{:?} is still in the index", gone.email);
        }

        let early = Customer {
            id: Uuid::new_v7(uuid::Timestamp::from_unix(uuid::NoContext, 1_000_000, 0)),
            ..customers("t0", &["Northwind early"], 1).remove(0)
        };
        insert_many(store.conn(), "t0", std::slice::from_ref(&early), 1)
            .await
            .unwrap();
        assert!(!in_id_order(&store, "t0").await && in_id_order(&store, "t1").await);
        check_all("out of order").await;
        let [northwind, _] = pages(&store, "t0", "northwind", false).await;
        assert_eq!(northwind.first(), Some(&early.id));
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// The migration finds the tenants whose customers were already out of id order.
    #[tokio::test]
    async fn the_trigram_migration_lists_tenants_already_out_of_id_order() {
        let (store, dir) = temp_sqlite_store("search-migration", Some(6)).await;
        let mut late = customers("late", &["Northwind"], 6);
        late.swap(2, 4);
        insert_before_match_keys(&store, "late", &late).await;
        let fine = customers("fine", &["Northwind"], 6);
        insert_before_match_keys(&store, "fine", &fine).await;
        store.migrate().await.unwrap();
        assert!(!in_id_order(&store, "late").await && in_id_order(&store, "fine").await);
        for tenant in ["late", "fine"] {
            let [listed, walked] = pages(&store, tenant, "northwind", false).await;
            assert_eq!((listed.len(), &listed), (6, &walked), "{tenant}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Inserts customers with the columns of a schema older than m0012 (no match keys), as a
    /// database migrated that far holds them.
    async fn insert_before_match_keys(store: &Store, tenant: &str, customers: &[Customer]) {
        use sea_orm::sea_query::Query;
        for c in customers {
            let mut insert = Query::insert();
            insert
                .into_table(Alias::new("customer"))
                .columns(
                    [
                        "tenant_id",
                        "id",
                        "name",
                        "phone",
                        "email",
                        "owner_id",
                        "lifecycle_stage",
                        "status",
                        "external_ref",
                        "legal_hold",
                        "search_text",
                        "create_time",
                        "update_time",
                        "version",
                    ]
                    .map(Alias::new),
                )
                .values_panic([
                    tenant.into(),
                    c.id.into(),
                    c.name.clone().into(),
                    none_if_empty(&c.phone).into(),
                    none_if_empty(&c.email).into(),
                    c.owner_id.clone().into(),
                    stage_str(c.lifecycle_stage).into(),
                    status_str(c.status).into(),
                    none_if_empty(&c.external_ref).into(),
                    c.legal_hold.into(),
                    search_text(&c.name, &c.email, &c.phone).into(),
                    c.create_time.into(),
                    c.update_time.into(),
                    c.version.into(),
                ]);
            store.conn().execute(&insert).await.unwrap();
        }
    }

    /// Customers stored before the match keys existed get theirs from the migration, computed
    /// as every write computes them afterwards.
    #[tokio::test]
    async fn the_match_key_migration_gives_existing_customers_their_keys() {
        let (store, dir) = temp_sqlite_store("match-keys-migration", Some(11)).await;
        let mut old = customers("t9", &["Northwind"], 1_003);
        old[7].email = " Buyer@Example.COM ".into();
        old[7].external_ref = "ERP-007".into();
        insert_before_match_keys(&store, "t9", &old).await;
        store.migrate().await.unwrap();
        let rows = Entity::in_tenant("t9").all(store.conn()).await.unwrap();
        assert_eq!(rows.len(), 1_003, "pages of 1,000 and the rest");
        for row in &rows {
            let phone = row.phone.clone().unwrap_or_default();
            assert_eq!(row.match_phone, matching::phone_key(&phone), "{row:?}");
        }
        let seventh = rows.iter().find(|r| r.id == old[7].id).unwrap();
        assert_eq!(seventh.match_email.as_deref(), Some("buyer@example.com"));
        assert_eq!(seventh.match_ref.as_deref(), Some("erp007"));
        // m0013: the name's key, and SQLite's trigram index of names holds it.
        for row in &rows {
            assert_eq!(row.match_name, matching::name_key(&row.name), "{row:?}");
        }
        let key = rows[0].match_name.clone().unwrap();
        let offered = live_with_similar_name(&store, store.conn(), "t9", &key, Uuid::nil(), 5_000)
            .await
            .unwrap();
        assert!(offered.iter().any(|(id, k)| *id == rows[0].id && *k == key));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn like_metacharacters_match_themselves() {
        assert_eq!(like_literal(r"100%_a\b"), r"100\%\_a\\b");
    }
    /// The synchronous SQLite reader decodes a row exactly as SeaORM does, every optional column
    /// set and unset: GetCustomer answers the same whichever path served it.
    #[tokio::test]
    async fn sqlite_reader_decodes_rows_as_seaorm_does() {
        use sea_orm::ActiveModelTrait as _;
        let (store, dir) = temp_sqlite_store("reader", None).await;
        let now = chrono::Utc::now();
        let full = customer::Model {
            tenant_id: "t1".into(),
            id: Uuid::now_v7(),
            name: "Ñandú & Co".into(),
            phone: Some("+49 30 1234567".into()),
            email: Some("a@b.example".into()),
            industry: Some("retail".into()),
            owner_id: "rep-1".into(),
            lifecycle_stage: "CUSTOMER".into(),
            status: "INACTIVE".into(),
            external_ref: Some("crm-1".into()),
            legal_hold: true,
            key_account: true,
            search_text: "ñandú & co".into(),
            create_time: now - chrono::Duration::days(3),
            update_time: now - chrono::Duration::nanoseconds(1_234_567),
            delete_time: Some(now),
            purge_time: Some(now + chrono::Duration::days(30)),
            deletion_id: Some(Uuid::now_v7()),
            version: 7,
            erase_time: None,
            // A read decodes no duplicate keys (they are for look-ups only).
            match_email: None,
            match_phone: None,
            match_ref: None,
            match_name: None,
        };
        let bare = customer::Model {
            id: Uuid::now_v7(),
            phone: None,
            email: None,
            industry: None,
            external_ref: None,
            legal_hold: false,
            key_account: false,
            delete_time: None,
            purge_time: None,
            deletion_id: None,
            ..full.clone()
        };
        let erased = customer::Model {
            id: Uuid::now_v7(),
            external_ref: None,
            erase_time: Some(now),
            ..full.clone()
        };
        for row in [&full, &bare, &erased] {
            customer::ActiveModel::from(row.clone())
                .insert(store.conn())
                .await
                .unwrap();
        }
        let reader = rusqlite::Connection::open(dir.join("crm.db")).unwrap();
        for row in [&full, &bare] {
            let seaorm = Entity::find_by_id((row.tenant_id.clone(), row.id))
                .one(store.conn())
                .await
                .unwrap();
            let direct = find_sqlite(&reader, &row.tenant_id, row.id).unwrap();
            assert_eq!(direct, seaorm);
            assert_eq!(direct.as_ref(), Some(row));
        }
        assert_eq!(find_sqlite(&reader, "t1", erased.id).unwrap(), None);
        assert_eq!(find_sqlite(&reader, "t2", full.id).unwrap(), None);
        drop(reader);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A store in a schema of its own on the test PostgreSQL, migrated; `None` (and a SKIPPED
    /// line) when PostgreSQL is unreachable outside CI.
    async fn temp_pg_store() -> Option<(Store, String)> {
        let url = crate::store::test_postgres_url().await?;
        let schema = format!("unit_{}", Uuid::now_v7().simple());
        let store = Store::connect(&crate::store::StoreConfig {
            url,
            schema: Some(schema.clone()),
            max_connections: 2,
            reader_connections: 0,
            acquire_timeout: std::time::Duration::from_secs(5),
            session: Default::default(),
        })
        .await
        .unwrap();
        store.migrate().await.unwrap();
        Some((store, schema))
    }

    async fn drop_schema(store: &Store, schema: &str) {
        store
            .conn()
            .execute_unprepared(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
            .await
            .unwrap();
    }

    /// The ordered trigram index returns ids of one millisecond (one key) in no order: a page
    /// must still end on the right ones, whether the cut falls inside such a group or the cursor
    /// does.
    #[tokio::test]
    async fn postgres_search_pages_keep_id_order_across_ids_of_one_millisecond() {
        let Some((store, schema)) = temp_pg_store().await else {
            return;
        };
        assert!(store.search_sql().await.unwrap().is_some(), "m0008's index");
        let mut rng = 0x2545_f491_4f6c_dd1d_u64;
        let mut random = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let mut rows = Vec::new();
        for tenant in ["t0", "t1"] {
            let mut n = 0;
            for group in 0..12u64 {
                // Groups of 1 to 14 ids sharing their first 64 bits.
                let high = Uuid::new_v7(uuid::Timestamp::from_unix(
                    uuid::NoContext,
                    1_700_000_000 + group,
                    0,
                ))
                .as_u64_pair()
                .0;
                for _ in 0..1 + random() % 14 {
                    let name = if random() % 3 == 0 {
                        "Northwind"
                    } else {
                        "Blue"
                    };
                    let mut c = customers(tenant, &[name], n + 1).remove(n);
                    c.id = Uuid::from_u64_pair(high, random());
                    c.industry = ["retail", "energy"][(random() % 2) as usize].into();
                    rows.push((tenant, c));
                    n += 1;
                }
            }
        }
        // Inserted out of id order, as concurrent writers do.
        rows.sort_by_key(|(_, c)| c.id.as_u64_pair().1);
        for (tenant, c) in &rows {
            insert_many(store.conn(), tenant, std::slice::from_ref(c), 1)
                .await
                .unwrap();
        }
        for (needle, industry) in [
            ("northwind", ""),
            ("blue", "retail"),
            ("t0-1", ""),
            ("zzz", ""),
        ] {
            let query = CustomerQuery {
                text: needle.into(),
                industry: industry.into(),
                ..Default::default()
            };
            let mut expected: Vec<Uuid> = rows
                .iter()
                .filter(|(tenant, c)| {
                    *tenant == "t0"
                        && search_text(&c.name, &c.email, &c.phone).contains(needle)
                        && (industry.is_empty() || c.industry == industry)
                })
                .map(|(_, c)| c.id)
                .collect();
            expected.sort();
            for page in [1, 4, 7] {
                let (mut listed, mut after) = (Vec::new(), None);
                loop {
                    let mut rows = list(&store, "t0", &query, after, page + 1).await.unwrap();
                    let more = rows.len() > page as usize;
                    rows.truncate(page as usize);
                    listed.extend(rows.iter().map(|c| c.id));
                    after = rows.last().map(|c| c.id);
                    assert!(listed.len() <= expected.len(), "{needle:?}: runs on");
                    if !more {
                        break;
                    }
                }
                assert_eq!(listed, expected, "{needle:?}, {page} a page");
            }
        }
        drop_schema(&store, &schema).await;
    }

    /// `search_key` must be the index's `SEARCH_KEY_SQL`, or a page's cursor lands elsewhere.
    #[tokio::test]
    async fn postgres_search_key_is_the_indexed_expression() {
        let Some((store, schema)) = temp_pg_store().await else {
            return;
        };
        use crate::store::migration::m0008_ordered_trigram_search::SEARCH_KEY_SQL;
        for id in [
            Uuid::nil(),
            Uuid::max(),
            Uuid::now_v7(),
            Uuid::from_u64_pair(0x8000_0000_0000_0001, 7),
            Uuid::from_u64_pair(0x7fff_ffff_ffff_ffff, 0),
        ] {
            let row = store
                .conn()
                .query_one_raw(Statement::from_sql_and_values(
                    DatabaseBackend::Postgres,
                    format!("SELECT {SEARCH_KEY_SQL} AS key FROM (SELECT $1::uuid AS id) t"),
                    [id.into()],
                ))
                .await
                .unwrap()
                .unwrap();
            assert_eq!(
                row.try_get::<i64>("", "key").unwrap(),
                search_key(id),
                "{id}"
            );
        }
        drop_schema(&store, &schema).await;
    }
}
