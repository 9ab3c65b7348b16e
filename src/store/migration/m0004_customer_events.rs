//! The customer event outbox.

use sea_orm_migration::{prelude::*, schema::*};

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0004_customer_events"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("customer_event")
                    .col(text("tenant_id"))
                    .col(big_integer("sequence"))
                    .col(text("event_type"))
                    .col(uuid("customer_id"))
                    .col(text("record_type"))
                    .col(uuid_null("record_id"))
                    .col(text("action"))
                    .col(timestamp_with_time_zone("time"))
                    // Consumers read a tenant's stream by sequence: the key is the index.
                    .primary_key(Index::create().col("tenant_id").col("sequence"))
                    .to_owned(),
            )
            .await?;
        // The event sequence is allocated under the same per-tenant head lock as the audit
        // chain, so a tenant's events are numbered in commit order without gaps.
        manager
            .alter_table(
                Table::alter()
                    .table("audit_head")
                    .add_column(big_integer("event_sequence").default(0))
                    .to_owned(),
            )
            .await?;
        Ok(())
    }
}
