//! Deletion batches and their items. Every statement is scoped to a tenant but `claim`, the
//! workers' look across tenants for a batch to work on, which hands the batch's tenant on.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, Query};
use sea_orm::{
    ActiveValue::{NotSet, Set},
    ColumnTrait, Condition, ConnectionTrait, EntityTrait, FromQueryResult, QueryFilter, QueryOrder,
    QuerySelect,
};
use uuid::Uuid;

use super::Written;
use super::entity::{deletion_batch as batch, deletion_batch_item as item};
use super::scope::TenantScoped as _;
use crate::domain::model::batch::{
    BatchImpact, BatchItem, BatchProgress, BatchState, DeletionBatch, ItemState,
};
use crate::error::{Error, Result};

/// Items per INSERT: 16 columns each stays far under SQLite's 32,766 bound parameters.
const ITEMS_PER_INSERT: usize = 500;

fn to_row(tenant: &str, b: &DeletionBatch) -> Result<batch::ActiveModel> {
    let impact = serde_json::to_string(&b.impact).map_err(Error::internal)?;
    let some = |s: &str| (!s.is_empty()).then(|| s.to_owned());
    Ok(batch::ActiveModel {
        tenant_id: Set(tenant.to_owned()),
        id: Set(b.id),
        requester_id: Set(b.requester_id.clone()),
        reason: Set(b.reason.clone()),
        state: Set(b.state.name().to_owned()),
        impact: Set(impact),
        decided_by: Set(some(&b.decided_by)),
        decision_comment: Set(some(&b.decision_comment)),
        decide_time: Set(b.decide_time),
        expire_time: Set(b.expire_time),
        create_time: Set(b.create_time),
        update_time: Set(b.update_time),
        started_by: Set(some(&b.started_by)),
        start_time: Set(b.start_time),
        finish_time: Set(b.finish_time),
        restore_start_time: Set(b.restore_start_time),
        restore_finish_time: Set(b.restore_finish_time),
        lease_owner: NotSet,
        lease_expire_time: NotSet,
        version: Set(b.version),
    })
}

fn into_batch(row: batch::Model, progress: BatchProgress) -> Result<DeletionBatch> {
    let state = BatchState::parse(&row.state)
        .ok_or_else(|| Error::internal(format!("unknown batch state {:?}", row.state)))?;
    let impact: BatchImpact = serde_json::from_str(&row.impact)
        .map_err(|e| Error::internal(format!("stored batch impact unreadable: {e}")))?;
    Ok(DeletionBatch {
        id: row.id,
        requester_id: row.requester_id,
        reason: row.reason,
        state,
        impact,
        progress,
        decided_by: row.decided_by.unwrap_or_default(),
        decision_comment: row.decision_comment.unwrap_or_default(),
        decide_time: row.decide_time,
        expire_time: row.expire_time,
        create_time: row.create_time,
        update_time: row.update_time,
        started_by: row.started_by.unwrap_or_default(),
        start_time: row.start_time,
        finish_time: row.finish_time,
        restore_start_time: row.restore_start_time,
        restore_finish_time: row.restore_finish_time,
        version: row.version,
    })
}

fn item_row(tenant: &str, i: &BatchItem) -> Result<item::ActiveModel> {
    let blockers = serde_json::to_string(&i.blockers).map_err(Error::internal)?;
    let some = |s: &str| (!s.is_empty()).then(|| s.to_owned());
    Ok(item::ActiveModel {
        tenant_id: Set(tenant.to_owned()),
        batch_id: Set(i.batch_id),
        position: Set(i.position),
        customer_id: Set(i.customer_id),
        customer_version: Set(i.customer_version),
        state: Set(i.state.name().to_owned()),
        excluded_reason: Set(some(&i.excluded_reason)),
        blockers: Set(blockers),
        deletion_id: Set(i.deletion_id),
        deleted_records: Set(i.deleted_records),
        restored_records: Set(i.restored_records),
        restore_reason: Set(some(&i.restore_reason)),
        restore_problem: Set(some(&i.restore_problem)),
        update_time: Set(i.update_time),
    })
}

