//! The JetStream relay of customer events: how far it has published each tenant's events, and the
//! lease that lets one replica at a time publish.

use sea_orm_migration::{prelude::*, schema::*};

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0019_event_relay"
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
                    .table("event_relay_cursor")
                    .col(text("tenant_id").primary_key())
                    // The tenant's last event JetStream acknowledged (and the relay recorded).
                    .col(big_integer("published_sequence"))
                    .col(timestamp_with_time_zone("published_time"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("event_relay_lease")
                    .col(text("name").primary_key())
                    .col(text("holder"))
                    // Milliseconds since the Unix epoch: compared as a number on both databases.
                    .col(big_integer("expires_at_ms"))
                    .to_owned(),
            )
            .await?;
        Ok(())
    }
}
