use sea_orm::entity::prelude::*;

#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "audit_event")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub tenant_id: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub sequence: i64,
    pub time: DateTimeUtc,
    pub actor: String,
    pub action: String,
    pub target_type: String,
    pub target_id: Uuid,
    pub customer_id: Option<Uuid>,
    pub request_id: Option<Uuid>,
    pub trace_id: String,
    pub summary: String,
    pub previous_hash: String,
    pub hash: String,
}

impl ActiveModelBehavior for ActiveModel {}
