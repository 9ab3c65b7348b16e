use sea_orm::entity::prelude::*;

#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "customer")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub tenant_id: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub name: String,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub industry: Option<String>,
    pub owner_id: String,
    pub lifecycle_stage: String,
    pub status: String,
    pub external_ref: Option<String>,
    pub legal_hold: bool,
    /// Lower-cased name, e-mail and phone, matched by free-text queries.
    pub search_text: String,
    pub create_time: DateTimeUtc,
    pub update_time: DateTimeUtc,
    pub delete_time: Option<DateTimeUtc>,
    pub purge_time: Option<DateTimeUtc>,
    /// The deletion that removed the customer and its cascaded records.
    pub deletion_id: Option<Uuid>,
    /// Version of the whole graph (the etag).
    pub version: i64,
    /// When the customer was erased (a tombstone from then on).
    pub erase_time: Option<DateTimeUtc>,
    /// Whether the customer is a key account (m0017).
    pub key_account: bool,
    /// The keys that find likely duplicates (`domain::model::matching`).
    pub match_email: Option<String>,
    pub match_phone: Option<String>,
    pub match_ref: Option<String>,
    pub match_name: Option<String>,
}

impl ActiveModelBehavior for ActiveModel {}
