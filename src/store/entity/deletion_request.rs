use sea_orm::entity::prelude::*;

#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "deletion_request")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub tenant_id: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub customer_id: Uuid,
    pub requester_id: String,
    pub reason: String,
    /// The graph version the preview saw.
    pub preview_version: i64,
    /// The preview, as JSON (ids and counts only).
    pub preview: String,
    pub state: String,
    pub decided_by: Option<String>,
    pub decision_comment: Option<String>,
    pub decide_time: Option<DateTimeUtc>,
    pub expire_time: DateTimeUtc,
    pub create_time: DateTimeUtc,
    pub update_time: DateTimeUtc,
    pub execute_time: Option<DateTimeUtc>,
    pub deletion_id: Option<Uuid>,
    pub version: i64,
    /// DELETE or MERGE.
    pub kind: String,
    /// A merge's survivor.
    pub survivor_id: Option<Uuid>,
    /// A merge's terms, as JSON.
    pub merge_terms: Option<String>,
    /// An executed merge's field values (the survivor's before, and those it took), as JSON.
    pub merge_values: Option<String>,
    /// The approval policy it was submitted under, as JSON (NULL: any supervisor, one approval).
    pub approval_policy: Option<String>,
    /// The approvals collected, as JSON.
    pub approvals: Option<String>,
    /// When it is escalated if still PENDING.
    pub escalate_time: Option<DateTimeUtc>,
    /// When its escalation was written.
    pub escalated_time: Option<DateTimeUtc>,
}

impl ActiveModelBehavior for ActiveModel {}
