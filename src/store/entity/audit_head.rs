use sea_orm::entity::prelude::*;

/// The last event of a tenant's audit chain.
#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "audit_head")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub tenant_id: String,
    pub sequence: i64,
    pub hash: String,
    /// The last customer event's sequence.
    pub event_sequence: i64,
}

impl ActiveModelBehavior for ActiveModel {}
