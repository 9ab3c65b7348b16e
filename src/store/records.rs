//! Record rows of the six kinds. One table per kind; the shared columns (tenant_id, id,
//! customer_id, times, purge_time, deletion_id, version) carry the same names everywhere, so each
//! query is written once and instantiated per kind by `with_table!`.

use sea_orm::{
    ActiveValue::{NotSet, Set},
    ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
};
use uuid::Uuid;

use super::entity::{activity, contact, contract, deal, project, sales_order};
use crate::domain::records::*;
use crate::error::{Error, Result};

/// Conversions between one kind's row and the domain record.
trait RecordRow: Sized {
    type Active;
    fn into_record(self) -> Result<Record>;
    /// The row for `record`, or `None` if `record` is of another kind.
    fn from_record(tenant: &str, record: &Record) -> Option<Self::Active>;
}

/// Expands `$body` once per record kind, with `$table` naming that kind's entity module.
macro_rules! with_table {
    ($kind:expr, $table:ident => $body:expr) => {
        match $kind {
            RecordKind::Contact => {
                use contact as $table;
                $body
            }
            RecordKind::Deal => {
                use deal as $table;
                $body
            }
            RecordKind::Order => {
                use sales_order as $table;
                $body
            }
            RecordKind::Contract => {
                use contract as $table;
                $body
            }
            RecordKind::Project => {
                use project as $table;
                $body
            }
            RecordKind::Activity => {
                use activity as $table;
                $body
            }
        }
    };
}

/// Stored spelling of each enum value.
macro_rules! stored_names {
    ($enum:ident { $($variant:ident => $name:literal),+ $(,)? }) => {
        impl StoredName for $enum {
            fn stored(self) -> &'static str {
                match self { $($enum::$variant => $name),+ }
            }
            fn from_stored(name: &str) -> Result<Self> {
                match name {
                    $($name => Ok($enum::$variant),)+
                    other => Err(Error::internal(format!(
                        concat!("unknown ", stringify!($enum), " {:?} in the database"), other
                    ))),
                }
            }
        }
    };
}

trait StoredName: Sized + Copy {
    fn stored(self) -> &'static str;
    fn from_stored(name: &str) -> Result<Self>;
}

stored_names!(DealStage { Open => "OPEN", Won => "WON", Lost => "LOST" });
stored_names!(OrderStatus { Open => "OPEN", Paid => "PAID", Cancelled => "CANCELLED" });
stored_names!(ContractStatus { Draft => "DRAFT", Active => "ACTIVE", Expired => "EXPIRED", Terminated => "TERMINATED" });
stored_names!(ProjectStatus { Active => "ACTIVE", Done => "DONE" });
stored_names!(ActivityKind { Call => "CALL", Email => "EMAIL", Meeting => "MEETING", Note => "NOTE" });

/// Stored records always have their enums; a missing one is a bug upstream.
fn stored<E: StoredName>(value: Option<E>) -> Result<String> {
    value
        .map(|v| v.stored().to_owned())
        .ok_or_else(|| Error::internal("record enum left unset"))
}

fn opt(value: &str) -> Option<String> {
    (!value.is_empty()).then(|| value.to_owned())
}

/// Fills the shared columns of a row; `$data` is the kind-specific part.
macro_rules! shared_columns {
    ($table:ident, $tenant:expr, $r:expr, { $($field:ident : $value:expr),* $(,)? }) => {
        $table::ActiveModel {
            tenant_id: Set($tenant.to_owned()),
            id: Set($r.id),
            customer_id: Set($r.customer_id),
            create_time: Set($r.create_time),
            update_time: Set($r.update_time),
            delete_time: Set($r.delete_time),
            purge_time: Set($r.purge_time),
            deletion_id: NotSet,
            version: Set($r.version),
            $($field: Set($value)),*
        }
    };
}

macro_rules! record_from_row {
    ($row:ident, $data:expr) => {
        Ok(Record {
            id: $row.id,
            customer_id: $row.customer_id,
            data: $data,
            create_time: $row.create_time,
            update_time: $row.update_time,
            delete_time: $row.delete_time,
            purge_time: $row.purge_time,
            version: $row.version,
        })
    };
}