fn into_item(row: item::Model) -> Result<BatchItem> {
    let state = ItemState::parse(&row.state)
        .ok_or_else(|| Error::internal(format!("unknown batch item state {:?}", row.state)))?;
    let blockers = serde_json::from_str(&row.blockers)
        .map_err(|e| Error::internal(format!("stored batch item blockers unreadable: {e}")))?;
    Ok(BatchItem {
        batch_id: row.batch_id,
        position: row.position,
        customer_id: row.customer_id,
        customer_version: row.customer_version,
        state,
        excluded_reason: row.excluded_reason.unwrap_or_default(),
        blockers,
        deletion_id: row.deletion_id,
        deleted_records: row.deleted_records,
        restored_records: row.restored_records,
        restore_reason: row.restore_reason.unwrap_or_default(),
        restore_problem: row.restore_problem.unwrap_or_default(),
        update_time: row.update_time,
    })
}

/// A new batch and all its items.
pub async fn insert(
    conn: &impl ConnectionTrait,
    tenant: &str,
    b: &DeletionBatch,
    items: &[BatchItem],
) -> Result<()> {
    batch::Entity::insert(to_row(tenant, b)?)
        .exec_without_returning(conn)
        .await?;
    for chunk in items.chunks(ITEMS_PER_INSERT) {
        let rows = chunk
            .iter()
            .map(|i| item_row(tenant, i))
            .collect::<Result<Vec<_>>>()?;
        item::Entity::insert_many(rows)
            .exec_without_returning(conn)
            .await?;
    }
    Ok(())
}

#[derive(Debug, FromQueryResult)]
struct StateCount {
    state: String,
    items: i64,
    deleted_records: Option<i64>,
    restored_records: Option<i64>,
}

/// Items per state and records moved, counted from the items.
pub async fn progress(
    conn: &impl ConnectionTrait,
    tenant: &str,
    batch_id: Uuid,
) -> Result<BatchProgress> {
    use item::Column as I;
    let counts = item::Entity::in_tenant(tenant)
        .filter(I::BatchId.eq(batch_id))
        .select_only()
        .column(I::State)
        .column_as(Expr::cust("COUNT(*)"), "items")
        // PostgreSQL sums BIGINT as NUMERIC: cast back to the column's type.
        .column_as(
            Expr::cust("CAST(SUM(deleted_records) AS BIGINT)"),
            "deleted_records",
        )
        .column_as(
            Expr::cust("CAST(SUM(restored_records) AS BIGINT)"),
            "restored_records",
        )
        .group_by(I::State)
        .into_model::<StateCount>()
        .all(conn)
        .await?;
    let mut progress = BatchProgress::default();
    for count in counts {
        let state = ItemState::parse(&count.state).ok_or_else(|| {
            Error::internal(format!("unknown batch item state {:?}", count.state))
        })?;
        progress.add(state, i32::try_from(count.items).unwrap_or(i32::MAX));
        progress.deleted_records += count.deleted_records.unwrap_or(0);
        progress.restored_records += count.restored_records.unwrap_or(0);
    }
    Ok(progress)
}

async fn with_progress(
    conn: &impl ConnectionTrait,
    tenant: &str,
    row: Option<batch::Model>,
) -> Result<Option<DeletionBatch>> {
    let Some(row) = row else { return Ok(None) };
    let progress = progress(conn, tenant, row.id).await?;
    into_batch(row, progress).map(Some)
}

pub async fn find(
    conn: &impl ConnectionTrait,
    tenant: &str,
    id: Uuid,
) -> Result<Option<DeletionBatch>> {
    let row = batch::Entity::in_tenant(tenant)
        .filter(batch::Column::Id.eq(id))
        .one(conn)
        .await?;
    with_progress(conn, tenant, row).await
}

/// A batch, locked until the end of the transaction on PostgreSQL.
pub async fn find_for_update(
    conn: &impl ConnectionTrait,
    tenant: &str,
    id: Uuid,
) -> Result<Option<DeletionBatch>> {
    let row = batch::Entity::in_tenant(tenant)
        .filter(batch::Column::Id.eq(id))
        .lock_exclusive()
        .one(conn)
        .await?;
    with_progress(conn, tenant, row).await
}

