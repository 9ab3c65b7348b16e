//! Escalation: finding deletion requests and batches still PENDING past their escalate_time that
//! have not been escalated, and marking one escalated. The scan looks across tenants by design
//! (one sweep serves every tenant) and hands each row's tenant on; the mark is tenant-scoped.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{LockBehavior, LockType};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
};
use uuid::Uuid;

use super::entity::{deletion_batch, deletion_request};
use super::scope::TenantScoped as _;
use crate::error::Result;

/// What is escalated: a deletion request or a deletion batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Escalated {
    Request,
    Batch,
}

/// A request or batch due for escalation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Due {
    pub kind: Escalated,
    pub tenant: String,
    pub id: Uuid,
    /// A request's customer; `None` for a batch.
    pub customer_id: Option<Uuid>,
    pub create_time: DateTime<Utc>,
}

/// Requests and batches stored PENDING, not lapsed by `now`, whose escalate_time has passed and
/// that were never escalated, oldest due first, at most `limit` of each (the partial index
/// `ix_*_escalation` holds exactly the rows not escalated yet). On PostgreSQL the rows are locked
/// `FOR UPDATE SKIP LOCKED`: replicas sweeping at once take different rows, and a row a decision
/// holds is left for the next pass.
pub async fn due(conn: &impl ConnectionTrait, now: DateTime<Utc>, limit: u64) -> Result<Vec<Due>> {
    let lock = conn.get_database_backend() == DbBackend::Postgres;
    let mut out = Vec::new();
    {
        use deletion_request::Column as C;
        let mut select = deletion_request::Entity::find()
            .select_only()
            .columns([C::TenantId, C::Id, C::CustomerId, C::CreateTime])
            .filter(C::State.eq("PENDING"))
            .filter(C::EscalatedTime.is_null())
            .filter(C::EscalateTime.lte(now))
            .filter(C::ExpireTime.gt(now))
            .order_by_asc(C::EscalateTime)
            .limit(limit);
        if lock {
            select = select.lock_with_behavior(LockType::Update, LockBehavior::SkipLocked);
        }
        let rows: Vec<(String, Uuid, Uuid, DateTime<Utc>)> = select.into_tuple().all(conn).await?;
        out.extend(rows.into_iter().map(|(tenant, id, customer, created)| Due {
            kind: Escalated::Request,
            tenant,
            id,
            customer_id: Some(customer),
            create_time: created,
        }));
    }
    {
        use deletion_batch::Column as C;
        let mut select = deletion_batch::Entity::find()
            .select_only()
            .columns([C::TenantId, C::Id, C::CreateTime])
            .filter(C::State.eq("PENDING"))
            .filter(C::EscalatedTime.is_null())
            .filter(C::EscalateTime.lte(now))
            .filter(C::ExpireTime.gt(now))
            .order_by_asc(C::EscalateTime)
            .limit(limit);
        if lock {
            select = select.lock_with_behavior(LockType::Update, LockBehavior::SkipLocked);
        }
        let rows: Vec<(String, Uuid, DateTime<Utc>)> = select.into_tuple().all(conn).await?;
        out.extend(rows.into_iter().map(|(tenant, id, created)| Due {
            kind: Escalated::Batch,
            tenant,
            id,
            customer_id: None,
            create_time: created,
        }));
    }
    Ok(out)
}

/// Marks a PENDING request or batch escalated at `now`, if nothing did before: false when it was
/// escalated already or is no longer PENDING, so each is escalated once.
pub async fn mark(
    conn: &impl ConnectionTrait,
    tenant: &str,
    kind: Escalated,
    id: Uuid,
    now: DateTime<Utc>,
) -> Result<bool> {
    let rows = match kind {
        Escalated::Request => {
            use deletion_request::Column as C;
            deletion_request::Entity::update_in_tenant(tenant)
                .col_expr(C::EscalatedTime, now.into())
                .filter(C::Id.eq(id))
                .filter(C::State.eq("PENDING"))
                .filter(C::EscalatedTime.is_null())
                .exec(conn)
                .await?
        }
        Escalated::Batch => {
            use deletion_batch::Column as C;
            deletion_batch::Entity::update_in_tenant(tenant)
                .col_expr(C::EscalatedTime, now.into())
                .filter(C::Id.eq(id))
                .filter(C::State.eq("PENDING"))
                .filter(C::EscalatedTime.is_null())
                .exec(conn)
                .await?
        }
    };
    Ok(rows.rows_affected == 1)
}