impl RecordRow for contact::Model {
    type Active = contact::ActiveModel;
    fn into_record(self) -> Result<Record> {
        let data = RecordData::Contact(ContactData {
            full_name: self.full_name.clone(),
            email: self.email.clone().unwrap_or_default(),
            phone: self.phone.clone().unwrap_or_default(),
            job_title: self.job_title.clone().unwrap_or_default(),
        });
        let row = self;
        record_from_row!(row, data)
    }
    fn from_record(tenant: &str, r: &Record) -> Option<Self::Active> {
        let RecordData::Contact(d) = &r.data else {
            return None;
        };
        Some(shared_columns!(contact, tenant, r, {
            full_name: d.full_name.clone(), email: opt(&d.email), phone: opt(&d.phone), job_title: opt(&d.job_title),
        }))
    }
}

impl RecordRow for deal::Model {
    type Active = deal::ActiveModel;
    fn into_record(self) -> Result<Record> {
        let data = RecordData::Deal(DealData {
            title: self.title.clone(),
            amount_minor: self.amount_minor,
            currency: self.currency.clone(),
            stage: Some(DealStage::from_stored(&self.stage)?),
        });
        let row = self;
        record_from_row!(row, data)
    }
    fn from_record(tenant: &str, r: &Record) -> Option<Self::Active> {
        let RecordData::Deal(d) = &r.data else {
            return None;
        };
        let stage = stored(d.stage).ok()?;
        Some(shared_columns!(deal, tenant, r, {
            title: d.title.clone(), amount_minor: d.amount_minor, currency: d.currency.clone(), stage: stage,
        }))
    }
}

impl RecordRow for sales_order::Model {
    type Active = sales_order::ActiveModel;
    fn into_record(self) -> Result<Record> {
        let data = RecordData::Order(OrderData {
            number: self.number.clone(),
            amount_minor: self.amount_minor,
            currency: self.currency.clone(),
            status: Some(OrderStatus::from_stored(&self.status)?),
        });
        let row = self;
        record_from_row!(row, data)
    }
    fn from_record(tenant: &str, r: &Record) -> Option<Self::Active> {
        let RecordData::Order(d) = &r.data else {
            return None;
        };
        let status = stored(d.status).ok()?;
        Some(shared_columns!(sales_order, tenant, r, {
            number: d.number.clone(), amount_minor: d.amount_minor, currency: d.currency.clone(), status: status,
        }))
    }
}

impl RecordRow for contract::Model {
    type Active = contract::ActiveModel;
    fn into_record(self) -> Result<Record> {
        let data = RecordData::Contract(ContractData {
            number: self.number.clone(),
            status: Some(ContractStatus::from_stored(&self.status)?),
            end_date: self.end_date.clone().unwrap_or_default(),
        });
        let row = self;
        record_from_row!(row, data)
    }
    fn from_record(tenant: &str, r: &Record) -> Option<Self::Active> {
        let RecordData::Contract(d) = &r.data else {
            return None;
        };
        let status = stored(d.status).ok()?;
        Some(shared_columns!(contract, tenant, r, {
            number: d.number.clone(), status: status, end_date: opt(&d.end_date),
        }))
    }
}

impl RecordRow for project::Model {
    type Active = project::ActiveModel;
    fn into_record(self) -> Result<Record> {
        let data = RecordData::Project(ProjectData {
            name: self.name.clone(),
            status: Some(ProjectStatus::from_stored(&self.status)?),
        });
        let row = self;
        record_from_row!(row, data)
    }
    fn from_record(tenant: &str, r: &Record) -> Option<Self::Active> {
        let RecordData::Project(d) = &r.data else {
            return None;
        };
        let status = stored(d.status).ok()?;
        Some(shared_columns!(project, tenant, r, { name: d.name.clone(), status: status }))
    }
}

impl RecordRow for activity::Model {
    type Active = activity::ActiveModel;
    fn into_record(self) -> Result<Record> {
        let data = RecordData::Activity(ActivityData {
            kind: Some(ActivityKind::from_stored(&self.kind)?),
            subject: self.subject.clone(),
            occur_time: Some(self.occur_time),
        });
        let row = self;
        record_from_row!(row, data)
    }
    fn from_record(tenant: &str, r: &Record) -> Option<Self::Active> {
        let RecordData::Activity(d) = &r.data else {
            return None;
        };
        let kind = stored(d.kind).ok()?;
        let occur_time = d.occur_time?;
        Some(shared_columns!(activity, tenant, r, {
            kind: kind, subject: d.subject.clone(), occur_time: occur_time,
        }))
    }
}

