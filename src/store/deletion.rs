//! Deletion: per-state counts of a customer's live records (from the `ix_*_live` indexes, never by
//! loading rows), samples, the set-based cascade and restore (O(tables) statements whatever the
//! number of rows), and the deletion requests.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{CaseStatement, Expr};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, EntityTrait, ExprTrait, QueryFilter,
    QueryOrder, QuerySelect, SqlErr,
};
use uuid::Uuid;

use super::entity::{self, deletion_request};
use super::records::{OnTable, RecordScope as _, RecordTable, on_table};
use super::scope::{Liveness as _, TenantScoped as _};
use crate::domain::model::deletion::{
    DeletionPreview, DeletionRequest, MergeTerms, RequestState, StoredRequest,
};
use crate::domain::model::record::RecordKind;
use crate::domain::model::request_filter::{StateCase, StateFilter};
use crate::error::{Error, Problem, Result};
use crate::reason;

/// Live records of one kind and state (`None`: a kind without states).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateCount {
    pub kind: RecordKind,
    pub state: Option<String>,
    pub count: i64,
}

/// Per kind and state, how many live records the customer has.
pub async fn state_counts(
    conn: &impl ConnectionTrait,
    tenant: &str,
    customer_id: Uuid,
) -> Result<Vec<StateCount>> {
    Ok(state_counts_of(conn, tenant, &[customer_id])
        .await?
        .remove(&customer_id)
        .unwrap_or_default())
}

/// `state_counts` of several customers at once: one statement per table, whatever their number
/// (a deletion batch reads a chunk's graphs this way). Customers without live records are absent.
pub async fn state_counts_of(
    conn: &impl ConnectionTrait,
    tenant: &str,
    customer_ids: &[Uuid],
) -> Result<HashMap<Uuid, Vec<StateCount>>> {
    struct Counts<'a, C> {
        conn: &'a C,
        tenant: &'a str,
        customer_ids: &'a [Uuid],
    }
    impl<C: ConnectionTrait> OnTable for Counts<'_, C> {
        type Output = Vec<(Uuid, StateCount)>;
        async fn on<T: RecordTable>(self) -> Result<Vec<(Uuid, StateCount)>> {
            // COUNT over the partial index only: PaginatorTrait::count would wrap a select of
            // every column in a subquery and read every row. COUNT(*), not COUNT(id): no
            // column is read or checked for NULL per row (SQLite, 100k records: 27 → 15 ms).
            let live = T::in_tenant(self.tenant)
                .filter(T::CUSTOMER_ID.is_in(self.customer_ids.iter().copied()))
                .live()
                .select_only()
                .column(T::CUSTOMER_ID)
                .group_by(T::CUSTOMER_ID);
            let rows: Vec<(Uuid, Option<String>, i64)> = match T::STATE {
                None => {
                    live.column_as(Expr::cust("CAST(NULL AS TEXT)"), "state")
                        .column_as(Expr::cust("COUNT(*)"), "n")
                        .into_tuple()
                        .all(self.conn)
                        .await?
                }
                Some(state) => {
                    live.column(state)
                        .column_as(Expr::cust("COUNT(*)"), "n")
                        .group_by(state)
                        .into_tuple()
                        .all(self.conn)
                        .await?
                }
            };
            Ok(rows
                .into_iter()
                .map(|(customer, state, count)| {
                    let kind = T::KIND;
                    (customer, StateCount { kind, state, count })
                })
                .collect())
        }
    }
    let mut out: HashMap<Uuid, Vec<StateCount>> = HashMap::new();
    if customer_ids.is_empty() {
        return Ok(out);
    }
    for kind in RecordKind::ALL {
        let counts = Counts {
            conn,
            tenant,
            customer_ids,
        };
        for (customer, count) in on_table(kind, counts).await? {
            out.entry(customer).or_default().push(count);
        }
    }
    Ok(out)
}

