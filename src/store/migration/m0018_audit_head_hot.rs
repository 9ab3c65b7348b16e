//! The audit head row, on PostgreSQL, kept small under constant updates. Every audited write of a
//! tenant updates its one row in `audit_head`, under the lock that orders the tenant's chain. When
//! dead versions pile up (autovacuum off, as on some clusters, or lagging), the lock's `SELECT …
//! FOR UPDATE` and the `UPDATE` read through them while the lock is held: one-tenant creates fell
//! from 1,059 to 490 a second over about forty runs, and recovered after a 40 ms VACUUM.
//!
//! - fillfactor 10: a page keeps nine tenths free, so an update finds room on the row's own page
//!   and is HOT (no index entry; the key is the only indexed column and never changes), and the
//!   page's dead versions are pruned by a later access to it, with or without autovacuum: 3.5×
//!   fewer dead rows after 80 s of one-tenant writes (docs/performance.md P17). Under contention a
//!   page cannot always be pruned, so the table still grows, which the server's own periodic
//!   VACUUM of the table takes care of (`store::audit::vacuum_heads`);
//! - autovacuum, where it runs, visits the table by a fixed number of dead rows instead of a share
//!   of a table that stays tiny;
//! - CLUSTER rewrites the existing rows into pages laid out so.
//!
//! SQLite updates in place and needs none of this.

use sea_orm::DbBackend;
use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0018_audit_head_hot"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        if db.get_database_backend() != DbBackend::Postgres {
            return Ok(());
        }
        db.execute_unprepared(
            "ALTER TABLE audit_head SET (fillfactor = 10, \
             autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 1000, \
             autovacuum_vacuum_cost_delay = 0, \
             autovacuum_analyze_scale_factor = 0, autovacuum_analyze_threshold = 1000)",
        )
        .await?;
        db.execute_unprepared("CLUSTER audit_head USING audit_head_pkey")
            .await?;
        Ok(())
    }
}
