//! Scoping by construction: where every query of a tenant's table starts.
//!
//! A query does not filter by tenant by hand: it starts from `Entity::in_tenant(tenant)` (or
//! `update_in_tenant`, `delete_in_tenant`), which already carries the tenant, and narrows from
//! there: `.live()` / `.deleted()` for soft-deleted rows, `.not_erased()` for customers, and for
//! the six record tables `.of_customer(id)` and `.of_deletion(id)` (`store::records::RecordTable`).
//!
//! ```text
//! customer::Entity::in_tenant(tenant).filter(customer::Column::Id.eq(id)).not_erased()
//! T::update_in_tenant(tenant).of_customer(customer_id).live()   // T: RecordTable
//! ```
//!
//! Only two kinds of statement may start from `Entity::find()` / `update_many()` /
//! `delete_many()` without a tenant, each marked where it is written: the purger's scans for what
//! is due (`store::purge::due`, `store::purge::due_records`), which look across tenants by design
//! and hand each row's tenant to the tenant-scoped erasure, and the sweep of expired idempotency
//! keys (`store::idempotency::sweep`), which forgets every tenant's old keys at once, and the
//! batch workers' claim of a batch to work on (`store::batches::claim`), which serves every
//! tenant and hands the batch's tenant to everything it does after. GetCustomer's
//! hot path and the free-text search are raw SQL (`store::customers`), which spell `tenant_id`
//! themselves.

use sea_orm::{ColumnTrait, DeleteMany, EntityTrait, QueryFilter, Select, UpdateMany};

use super::entity::{
    activity, audit_event, audit_head, contact, contract, customer, customer_event, deal,
    deletion_batch, deletion_batch_item, deletion_request, idempotency_key, merge_move, project,
    sales_order, tenant_settings,
};

/// A table whose every row belongs to one tenant: its key starts with `tenant_id`.
pub(crate) trait TenantScoped: EntityTrait {
    /// The table's `tenant_id` column.
    const TENANT_ID: Self::Column;

    /// The tenant's rows: where every read of the table starts.
    fn in_tenant(tenant: &str) -> Select<Self> {
        Self::find().filter(Self::TENANT_ID.eq(tenant))
    }

    /// An UPDATE of the tenant's rows, to be narrowed further.
    fn update_in_tenant(tenant: &str) -> UpdateMany<Self> {
        Self::update_many().filter(Self::TENANT_ID.eq(tenant))
    }

    /// A DELETE of the tenant's rows, to be narrowed further.
    fn delete_in_tenant(tenant: &str) -> DeleteMany<Self> {
        Self::delete_many().filter(Self::TENANT_ID.eq(tenant))
    }
}

/// A table whose rows are soft-deleted (`delete_time` set) before they are erased: customers and
/// the six record tables.
pub(crate) trait SoftDeleted: TenantScoped {
    /// The table's `delete_time` column, read by `Liveness`.
    const DELETE_TIME: Self::Column;
}

/// Narrows a statement on a soft-deleted table to its live or its deleted rows.
pub(crate) trait Liveness<E: SoftDeleted>: QueryFilter + Sized {
    /// Rows that are not deleted.
    fn live(self) -> Self {
        self.filter(E::DELETE_TIME.is_null())
    }

    /// Rows that are deleted (and, for customers, possibly erased).
    fn deleted(self) -> Self {
        self.filter(E::DELETE_TIME.is_not_null())
    }
}

impl<E: SoftDeleted> Liveness<E> for Select<E> {}
impl<E: SoftDeleted> Liveness<E> for UpdateMany<E> {}
impl<E: SoftDeleted> Liveness<E> for DeleteMany<E> {}

/// Customers that are not erased: an erased customer is a tombstone that kept records point at,
/// never found as a customer again.
pub(crate) trait NotErased: QueryFilter + Sized {
    fn not_erased(self) -> Self {
        self.filter(customer::Column::EraseTime.is_null())
    }
}

impl NotErased for Select<customer::Entity> {}

impl SoftDeleted for customer::Entity {
    const DELETE_TIME: customer::Column = customer::Column::DeleteTime;
}

impl SoftDeleted for contact::Entity {
    const DELETE_TIME: contact::Column = contact::Column::DeleteTime;
}

