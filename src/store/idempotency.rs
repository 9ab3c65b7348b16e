//! Idempotency keys: the first answer of each `request_id`, per tenant.

use chrono::Utc;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, QueryFilter, SqlErr,
    Statement,
};
use uuid::Uuid;

use super::entity::idempotency_key::{self, Entity};
use super::scope::TenantScoped as _;
use crate::error::{Error, Result};

pub struct StoredAnswer {
    pub subject: String,
    pub operation: String,
    pub fingerprint: [u8; 32],
    pub response: String,
}

/// Makes duplicates of one request wait for each other: on PostgreSQL, a transaction-scoped
/// advisory lock on the key, taken before anything else in the transaction, so a duplicate that
/// arrives while the first is in flight waits for it to commit and then replays its answer (rather
/// than redoing the work and failing on the first's effects: a stale etag, a taken external_ref).
/// SQLite needs nothing: `BEGIN IMMEDIATE` already makes writers take turns.
pub async fn lock(conn: &impl ConnectionTrait, tenant: &str, request_id: Uuid) -> Result<()> {
    if conn.get_database_backend() != DbBackend::Postgres {
        return Ok(());
    }
    conn.execute_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
        [format!("crm-service.idempotency:{tenant}:{request_id}").into()],
    ))
    .await?;
    Ok(())
}

pub async fn find(
    conn: &impl ConnectionTrait,
    tenant: &str,
    request_id: Uuid,
) -> Result<Option<StoredAnswer>> {
    let Some(row) = Entity::in_tenant(tenant)
        .filter(idempotency_key::Column::RequestId.eq(request_id))
        .one(conn)
        .await?
    else {
        return Ok(None);
    };
    let mut fingerprint = [0u8; 32];
    hex_decode(&row.fingerprint, &mut fingerprint)?;
    Ok(Some(StoredAnswer {
        subject: row.subject,
        operation: row.operation,
        fingerprint,
        response: row.response,
    }))
}

/// What storing an answer found.
#[must_use = "a key stored first by a concurrent request must be reported"]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    Stored,
    /// A concurrent request with the same key committed its answer first.
    AlreadyStored,
}

pub async fn insert(
    conn: &impl ConnectionTrait,
    tenant: &str,
    request_id: Uuid,
    subject: &str,
    operation: &str,
    fingerprint: &[u8; 32],
    response: &str,
) -> Result<Stored> {
    let row = idempotency_key::ActiveModel {
        tenant_id: Set(tenant.to_owned()),
        request_id: Set(request_id),
        subject: Set(subject.to_owned()),
        operation: Set(operation.to_owned()),
        fingerprint: Set(hex_encode(fingerprint)),
        response: Set(response.to_owned()),
        create_time: Set(Utc::now()),
    };
    match Entity::insert(row).exec_without_returning(conn).await {
        Ok(_) => Ok(Stored::Stored),
        Err(e) if matches!(e.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => {
            Ok(Stored::AlreadyStored)
        }
        Err(e) => Err(e.into()),
    }
}

pub(crate) fn hex_encode(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub(crate) fn hex_decode(text: &str, out: &mut [u8]) -> Result<()> {
    if text.len() != out.len() * 2 {
        return Err(Error::internal("stored hex value has the wrong length"));
    }
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).map_err(Error::internal)?;
    }
    Ok(())
}

/// Forgets keys stored before `cutoff`; returns how many. A retry after that is a new request.
pub async fn sweep(conn: &impl ConnectionTrait, cutoff: chrono::DateTime<Utc>) -> Result<u64> {
    // Across tenants on purpose: keys expire by age alone, whoever's they are, and one statement
    // forgets them all. Nothing is read, and nothing of one tenant reaches another.
    let result = Entity::delete_many()
        .filter(idempotency_key::Column::CreateTime.lt(cutoff))
        .exec(conn)
        .await?;
    Ok(result.rows_affected)
}
