//! Deletion batches and their items. Every statement is scoped to a tenant but `claim`, the
//! workers' look across tenants for a batch to work on, which hands the batch's tenant on.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue::{NotSet, Set},
    ColumnTrait, Condition, ConnectionTrait, EntityTrait, FromQueryResult, PaginatorTrait,
    QueryFilter, QueryOrder, QuerySelect, QueryTrait,
};
use uuid::Uuid;

use super::Written;
use super::entity::{deletion_batch as batch, deletion_batch_item as item};
use super::scope::TenantScoped as _;
use crate::domain::model::batch::{
    BatchImpact, BatchItem, BatchProgress, BatchState, BatchStateFilter, DeletionBatch, ItemState,
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
        approval_policy: Set(Some(json(&b.approval)?)),
        approvals: Set(Some(json(&b.approvals)?)),
        escalate_time: Set(b.escalate_time),
        // Written by the escalation sweep alone, never over by a transition.
        escalated_time: NotSet,
    })
}

fn json(value: &impl serde::Serialize) -> Result<String> {
    serde_json::to_string(value).map_err(Error::internal)
}

fn from_json<T: serde::de::DeserializeOwned + Default>(text: Option<&str>) -> Result<T> {
    text.map(|t| {
        serde_json::from_str(t)
            .map_err(|e| Error::internal(format!("stored batch approval unreadable: {e}")))
    })
    .transpose()
    .map(Option::unwrap_or_default)
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
        approval: from_json(row.approval_policy.as_deref())?,
        approvals: from_json(row.approvals.as_deref())?,
        escalate_time: row.escalate_time,
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
    batch_id: Uuid,
    state: String,
    items: i64,
    deleted_records: Option<i64>,
    restored_records: Option<i64>,
}

/// Items per state and records moved, counted from the items of each of `batches` in one
/// statement.
async fn progress_of(
    conn: &impl ConnectionTrait,
    tenant: &str,
    batches: &[Uuid],
) -> Result<HashMap<Uuid, BatchProgress>> {
    use item::Column as I;
    let counts = item::Entity::in_tenant(tenant)
        .filter(I::BatchId.is_in(batches.iter().copied()))
        .select_only()
        .column(I::BatchId)
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
        .group_by(I::BatchId)
        .group_by(I::State)
        .into_model::<StateCount>()
        .all(conn)
        .await?;
    let mut out: HashMap<Uuid, BatchProgress> = HashMap::new();
    for count in counts {
        let state = ItemState::parse(&count.state).ok_or_else(|| {
            Error::internal(format!("unknown batch item state {:?}", count.state))
        })?;
        let progress = out.entry(count.batch_id).or_default();
        progress.add(state, i32::try_from(count.items).unwrap_or(i32::MAX));
        progress.deleted_records += count.deleted_records.unwrap_or(0);
        progress.restored_records += count.restored_records.unwrap_or(0);
    }
    Ok(out)
}

/// Items per state and records moved, counted from the batch's items.
pub async fn progress(
    conn: &impl ConnectionTrait,
    tenant: &str,
    batch_id: Uuid,
) -> Result<BatchProgress> {
    let mut all = progress_of(conn, tenant, &[batch_id]).await?;
    Ok(all.remove(&batch_id).unwrap_or_default())
}

/// The batches of `rows`, each with its progress.
async fn with_progress(
    conn: &impl ConnectionTrait,
    tenant: &str,
    rows: Vec<batch::Model>,
) -> Result<Vec<DeletionBatch>> {
    let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
    let mut progress = progress_of(conn, tenant, &ids).await?;
    rows.into_iter()
        .map(|row| {
            let p = progress.remove(&row.id).unwrap_or_default();
            into_batch(row, p)
        })
        .collect()
}

