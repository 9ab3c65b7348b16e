//! Merges: moving a duplicate's live records to the survivor, remembering each one, and moving
//! exactly those back. O(tables) statements whatever the number of records.

use sea_orm::sea_query::{Expr, Query};
use sea_orm::{ColumnTrait, ConnectionTrait, QueryFilter, QuerySelect, QueryTrait};
use uuid::Uuid;

use super::entity::merge_move;
use super::records::{OnTable, RecordScope as _, RecordTable, on_table};
use super::scope::{Liveness as _, TenantScoped};
use crate::domain::model::record::RecordKind;
use crate::error::{Error, Result};

/// Moves every live record of `from` to `to`, remembering each under `merge_id`; returns how
/// many moved. The records keep their ids, versions and update times: a merge changes whose they
/// are, not what they say.
pub async fn move_records(
    conn: &impl ConnectionTrait,
    tenant: &str,
    merge_id: Uuid,
    from: Uuid,
    to: Uuid,
) -> Result<u64> {
    struct Move<'a, C> {
        conn: &'a C,
        tenant: &'a str,
        merge_id: Uuid,
        from: Uuid,
        to: Uuid,
    }
    impl<C: ConnectionTrait> OnTable for Move<'_, C> {
        type Output = u64;
        async fn on<T: RecordTable>(self) -> Result<u64> {
            use merge_move::Column as M;
            let moving = T::in_tenant(self.tenant)
                .of_customer(self.from)
                .live()
                .select_only()
                .column(T::TENANT_ID)
                .column_as(Expr::value(self.merge_id), "merge_id")
                .column_as(Expr::value(T::KIND.name()), "kind")
                .column(T::ID)
                .into_query();
            let remember = Query::insert()
                .into_table(merge_move::Entity)
                .columns([M::TenantId, M::MergeId, M::Kind, M::RecordId])
                .select_from(moving)
                .map_err(Error::internal)?
                .to_owned();
            let backend = self.conn.get_database_backend();
            let remembered = self
                .conn
                .execute_raw(backend.build(&remember))
                .await?
                .rows_affected();
            let moved = T::update_in_tenant(self.tenant)
                .col_expr(T::CUSTOMER_ID, Expr::value(self.to))
                .of_customer(self.from)
                .live()
                .exec(self.conn)
                .await?
                .rows_affected;
            // Both statements read the same rows under the duplicate's lock, which every record
            // write takes first.
            if moved != remembered {
                return Err(Error::internal(format!(
                    "{moved} {} records moved where {remembered} were remembered",
                    T::KIND.name()
                )));
            }
            Ok(moved)
        }
    }
    let mut moved = 0;
    for kind in RecordKind::ALL {
        let op = Move {
            conn,
            tenant,
            merge_id,
            from,
            to,
        };
        moved += on_table(kind, op).await?;
    }
    Ok(moved)
}

/// How many record ids one statement of an unmerge names.
const IDS_PER_STATEMENT: usize = 1_000;

/// Moves back to `to` the records `merge_id` moved that are still with `from` (live or deleted
/// on their own since), and forgets the merge's moves; returns how many went back. With
/// `dry_run`, only counts them.
///
/// The merge's record ids are read first and named in the UPDATE (`id IN (…)`, by primary key, in
/// chunks), not joined in a subquery: statistics taken before the merge (autovacuum off or
/// behind) say the survivor has no records and the merge none, and PostgreSQL then joined the two
/// as a nested loop that rescanned the merge's rows for every record — 236 ms for 1,667 contacts,
/// quadratic, 1.2 s for a 10,000-record unmerge. A list of primary keys is probed as such whatever
/// the statistics say (docs/performance.md P16).
pub async fn move_back(
    conn: &impl ConnectionTrait,
    tenant: &str,
    merge_id: Uuid,
    from: Uuid,
    to: Uuid,
    dry_run: bool,
) -> Result<u64> {
    struct MoveBack<'a, C> {
        conn: &'a C,
        tenant: &'a str,
        merge_id: Uuid,
        from: Uuid,
        to: Uuid,
        dry_run: bool,
    }
    impl<C: ConnectionTrait> OnTable for MoveBack<'_, C> {
        type Output = u64;
        async fn on<T: RecordTable>(self) -> Result<u64> {
            use merge_move::Column as M;
            let moved_by_merge: Vec<Uuid> = merge_move::Entity::in_tenant(self.tenant)
                .filter(M::MergeId.eq(self.merge_id))
                .filter(M::Kind.eq(T::KIND.name()))
                .select_only()
                .column(M::RecordId)
                .into_tuple()
                .all(self.conn)
                .await?;
            let mut moved = 0;
            for ids in moved_by_merge.chunks(IDS_PER_STATEMENT) {
                let ids = ids.iter().copied();
                moved += if self.dry_run {
                    let n: Option<i64> = T::in_tenant(self.tenant)
                        .of_customer(self.from)
                        .filter(T::ID.is_in(ids))
                        .select_only()
                        .column_as(Expr::cust("COUNT(*)"), "n")
                        .into_tuple()
                        .one(self.conn)
                        .await?;
                    n.unwrap_or(0) as u64
                } else {
                    T::update_in_tenant(self.tenant)
                        .col_expr(T::CUSTOMER_ID, Expr::value(self.to))
                        .of_customer(self.from)
                        .filter(T::ID.is_in(ids))
                        .exec(self.conn)
                        .await?
                        .rows_affected
                };
            }
            Ok(moved)
        }
    }
    let mut moved = 0;
    for kind in RecordKind::ALL {
        let op = MoveBack {
            conn,
            tenant,
            merge_id,
            from,
            to,
            dry_run,
        };
        moved += on_table(kind, op).await?;
    }
    if !dry_run {
        forget(conn, tenant, merge_id).await?;
    }
    Ok(moved)
}

/// Forgets what `merge_id` moved: after its unmerge, or when its duplicate is erased.
pub async fn forget(conn: &impl ConnectionTrait, tenant: &str, merge_id: Uuid) -> Result<()> {
    merge_move::Entity::delete_in_tenant(tenant)
        .filter(merge_move::Column::MergeId.eq(merge_id))
        .exec(conn)
        .await?;
    Ok(())
}
