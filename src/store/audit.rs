//! The audit chain's rows. The chain itself (sequence, hash) is the domain's
//! (`domain::audit::record`): the store locks the tenant's head row, returns it, and writes what it
//! is then given. Locking the head first makes a tenant's writers append one at a time, so the
//! chain stays linear (SQLite's single writer does the same).

use sea_orm::{
    ActiveValue::Set,
    ColumnTrait, ConnectionTrait, EntityTrait, ExprTrait, QueryFilter, QueryOrder, QuerySelect,
    sea_query::{Expr, OnConflict},
};
use uuid::Uuid;

use super::entity::{audit_event, audit_head, customer_event};
use super::idempotency::{hex_decode, hex_encode};
use super::scope::TenantScoped as _;
use crate::domain::model::audit::{AuditEvent, AuditFilter};
use crate::domain::model::event::{CustomerEvent, OutboxEvent};
use crate::error::{Error, Result};

/// The PostgreSQL channel that tells watchers a tenant has new events (payload: the tenant).
pub const EVENTS_CHANNEL: &str = "crm_customer_events";

/// A tenant's chain head: its last audit event and its last customer event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    pub sequence: i64,
    pub hash: [u8; 32],
    pub event_sequence: i64,
}

/// The tenant's head, locked until the end of the transaction (a head at sequence 0 and
/// `genesis` is made for the tenant's first event). Every append takes this lock first.
pub async fn lock_head(
    conn: &impl ConnectionTrait,
    tenant: &str,
    genesis: &[u8; 32],
) -> Result<Head> {
    let fresh = audit_head::ActiveModel {
        tenant_id: Set(tenant.to_owned()),
        sequence: Set(0),
        hash: Set(hex_encode(genesis)),
        event_sequence: Set(0),
    };
    audit_head::Entity::insert(fresh)
        .on_conflict(
            OnConflict::column(audit_head::Column::TenantId)
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(conn)
        .await?;
    let head = audit_head::Entity::in_tenant(tenant)
        .lock_exclusive()
        .one(conn)
        .await?
        .ok_or_else(|| Error::internal("audit head vanished"))?;
    let mut hash = [0u8; 32];
    hex_decode(&head.hash, &mut hash)?;
    Ok(Head {
        sequence: head.sequence,
        hash,
        event_sequence: head.event_sequence,
    })
}

/// PostgreSQL: vacuums `audit_head`, which every audited write updates. Even with m0018's
/// fillfactor, about 1.5 % of the updates of a contended row cannot be HOT (the page cannot be
/// pruned while other writers hold it), so without a vacuum the table grows by some 40 pages every
/// 10 s of 1,700 writes a second, and the head's lock reads through the dead versions
/// (docs/performance.md P17). A plain VACUUM takes no lock writers wait on and took 65–80 ms
/// here. False on SQLite, which updates in place.
pub async fn vacuum_heads(conn: &impl ConnectionTrait) -> Result<bool> {
    if conn.get_database_backend() != sea_orm::DbBackend::Postgres {
        return Ok(false);
    }
    conn.execute_unprepared("VACUUM audit_head").await?;
    Ok(true)
}

/// Moves the tenant's head (locked by `lock_head` in the same transaction) to `head`.
pub async fn write_head(conn: &impl ConnectionTrait, tenant: &str, head: &Head) -> Result<()> {
    audit_head::Entity::update(audit_head::ActiveModel {
        tenant_id: Set(tenant.to_owned()),
        sequence: Set(head.sequence),
        hash: Set(hex_encode(&head.hash)),
        event_sequence: Set(head.event_sequence),
    })
    .exec(conn)
    .await?;
    Ok(())
}

/// Stores `event`, whose sequence and hashes the caller has set; the caller moves the head
/// (`write_head`) before the transaction commits. With `outbox`, also stores the customer events
/// numbered up to `head.event_sequence` (`WriteTx::commit` wakes their watchers once committed).
pub async fn append(
    conn: &impl ConnectionTrait,
    event: &AuditEvent,
    head: &Head,
    outbox: &[OutboxEvent],
) -> Result<()> {
    let tenant = &event.tenant;
    // The head's event sequence is the last of these events'.
    let first_sequence = head.event_sequence - outbox.len() as i64 + 1;
    for (sequence, out) in (first_sequence..).zip(outbox) {
        customer_event::Entity::insert(customer_event::ActiveModel {
            tenant_id: Set(tenant.clone()),
            sequence: Set(sequence),
            event_type: Set(out.event_type.to_owned()),
            // The column predates events without a customer: those store the nil UUID.
            customer_id: Set(out.customer_id.unwrap_or(Uuid::nil())),
            record_type: Set(out.record_type.clone()),
            record_id: Set(out.record_id),
            action: Set(event.action.clone()),
            time: Set(event.time),
            counts: Set(encode_counts(&out.counts)?),
        })
        .exec_without_returning(conn)
        .await?;
    }
    audit_event::Entity::insert(to_row(event))
        .exec_without_returning(conn)
        .await?;
    Ok(())
}

fn to_row(e: &AuditEvent) -> audit_event::ActiveModel {
    audit_event::ActiveModel {
        tenant_id: Set(e.tenant.clone()),
        sequence: Set(e.sequence),
        time: Set(e.time),
        actor: Set(e.actor.clone()),
        action: Set(e.action.clone()),
        target_type: Set(e.target_type.clone()),
        target_id: Set(e.target_id),
        customer_id: Set(e.customer_id),
        request_id: Set(e.request_id),
        trace_id: Set(e.trace_id.clone()),
        summary: Set(e.summary.clone()),
        previous_hash: Set(hex_encode(&e.previous_hash)),
        hash: Set(hex_encode(&e.hash)),
    }
}

fn from_row(row: audit_event::Model) -> Result<AuditEvent> {
    let mut previous_hash = [0u8; 32];
    let mut hash = [0u8; 32];
    // A row whose hashes are not hex is tampered with; it fails verification rather than erroring.
    let _ = hex_decode(&row.previous_hash, &mut previous_hash);
    let _ = hex_decode(&row.hash, &mut hash);
    Ok(AuditEvent {
        tenant: row.tenant_id,
        sequence: row.sequence,
        time: row.time,
        actor: row.actor,
        action: row.action,
        target_type: row.target_type,
        target_id: row.target_id,
        customer_id: row.customer_id,
        request_id: row.request_id,
        trace_id: row.trace_id,
        summary: row.summary,
        previous_hash,
        hash,
    })
}

/// Events after `after_sequence` in sequence order, filtered.
pub async fn list(
    conn: &impl ConnectionTrait,
    tenant: &str,
    filter: &AuditFilter,
    after_sequence: i64,
    limit: u64,
) -> Result<Vec<AuditEvent>> {
    use audit_event::Column as C;
    let mut select = audit_event::Entity::in_tenant(tenant).filter(C::Sequence.gt(after_sequence));
    if let Some(customer) = filter.customer_id {
        select = select.filter(C::CustomerId.eq(customer));
    }
    if let Some(action) = &filter.action {
        select = select.filter(C::Action.eq(action.as_str()));
    }
    if let Some(start) = filter.start_time {
        select = select.filter(C::Time.gte(start));
    }
    if let Some(end) = filter.end_time {
        select = select.filter(C::Time.lt(end));
    }
    let rows = select
        .order_by_asc(C::Sequence)
        .limit(limit)
        .all(conn)
        .await?;
    rows.into_iter().map(from_row).collect()
}

/// The chain head (sequence, hash) of a tenant; `None` before its first event.
pub async fn head(conn: &impl ConnectionTrait, tenant: &str) -> Result<Option<(i64, [u8; 32])>> {
    let Some(row) = audit_head::Entity::in_tenant(tenant).one(conn).await? else {
        return Ok(None);
    };
    let mut hash = [0u8; 32];
    let _ = hex_decode(&row.hash, &mut hash);
    Ok(Some((row.sequence, hash)))
}

/// The highest sequence among a tenant's stored events (0 if none), whatever the head says.
pub async fn last_sequence(conn: &impl ConnectionTrait, tenant: &str) -> Result<i64> {
    use audit_event::Column as C;
    let last: Option<Option<i64>> = audit_event::Entity::in_tenant(tenant)
        .select_only()
        .column_as(Expr::col(C::Sequence).max(), "last")
        .into_tuple()
        .one(conn)
        .await?;
    Ok(last.flatten().unwrap_or(0))
}

/// A tenant's customer events after `after`, in sequence order.
pub async fn events_after(
    conn: &impl ConnectionTrait,
    tenant: &str,
    after: i64,
    limit: u64,
) -> Result<Vec<CustomerEvent>> {
    use customer_event::Column as C;
    let rows = customer_event::Entity::in_tenant(tenant)
        .filter(C::Sequence.gt(after))
        .order_by_asc(C::Sequence)
        .limit(limit)
        .all(conn)
        .await?;
    rows.into_iter()
        .map(|row| {
            Ok(CustomerEvent {
                sequence: row.sequence,
                event_type: row.event_type,
                customer_id: (!row.customer_id.is_nil()).then_some(row.customer_id),
                record_type: row.record_type,
                record_id: row.record_id,
                action: row.action,
                time: row.time,
                counts: decode_counts(&row.counts)?,
            })
        })
        .collect()
}

/// An event's counts as stored: a JSON array of `[name, count]` pairs, or empty for none.
fn encode_counts(counts: &[(String, i64)]) -> Result<String> {
    if counts.is_empty() {
        return Ok(String::new());
    }
    serde_json::to_string(counts).map_err(|e| Error::internal(format!("event counts: {e}")))
}

fn decode_counts(stored: &str) -> Result<Vec<(String, i64)>> {
    if stored.is_empty() {
        return Ok(Vec::new());
    }
    serde_json::from_str(stored).map_err(|e| Error::internal(format!("stored event counts: {e}")))
}
