use sea_orm::entity::prelude::*;

#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "deletion_batch_item")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub tenant_id: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub batch_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub position: i32,
    pub customer_id: Uuid,
    pub customer_version: Option<i64>,
    pub state: String,
    pub excluded_reason: Option<String>,
    /// Blockers, as JSON (ids and counts only).
    pub blockers: String,
    pub deletion_id: Option<Uuid>,
    pub deleted_records: i64,
    pub restored_records: i64,
    pub restore_reason: Option<String>,
    pub restore_problem: Option<String>,
    pub update_time: DateTimeUtc,
}

impl ActiveModelBehavior for ActiveModel {}
