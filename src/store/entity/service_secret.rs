use sea_orm::entity::prelude::*;

/// Secrets every replica must share (the page-token key), made once by the first replica.
#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "service_secret")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub name: String,
    /// Hex-encoded.
    pub secret: String,
}

impl ActiveModelBehavior for ActiveModel {}
