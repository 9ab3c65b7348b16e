//! Customers, the six record kinds, idempotency keys and shared secrets.
//!
//! Every key and index starts with `tenant_id`: every query is tenant-scoped, and a distributed
//! PostgreSQL (Citus) can shard every table by tenant. Soft-delete columns (`delete_time`,
//! `purge_time`, `deletion_id`) are here from the start so that deletion needs no table rewrite.

use sea_orm_migration::{prelude::*, schema::*};

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0001_customers_and_records"
    }
}

/// The record tables and their kind-specific columns.
fn record_tables() -> Vec<(&'static str, Vec<ColumnDef>)> {
    vec![
        (
            "contact",
            vec![
                text("full_name"),
                text_null("email"),
                text_null("phone"),
                text_null("job_title"),
            ],
        ),
        (
            "deal",
            vec![
                text("title"),
                big_integer("amount_minor"),
                text("currency"),
                text("stage"),
            ],
        ),
        (
            "sales_order",
            vec![
                text("number"),
                big_integer("amount_minor"),
                text("currency"),
                text("status"),
            ],
        ),
        (
            "contract",
            vec![text("number"), text("status"), text_null("end_date")],
        ),
        ("project", vec![text("name"), text("status")]),
        (
            "activity",
            vec![
                text("kind"),
                text("subject"),
                timestamp_with_time_zone("occur_time"),
            ],
        ),
    ]
}

/// Where each record kind keeps the state its deletion policy depends on.
pub(super) fn state_column(table: &str) -> Option<&'static str> {
    match table {
        "deal" => Some("stage"),
        "sales_order" | "contract" | "project" => Some("status"),
        _ => None,
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    // SQLite gets no transaction around a migration unless asked: a half-applied schema must not
    // survive a crash on either database.
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("customer")
                    .col(text("tenant_id"))
                    .col(uuid("id"))
                    .col(text("name"))
                    .col(text_null("phone"))
                    .col(text_null("email"))
                    .col(text_null("industry"))
                    .col(text("owner_id"))
                    .col(text("lifecycle_stage"))
                    .col(text("status"))
                    .col(text_null("external_ref"))
                    .col(boolean("legal_hold"))
                    .col(text("search_text"))
                    .col(timestamp_with_time_zone("create_time"))
                    .col(timestamp_with_time_zone("update_time"))
                    .col(timestamp_with_time_zone_null("delete_time"))
                    .col(timestamp_with_time_zone_null("purge_time"))
                    .col(uuid_null("deletion_id"))
                    .col(big_integer("version"))
                    .primary_key(Index::create().col("tenant_id").col("id"))
                    .to_owned(),
            )
            .await?;

        let db = manager.get_connection();
        // external_ref identifies a customer in another system: unique among the tenant's live
        // customers only, so a deleted customer does not block re-creating it (and a restore that
        // would collide is refused by the domain, naming the conflict).
        db.execute_unprepared(
            "CREATE UNIQUE INDEX ux_customer_external_ref ON customer (tenant_id, external_ref) \
             WHERE delete_time IS NULL AND external_ref IS NOT NULL",
        )
        .await?;
        // One index per ListCustomers filter, ending in id so that a filtered page is a keyset range
        // scan in id order (never a sort of every match).
        for column in ["industry", "owner_id", "lifecycle_stage", "status"] {
            db.execute_unprepared(&format!(
                "CREATE INDEX ix_customer_{column} ON customer (tenant_id, {column}, id)"
            ))
            .await?;
        }
        // Restore finds exactly the rows of one deletion.
        db.execute_unprepared(
            "CREATE INDEX ix_customer_deletion ON customer (tenant_id, deletion_id) WHERE deletion_id IS NOT NULL",
        )
        .await?;

        for (table, columns) in record_tables() {
            let mut create = Table::create();
            create
                .table(table)
                .col(text("tenant_id"))
                .col(uuid("id"))
                .col(uuid("customer_id"));
            for column in columns {
                create.col(column);
            }
            create
                .col(timestamp_with_time_zone("create_time"))
                .col(timestamp_with_time_zone("update_time"))
                .col(timestamp_with_time_zone_null("delete_time"))
                .col(uuid_null("deletion_id"))
                .col(big_integer("version"))
                .primary_key(Index::create().col("tenant_id").col("id"))
                .foreign_key(
                    ForeignKey::create()
                        .name(format!("fk_{table}_customer"))
                        .from_tbl(table)
                        .from_col("tenant_id")
                        .from_col("customer_id")
                        .to_tbl("customer")
                        .to_col("tenant_id")
                        .to_col("id")
                        .on_delete(ForeignKeyAction::Restrict),
                );
            manager.create_table(create.to_owned()).await?;
            // Listing a customer's records in id order, and the foreign key's lookups.
            db.execute_unprepared(&format!(
                "CREATE INDEX ix_{table}_customer ON {table} (tenant_id, customer_id, id)"
            ))
            .await?;
            // Per-customer counts by state of the live records (the deletion preview) come from
            // this index alone, without touching the rows; ending in id, it also gives each
            // state's first sample ids in order without a sort.
            let counted = match state_column(table) {
                Some(state) => format!("tenant_id, customer_id, {state}, id"),
                None => "tenant_id, customer_id, id".to_owned(),
            };
            db.execute_unprepared(&format!(
                "CREATE INDEX ix_{table}_live ON {table} ({counted}) WHERE delete_time IS NULL"
            ))
            .await?;
            db.execute_unprepared(&format!(
                "CREATE INDEX ix_{table}_deletion ON {table} (tenant_id, deletion_id) WHERE deletion_id IS NOT NULL"
            ))
            .await?;
        }

        // The preview's open-pipeline warning sums open deals by currency from this index alone.
        db.execute_unprepared(
            "CREATE INDEX ix_deal_open_pipeline ON deal (tenant_id, customer_id, currency, amount_minor) \
             WHERE delete_time IS NULL AND stage = 'OPEN'",
        )
        .await?;

        manager
            .create_table(
                Table::create()
                    .table("idempotency_key")
                    .col(text("tenant_id"))
                    .col(uuid("request_id"))
                    .col(text("subject"))
                    .col(text("operation"))
                    .col(text("fingerprint"))
                    .col(text("response"))
                    .col(timestamp_with_time_zone("create_time"))
                    .primary_key(Index::create().col("tenant_id").col("request_id"))
                    .to_owned(),
            )
            .await?;
        // Expired keys are swept by age.
        db.execute_unprepared(
            "CREATE INDEX ix_idempotency_key_age ON idempotency_key (create_time)",
        )
        .await?;

        manager
            .create_table(
                Table::create()
                    .table("service_secret")
                    .col(text("name").primary_key())
                    .col(text("secret"))
                    .to_owned(),
            )
            .await?;
        Ok(())
    }
}