/// Up to `limit` ids of the customer's live records of `kind` in `state`, oldest first.
pub async fn sample_ids(
    conn: &impl ConnectionTrait,
    tenant: &str,
    customer_id: Uuid,
    kind: RecordKind,
    state: Option<&str>,
    limit: u64,
) -> Result<Vec<Uuid>> {
    struct Samples<'a, C> {
        conn: &'a C,
        tenant: &'a str,
        customer_id: Uuid,
        state: Option<&'a str>,
        limit: u64,
    }
    impl<C: ConnectionTrait> OnTable for Samples<'_, C> {
        type Output = Vec<Uuid>;
        async fn on<T: RecordTable>(self) -> Result<Vec<Uuid>> {
            let mut select = T::in_tenant(self.tenant)
                .of_customer(self.customer_id)
                .live();
            if let Some(column) = T::STATE {
                select = select.filter(column.eq(self.state.unwrap_or_default()));
            }
            Ok(select
                .select_only()
                .column(T::ID)
                .order_by_asc(T::ID)
                .limit(self.limit)
                .into_tuple::<Uuid>()
                .all(self.conn)
                .await?)
        }
    }
    let samples = Samples {
        conn,
        tenant,
        customer_id,
        state,
        limit,
    };
    on_table(kind, samples).await
}

/// The open deals of one currency: how many, and their exact total.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenPipeline {
    pub currency: String,
    /// The exact sum: deals of up to `i64::MAX` each can add up past `i64` (two of them do).
    pub amount_minor: i128,
    pub deals: i64,
}

/// Open pipeline value per currency, summed without overflow.
///
/// `SUM(amount_minor)` fails as soon as the total leaves `BIGINT` (SQLite "integer overflow",
/// PostgreSQL "bigint out of range"), so two open deals of the largest amount would make the
/// preview, and the submit that stores one, fail. Each amount is split into its high and low
/// 32-bit halves (`amount = high * 2^32 + low`, an arithmetic shift, so negative amounts split
/// exactly too), each half is summed in SQL — a half's sum stays inside `BIGINT` for up to 2^31
/// deals — and the halves are recombined in `i128` here. The halves are expressions over the
/// indexed column, so the sum is still read from the covering partial index
/// `ix_deal_open_pipeline` alone (checked with EXPLAIN on both databases). Rejected: summing as
/// `NUMERIC` on PostgreSQL and with `TOTAL()` on SQLite, which is a float there and rounds.
pub async fn open_pipeline(
    conn: &impl ConnectionTrait,
    tenant: &str,
    customer_id: Uuid,
) -> Result<Vec<OpenPipeline>> {
    use entity::deal::{Column as C, Entity};
    let rows: Vec<(String, Option<i64>, Option<i64>, i64)> = Entity::in_tenant(tenant)
        .select_only()
        .column(C::Currency)
        .column_as(
            Expr::cust("CAST(SUM(amount_minor >> 32) AS BIGINT)"),
            "high",
        )
        .column_as(
            Expr::cust("CAST(SUM(amount_minor & 4294967295) AS BIGINT)"),
            "low",
        )
        // COUNT(*), not COUNT(id): id is not in the index, and the sum must come from it alone.
        .column_as(Expr::cust("COUNT(*)"), "n")
        .of_customer(customer_id)
        .live()
        // A literal, not a bound value: SQLite only uses a partial index (ix_deal_open_pipeline)
        // when the query repeats its predicate's constant.
        .filter(Expr::cust("stage = 'OPEN'"))
        .group_by(C::Currency)
        .order_by_asc(C::Currency)
        .into_tuple()
        .all(conn)
        .await?;
    Ok(rows
        .into_iter()
        .map(|(currency, high, low, deals)| OpenPipeline {
            currency,
            amount_minor: (i128::from(high.unwrap_or(0)) << 32) + i128::from(low.unwrap_or(0)),
            deals,
        })
        .collect())
}

/// What a deletion soft-deletes, kind by kind: the states of each kind that go with the customer
/// (`None`: every record of a kind without states). The domain decides it
/// (`domain::policy::cascading`); the store applies it.
pub type Cascading<'a> = [(RecordKind, Vec<Option<&'a str>>)];

