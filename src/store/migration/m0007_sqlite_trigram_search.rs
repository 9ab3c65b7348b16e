//! SQLite: a trigram index (FTS5) for ListCustomers' free-text `query`, the counterpart of
//! m0006's pg_trgm index on PostgreSQL.
//!
//! Without it a term that matches few or no customers reads every customer of the tenant (0.3 s a
//! call on 1,000,000 customers), and a term matching 1 in 320 reads 16,000 to fill a page. The index
//! hands out its matches in rowid order, so a page stops after its last match
//! (`customers::list`); that order is the listing's id order as long as a tenant's customers were
//! inserted in id order. They are: a customer's UUIDv7 is drawn after SQLite's write lock is
//! taken, and UUIDv7s of one process are increasing. Where that fails (another process inserting
//! into the same file, rows imported out of order) the insert trigger lists the tenant in
//! `customer_search_disorder` and its searches walk the customers in id order as before.
//!
//! The index is an external-content table over `customer.search_text`, kept in step by triggers
//! inside the writing transaction, so every write path (calls, seeding, purge) maintains it. The
//! tokenizer is case-sensitive because `search_text` and the query are both lower-cased by the
//! service: SQLite's case folding could disagree with Rust's. `secure-delete` makes a purge remove
//! the erased text's trigrams from the index itself, not only hide them behind a delete marker.

use sea_orm::DatabaseBackend;
use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0007_sqlite_trigram_search"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != DatabaseBackend::Sqlite {
            return Ok(());
        }
        let db = manager.get_connection();
        for statement in [
            "CREATE VIRTUAL TABLE customer_search USING fts5(search_text, content = 'customer', \
             content_rowid = 'rowid', tokenize = 'trigram case_sensitive 1', columnsize = 0)",
            "INSERT INTO customer_search (customer_search, rank) VALUES ('secure-delete', 1)",
            "INSERT INTO customer_search (customer_search) VALUES ('rebuild')",
            "CREATE TABLE customer_search_disorder (tenant_id TEXT NOT NULL PRIMARY KEY) \
             WITHOUT ROWID",
            // Tenants whose existing customers are already out of id order in the table.
            "INSERT INTO customer_search_disorder (tenant_id) \
             SELECT DISTINCT tenant_id FROM ( \
               SELECT tenant_id, id, \
                 lag(id) OVER (PARTITION BY tenant_id ORDER BY rowid) AS previous \
               FROM customer) \
             WHERE previous > id",
            // A new customer must come last in both orders: the largest rowid of the table and
            // the largest id of its tenant (both seeks on an index).
            "CREATE TRIGGER customer_search_order AFTER INSERT ON customer \
             WHEN new.rowid < (SELECT max(rowid) FROM customer) \
               OR EXISTS (SELECT 1 FROM customer WHERE tenant_id = new.tenant_id AND id > new.id) \
             BEGIN \
               INSERT OR IGNORE INTO customer_search_disorder (tenant_id) VALUES (new.tenant_id); \
             END",
            "CREATE TRIGGER customer_search_insert AFTER INSERT ON customer BEGIN \
               INSERT INTO customer_search (rowid, search_text) VALUES (new.rowid, new.search_text); \
             END",
            "CREATE TRIGGER customer_search_delete AFTER DELETE ON customer BEGIN \
               INSERT INTO customer_search (customer_search, rowid, search_text) \
                 VALUES ('delete', old.rowid, old.search_text); \
             END",
            "CREATE TRIGGER customer_search_update AFTER UPDATE OF search_text ON customer \
             WHEN old.search_text IS NOT new.search_text BEGIN \
               INSERT INTO customer_search (customer_search, rowid, search_text) \
                 VALUES ('delete', old.rowid, old.search_text); \
               INSERT INTO customer_search (rowid, search_text) VALUES (new.rowid, new.search_text); \
             END",
        ] {
            db.execute_unprepared(statement).await?;
        }
        Ok(())
    }
}
