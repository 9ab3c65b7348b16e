//! Per-tenant settings (retention, request lifetime, escalation, team claims, phone default
//! country, the two-person rule): one row per tenant that changed them, the fields as JSON so
//! that a new setting needs no migration of its own (a missing field reads as its default).

use sea_orm_migration::{prelude::*, schema::*};

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0016_tenant_settings"
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
                    .table("tenant_settings")
                    .col(text("tenant_id"))
                    .col(text("settings"))
                    // The etag: bumped by every change, 0 never stored (the defaults' version).
                    .col(big_integer("version"))
                    .col(timestamp_with_time_zone("update_time"))
                    .col(text("updated_by"))
                    .primary_key(Index::create().col("tenant_id"))
                    .to_owned(),
            )
            .await
    }
}
