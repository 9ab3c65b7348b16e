//! Deletion batches: many customers under one reason and one decision, and one row per customer.

use sea_orm_migration::{prelude::*, schema::*};

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0010_deletion_batches"
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
                    .table("deletion_batch")
                    .col(text("tenant_id"))
                    .col(uuid("id"))
                    .col(text("requester_id"))
                    .col(text("reason"))
                    .col(text("state"))
                    // The aggregate impact at submission, as JSON (ids and counts only).
                    .col(text("impact"))
                    .col(text_null("decided_by"))
                    .col(text_null("decision_comment"))
                    .col(timestamp_with_time_zone_null("decide_time"))
                    .col(timestamp_with_time_zone("expire_time"))
                    .col(timestamp_with_time_zone("create_time"))
                    .col(timestamp_with_time_zone("update_time"))
                    .col(text_null("started_by"))
                    .col(timestamp_with_time_zone_null("start_time"))
                    .col(timestamp_with_time_zone_null("finish_time"))
                    .col(timestamp_with_time_zone_null("restore_start_time"))
                    .col(timestamp_with_time_zone_null("restore_finish_time"))
                    // Which replica works the batch, and until when its claim holds: a replica
                    // that dies leaves the claim to lapse and another one takes the batch over.
                    .col(text_null("lease_owner"))
                    .col(timestamp_with_time_zone_null("lease_expire_time"))
                    .col(big_integer("version"))
                    .primary_key(Index::create().col("tenant_id").col("id"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("deletion_batch_item")
                    .col(text("tenant_id"))
                    .col(uuid("batch_id"))
                    .col(integer("position"))
                    .col(uuid("customer_id"))
                    .col(big_integer_null("customer_version"))
                    .col(text("state"))
                    .col(text_null("excluded_reason"))
                    // The blockers that excluded or blocked it, as JSON (ids and counts only).
                    .col(text("blockers"))
                    .col(uuid_null("deletion_id"))
                    .col(big_integer("deleted_records"))
                    .col(big_integer("restored_records"))
                    .col(text_null("restore_reason"))
                    .col(text_null("restore_problem"))
                    .col(timestamp_with_time_zone("update_time"))
                    .primary_key(
                        Index::create()
                            .col("tenant_id")
                            .col("batch_id")
                            .col("position"),
                    )
                    .to_owned(),
            )
            .await?;
        let db = manager.get_connection();
        // Batches by state, newest first (ids are UUIDv7); the workers' scan for RUNNING and
        // RESTORING batches.
        db.execute_unprepared(
            "CREATE INDEX ix_deletion_batch_state ON deletion_batch (tenant_id, state, id)",
        )
        .await?;
        db.execute_unprepared("CREATE INDEX ix_deletion_batch_working ON deletion_batch (state)")
            .await?;
        // Whether a customer is queued in an open batch (submission's exclusion check), and the
        // batch a deleted customer's deletion id came from (the recycle bin).
        db.execute_unprepared(
            "CREATE INDEX ix_deletion_batch_item_customer ON deletion_batch_item (tenant_id, customer_id)",
        )
        .await?;
        db.execute_unprepared(
            "CREATE INDEX ix_deletion_batch_item_state ON deletion_batch_item (tenant_id, batch_id, state, position)",
        )
        .await?;
        Ok(())
    }
}
