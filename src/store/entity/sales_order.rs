use sea_orm::entity::prelude::*;

#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "sales_order")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub tenant_id: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub customer_id: Uuid,
    pub number: String,
    pub amount_minor: i64,
    pub currency: String,
    pub status: String,
    pub create_time: DateTimeUtc,
    pub update_time: DateTimeUtc,
    pub delete_time: Option<DateTimeUtc>,
    /// When the deleted record is erased: delete_time + the retention, or, with a deletion_id,
    /// its customer's purge_time.
    pub purge_time: Option<DateTimeUtc>,
    /// Set when the record was deleted with its customer; a restore brings back exactly these.
    pub deletion_id: Option<Uuid>,
    pub version: i64,
}

impl ActiveModelBehavior for ActiveModel {}
