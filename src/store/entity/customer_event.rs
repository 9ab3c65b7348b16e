use sea_orm::entity::prelude::*;

#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "customer_event")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub tenant_id: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub sequence: i64,
    pub event_type: String,
    pub customer_id: Uuid,
    pub record_type: String,
    pub record_id: Option<Uuid>,
    pub action: String,
    pub time: DateTimeUtc,
    /// A deletion batch event's counts, as JSON; empty for other events.
    pub counts: String,
}

impl ActiveModelBehavior for ActiveModel {}
