//! What the JetStream relay of customer events keeps in the database: per tenant, the last event
//! JetStream acknowledged (`event_relay_cursor`), and the lease that makes one replica at a time
//! the publisher (`event_relay_lease`). The tables are the relay's alone; the outbox it reads is
//! `customer_event`, and a tenant's newest event number is its `audit_head.event_sequence`,
//! committed in the same transaction as the events.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Cond, Expr, ExprTrait, OnConflict, Query};
use sea_orm::{ConnectionTrait, Statement};

use crate::error::Result;

/// A tenant with events the relay has not published yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Behind {
    pub tenant: String,
    /// The last event acknowledged by JetStream and recorded here (0: none yet).
    pub published: i64,
    /// The tenant's newest committed event.
    pub latest: i64,
}

/// Every tenant whose newest event is past its cursor. One row per tenant of `audit_head`, so
/// the look costs the number of tenants, not of events.
pub async fn behind(conn: &impl ConnectionTrait) -> Result<Vec<Behind>> {
    let rows = conn
        .query_all_raw(Statement::from_string(
            conn.get_database_backend(),
            "SELECT h.tenant_id, COALESCE(c.published_sequence, 0) AS published, \
                    h.event_sequence AS latest \
             FROM audit_head h LEFT JOIN event_relay_cursor c ON c.tenant_id = h.tenant_id \
             WHERE h.event_sequence > COALESCE(c.published_sequence, 0) \
             ORDER BY h.tenant_id",
        ))
        .await?;
    rows.into_iter()
        .map(|row| {
            Ok(Behind {
                tenant: row.try_get("", "tenant_id")?,
                published: row.try_get("", "published")?,
                latest: row.try_get("", "latest")?,
            })
        })
        .collect()
}

/// Records that the tenant's events up to `sequence` are in JetStream. Never moves a cursor
/// back: a relay that lost its lease mid-publish and records late cannot undo its successor's
/// progress.
pub async fn record_published(
    conn: &impl ConnectionTrait,
    tenant: &str,
    sequence: i64,
    time: DateTime<Utc>,
) -> Result<()> {
    let upsert = Query::insert()
        .into_table("event_relay_cursor")
        .columns(["tenant_id", "published_sequence", "published_time"])
        .values_panic([tenant.into(), sequence.into(), time.into()])
        .on_conflict(
            OnConflict::column("tenant_id")
                .update_columns(["published_sequence", "published_time"])
                .action_and_where(
                    Expr::col(("event_relay_cursor", "published_sequence"))
                        .lt(Expr::col(("excluded", "published_sequence"))),
                )
                .to_owned(),
        )
        .to_owned();
    let backend = conn.get_database_backend();
    conn.execute_raw(backend.build(&upsert)).await?;
    Ok(())
}

/// Takes the lease `name` for `holder` until `until_ms`, or renews it: succeeds when the lease is
/// free, expired, or already `holder`'s. Times are the caller's clock in epoch milliseconds, so
/// replicas' clocks must agree to well within a lease.
pub async fn take_lease(
    conn: &impl ConnectionTrait,
    name: &str,
    holder: &str,
    now_ms: i64,
    until_ms: i64,
) -> Result<bool> {
    let backend = conn.get_database_backend();
    let first = Query::insert()
        .into_table("event_relay_lease")
        .columns(["name", "holder", "expires_at_ms"])
        .values_panic([name.into(), holder.into(), until_ms.into()])
        .on_conflict(OnConflict::column("name").do_nothing().to_owned())
        .to_owned();
    if conn
        .execute_raw(backend.build(&first))
        .await?
        .rows_affected()
        == 1
    {
        return Ok(true);
    }
    let take = Query::update()
        .table("event_relay_lease")
        .value("holder", holder)
        .value("expires_at_ms", until_ms)
        .and_where(Expr::col("name").eq(name))
        .cond_where(
            Cond::any()
                .add(Expr::col("holder").eq(holder))
                .add(Expr::col("expires_at_ms").lt(now_ms)),
        )
        .to_owned();
    Ok(conn
        .execute_raw(backend.build(&take))
        .await?
        .rows_affected()
        == 1)
}

/// Gives the lease up (a clean shutdown), so another replica takes over at once.
pub async fn release_lease(conn: &impl ConnectionTrait, name: &str, holder: &str) -> Result<()> {
    let release = Query::update()
        .table("event_relay_lease")
        .value("expires_at_ms", 0i64)
        .and_where(Expr::col("name").eq(name))
        .and_where(Expr::col("holder").eq(holder))
        .to_owned();
    let backend = conn.get_database_backend();
    conn.execute_raw(backend.build(&release)).await?;
    Ok(())
}