/// Soft-deletes the live records that `cascading` names of each customer of `deletions`, each
/// with the deletion id paired with its customer: one UPDATE per table, however many customers (a
/// deletion batch's chunk is many; DeleteCustomer one). Returns how many records it deleted. The
/// records keep their own version and update_time, so a restore gives them back exactly as they
/// were; they show the customers' `purge_time`, which is when the customers' erasure removes them.
pub async fn cascade(
    conn: &impl ConnectionTrait,
    tenant: &str,
    deletions: &[(Uuid, Uuid)],
    cascading: &Cascading<'_>,
    now: DateTime<Utc>,
    purge_time: DateTime<Utc>,
) -> Result<u64> {
    struct Cascade<'a, C> {
        conn: &'a C,
        tenant: &'a str,
        deletions: &'a [(Uuid, Uuid)],
        states: &'a [Option<&'a str>],
        now: DateTime<Utc>,
        purge_time: DateTime<Utc>,
    }
    impl<C: ConnectionTrait> OnTable for Cascade<'_, C> {
        type Output = u64;
        async fn on<T: RecordTable>(self) -> Result<u64> {
            let update = T::update_in_tenant(self.tenant)
                .col_expr(T::DELETE_TIME, Expr::value(self.now))
                .col_expr(T::PURGE_TIME, Expr::value(self.purge_time));
            let update = match self.deletions {
                [(customer_id, deletion_id)] => update
                    .col_expr(T::DELETION_ID, Expr::value(*deletion_id))
                    .of_customer(*customer_id),
                many => {
                    // Each record takes its own customer's deletion id.
                    let mut ids = CaseStatement::new();
                    for (customer_id, deletion_id) in many {
                        ids = ids.case(T::CUSTOMER_ID.eq(*customer_id), Expr::value(*deletion_id));
                    }
                    update
                        .col_expr(T::DELETION_ID, ids.into())
                        .filter(T::CUSTOMER_ID.is_in(many.iter().map(|(c, _)| *c)))
                }
            };
            let update = match T::STATE {
                None if self.states.contains(&None) => update.live(),
                Some(column) if self.states.iter().any(Option::is_some) => update
                    .live()
                    .filter(column.is_in(self.states.iter().flatten().copied())),
                // Nothing of this kind goes with the customer.
                _ => return Ok(0),
            };
            Ok(update.exec(self.conn).await?.rows_affected)
        }
    }
    let mut deleted = 0;
    if deletions.is_empty() {
        return Ok(deleted);
    }
    for (kind, states) in cascading {
        let cascade = Cascade {
            conn,
            tenant,
            deletions,
            states,
            now,
            purge_time,
        };
        deleted += on_table(*kind, cascade).await?;
    }
    Ok(deleted)
}

/// Brings back exactly the records that carry `deletion_id`, with one UPDATE per table, and
/// returns how many; with `dry_run`, only counts them.
///
/// A batch restores a chunk of deletions by calling this once for each, not with one
/// `deletion_id IN (…)` per table: PostgreSQL plans an IN list from the column's statistics, and
/// where they were taken before any deletion (autovacuum off or behind) it scanned the tenant's
/// whole partial index of deleted rows for every statement, 2.7× the raw SQL's time on a
/// 10,000-customer batch restore. An equality is an index probe whatever the statistics say
/// (docs/performance.md P14).
pub async fn restore_records(
    conn: &impl ConnectionTrait,
    tenant: &str,
    deletion_id: Uuid,
    dry_run: bool,
) -> Result<u64> {
    struct Restore<'a, C> {
        conn: &'a C,
        tenant: &'a str,
        deletion_id: Uuid,
        dry_run: bool,
    }
    impl<C: ConnectionTrait> OnTable for Restore<'_, C> {
        type Output = u64;
        async fn on<T: RecordTable>(self) -> Result<u64> {
            if self.dry_run {
                let n: Option<i64> = T::in_tenant(self.tenant)
                    .of_deletion(self.deletion_id)
                    .select_only()
                    .column_as(Expr::cust("COUNT(*)"), "n")
                    .into_tuple()
                    .one(self.conn)
                    .await?;
                return Ok(n.unwrap_or(0) as u64);
            }
            // The UPDATE's own count is the answer, with no read before it (RestoreCustomer of a
            // customer with 100,000 records).
            Ok(T::update_in_tenant(self.tenant)
                .col_expr(T::DELETE_TIME, Expr::value(Option::<DateTime<Utc>>::None))
                .col_expr(T::PURGE_TIME, Expr::value(Option::<DateTime<Utc>>::None))
                .col_expr(T::DELETION_ID, Expr::value(Option::<Uuid>::None))
                .of_deletion(self.deletion_id)
                .exec(self.conn)
                .await?
                .rows_affected)
        }
    }
    let mut records = 0;
    for kind in RecordKind::ALL {
        let restore = Restore {
            conn,
            tenant,
            deletion_id,
            dry_run,
        };
        records += on_table(kind, restore).await?;
    }
    Ok(records)
}

