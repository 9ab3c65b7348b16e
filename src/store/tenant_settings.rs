//! A tenant's settings: one row per tenant that changed them. A tenant without a row has the
//! process-wide defaults, which the domain supplies; the store only keeps what was set.

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveValue::{NotSet, Set},
    ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QuerySelect,
    sea_query::OnConflict,
};

use super::Written;
use super::entity::tenant_settings::{self as row, Entity};
use super::scope::TenantScoped as _;
use crate::domain::model::tenant_settings::{StoredSettings, TenantSettings};
use crate::error::{Error, Result};

fn into_settings(model: row::Model) -> Result<TenantSettings> {
    let stored: StoredSettings = serde_json::from_str(&model.settings)
        .map_err(|e| Error::internal(format!("stored tenant settings unreadable: {e}")))?;
    Ok(TenantSettings::from_stored(
        stored,
        model.version,
        model.update_time,
        model.updated_by,
    ))
}

/// The tenant's stored settings, if it ever stored any.
pub async fn find(conn: &impl ConnectionTrait, tenant: &str) -> Result<Option<TenantSettings>> {
    Entity::in_tenant(tenant)
        .one(conn)
        .await?
        .map(into_settings)
        .transpose()
}

/// The tenant's stored settings, locked until the end of the transaction on PostgreSQL (SQLite's
/// write transaction holds the whole database already), so that a change reads and writes one
/// version.
pub async fn find_for_update(
    conn: &impl ConnectionTrait,
    tenant: &str,
) -> Result<Option<TenantSettings>> {
    Entity::in_tenant(tenant)
        .lock_exclusive()
        .one(conn)
        .await?
        .map(into_settings)
        .transpose()
}

/// Stores `s` as the tenant's settings if they are still at `expected_version`: inserts the row
/// when that version is 0 (the defaults), else updates it. A concurrent first change that stored
/// the row first makes this one `VersionMoved`, like any other lost race.
pub async fn save(
    conn: &impl ConnectionTrait,
    tenant: &str,
    s: &TenantSettings,
    expected_version: i64,
) -> Result<Written> {
    let settings = serde_json::to_string(&s.stored()).map_err(Error::internal)?;
    let update_time: DateTime<Utc> = s
        .update_time
        .ok_or_else(|| Error::internal("tenant settings saved without an update time"))?;
    let mut model = row::ActiveModel {
        tenant_id: Set(tenant.to_owned()),
        settings: Set(settings),
        version: Set(s.version),
        update_time: Set(update_time),
        updated_by: Set(s.updated_by.clone()),
    };
    let applied = if expected_version == 0 {
        Entity::insert(model)
            .on_conflict(
                OnConflict::column(row::Column::TenantId)
                    .do_nothing()
                    .to_owned(),
            )
            .exec_without_returning(conn)
            .await?
    } else {
        model.tenant_id = NotSet;
        Entity::update_in_tenant(tenant)
            .set(model)
            .filter(row::Column::Version.eq(expected_version))
            .exec(conn)
            .await?
            .rows_affected
    };
    Ok(if applied == 1 {
        Written::Applied
    } else {
        Written::VersionMoved
    })
}
