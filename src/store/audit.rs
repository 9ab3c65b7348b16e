//! The audit chain's rows. How an event is hashed is the domain's (`domain::audit`): a write
//! queues its events with the domain's `ChainRule`, and at its commit the store locks the tenant's
//! head row, links the events with that rule and writes them. The head's lock makes a tenant's
//! writers append one at a time, so the chain stays linear (SQLite's single writer does the same);
//! taking it last, at the commit, keeps that critical section to the chain's own writes.

use sea_orm::{
    ActiveValue::Set,
    ColumnTrait, ConnectionTrait, EntityTrait, ExprTrait, QueryFilter, QueryOrder, QuerySelect,
    QueryTrait,
    sea_query::{Alias, CommonTableExpression, Expr, OnConflict, WithClause},
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

/// How events are linked into a chain: the domain's rule (`domain::audit::CHAIN`), handed to the
/// store with each event so the store can link them where it holds the head's lock without
/// knowing how a hash is made.
#[derive(Debug, Clone, Copy)]
pub struct ChainRule {
    /// The hash before a tenant's first event.
    pub genesis: [u8; 32],
    /// The hash of an event (whose own hash fields are ignored) chained after `previous`.
    pub link: fn(previous: &[u8; 32], event: &AuditEvent) -> [u8; 32],
}

/// An audit event waiting for its transaction's commit, with the customer events it publishes.
/// Its sequence and hashes are given when it is appended (`append_queued`).
#[derive(Debug, Clone)]
pub struct Queued {
    pub event: AuditEvent,
    pub outbox: Vec<OutboxEvent>,
}

/// The tenant's head, locked until the end of the transaction (a head at sequence 0 and
/// `genesis` is made for the tenant's first event). Every append takes this lock first. The
/// common case is one statement: the row exists and is read by its primary key.
async fn lock_head(conn: &impl ConnectionTrait, tenant: &str, genesis: &[u8; 32]) -> Result<Head> {
    let locked = || {
        audit_head::Entity::in_tenant(tenant)
            .lock_exclusive()
            .one(conn)
    };
    let head = match locked().await? {
        Some(head) => head,
        None => {
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
            locked()
                .await?
                .ok_or_else(|| Error::internal("audit head vanished"))?
        }
    };
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
    // No truncation: truncating the table's empty tail needs an ACCESS EXCLUSIVE lock, which
    // VACUUM retries for up to 5 s while writers hold the table, so under steady writes it ran
    // into the statement timeout and the whole vacuum failed (seen in `bench.sh --writes --long`:
    // dead rows climbing while the server logged "database is busy").
    conn.execute_unprepared("VACUUM (TRUNCATE false) audit_head")
        .await?;
    Ok(true)
}

/// Bind parameters per statement, under both databases' limits (PostgreSQL 65,535; SQLite
/// 32,766), so a 1,000-customer import's events go in one statement.
const MAX_PARAMETERS: usize = 30_000;
const AUDIT_COLUMNS: usize = 13;
const OUTBOX_COLUMNS: usize = 9;

/// Appends a transaction's queued events to the tenant's chain, as the last writes before its
/// commit: locks the head, gives each event the next sequence and its hash (`rule.link`) and each
/// customer event the next event sequence, then writes the events, the customer events and the
/// moved head. The head's lock is the tenant's critical section, held to the commit; taking it
/// here, after everything else the transaction does, keeps it to two round trips: the lock, and
/// on PostgreSQL one statement that inserts the rows and moves the head (data-modifying CTEs).
/// Returns whether any customer event was written (its watchers are woken after the commit).
pub async fn append_queued(
    conn: &impl ConnectionTrait,
    tenant: &str,
    rule: &ChainRule,
    queued: Vec<Queued>,
) -> Result<bool> {
    if queued.is_empty() {
        return Ok(false);
    }
    let previous = lock_head(conn, tenant, &rule.genesis).await?;
    let mut head = previous;
    let mut events = Vec::with_capacity(queued.len());
    let mut outbox = Vec::new();
    for Queued {
        mut event,
        outbox: published,
    } in queued
    {
        event.sequence = head.sequence + 1;
        event.previous_hash = head.hash;
        event.hash = (rule.link)(&head.hash, &event);
        for out in published {
            head.event_sequence += 1;
            outbox.push(outbox_row(&event, head.event_sequence, out)?);
        }
        head.sequence = event.sequence;
        head.hash = event.hash;
        events.push(to_row(&event));
    }
    let published = !outbox.is_empty();
    write_chain(conn, tenant, &head, events, outbox).await?;
    Ok(published)
}

/// Writes the linked rows and moves the head: on PostgreSQL in one statement when the rows fit
/// in one (the inserts as CTEs of the head's UPDATE), else the inserts in chunks first.
async fn write_chain(
    conn: &impl ConnectionTrait,
    tenant: &str,
    head: &Head,
    mut events: Vec<audit_event::ActiveModel>,
    mut outbox: Vec<customer_event::ActiveModel>,
) -> Result<()> {
    let postgres = conn.get_database_backend() == sea_orm::DbBackend::Postgres;
    let rows_fit = |events: usize, outbox: usize| {
        events * AUDIT_COLUMNS + outbox * OUTBOX_COLUMNS <= MAX_PARAMETERS
    };
    // What does not fit in the final statement goes ahead in chunks; on SQLite, which has no
    // data-modifying CTEs, all of it does.
    while !rows_fit(events.len(), outbox.len()) || (!postgres && events.len() + outbox.len() > 0) {
        if !outbox.is_empty() {
            let rest = outbox.split_off(outbox.len().min(MAX_PARAMETERS / OUTBOX_COLUMNS));
            insert_rows(conn, std::mem::replace(&mut outbox, rest)).await?;
        } else {
            let rest = events.split_off(events.len().min(MAX_PARAMETERS / AUDIT_COLUMNS));
            insert_rows(conn, std::mem::replace(&mut events, rest)).await?;
        }
    }
    let move_head = audit_head::Entity::update_many()
        .col_expr(audit_head::Column::Sequence, Expr::value(head.sequence))
        .col_expr(
            audit_head::Column::Hash,
            Expr::value(hex_encode(&head.hash)),
        )
        .col_expr(
            audit_head::Column::EventSequence,
            Expr::value(head.event_sequence),
        )
        .filter(audit_head::Column::TenantId.eq(tenant))
        .into_query();
    if events.is_empty() && outbox.is_empty() {
        conn.execute(&move_head).await?;
        return Ok(());
    }
    let mut with = WithClause::new();
    if !events.is_empty() {
        with.cte(cte(
            "appended_events",
            audit_event::Entity::insert_many(events),
        ));
    }
    if !outbox.is_empty() {
        with.cte(cte(
            "published_events",
            customer_event::Entity::insert_many(outbox),
        ));
    }
    conn.execute(&move_head.with(with)).await?;
    Ok(())
}

fn cte<A: sea_orm::ActiveModelTrait>(
    name: &str,
    rows: sea_orm::InsertMany<A>,
) -> CommonTableExpression {
    CommonTableExpression::new()
        .query(rows.into_query())
        .table_name(Alias::new(name))
        .to_owned()
}

async fn insert_rows<A>(conn: &impl ConnectionTrait, rows: Vec<A>) -> Result<()>
where
    A: sea_orm::ActiveModelTrait,
{
    if rows.is_empty() {
        return Ok(());
    }
    A::Entity::insert_many(rows)
        .exec_without_returning(conn)
        .await?;
    Ok(())
}

fn outbox_row(
    event: &AuditEvent,
    sequence: i64,
    out: OutboxEvent,
) -> Result<customer_event::ActiveModel> {
    Ok(customer_event::ActiveModel {
        tenant_id: Set(event.tenant.clone()),
        sequence: Set(sequence),
        event_type: Set(out.event_type.to_owned()),
        // The column predates events without a customer: those store the nil UUID.
        customer_id: Set(out.customer_id.unwrap_or(Uuid::nil())),
        record_type: Set(out.record_type),
        record_id: Set(out.record_id),
        action: Set(event.action.clone()),
        time: Set(event.time),
        counts: Set(encode_counts(&out.counts)?),
    })
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
