//! The key-account mark of a customer: a supervisor or an admin sets it, and the tenant's
//! two-person rule may ask two approvers to delete such a customer.
//!
//! NOT NULL with a default, so that every existing customer reads as not a key account and every
//! insert that does not name the column (older code, raw SQL in tests and benchmarks) stays valid.
//! Numbered m0017: m0015 and m0016 are reserved for changes on other branches.

use sea_orm_migration::{prelude::*, schema::*};

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0017_key_account"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table("customer")
                    .add_column(boolean("key_account").default(false))
                    .to_owned(),
            )
            .await
    }
}