/// Marks the customer deleted by `deletion_id` (and moves its graph version on).
pub async fn mark_customer_deleted(
    conn: &impl ConnectionTrait,
    tenant: &str,
    customer_id: Uuid,
    deletion_id: Uuid,
    now: DateTime<Utc>,
    purge_time: DateTime<Utc>,
) -> Result<()> {
    use entity::customer::{Column as C, Entity};
    let result = Entity::update_in_tenant(tenant)
        .col_expr(C::DeleteTime, Expr::value(now))
        .col_expr(C::PurgeTime, Expr::value(purge_time))
        .col_expr(C::DeletionId, Expr::value(deletion_id))
        .col_expr(C::Version, Expr::col(C::Version).add(1))
        .filter(C::Id.eq(customer_id))
        .live()
        .exec(conn)
        .await?;
    if result.rows_affected != 1 {
        return Err(Error::internal("customer changed under its row lock"));
    }
    Ok(())
}

/// What making a deleted customer live again found.
#[must_use = "an external_ref taken by a live customer must be reported"]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unmarked {
    Restored,
    /// A live customer of the tenant holds its external_ref: the partial unique index refused
    /// the row, which is left as it was.
    ExternalRefTaken,
}

/// Makes a deleted customer live again, unless its external_ref now collides with a live
/// customer's.
pub async fn mark_customer_restored(
    conn: &impl ConnectionTrait,
    tenant: &str,
    customer_id: Uuid,
) -> Result<Unmarked> {
    use entity::customer::{Column as C, Entity};
    let result = Entity::update_in_tenant(tenant)
        .col_expr(C::DeleteTime, Expr::value(Option::<DateTime<Utc>>::None))
        .col_expr(C::PurgeTime, Expr::value(Option::<DateTime<Utc>>::None))
        .col_expr(C::DeletionId, Expr::value(Option::<Uuid>::None))
        .col_expr(C::Version, Expr::col(C::Version).add(1))
        .filter(C::Id.eq(customer_id))
        .deleted()
        .exec(conn)
        .await;
    let result = match result {
        Err(e) if matches!(e.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => {
            return Ok(Unmarked::ExternalRefTaken);
        }
        other => other?,
    };
    if result.rows_affected != 1 {
        return Err(Error::internal("customer changed under its row lock"));
    }
    Ok(Unmarked::Restored)
}

/// The deletion id of a deleted customer.
pub async fn deletion_id_of(
    conn: &impl ConnectionTrait,
    tenant: &str,
    customer_id: Uuid,
) -> Result<Option<Uuid>> {
    use entity::customer::{Column as C, Entity};
    let row: Option<Option<Uuid>> = Entity::in_tenant(tenant)
        .select_only()
        .column(C::DeletionId)
        .filter(C::Id.eq(customer_id))
        .into_tuple()
        .one(conn)
        .await?;
    Ok(row.flatten())
}

/// The live customer of the tenant, other than `except`, that holds `external_ref`: its id and
/// name.
pub async fn external_ref_holder(
    conn: &impl ConnectionTrait,
    tenant: &str,
    external_ref: &str,
    except: Uuid,
) -> Result<Option<(Uuid, String)>> {
    use entity::customer::{Column as C, Entity};
    let holder: Option<(Uuid, String)> = Entity::in_tenant(tenant)
        .select_only()
        .column(C::Id)
        .column(C::Name)
        .filter(C::ExternalRef.eq(external_ref))
        .live()
        .filter(C::Id.ne(except))
        .into_tuple()
        .one(conn)
        .await?;
    Ok(holder)
}

// ---- deletion requests ------------------------------------------------------------------------

fn state_str(state: RequestState) -> &'static str {
    match state {
        RequestState::Pending => "PENDING",
        RequestState::Approved => "APPROVED",
        RequestState::Rejected => "REJECTED",
        RequestState::Cancelled => "CANCELLED",
        RequestState::Expired => "EXPIRED",
        RequestState::Stale => "STALE",
        RequestState::Executed => "EXECUTED",
    }
}