/// Writes `b` over the stored batch if it is still at `expected_version`.
pub async fn update(
    conn: &impl ConnectionTrait,
    tenant: &str,
    b: &DeletionBatch,
    expected_version: i64,
) -> Result<Written> {
    let mut row = to_row(tenant, b)?;
    row.tenant_id = NotSet;
    row.id = NotSet;
    let result = batch::Entity::update_in_tenant(tenant)
        .set(row)
        .filter(batch::Column::Id.eq(b.id))
        .filter(batch::Column::Version.eq(expected_version))
        .exec(conn)
        .await?;
    Ok(if result.rows_affected == 1 {
        Written::Applied
    } else {
        Written::VersionMoved
    })
}

/// Batches that read as `state` at `now`: an undecided or unstarted batch past its expire_time
/// reads EXPIRED (`DeletionBatch::effective_state`).
fn seen_as(state: BatchState, now: DateTime<Utc>) -> Condition {
    use batch::Column as C;
    let lapsing = [BatchState::Pending.name(), BatchState::Approved.name()];
    match state {
        BatchState::Expired => Condition::any().add(C::State.eq(state.name())).add(
            Condition::all()
                .add(C::State.is_in(lapsing))
                .add(C::ExpireTime.lte(now)),
        ),
        BatchState::Pending | BatchState::Approved => Condition::all()
            .add(C::State.eq(state.name()))
            .add(C::ExpireTime.gt(now)),
        other => Condition::all().add(C::State.eq(other.name())),
    }
}

/// A page of batches, newest first, before `before` (ids are UUIDv7).
pub async fn list(
    conn: &impl ConnectionTrait,
    tenant: &str,
    state: Option<(BatchState, DateTime<Utc>)>,
    before: Option<Uuid>,
    limit: u64,
) -> Result<Vec<DeletionBatch>> {
    use batch::Column as C;
    let mut select = batch::Entity::in_tenant(tenant);
    if let Some((state, now)) = state {
        select = select.filter(seen_as(state, now));
    }
    if let Some(before) = before {
        select = select.filter(C::Id.lt(before));
    }
    let rows = select.order_by_desc(C::Id).limit(limit).all(conn).await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let progress = progress(conn, tenant, row.id).await?;
        out.push(into_batch(row, progress)?);
    }
    Ok(out)
}

/// The tenant's open batches at `now`: deciding, starting or being worked on.
pub async fn count_open(
    conn: &impl ConnectionTrait,
    tenant: &str,
    now: DateTime<Utc>,
) -> Result<u64> {
    use batch::Column as C;
    let open = Condition::any()
        .add(seen_as(BatchState::Pending, now))
        .add(seen_as(BatchState::Approved, now))
        .add(C::State.is_in([BatchState::Running.name(), BatchState::Restoring.name()]));
    let rows = batch::Entity::in_tenant(tenant)
        .filter(open)
        .select_only()
        .column(C::Id)
        .into_tuple::<Uuid>()
        .all(conn)
        .await?;
    Ok(rows.len() as u64)
}

/// Which of `customers` are QUEUED in an open batch at `now`.
pub async fn queued_in_open_batches(
    conn: &impl ConnectionTrait,
    tenant: &str,
    customers: &[Uuid],
    now: DateTime<Utc>,
) -> Result<HashSet<Uuid>> {
    use batch::Column as B;
    use item::Column as I;
    let open = Condition::any()
        .add(seen_as(BatchState::Pending, now))
        .add(seen_as(BatchState::Approved, now))
        .add(B::State.eq(BatchState::Running.name()));
    let open_batches = Query::select()
        .column(B::Id)
        .from(batch::Entity)
        .and_where(B::TenantId.eq(tenant))
        .cond_where(open)
        .to_owned();
    let mut found = HashSet::new();
    for chunk in customers.chunks(ITEMS_PER_INSERT) {
        let ids = item::Entity::in_tenant(tenant)
            .filter(I::CustomerId.is_in(chunk.iter().copied()))
            .filter(I::State.eq(ItemState::Queued.name()))
            .filter(I::BatchId.in_subquery(open_batches.clone()))
            .select_only()
            .column(I::CustomerId)
            .into_tuple::<Uuid>()
            .all(conn)
            .await?;
        found.extend(ids);
    }
    Ok(found)
}

