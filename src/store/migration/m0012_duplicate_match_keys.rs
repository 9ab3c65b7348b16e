//! The keys that find a customer's likely duplicates (`domain::model::matching`): one column each
//! for the e-mail, the phone number and the external reference, computed by the service from the
//! customer's fields (the same Rust on both databases, so both match alike), each with a partial
//! index over the tenant's live customers that have one.
//!
//! Existing customers get their keys here, a page of 1,000 at a time in id order, from the same
//! functions every write uses afterwards: one UPDATE per customer that has an e-mail, a phone or
//! an external reference (on a million such customers, minutes of start-up, once). An erased
//! customer has no fields left and gets none.

use sea_orm::ConnectionTrait;
use sea_orm::sea_query::{Alias, Expr, Query};
use sea_orm_migration::prelude::*;

use crate::domain::model::matching;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0012_duplicate_match_keys"
    }
}

const KEYS: [&str; 3] = ["match_email", "match_phone", "match_ref"];
const PAGE: u64 = 1_000;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        for key in KEYS {
            db.execute_unprepared(&format!("ALTER TABLE customer ADD COLUMN {key} TEXT"))
                .await?;
        }
        backfill(db).await?;
        for key in KEYS {
            db.execute_unprepared(&format!(
                "CREATE INDEX ix_customer_{key} ON customer (tenant_id, {key}) \
                 WHERE delete_time IS NULL AND {key} IS NOT NULL"
            ))
            .await?;
        }
        Ok(())
    }
}

async fn backfill(db: &impl ConnectionTrait) -> Result<(), DbErr> {
    let customer = Alias::new("customer");
    let column = |name: &str| Expr::col(Alias::new(name));
    let mut after: Option<(String, uuid::Uuid)> = None;
    loop {
        let mut page = Query::select();
        page.from(customer.clone())
            .columns(["tenant_id", "id", "email", "phone", "external_ref"].map(Alias::new))
            .and_where(column("erase_time").is_null())
            .and_where(
                column("email")
                    .is_not_null()
                    .or(column("phone").is_not_null())
                    .or(column("external_ref").is_not_null()),
            )
            .order_by(Alias::new("tenant_id"), Order::Asc)
            .order_by(Alias::new("id"), Order::Asc)
            .limit(PAGE);
        if let Some((tenant, id)) = &after {
            page.and_where(
                column("tenant_id")
                    .gt(tenant.clone())
                    .or(column("tenant_id")
                        .eq(tenant.clone())
                        .and(column("id").gt(*id))),
            );
        }
        let rows = db.query_all(&page).await?;
        for row in &rows {
            let (tenant, id): (String, uuid::Uuid) =
                (row.try_get("", "tenant_id")?, row.try_get("", "id")?);
            let field = |name: &str| -> Result<String, DbErr> {
                Ok(row.try_get::<Option<String>>("", name)?.unwrap_or_default())
            };
            let mut update = Query::update();
            update
                .table(customer.clone())
                .value(
                    Alias::new("match_email"),
                    matching::email_key(&field("email")?),
                )
                .value(
                    Alias::new("match_phone"),
                    matching::phone_key(&field("phone")?),
                )
                .value(
                    Alias::new("match_ref"),
                    matching::external_ref_key(&field("external_ref")?),
                )
                .and_where(column("tenant_id").eq(tenant.clone()))
                .and_where(column("id").eq(id));
            db.execute(&update).await?;
            after = Some((tenant, id));
        }
        if (rows.len() as u64) < PAGE {
            return Ok(());
        }
    }
}