fn parse_state(text: &str) -> Result<RequestState> {
    Ok(match text {
        "PENDING" => RequestState::Pending,
        "APPROVED" => RequestState::Approved,
        "REJECTED" => RequestState::Rejected,
        "CANCELLED" => RequestState::Cancelled,
        "EXPIRED" => RequestState::Expired,
        "STALE" => RequestState::Stale,
        "EXECUTED" => RequestState::Executed,
        other => {
            return Err(Error::internal(format!(
                "unknown deletion request state {other:?}"
            )));
        }
    })
}

fn into_domain(row: deletion_request::Model) -> Result<DeletionRequest> {
    let preview: DeletionPreview = serde_json::from_str(&row.preview)
        .map_err(|e| Error::internal(format!("stored preview unreadable: {e}")))?;
    Ok(DeletionRequest {
        id: row.id,
        customer_id: row.customer_id,
        requester_id: row.requester_id,
        reason: row.reason,
        preview,
        state: parse_state(&row.state)?,
        decided_by: row.decided_by.unwrap_or_default(),
        decision_comment: row.decision_comment.unwrap_or_default(),
        decide_time: row.decide_time,
        expire_time: row.expire_time,
        create_time: row.create_time,
        update_time: row.update_time,
        execute_time: row.execute_time,
        deletion_id: row.deletion_id,
        version: row.version,
        merge: match (row.kind.as_str(), row.merge_terms) {
            (MERGE, Some(terms)) => Some(MergeTerms {
                values: row.merge_values.as_deref().map(from_json).transpose()?,
                ..from_json(&terms)?
            }),
            (MERGE, None) => return Err(Error::internal("a merge request without its terms")),
            _ => None,
        },
        approval: row
            .approval_policy
            .as_deref()
            .map(from_json)
            .transpose()?
            .unwrap_or_default(),
        approvals: row
            .approvals
            .as_deref()
            .map(from_json)
            .transpose()?
            .unwrap_or_default(),
        escalate_time: row.escalate_time,
    })
}

/// The `kind` of a merge request's row; every other request is a `DELETE`.
const MERGE: &str = "MERGE";

fn from_json<T: serde::de::DeserializeOwned>(text: &str) -> Result<T> {
    serde_json::from_str(text)
        .map_err(|e| Error::internal(format!("stored request unreadable: {e}")))
}

fn to_row(tenant: &str, r: &DeletionRequest) -> Result<deletion_request::ActiveModel> {
    Ok(deletion_request::ActiveModel {
        tenant_id: Set(tenant.to_owned()),
        id: Set(r.id),
        customer_id: Set(r.customer_id),
        requester_id: Set(r.requester_id.clone()),
        reason: Set(r.reason.clone()),
        // What readers compare with the current versions (`CUSTOMER_VERSION`).
        preview_version: Set(r.bound_version()),
        preview: Set(serde_json::to_string(&r.preview).map_err(Error::internal)?),
        state: Set(state_str(r.state).to_owned()),
        decided_by: Set((!r.decided_by.is_empty()).then(|| r.decided_by.clone())),
        decision_comment: Set((!r.decision_comment.is_empty()).then(|| r.decision_comment.clone())),
        decide_time: Set(r.decide_time),
        expire_time: Set(r.expire_time),
        create_time: Set(r.create_time),
        update_time: Set(r.update_time),
        execute_time: Set(r.execute_time),
        deletion_id: Set(r.deletion_id),
        version: Set(r.version),
        kind: Set(if r.merge.is_some() { MERGE } else { "DELETE" }.to_owned()),
        survivor_id: Set(r.merge.as_ref().map(|m| m.survivor_id)),
        merge_terms: Set(r
            .merge
            .as_ref()
            .map(serde_json::to_string)
            .transpose()
            .map_err(Error::internal)?),
        merge_values: Set(r
            .merge
            .as_ref()
            .and_then(|m| m.values.as_ref())
            .map(serde_json::to_string)
            .transpose()
            .map_err(Error::internal)?),
        approval_policy: Set(Some(
            serde_json::to_string(&r.approval).map_err(Error::internal)?,
        )),
        approvals: Set(Some(
            serde_json::to_string(&r.approvals).map_err(Error::internal)?,
        )),
        escalate_time: Set(r.escalate_time),
        // Written by the escalation sweep alone (`mark_escalated`), never over by a transition.
        escalated_time: sea_orm::ActiveValue::NotSet,
    })
}

