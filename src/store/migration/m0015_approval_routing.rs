//! Approval that fits an organisation: each deletion request and batch keeps the approval policy
//! it was submitted under (the teams it is routed to, how many approvals it needs and why) and
//! the approvals it collected, and when it is due for escalation.
//!
//! Policy and approvals are JSON in the row (team names, user ids and figures; no customer data):
//! they are read and written with the row, which every decision locks anyway, so a second table
//! would add a statement to each read without a query that needs it. A row without a policy was
//! made before policies existed: any supervisor, one approval.

use sea_orm_migration::{prelude::*, schema::*};

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0015_approval_routing"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in ["deletion_request", "deletion_batch"] {
            // SQLite adds one column per ALTER TABLE.
            for mut column in [
                text_null("approval_policy"),
                text_null("approvals"),
                // When the request, still PENDING, is escalated; NULL: never (the tenant set no
                // escalation when it was submitted).
                timestamp_with_time_zone_null("escalate_time"),
                // When the escalation event was written: at most once.
                timestamp_with_time_zone_null("escalated_time"),
            ] {
                manager
                    .alter_table(
                        Table::alter()
                            .table(table)
                            .add_column(&mut column)
                            .to_owned(),
                    )
                    .await?;
            }
            // The escalation sweep's walk, across tenants: only rows still due are in it.
            manager
                .get_connection()
                .execute_unprepared(&format!(
                    "CREATE INDEX ix_{table}_escalation ON {table} (escalate_time) \
                     WHERE escalated_time IS NULL AND escalate_time IS NOT NULL \
                     AND state = 'PENDING'"
                ))
                .await?;
        }
        Ok(())
    }
}
