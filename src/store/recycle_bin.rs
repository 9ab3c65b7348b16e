//! The recycle bin: deleted, not yet erased customers in purge order, joined to the request or
//! batch item that deleted them and the count of records their deletion took.

use std::collections::HashMap;

use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, QueryFilter, QueryOrder, QuerySelect, QueryTrait,
};
use uuid::Uuid;

use super::customers::into_domain;
use super::entity::{
    customer, deletion_batch as batch, deletion_batch_item as item, deletion_request as request,
};
use super::records::{OnTable, RecordTable, on_table};
use super::scope::{Liveness as _, NotErased as _, TenantScoped as _};
use crate::domain::model::record::RecordKind;
use crate::domain::model::recycle_bin::{BinEntry, BinFilter, BinPosition, DeletedBy};
use crate::error::Result;

/// One page of the tenant's bin after `after`, at most `limit` entries.
pub async fn list(
    conn: &impl ConnectionTrait,
    tenant: &str,
    filter: &BinFilter,
    after: Option<BinPosition>,
    limit: u64,
) -> Result<Vec<BinEntry>> {
    use customer::Column as C;
    let mut select = customer::Entity::in_tenant(tenant)
        .deleted()
        .not_erased()
        .filter(C::PurgeTime.is_not_null());
    if let Some(before) = filter.purge_before {
        select = select.filter(C::PurgeTime.lt(before));
    }
    if let Some(id) = filter.deletion_request_id {
        select = select.filter(
            C::DeletionId.in_subquery(
                request::Entity::in_tenant(tenant)
                    .filter(request::Column::Id.eq(id))
                    .select_only()
                    .column(request::Column::DeletionId)
                    .into_query(),
            ),
        );
    }
    if let Some(id) = filter.deletion_batch_id {
        select = select
            .filter(C::DeletionId.in_subquery(items_of_batches(tenant, batch::Column::Id.eq(id))));
    }
    if let Some(user) = &filter.requested_by {
        let by_request = request::Entity::in_tenant(tenant)
            .filter(request::Column::RequesterId.eq(user.as_str()))
            .filter(request::Column::DeletionId.is_not_null())
            .select_only()
            .column(request::Column::DeletionId)
            .into_query();
        let by_batch = items_of_batches(tenant, batch::Column::RequesterId.eq(user.as_str()));
        select = select.filter(
            Condition::any()
                .add(C::DeletionId.in_subquery(by_request))
                .add(C::DeletionId.in_subquery(by_batch)),
        );
    }
    if let Some(after) = after {
        select = select.filter(
            Condition::any().add(C::PurgeTime.gt(after.purge_time)).add(
                Condition::all()
                    .add(C::PurgeTime.eq(after.purge_time))
                    .add(C::Id.gt(after.id)),
            ),
        );
    }
    let rows = select
        .order_by_asc(C::PurgeTime)
        .order_by_asc(C::Id)
        .limit(limit)
        .all(conn)
        .await?;
    let customers = rows
        .into_iter()
        .map(into_domain)
        .collect::<Result<Vec<_>>>()?;
    let deletion_ids: Vec<Uuid> = customers.iter().filter_map(|c| c.deletion_id).collect();
    let mut origins = origins(conn, tenant, &deletion_ids).await?;
    let counts = record_counts(conn, tenant, &deletion_ids).await?;
    Ok(customers
        .into_iter()
        .map(|customer| {
            let origin = customer.deletion_id.and_then(|id| origins.remove(&id));
            let deleted_records = customer
                .deletion_id
                .and_then(|id| counts.get(&id).copied())
                .unwrap_or(0);
            let (deleted_by, requested_by, approved_by, merged_into) = match origin {
                Some(o) => (
                    Some(o.deleted_by),
                    o.requested_by,
                    o.approved_by,
                    o.merged_into,
                ),
                None => (None, String::new(), String::new(), None),
            };
            BinEntry {
                customer,
                deleted_by,
                requested_by,
                approved_by,
                deleted_records,
                merged_into,
            }
        })
        .collect())
}

