//! The key that finds customers with a very similar name (`domain::model::matching::name_key`):
//! a column computed by the service from the name (the same Rust on both databases), and a
//! trigram index over it that finds the names sharing enough trigrams with a given one.
//!
//! - PostgreSQL: a GIN pg_trgm index over the live customers' keys, searched with `%` (pg_trgm's
//!   similarity at least a threshold). GIN rather than GiST: on 1,000,000 seeded names (320 base
//!   names, each with a number) the nearest-first GiST scan (`<->`) took 290 ms for 100 names and
//!   `%` through GiST 250 ms, against 5–19 ms for `%` through GIN at 0.7 (docs/performance.md P15).
//!   The tenant is not in the index (a GIN trigram index holds one column): other tenants' names
//!   are found and dropped by the heap filter. Where pg_trgm is missing (m0006 says so in the
//!   log) a B-tree index serves names whose keys are equal, and the log says that too.
//! - SQLite: an FTS5 trigram table holding each key as pg_trgm pads it (two spaces before each
//!   word, one after), so that every pg_trgm trigram of the key is one of its tokens. It is
//!   contentless (it keeps no copy of the key, only trigrams) and `contentless_delete` lets the
//!   triggers drop a row's entry by rowid; `secure-delete` makes that removal physical, so an
//!   erased customer's trigrams leave the index's pages. Triggers in the writing transaction keep
//!   it in step on every write path. `detail=none`: the look-up is AND/OR of trigrams, with no
//!   phrases, so positions are not stored.
//!
//! Existing customers get their key here, a page of 1,000 at a time, like m0012: one UPDATE per
//! customer with a name. An erased customer has no name and gets none.

use sea_orm::sea_query::{Alias, Expr, Query};
use sea_orm::{ConnectionTrait, DatabaseBackend};
use sea_orm_migration::prelude::*;

use crate::domain::model::matching;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0013_name_match_key"
    }
}

/// PostgreSQL's trigram index over the key.
pub(crate) const NAME_TRGM_INDEX: &str = "ix_customer_match_name_trgm";
/// SQLite's trigram table over the padded key.
pub(crate) const NAME_SEARCH: &str = "customer_name_search";
/// The key as pg_trgm pads its words, in SQL: `a b` becomes `  a   b `.
const PADDED: &str = "'  ' || replace(match_name, ' ', '   ') || ' '";
const PAGE: u64 = 1_000;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        db.execute_unprepared("ALTER TABLE customer ADD COLUMN match_name TEXT")
            .await?;
        backfill(db).await?;
        match manager.get_database_backend() {
            DatabaseBackend::Sqlite => sqlite_index(db).await,
            _ => postgres_index(db).await,
        }
    }
}

async fn postgres_index(db: &impl ConnectionTrait) -> Result<(), DbErr> {
    use super::m0008_ordered_trigram_search::extension_schema;
    let statement = match extension_schema(db, "pg_trgm").await? {
        Some(schema) => format!(
            "CREATE INDEX {NAME_TRGM_INDEX} ON customer \
             USING gin (match_name {schema}.gin_trgm_ops) \
             WHERE delete_time IS NULL AND match_name IS NOT NULL"
        ),
        None => {
            tracing::warn!("pg_trgm is unavailable: only equal names are duplicate candidates");
            "CREATE INDEX ix_customer_match_name ON customer (tenant_id, match_name) \
             WHERE delete_time IS NULL AND match_name IS NOT NULL"
                .to_owned()
        }
    };
    db.execute_unprepared(&statement).await?;
    Ok(())
}

async fn sqlite_index(db: &impl ConnectionTrait) -> Result<(), DbErr> {
    for statement in [
        format!(
            "CREATE VIRTUAL TABLE {NAME_SEARCH} USING fts5(grams, content = '', \
             contentless_delete = 1, tokenize = 'trigram case_sensitive 1', detail = none)"
        ),
        format!("INSERT INTO {NAME_SEARCH} ({NAME_SEARCH}, rank) VALUES ('secure-delete', 1)"),
        format!(
            "INSERT INTO {NAME_SEARCH} (rowid, grams) \
             SELECT rowid, {PADDED} FROM customer WHERE match_name IS NOT NULL"
        ),
        format!(
            "CREATE TRIGGER customer_name_insert AFTER INSERT ON customer \
             WHEN new.match_name IS NOT NULL BEGIN \
               INSERT INTO {NAME_SEARCH} (rowid, grams) VALUES (new.rowid, {}); \
             END",
            PADDED.replace("match_name", "new.match_name")
        ),
        format!(
            "CREATE TRIGGER customer_name_delete AFTER DELETE ON customer \
             WHEN old.match_name IS NOT NULL BEGIN \
               DELETE FROM {NAME_SEARCH} WHERE rowid = old.rowid; \
             END"
        ),
        format!(
            "CREATE TRIGGER customer_name_update AFTER UPDATE OF match_name ON customer \
             WHEN old.match_name IS NOT new.match_name BEGIN \
               DELETE FROM {NAME_SEARCH} WHERE rowid = old.rowid; \
               INSERT INTO {NAME_SEARCH} (rowid, grams) \
                 SELECT new.rowid, {} WHERE new.match_name IS NOT NULL; \
             END",
            PADDED.replace("match_name", "new.match_name")
        ),
    ] {
        db.execute_unprepared(&statement).await?;
    }
    Ok(())
}

async fn backfill(db: &impl ConnectionTrait) -> Result<(), DbErr> {
    let customer = Alias::new("customer");
    let column = |name: &str| Expr::col(Alias::new(name));
    let mut after: Option<(String, uuid::Uuid)> = None;
    loop {
        let mut page = Query::select();
        page.from(customer.clone())
            .columns(["tenant_id", "id", "name"].map(Alias::new))
            .and_where(column("erase_time").is_null())
            .order_by(Alias::new("tenant_id"), Order::Asc)
            .order_by(Alias::new("id"), Order::Asc)
            .limit(PAGE);
        if let Some((tenant, id)) = &after {
            page.and_where(
                column("tenant_id")
                    .gt(tenant.clone())
                    .or(column("tenant_id")
                        .eq(tenant.clone())
                        .and(column("id").gt(*id))),
            );
        }
        let rows = db.query_all(&page).await?;
        for row in &rows {
            let (tenant, id, name): (String, uuid::Uuid, String) = (
                row.try_get("", "tenant_id")?,
                row.try_get("", "id")?,
                row.try_get("", "name")?,
            );
            if let Some(key) = matching::name_key(&name) {
                let mut update = Query::update();
                update
                    .table(customer.clone())
                    .value(Alias::new("match_name"), key)
                    .and_where(column("tenant_id").eq(tenant.clone()))
                    .and_where(column("id").eq(id));
                db.execute(&update).await?;
            }
            after = Some((tenant, id));
        }
        if (rows.len() as u64) < PAGE {
            return Ok(());
        }
    }
}