/// Stores a new PENDING request; a second open request for the customer is refused by the
/// database (the partial unique index), which becomes DELETION_ALREADY_REQUESTED.
pub async fn insert_request(
    conn: &impl ConnectionTrait,
    tenant: &str,
    r: &DeletionRequest,
) -> Result<()> {
    deletion_request::Entity::insert(to_row(tenant, r)?)
        .exec_without_returning(conn)
        .await
        .map_err(|e| match e.sql_err() {
            Some(SqlErr::UniqueConstraintViolation(_)) => Error::failed_precondition(
                Problem::new(
                    reason::DELETION_ALREADY_REQUESTED,
                    "this customer already has an open deletion request: approve, reject or cancel it first",
                )
                .with("customerId", r.customer_id),
            ),
            _ => e.into(),
        })?;
    Ok(())
}

/// The current graph version the request row is bound to: its customer's, plus, for a merge,
/// its survivor's (`DeletionRequest::bound_version`). Correlated primary-key probes, scoped to
/// the request's tenant; a request that is not a merge probes no survivor.
const CUSTOMER_VERSION: &str = "((SELECT c.version FROM customer c \
     WHERE c.tenant_id = deletion_request.tenant_id AND c.id = deletion_request.customer_id) \
     + CASE WHEN deletion_request.survivor_id IS NULL THEN 0 ELSE (SELECT s.version \
     FROM customer s WHERE s.tenant_id = deletion_request.tenant_id \
     AND s.id = deletion_request.survivor_id) END)";

/// Whether the request row's graph is still at the version its preview saw; false, not NULL,
/// without a customer (as `effective_state` has it). Scalar subqueries, which both databases run
/// as primary-key probes per candidate row: PostgreSQL turned the `NOT EXISTS` form of the STALE
/// filter into a hashed subplan that read every customer of every tenant.
const GRAPH_UNCHANGED: &str = "COALESCE(((SELECT c.version FROM customer c \
     WHERE c.tenant_id = deletion_request.tenant_id AND c.id = deletion_request.customer_id) \
     + CASE WHEN deletion_request.survivor_id IS NULL THEN 0 ELSE (SELECT s.version \
     FROM customer s WHERE s.tenant_id = deletion_request.tenant_id \
     AND s.id = deletion_request.survivor_id) END) \
     = deletion_request.preview_version, FALSE)";

#[derive(Debug, sea_orm::FromQueryResult)]
struct RequestRow {
    #[sea_orm(nested)]
    request: deletion_request::Model,
    customer_version: Option<i64>,
}

fn into_stored(row: RequestRow) -> Result<StoredRequest> {
    Ok(StoredRequest {
        request: into_domain(row.request)?,
        customer_version: row.customer_version,
    })
}

/// Requests with their customer's current graph version, read in the same statement, so that
/// the state they are judged to have is the one of one moment (a request that is executed while
/// it is read must not pair its old state with the version its execution moved on).
fn select_as_read(tenant: &str) -> sea_orm::Select<deletion_request::Entity> {
    deletion_request::Entity::in_tenant(tenant)
        .column_as(Expr::cust(CUSTOMER_VERSION), "customer_version")
}

/// A request and its customer's current graph version, for a reader.
pub async fn find_request_as_read(
    conn: &impl ConnectionTrait,
    tenant: &str,
    id: Uuid,
) -> Result<Option<StoredRequest>> {
    use deletion_request::Column as C;
    select_as_read(tenant)
        .filter(C::Id.eq(id))
        .into_model::<RequestRow>()
        .one(conn)
        .await?
        .map(into_stored)
        .transpose()
}

pub async fn find_request(
    conn: &impl ConnectionTrait,
    tenant: &str,
    id: Uuid,
) -> Result<Option<DeletionRequest>> {
    deletion_request::Entity::in_tenant(tenant)
        .filter(deletion_request::Column::Id.eq(id))
        .one(conn)
        .await?
        .map(into_domain)
        .transpose()
}