/// The deletion ids of the items of the tenant's batches that `which` selects.
fn items_of_batches(
    tenant: &str,
    which: impl sea_orm::sea_query::IntoCondition,
) -> sea_orm::sea_query::SelectStatement {
    item::Entity::in_tenant(tenant)
        .filter(item::Column::DeletionId.is_not_null())
        .filter(
            item::Column::BatchId.in_subquery(
                batch::Entity::in_tenant(tenant)
                    .filter(which)
                    .select_only()
                    .column(batch::Column::Id)
                    .into_query(),
            ),
        )
        .select_only()
        .column(item::Column::DeletionId)
        .into_query()
}

struct Origin {
    deleted_by: DeletedBy,
    requested_by: String,
    approved_by: String,
    /// A merge's survivor.
    merged_into: Option<Uuid>,
}

/// For each deletion id, the request or the batch that made it.
async fn origins(
    conn: &impl ConnectionTrait,
    tenant: &str,
    deletion_ids: &[Uuid],
) -> Result<HashMap<Uuid, Origin>> {
    let mut found = HashMap::new();
    if deletion_ids.is_empty() {
        return Ok(found);
    }
    let requests = request::Entity::in_tenant(tenant)
        .filter(request::Column::DeletionId.is_in(deletion_ids.iter().copied()))
        .all(conn)
        .await?;
    for r in requests {
        if let Some(deletion_id) = r.deletion_id {
            found.insert(
                deletion_id,
                Origin {
                    deleted_by: DeletedBy::Request { id: r.id },
                    requested_by: r.requester_id,
                    approved_by: r.decided_by.unwrap_or_default(),
                    merged_into: r.survivor_id,
                },
            );
        }
    }
    let items: Vec<(Uuid, Option<Uuid>)> = item::Entity::in_tenant(tenant)
        .filter(item::Column::DeletionId.is_in(deletion_ids.iter().copied()))
        .select_only()
        .column(item::Column::BatchId)
        .column(item::Column::DeletionId)
        .into_tuple()
        .all(conn)
        .await?;
    let batch_ids: Vec<Uuid> = items.iter().map(|(batch, _)| *batch).collect();
    let batches: HashMap<Uuid, batch::Model> = if batch_ids.is_empty() {
        HashMap::new()
    } else {
        batch::Entity::in_tenant(tenant)
            .filter(batch::Column::Id.is_in(batch_ids))
            .all(conn)
            .await?
            .into_iter()
            .map(|b| (b.id, b))
            .collect()
    };
    for (batch_id, deletion_id) in items {
        let (Some(deletion_id), Some(b)) = (deletion_id, batches.get(&batch_id)) else {
            continue;
        };
        found.insert(
            deletion_id,
            Origin {
                deleted_by: DeletedBy::Batch { id: batch_id },
                requested_by: b.requester_id.clone(),
                approved_by: b.decided_by.clone().unwrap_or_default(),
                merged_into: None,
            },
        );
    }
    Ok(found)
}

/// For each deletion id, how many records (of all six kinds) carry it.
async fn record_counts(
    conn: &impl ConnectionTrait,
    tenant: &str,
    deletion_ids: &[Uuid],
) -> Result<HashMap<Uuid, i64>> {
    struct Count<'a, C> {
        conn: &'a C,
        tenant: &'a str,
        deletion_ids: &'a [Uuid],
    }
    impl<C: ConnectionTrait> OnTable for Count<'_, C> {
        type Output = Vec<(Uuid, i64)>;
        async fn on<T: RecordTable>(self) -> Result<Vec<(Uuid, i64)>> {
            Ok(T::in_tenant(self.tenant)
                .filter(T::DELETION_ID.is_in(self.deletion_ids.iter().copied()))
                .select_only()
                .column(T::DELETION_ID)
                .column_as(T::ID.count(), "n")
                .group_by(T::DELETION_ID)
                .into_tuple()
                .all(self.conn)
                .await?)
        }
    }
    let mut counts = HashMap::new();
    if deletion_ids.is_empty() {
        return Ok(counts);
    }
    for kind in RecordKind::ALL {
        let count = Count {
            conn,
            tenant,
            deletion_ids,
        };
        for (deletion_id, n) in on_table(kind, count).await? {
            *counts.entry(deletion_id).or_insert(0) += n;
        }
    }
    Ok(counts)
}
