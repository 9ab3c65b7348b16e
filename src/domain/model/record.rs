//! The six kinds of record that hang off a customer, their fields and statuses.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RecordKind {
    Contact,
    Deal,
    Order,
    Contract,
    Project,
    Activity,
}

impl RecordKind {
    pub const ALL: [RecordKind; 6] = [
        RecordKind::Contact,
        RecordKind::Deal,
        RecordKind::Order,
        RecordKind::Contract,
        RecordKind::Project,
        RecordKind::Activity,
    ];

    /// The resource's name in messages, errors and request field paths.
    pub fn name(self) -> &'static str {
        match self {
            RecordKind::Contact => "contact",
            RecordKind::Deal => "deal",
            RecordKind::Order => "order",
            RecordKind::Contract => "contract",
            RecordKind::Project => "project",
            RecordKind::Activity => "activity",
        }
    }

    /// The audit action of the purger erasing a record of this kind deleted on its own.
    pub fn purge_action(self) -> &'static str {
        match self {
            RecordKind::Contact => "contact.purge",
            RecordKind::Deal => "deal.purge",
            RecordKind::Order => "order.purge",
            RecordKind::Contract => "contract.purge",
            RecordKind::Project => "project.purge",
            RecordKind::Activity => "activity.purge",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DealStage {
    Open,
    Won,
    Lost,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum OrderStatus {
    Open,
    Paid,
    Cancelled,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ContractStatus {
    Draft,
    Active,
    Expired,
    Terminated,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ProjectStatus {
    Active,
    Done,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ActivityKind {
    Call,
    Email,
    Meeting,
    Note,
}

/// Enum fields are `None` when a client left them UNSPECIFIED; stored records always have them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContactData {
    pub full_name: String,
    pub email: String,
    pub phone: String,
    pub job_title: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DealData {
    pub title: String,
    pub amount_minor: i64,
    pub currency: String,
    pub stage: Option<DealStage>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderData {
    pub number: String,
    pub amount_minor: i64,
    pub currency: String,
    pub status: Option<OrderStatus>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContractData {
    pub number: String,
    pub status: Option<ContractStatus>,
    /// ISO 8601 date, empty if open-ended.
    pub end_date: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProjectData {
    pub name: String,
    pub status: Option<ProjectStatus>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActivityData {
    pub kind: Option<ActivityKind>,
    pub subject: String,
    pub occur_time: Option<DateTime<Utc>>,
}

/// The kind-specific fields of a record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RecordData {
    Contact(ContactData),
    Deal(DealData),
    Order(OrderData),
    Contract(ContractData),
    Project(ProjectData),
    Activity(ActivityData),
}
impl RecordData {
    pub fn kind(&self) -> RecordKind {
        match self {
            RecordData::Contact(_) => RecordKind::Contact,
            RecordData::Deal(_) => RecordKind::Deal,
            RecordData::Order(_) => RecordKind::Order,
            RecordData::Contract(_) => RecordKind::Contract,
            RecordData::Project(_) => RecordKind::Project,
            RecordData::Activity(_) => RecordKind::Activity,
        }
    }
}

/// A record as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub id: Uuid,
    pub customer_id: Uuid,
    pub data: RecordData,
    pub create_time: DateTime<Utc>,
    pub update_time: DateTime<Utc>,
    pub delete_time: Option<DateTime<Utc>>,
    /// Set while the record is deleted: when it is erased. For a record deleted on its own,
    /// delete_time + the retention; for one deleted with its customer, the customer's.
    pub purge_time: Option<DateTime<Utc>>,
    pub version: i64,
}

impl Record {
    pub fn etag(&self) -> String {
        self.version.to_string()
    }
}
