//! Merges: a deletion request may be a MERGE of its customer into a survivor, and every record a
//! merge moves is remembered, so that an unmerge moves back exactly those.
//!
//! `merge_move` holds ids only (the merge's deletion id, the record's kind and id). A record moved
//! by two merges in a chain (A into B, then B into C) has a row for each; an unmerge undoes the
//! latest merge first (its survivor must be live), so each unmerge reads only its own rows and
//! deletes them.

use sea_orm_migration::{prelude::*, schema::*};

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0014_merges"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // SQLite adds one column per ALTER TABLE.
        for mut column in [
            text("kind").default("DELETE").to_owned(),
            uuid_null("survivor_id"),
            // The merge's terms, as JSON: the survivor's version and the names of the fields it
            // takes (ids and names only).
            text_null("merge_terms"),
            // Once executed, the values the survivor had in those fields and the ones it took, as
            // JSON: personal data, which the duplicate's erasure blanks.
            text_null("merge_values"),
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table("deletion_request")
                        .add_column(&mut column)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .create_table(
                Table::create()
                    .table("merge_move")
                    .col(text("tenant_id"))
                    .col(uuid("merge_id"))
                    .col(text("kind"))
                    .col(uuid("record_id"))
                    .primary_key(
                        Index::create()
                            .col("tenant_id")
                            .col("merge_id")
                            .col("kind")
                            .col("record_id"),
                    )
                    .to_owned(),
            )
            .await?;
        Ok(())
    }
}