/// The request whose execution deleted a customer under `deletion_id` (a DeleteCustomer or a
/// merge; a batch's deletions have none).
pub async fn request_of_deletion(
    conn: &impl ConnectionTrait,
    tenant: &str,
    deletion_id: Uuid,
) -> Result<Option<DeletionRequest>> {
    deletion_request::Entity::in_tenant(tenant)
        .filter(deletion_request::Column::DeletionId.eq(deletion_id))
        .one(conn)
        .await?
        .map(into_domain)
        .transpose()
}

/// A request, locked until the end of the transaction on PostgreSQL.
pub async fn find_request_for_update(
    conn: &impl ConnectionTrait,
    tenant: &str,
    id: Uuid,
) -> Result<Option<DeletionRequest>> {
    deletion_request::Entity::in_tenant(tenant)
        .filter(deletion_request::Column::Id.eq(id))
        .lock_exclusive()
        .one(conn)
        .await?
        .map(into_domain)
        .transpose()
}

/// Writes `r` over the stored request if it is still at `expected_version`: every transition is
/// one conditional update, so of concurrent transitions exactly one applies.
pub async fn update_request(
    conn: &impl ConnectionTrait,
    tenant: &str,
    r: &DeletionRequest,
    expected_version: i64,
) -> Result<bool> {
    use deletion_request::Column as C;
    let mut row = to_row(tenant, r)?;
    row.tenant_id = sea_orm::ActiveValue::NotSet;
    row.id = sea_orm::ActiveValue::NotSet;
    let result = deletion_request::Entity::update_in_tenant(tenant)
        .set(row)
        .filter(C::Id.eq(r.id))
        .filter(C::Version.eq(expected_version))
        .exec(conn)
        .await?;
    Ok(result.rows_affected == 1)
}

/// The current version of the graph `request` is bound to (`DeletionRequest::bound_version`), its
/// customer being at `customer_version`: for a merge, plus its survivor's (`None` if the survivor
/// is gone).
pub async fn bound_graph_version(
    conn: &impl ConnectionTrait,
    tenant: &str,
    request: &DeletionRequest,
    customer_version: i64,
) -> Result<Option<i64>> {
    let Some(merge) = &request.merge else {
        return Ok(Some(customer_version));
    };
    use entity::customer::{Column as C, Entity};
    let survivor: Option<i64> = Entity::in_tenant(tenant)
        .select_only()
        .column(C::Version)
        .filter(C::Id.eq(merge.survivor_id))
        .into_tuple()
        .one(conn)
        .await?;
    Ok(survivor.map(|v| v + customer_version))
}

/// The customer's open (PENDING or APPROVED) requests.
pub async fn open_requests(
    conn: &impl ConnectionTrait,
    tenant: &str,
    customer_id: Uuid,
) -> Result<Vec<DeletionRequest>> {
    use deletion_request::Column as C;
    let rows = deletion_request::Entity::in_tenant(tenant)
        .filter(C::CustomerId.eq(customer_id))
        .filter(C::State.is_in(["PENDING", "APPROVED"]))
        .all(conn)
        .await?;
    rows.into_iter().map(into_domain).collect()
}

/// A page of requests, newest first, before `before` (ids are UUIDv7), each with its customer's
/// current graph version. `state` filters by the state a reader sees: the domain's
/// `request_filter::state_filter`, built from `DeletionRequest::effective_state`, says which stored
/// states, expiries and graph versions read as the wanted state, and this turns that into SQL (an
/// open request past its expire_time is EXPIRED, and one whose customer's graph moved on since its
/// preview is STALE, not PENDING or APPROVED, even before a write records the lapse). The page is
/// still a walk of `ix_deletion_request_state` (or of the primary key) in id order; the graph test
/// is a primary-key probe of `customer` per candidate row.
pub async fn list_requests(
    conn: &impl ConnectionTrait,
    tenant: &str,
    state: Option<&StateFilter>,
    customer_id: Option<Uuid>,
    before: Option<Uuid>,
    limit: u64,
) -> Result<Vec<StoredRequest>> {
    use deletion_request::Column as C;
    let mut select = select_as_read(tenant);
    if let Some(filter) = state {
        select = select.filter(seen_as(filter));
    }
    if let Some(customer) = customer_id {
        select = select.filter(C::CustomerId.eq(customer));
    }
    if let Some(before) = before {
        select = select.filter(C::Id.lt(before));
    }
    let rows = select
        .order_by_desc(C::Id)
        .limit(limit)
        .into_model::<RequestRow>()
        .all(conn)
        .await?;
    rows.into_iter().map(into_stored).collect()
}

