use sea_orm::entity::prelude::*;

/// A tenant's settings, once an admin changed them (a tenant without a row has the defaults).
#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "tenant_settings")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub tenant_id: String,
    /// The settings as JSON (`domain::model::tenant_settings::StoredSettings`): durations,
    /// claim names, thresholds; no personal data.
    pub settings: String,
    pub version: i64,
    pub update_time: DateTimeUtc,
    pub updated_by: String,
}

impl ActiveModelBehavior for ActiveModel {}
