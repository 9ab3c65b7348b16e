//! The recycle bin's indexes (the tenant's deleted customers in purge order, and the way back
//! from a deletion id to the request or batch item that made it), and the counts that deletion
//! batch events carry.

use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0011_bin_and_batch_events"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        // Partial: only customers waiting in the bin, so live customers cost it nothing.
        db.execute_unprepared(
            "CREATE INDEX ix_customer_bin ON customer (tenant_id, purge_time, id) \
             WHERE delete_time IS NOT NULL AND erase_time IS NULL",
        )
        .await?;
        db.execute_unprepared(
            "CREATE INDEX ix_deletion_request_deletion ON deletion_request (tenant_id, deletion_id) \
             WHERE deletion_id IS NOT NULL",
        )
        .await?;
        db.execute_unprepared(
            "CREATE INDEX ix_deletion_batch_item_deletion ON deletion_batch_item (tenant_id, deletion_id) \
             WHERE deletion_id IS NOT NULL",
        )
        .await?;
        // Deletion batch events carry counts (a JSON array of [name, count] pairs).
        db.execute_unprepared(
            "ALTER TABLE customer_event ADD COLUMN counts TEXT NOT NULL DEFAULT ''",
        )
        .await?;
        Ok(())
    }
}