/// Requests `state` matches that `requester` did not make, oldest first, after `after`, each with
/// its customer's current graph version: the walk of a decider's inbox, which the domain narrows
/// to the requests routed to them.
pub async fn list_oldest_not_by(
    conn: &impl ConnectionTrait,
    tenant: &str,
    state: &StateFilter,
    requester: &str,
    after: Option<Uuid>,
    limit: u64,
) -> Result<Vec<StoredRequest>> {
    use deletion_request::Column as C;
    let mut select = select_as_read(tenant)
        .filter(seen_as(state))
        .filter(C::RequesterId.ne(requester));
    if let Some(after) = after {
        select = select.filter(C::Id.gt(after));
    }
    let rows = select
        .order_by_asc(C::Id)
        .limit(limit)
        .into_model::<RequestRow>()
        .all(conn)
        .await?;
    rows.into_iter().map(into_stored).collect()
}

/// `filter` as a condition on `deletion_request` rows (read through `select_as_read`).
fn seen_as(filter: &StateFilter) -> Condition {
    use deletion_request::Column as C;
    let case = |case: &StateCase| {
        let mut all = Condition::all().add(match case.stored.as_slice() {
            [one] => C::State.eq(state_str(*one)),
            many => C::State.is_in(many.iter().map(|s| state_str(*s))),
        });
        match case.expired {
            Some(true) => all = all.add(C::ExpireTime.lte(filter.now)),
            Some(false) => all = all.add(C::ExpireTime.gt(filter.now)),
            None => {}
        }
        match case.graph_unchanged {
            Some(true) => all = all.add(Expr::cust(GRAPH_UNCHANGED)),
            Some(false) => all = all.add(Expr::cust(GRAPH_UNCHANGED).not()),
            None => {}
        }
        all
    };
    match filter.cases.as_slice() {
        // One case is ANDed into the statement's WHERE as it is, without a group of one.
        [one] => case(one),
        cases => cases
            .iter()
            .fold(Condition::any(), |any, one| any.add(case(one))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sea_orm::{DbBackend, QueryTrait};

    /// The list's state filter as it was written here before the domain derived it from
    /// `effective_state`: the derived one must be the same statement.
    fn as_written_before(state: RequestState, now: DateTime<Utc>) -> Condition {
        use deletion_request::Column as C;
        const OPEN: [&str; 2] = ["PENDING", "APPROVED"];
        match state {
            RequestState::Pending | RequestState::Approved => Condition::all()
                .add(C::State.eq(state_str(state)))
                .add(C::ExpireTime.gt(now))
                .add(Expr::cust(GRAPH_UNCHANGED)),
            RequestState::Expired => Condition::any().add(C::State.eq(state_str(state))).add(
                Condition::all()
                    .add(C::State.is_in(OPEN))
                    .add(C::ExpireTime.lte(now)),
            ),
            RequestState::Stale => Condition::any().add(C::State.eq(state_str(state))).add(
                Condition::all()
                    .add(C::State.is_in(OPEN))
                    .add(C::ExpireTime.gt(now))
                    .add(Expr::cust(GRAPH_UNCHANGED).not()),
            ),
            _ => Condition::all().add(C::State.eq(state_str(state))),
        }
    }

    #[test]
    fn the_state_filter_is_the_statement_the_list_always_ran() {
        let now = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let sql = |condition: Condition| {
            select_as_read("acme")
                .filter(condition)
                .build(DbBackend::Postgres)
                .to_string()
        };
        for state in [
            RequestState::Pending,
            RequestState::Approved,
            RequestState::Rejected,
            RequestState::Cancelled,
            RequestState::Expired,
            RequestState::Stale,
            RequestState::Executed,
        ] {
            let filter = crate::domain::model::request_filter::state_filter(state, now);
            assert_eq!(
                sql(seen_as(&filter)),
                sql(as_written_before(state, now)),
                "{state:?}"
            );
        }
    }
}
