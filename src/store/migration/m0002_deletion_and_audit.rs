//! Deletion requests and the audit trail.

use sea_orm_migration::{prelude::*, schema::*};

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0002_deletion_and_audit"
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
                    .table("deletion_request")
                    .col(text("tenant_id"))
                    .col(uuid("id"))
                    .col(uuid("customer_id"))
                    .col(text("requester_id"))
                    .col(text("reason"))
                    // The preview the request was made from, as JSON (counts and warnings, no
                    // personal data), and the graph version it saw.
                    .col(big_integer("preview_version"))
                    .col(text("preview"))
                    .col(text("state"))
                    .col(text_null("decided_by"))
                    .col(text_null("decision_comment"))
                    .col(timestamp_with_time_zone_null("decide_time"))
                    .col(timestamp_with_time_zone("expire_time"))
                    .col(timestamp_with_time_zone("create_time"))
                    .col(timestamp_with_time_zone("update_time"))
                    .col(timestamp_with_time_zone_null("execute_time"))
                    .col(uuid_null("deletion_id"))
                    .col(big_integer("version"))
                    .primary_key(Index::create().col("tenant_id").col("id"))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_deletion_request_customer")
                            .from_tbl("deletion_request")
                            .from_col("tenant_id")
                            .from_col("customer_id")
                            .to_tbl("customer")
                            .to_col("tenant_id")
                            .to_col("id")
                            .on_delete(ForeignKeyAction::Restrict),
                    )
                    .to_owned(),
            )
            .await?;
        let db = manager.get_connection();
        // At most one open request per customer, enforced by the database: two concurrent submits
        // cannot both succeed, whatever the application does.
        db.execute_unprepared(
            "CREATE UNIQUE INDEX ux_deletion_request_open ON deletion_request (tenant_id, customer_id) \
             WHERE state IN ('PENDING', 'APPROVED')",
        )
        .await?;
        // The supervisor's inbox: by state, newest first (ids are UUIDv7).
        db.execute_unprepared(
            "CREATE INDEX ix_deletion_request_state ON deletion_request (tenant_id, state, id)",
        )
        .await?;
        db.execute_unprepared(
            "CREATE INDEX ix_deletion_request_customer ON deletion_request (tenant_id, customer_id, id)",
        )
        .await?;

        manager
            .create_table(
                Table::create()
                    .table("audit_event")
                    .col(text("tenant_id"))
                    .col(big_integer("sequence"))
                    .col(timestamp_with_time_zone("time"))
                    .col(text("actor"))
                    .col(text("action"))
                    .col(text("target_type"))
                    .col(uuid("target_id"))
                    .col(uuid_null("customer_id"))
                    .col(uuid_null("request_id"))
                    .col(text("trace_id"))
                    .col(text("summary"))
                    .col(text("previous_hash"))
                    .col(text("hash"))
                    .primary_key(Index::create().col("tenant_id").col("sequence"))
                    .to_owned(),
            )
            .await?;
        db.execute_unprepared("CREATE INDEX ix_audit_event_customer ON audit_event (tenant_id, customer_id, sequence)")
            .await?;
        // The chain's head per tenant: appending locks this row, which serialises a tenant's
        // writers on PostgreSQL (SQLite has one writer anyway) and keeps the chain linear.
        manager
            .create_table(
                Table::create()
                    .table("audit_head")
                    .col(text("tenant_id").primary_key())
                    .col(big_integer("sequence"))
                    .col(text("hash"))
                    .to_owned(),
            )
            .await?;
        Ok(())
    }
}