impl SoftDeleted for deal::Entity {
    const DELETE_TIME: deal::Column = deal::Column::DeleteTime;
}

impl SoftDeleted for sales_order::Entity {
    const DELETE_TIME: sales_order::Column = sales_order::Column::DeleteTime;
}

impl SoftDeleted for contract::Entity {
    const DELETE_TIME: contract::Column = contract::Column::DeleteTime;
}

impl SoftDeleted for project::Entity {
    const DELETE_TIME: project::Column = project::Column::DeleteTime;
}

impl SoftDeleted for activity::Entity {
    const DELETE_TIME: activity::Column = activity::Column::DeleteTime;
}

impl TenantScoped for customer::Entity {
    const TENANT_ID: customer::Column = customer::Column::TenantId;
}

impl TenantScoped for contact::Entity {
    const TENANT_ID: contact::Column = contact::Column::TenantId;
}

impl TenantScoped for deal::Entity {
    const TENANT_ID: deal::Column = deal::Column::TenantId;
}

impl TenantScoped for sales_order::Entity {
    const TENANT_ID: sales_order::Column = sales_order::Column::TenantId;
}

impl TenantScoped for contract::Entity {
    const TENANT_ID: contract::Column = contract::Column::TenantId;
}

impl TenantScoped for project::Entity {
    const TENANT_ID: project::Column = project::Column::TenantId;
}

impl TenantScoped for activity::Entity {
    const TENANT_ID: activity::Column = activity::Column::TenantId;
}

impl TenantScoped for deletion_batch::Entity {
    const TENANT_ID: Self::Column = deletion_batch::Column::TenantId;
}

impl TenantScoped for deletion_batch_item::Entity {
    const TENANT_ID: Self::Column = deletion_batch_item::Column::TenantId;
}

impl TenantScoped for deletion_request::Entity {
    const TENANT_ID: deletion_request::Column = deletion_request::Column::TenantId;
}

impl TenantScoped for audit_event::Entity {
    const TENANT_ID: audit_event::Column = audit_event::Column::TenantId;
}

impl TenantScoped for audit_head::Entity {
    const TENANT_ID: audit_head::Column = audit_head::Column::TenantId;
}

impl TenantScoped for customer_event::Entity {
    const TENANT_ID: customer_event::Column = customer_event::Column::TenantId;
}

impl TenantScoped for idempotency_key::Entity {
    const TENANT_ID: idempotency_key::Column = idempotency_key::Column::TenantId;
}

impl TenantScoped for merge_move::Entity {
    const TENANT_ID: merge_move::Column = merge_move::Column::TenantId;
}

impl TenantScoped for tenant_settings::Entity {
    const TENANT_ID: tenant_settings::Column = tenant_settings::Column::TenantId;
}

#[cfg(test)]
mod tests {
    use super::*;
    use sea_orm::{DbBackend, QueryTrait};

    fn sql(statement: impl QueryTrait) -> String {
        statement.build(DbBackend::Postgres).to_string()
    }

    #[test]
    fn every_helper_starts_with_the_tenant() {
        assert_eq!(
            sql(customer::Entity::in_tenant("acme")
                .filter(customer::Column::Id.eq(uuid::Uuid::nil()))
                .not_erased()),
            sql(
                customer::Entity::find_by_id(("acme".to_owned(), uuid::Uuid::nil()))
                    .filter(customer::Column::EraseTime.is_null())
            ),
            "the same statement as the primary-key lookup it replaced"
        );
        let live = sql(contact::Entity::in_tenant("acme").live());
        assert!(
            live.ends_with(
                r#"WHERE "contact"."tenant_id" = 'acme' AND "contact"."delete_time" IS NULL"#
            ),
            "{live}"
        );
        let update = sql(deal::Entity::update_in_tenant("acme")
            .col_expr(deal::Column::Version, sea_orm::sea_query::Expr::value(1))
            .deleted());
        assert!(
            update.ends_with(
                r#"WHERE "deal"."tenant_id" = 'acme' AND "deal"."delete_time" IS NOT NULL"#
            ),
            "{update}"
        );
        let delete = sql(idempotency_key::Entity::delete_in_tenant("acme"));
        assert!(
            delete.ends_with(r#"WHERE "idempotency_key"."tenant_id" = 'acme'"#),
            "{delete}"
        );
    }
}
