//! Erasure: when a customer was purged, and the index the purger scans.

use sea_orm_migration::{prelude::*, schema::*};

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0003_purge"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // Set when the customer was erased; the row is then an anonymous tombstone.
        manager
            .alter_table(
                Table::alter()
                    .table("customer")
                    .add_column(timestamp_with_time_zone_null("erase_time"))
                    .to_owned(),
            )
            .await?;
        // The purger looks across tenants for deleted customers whose purge_time has passed: the
        // one index that does not start with tenant_id, because its query is the one that is not
        // tenant-scoped. Partial, so it holds only customers waiting to be erased.
        manager
            .get_connection()
            .execute_unprepared(
                "CREATE INDEX ix_customer_purge_due ON customer (purge_time) \
                 WHERE delete_time IS NOT NULL AND erase_time IS NULL",
            )
            .await?;
        Ok(())
    }
}