/// Whether the tenant has this batch.
pub async fn exists(conn: &impl ConnectionTrait, tenant: &str, id: Uuid) -> Result<bool> {
    let found = batch::Entity::in_tenant(tenant)
        .filter(batch::Column::Id.eq(id))
        .select_only()
        .column(batch::Column::Id)
        .into_tuple::<Uuid>()
        .one(conn)
        .await?;
    Ok(found.is_some())
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
    Ok(with_progress(conn, tenant, row.into_iter().collect())
        .await?
        .pop())
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
    Ok(with_progress(conn, tenant, row.into_iter().collect())
        .await?
        .pop())
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

/// `filter` as a condition on `deletion_batch` rows. The filter carries the rule (which stored
/// states and expiries read as the states wanted); this only spells it in SQL.
fn reading_as(filter: &BatchStateFilter) -> Condition {
    use batch::Column as C;
    filter.cases.iter().fold(Condition::any(), |any, case| {
        let stored = C::State.eq(case.stored.name());
        any.add(match case.expired {
            None => Condition::all().add(stored),
            Some(true) => Condition::all()
                .add(stored)
                .add(C::ExpireTime.lte(filter.now)),
            Some(false) => Condition::all()
                .add(stored)
                .add(C::ExpireTime.gt(filter.now)),
        })
    })
}

/// A page of batches, newest first, before `before` (ids are UUIDv7).
pub async fn list(
    conn: &impl ConnectionTrait,
    tenant: &str,
    state: Option<&BatchStateFilter>,
    before: Option<Uuid>,
    limit: u64,
) -> Result<Vec<DeletionBatch>> {
    use batch::Column as C;
    let mut select = batch::Entity::in_tenant(tenant);
    if let Some(filter) = state {
        select = select.filter(reading_as(filter));
    }
    if let Some(before) = before {
        select = select.filter(C::Id.lt(before));
    }
    let rows = select.order_by_desc(C::Id).limit(limit).all(conn).await?;
    with_progress(conn, tenant, rows).await
}

/// Batches `state` matches that `requester` did not submit, oldest first, after `after`: the
/// walk of a decider's inbox, which the domain narrows to the batches routed to them.
pub async fn list_oldest_not_by(
    conn: &impl ConnectionTrait,
    tenant: &str,
    state: &BatchStateFilter,
    requester: &str,
    after: Option<Uuid>,
    limit: u64,
) -> Result<Vec<DeletionBatch>> {
    use batch::Column as C;
    let mut select = batch::Entity::in_tenant(tenant)
        .filter(reading_as(state))
        .filter(C::RequesterId.ne(requester));
    if let Some(after) = after {
        select = select.filter(C::Id.gt(after));
    }
    let rows = select.order_by_asc(C::Id).limit(limit).all(conn).await?;
    with_progress(conn, tenant, rows).await
}

/// How many of the tenant's batches `open` matches.
pub async fn count(
    conn: &impl ConnectionTrait,
    tenant: &str,
    open: &BatchStateFilter,
) -> Result<u64> {
    Ok(batch::Entity::in_tenant(tenant)
        .filter(reading_as(open))
        .count(conn)
        .await?)
}

/// Which of `customers` are QUEUED in a batch that `open` matches.
pub async fn queued_in(
    conn: &impl ConnectionTrait,
    tenant: &str,
    customers: &[Uuid],
    open: &BatchStateFilter,
) -> Result<HashSet<Uuid>> {
    use item::Column as I;
    let open_batches = batch::Entity::in_tenant(tenant)
        .filter(reading_as(open))
        .select_only()
        .column(batch::Column::Id)
        .into_query();
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

/// A batch a worker claimed: whose it is, and who started it (the actor of what the worker does).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claimed {
    pub tenant: String,
    pub id: Uuid,
    pub started_by: String,
}

/// A batch that `working` matches (the states the domain works in the background) whose claim
/// is free, lapsed, or already `owner`'s, claimed for `owner` until `until`. Looks across tenants,
/// as the one worker per replica serves them all; of replicas claiming at once, the conditional
/// update lets exactly one win.
pub async fn claim(
    conn: &impl ConnectionTrait,
    working: &BatchStateFilter,
    owner: &str,
    until: DateTime<Utc>,
) -> Result<Option<Claimed>> {
    use batch::Column as C;
    let now = working.now;
    let claimable = || {
        Condition::any()
            .add(C::LeaseOwner.is_null())
            .add(C::LeaseOwner.eq(owner))
            .add(C::LeaseExpireTime.lte(now))
    };
    // Unscoped on purpose: the worker serves every tenant (see the module's documentation).
    let candidates = batch::Entity::find()
        .filter(reading_as(working))
        .filter(claimable())
        .select_only()
        .column(C::TenantId)
        .column(C::Id)
        .column(C::StartedBy)
        .order_by_asc(C::UpdateTime)
        .limit(4)
        .into_tuple::<(String, Uuid, Option<String>)>()
        .all(conn)
        .await?;
    for (tenant, id, started_by) in candidates {
        let result = batch::Entity::update_in_tenant(&tenant)
            .col_expr(C::LeaseOwner, Expr::value(owner))
            .col_expr(C::LeaseExpireTime, Expr::value(until))
            .filter(C::Id.eq(id))
            .filter(claimable())
            .exec(conn)
            .await?;
        if result.rows_affected == 1 {
            return Ok(Some(Claimed {
                tenant,
                id,
                started_by: started_by.unwrap_or_default(),
            }));
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