fn unwritable(r: &Record) -> Error {
    Error::internal(format!(
        "record {} is incomplete and cannot be stored",
        r.id
    ))
}

pub async fn insert(conn: &impl ConnectionTrait, tenant: &str, r: &Record) -> Result<()> {
    with_table!(r.data.kind(), t => {
        let row = t::Model::from_record(tenant, r).ok_or_else(|| unwritable(r))?;
        t::Entity::insert(row).exec_without_returning(conn).await?;
        Ok(())
    })
}

/// A record, live or deleted.
pub async fn find(
    conn: &impl ConnectionTrait,
    tenant: &str,
    kind: RecordKind,
    id: Uuid,
) -> Result<Option<Record>> {
    with_table!(kind, t => {
        t::Entity::find_by_id((tenant.to_owned(), id)).one(conn).await?.map(|row| row.into_record()).transpose()
    })
}

/// A record, live or deleted, locked until the end of the transaction on PostgreSQL (a purger
/// pass skips it meanwhile; SQLite has one writer anyway).
pub async fn find_for_update(
    conn: &impl ConnectionTrait,
    tenant: &str,
    kind: RecordKind,
    id: Uuid,
) -> Result<Option<Record>> {
    with_table!(kind, t => {
        t::Entity::find_by_id((tenant.to_owned(), id))
            .lock_exclusive()
            .one(conn)
            .await?
            .map(|row| row.into_record())
            .transpose()
    })
}

/// Writes `r` over the stored row if the row is still at `expected_version`; `ABORTED` if another
/// write got there first.
pub async fn update(
    conn: &impl ConnectionTrait,
    tenant: &str,
    r: &Record,
    expected_version: i64,
) -> Result<()> {
    let kind = r.data.kind();
    let rows = with_table!(kind, t => {
        let mut row = t::Model::from_record(tenant, r).ok_or_else(|| unwritable(r))?;
        row.tenant_id = NotSet;
        row.id = NotSet;
        row.customer_id = NotSet;
        row.create_time = NotSet;
        t::Entity::update_many()
            .set(row)
            .filter(t::Column::TenantId.eq(tenant))
            .filter(t::Column::Id.eq(r.id))
            .filter(t::Column::Version.eq(expected_version))
            .exec(conn)
            .await?
            .rows_affected
    });
    if rows != 1 {
        return Err(crate::domain::changed_concurrently(kind.name(), r.id));
    }
    Ok(())
}

/// A page of a customer's records after `after`, in id (creation) order.
pub async fn list(
    conn: &impl ConnectionTrait,
    tenant: &str,
    kind: RecordKind,
    customer_id: Uuid,
    show_deleted: bool,
    after: Option<Uuid>,
    limit: u64,
) -> Result<Vec<Record>> {
    with_table!(kind, t => {
        let mut select = t::Entity::find()
            .filter(t::Column::TenantId.eq(tenant))
            .filter(t::Column::CustomerId.eq(customer_id));
        if !show_deleted {
            select = select.filter(t::Column::DeleteTime.is_null());
        }
        if let Some(after) = after {
            select = select.filter(t::Column::Id.gt(after));
        }
        let rows = select.order_by_asc(t::Column::Id).limit(limit).all(conn).await?;
        rows.into_iter().map(|row| row.into_record()).collect()
    })
}

/// Inserts many records at once (seeding), one multi-row INSERT per kind and batch.
pub async fn insert_many(
    conn: &impl ConnectionTrait,
    tenant: &str,
    records: &[Record],
    batch: usize,
) -> Result<()> {
    for kind in RecordKind::ALL {
        let of_kind: Vec<&Record> = records.iter().filter(|r| r.data.kind() == kind).collect();
        for chunk in of_kind.chunks(batch.max(1)) {
            with_table!(kind, t => {
                let rows = chunk
                    .iter()
                    .map(|r| t::Model::from_record(tenant, r).ok_or_else(|| unwritable(r)))
                    .collect::<Result<Vec<_>>>()?;
                t::Entity::insert_many(rows).exec_without_returning(conn).await?;
            });
        }
    }
    Ok(())
}