/// A page of a batch's items in submission order, after position `after`.
pub async fn list_items(
    conn: &impl ConnectionTrait,
    tenant: &str,
    batch_id: Uuid,
    state: Option<ItemState>,
    after: Option<i32>,
    limit: u64,
) -> Result<Vec<BatchItem>> {
    use item::Column as I;
    let mut select = item::Entity::in_tenant(tenant).filter(I::BatchId.eq(batch_id));
    if let Some(state) = state {
        select = select.filter(I::State.eq(state.name()));
    }
    if let Some(after) = after {
        select = select.filter(I::Position.gt(after));
    }
    let rows = select
        .order_by_asc(I::Position)
        .limit(limit)
        .all(conn)
        .await?;
    rows.into_iter().map(into_item).collect()
}

/// Writes an item's outcome.
pub async fn update_item(conn: &impl ConnectionTrait, tenant: &str, i: &BatchItem) -> Result<()> {
    let mut row = item_row(tenant, i)?;
    row.tenant_id = NotSet;
    row.batch_id = NotSet;
    row.position = NotSet;
    item::Entity::update_in_tenant(tenant)
        .set(row)
        .filter(item::Column::BatchId.eq(i.batch_id))
        .filter(item::Column::Position.eq(i.position))
        .exec(conn)
        .await?;
    Ok(())
}

/// A batch being worked on whose claim is free, lapsed, or already `owner`'s, claimed for `owner`
/// until `until`: (tenant, batch id). Looks across tenants, as the one worker per replica serves
/// them all; of replicas claiming at once, the conditional update lets exactly one win.
pub async fn claim(
    conn: &impl ConnectionTrait,
    owner: &str,
    now: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<Option<(String, Uuid)>> {
    use batch::Column as C;
    let claimable = || {
        Condition::any()
            .add(C::LeaseOwner.is_null())
            .add(C::LeaseOwner.eq(owner))
            .add(C::LeaseExpireTime.lte(now))
    };
    // Unscoped on purpose: the worker serves every tenant (see the module's documentation).
    let candidates = batch::Entity::find()
        .filter(C::State.is_in([BatchState::Running.name(), BatchState::Restoring.name()]))
        .filter(claimable())
        .select_only()
        .column(C::TenantId)
        .column(C::Id)
        .order_by_asc(C::UpdateTime)
        .limit(4)
        .into_tuple::<(String, Uuid)>()
        .all(conn)
        .await?;
    for (tenant, id) in candidates {
        let result = batch::Entity::update_in_tenant(&tenant)
            .col_expr(C::LeaseOwner, Expr::value(owner))
            .col_expr(C::LeaseExpireTime, Expr::value(until))
            .filter(C::Id.eq(id))
            .filter(claimable())
            .exec(conn)
            .await?;
        if result.rows_affected == 1 {
            return Ok(Some((tenant, id)));
        }
    }
    Ok(None)
}

/// Extends `owner`'s claim on a batch; false if the claim is no longer `owner`'s.
pub async fn renew(
    conn: &impl ConnectionTrait,
    tenant: &str,
    id: Uuid,
    owner: &str,
    until: DateTime<Utc>,
) -> Result<bool> {
    use batch::Column as C;
    let result = batch::Entity::update_in_tenant(tenant)
        .col_expr(C::LeaseExpireTime, Expr::value(until))
        .filter(C::Id.eq(id))
        .filter(C::LeaseOwner.eq(owner))
        .exec(conn)
        .await?;
    Ok(result.rows_affected == 1)
}

/// Gives up `owner`'s claim, so that another replica need not wait for it to lapse.
pub async fn release(
    conn: &impl ConnectionTrait,
    tenant: &str,
    id: Uuid,
    owner: &str,
) -> Result<()> {
    use batch::Column as C;
    batch::Entity::update_in_tenant(tenant)
        .col_expr(C::LeaseOwner, Expr::value(Option::<String>::None))
        .col_expr(
            C::LeaseExpireTime,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .filter(C::Id.eq(id))
        .filter(C::LeaseOwner.eq(owner))
        .exec(conn)
        .await?;
    Ok(())
}
