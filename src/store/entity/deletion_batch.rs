use sea_orm::entity::prelude::*;

#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "deletion_batch")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub tenant_id: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub requester_id: String,
    pub reason: String,
    pub state: String,
    /// The aggregate impact, as JSON (ids and counts only).
    pub impact: String,
    pub decided_by: Option<String>,
    pub decision_comment: Option<String>,
    pub decide_time: Option<DateTimeUtc>,
    pub expire_time: DateTimeUtc,
    pub create_time: DateTimeUtc,
    pub update_time: DateTimeUtc,
    pub started_by: Option<String>,
    pub start_time: Option<DateTimeUtc>,
    pub finish_time: Option<DateTimeUtc>,
    pub restore_start_time: Option<DateTimeUtc>,
    pub restore_finish_time: Option<DateTimeUtc>,
    pub lease_owner: Option<String>,
    pub lease_expire_time: Option<DateTimeUtc>,
    pub version: i64,
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
