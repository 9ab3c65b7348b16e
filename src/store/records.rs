//! Record rows of the six kinds. One table per kind; the shared columns (tenant_id, id,
//! customer_id, times, purge_time, deletion_id, version) carry the same names everywhere. Each
//! table implements `RecordTable` (its columns and its row conversions), each query is written
//! once, generic over it, and `on_table` runs it on the table of a kind: the one place where a
//! kind becomes a table (here, in `store::deletion` and in `store::purge`).

use std::future::Future;

use sea_orm::{
    ActiveModelTrait as _,
    ActiveValue::{NotSet, Set},
    ColumnTrait, ConnectionTrait, DeleteMany, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    Select, UpdateMany,
};
use uuid::Uuid;

use super::Written;
use super::entity::{activity, contact, contract, deal, project, sales_order};
use super::scope::{Liveness as _, SoftDeleted};
use crate::domain::model::record::*;
use crate::error::{Error, Result};

/// One of the six record tables: its shared columns, its state column, and the conversions
/// between its row and the domain's `Record`. Every statement on it starts from the scoping
/// helpers (`in_tenant`, `update_in_tenant`, `delete_in_tenant`) and narrows with `.live()`,
/// `.deleted()`, `.of_customer(id)`, `.of_deletion(id)` or `.with_id(id)`.
pub(crate) trait RecordTable: SoftDeleted + EntityTrait<ActiveModel: Send> {
    const KIND: RecordKind;
    const ID: Self::Column;
    const CUSTOMER_ID: Self::Column;
    const CREATE_TIME: Self::Column;
    const PURGE_TIME: Self::Column;
    const DELETION_ID: Self::Column;
    const VERSION: Self::Column;
    /// The state the deletion policy reads (a deal's stage, an order's, contract's or project's
    /// status); `None` for the kinds without one.
    const STATE: Option<Self::Column>;

    fn into_record(row: Self::Model) -> Result<Record>;
    /// The row for `record`, or `None` if `record` is of another kind or incomplete.
    fn to_row(tenant: &str, record: &Record) -> Option<Self::ActiveModel>;
}

/// Narrows a statement on a record table (after the tenant: see `store::scope`).
pub(crate) trait RecordScope<E: RecordTable>: QueryFilter + Sized {
    /// One customer's records.
    fn of_customer(self, customer_id: Uuid) -> Self {
        self.filter(E::CUSTOMER_ID.eq(customer_id))
    }

    /// The records deleted with their customer by one deletion.
    fn of_deletion(self, deletion_id: Uuid) -> Self {
        self.filter(E::DELETION_ID.eq(deletion_id))
    }

    /// One record.
    fn with_id(self, id: Uuid) -> Self {
        self.filter(E::ID.eq(id))
    }
}

impl<E: RecordTable> RecordScope<E> for Select<E> {}
impl<E: RecordTable> RecordScope<E> for UpdateMany<E> {}
impl<E: RecordTable> RecordScope<E> for DeleteMany<E> {}

/// A statement (or a few) on one record table, written once for all six: `on_table` picks the
/// table. The value carries the statement's arguments.
pub(crate) trait OnTable {
    type Output;
    fn on<T: RecordTable>(self) -> impl Future<Output = Result<Self::Output>>;
}

/// Runs `op` on the table of `kind`.
pub(crate) async fn on_table<O: OnTable>(kind: RecordKind, op: O) -> Result<O::Output> {
    match kind {
        RecordKind::Contact => op.on::<contact::Entity>().await,
        RecordKind::Deal => op.on::<deal::Entity>().await,
        RecordKind::Order => op.on::<sales_order::Entity>().await,
        RecordKind::Contract => op.on::<contract::Entity>().await,
        RecordKind::Project => op.on::<project::Entity>().await,
        RecordKind::Activity => op.on::<activity::Entity>().await,
    }
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

impl RecordTable for contact::Entity {
    const KIND: RecordKind = RecordKind::Contact;
    const ID: contact::Column = contact::Column::Id;
    const CUSTOMER_ID: contact::Column = contact::Column::CustomerId;
    const CREATE_TIME: contact::Column = contact::Column::CreateTime;
    const PURGE_TIME: contact::Column = contact::Column::PurgeTime;
    const DELETION_ID: contact::Column = contact::Column::DeletionId;
    const VERSION: contact::Column = contact::Column::Version;
    const STATE: Option<contact::Column> = None;

    fn into_record(row: contact::Model) -> Result<Record> {
        let data = RecordData::Contact(ContactData {
            full_name: row.full_name.clone(),
            email: row.email.clone().unwrap_or_default(),
            phone: row.phone.clone().unwrap_or_default(),
            job_title: row.job_title.clone().unwrap_or_default(),
        });
        record_from_row!(row, data)
    }
    fn to_row(tenant: &str, r: &Record) -> Option<contact::ActiveModel> {
        let RecordData::Contact(d) = &r.data else {
            return None;
        };
        Some(shared_columns!(contact, tenant, r, {
            full_name: d.full_name.clone(), email: opt(&d.email), phone: opt(&d.phone), job_title: opt(&d.job_title),
        }))
    }
}

impl RecordTable for deal::Entity {
    const KIND: RecordKind = RecordKind::Deal;
    const ID: deal::Column = deal::Column::Id;
    const CUSTOMER_ID: deal::Column = deal::Column::CustomerId;
    const CREATE_TIME: deal::Column = deal::Column::CreateTime;
    const PURGE_TIME: deal::Column = deal::Column::PurgeTime;
    const DELETION_ID: deal::Column = deal::Column::DeletionId;
    const VERSION: deal::Column = deal::Column::Version;
    const STATE: Option<deal::Column> = Some(deal::Column::Stage);

    fn into_record(row: deal::Model) -> Result<Record> {
        let data = RecordData::Deal(DealData {
            title: row.title.clone(),
            amount_minor: row.amount_minor,
            currency: row.currency.clone(),
            stage: Some(DealStage::from_stored(&row.stage)?),
        });
        record_from_row!(row, data)
    }
    fn to_row(tenant: &str, r: &Record) -> Option<deal::ActiveModel> {
        let RecordData::Deal(d) = &r.data else {
            return None;
        };
        let stage = stored(d.stage).ok()?;
        Some(shared_columns!(deal, tenant, r, {
            title: d.title.clone(), amount_minor: d.amount_minor, currency: d.currency.clone(), stage: stage,
        }))
    }
}

impl RecordTable for sales_order::Entity {
    const KIND: RecordKind = RecordKind::Order;
    const ID: sales_order::Column = sales_order::Column::Id;
    const CUSTOMER_ID: sales_order::Column = sales_order::Column::CustomerId;
    const CREATE_TIME: sales_order::Column = sales_order::Column::CreateTime;
    const PURGE_TIME: sales_order::Column = sales_order::Column::PurgeTime;
    const DELETION_ID: sales_order::Column = sales_order::Column::DeletionId;
    const VERSION: sales_order::Column = sales_order::Column::Version;
    const STATE: Option<sales_order::Column> = Some(sales_order::Column::Status);

    fn into_record(row: sales_order::Model) -> Result<Record> {
        let data = RecordData::Order(OrderData {
            number: row.number.clone(),
            amount_minor: row.amount_minor,
            currency: row.currency.clone(),
            status: Some(OrderStatus::from_stored(&row.status)?),
        });
        record_from_row!(row, data)
    }
    fn to_row(tenant: &str, r: &Record) -> Option<sales_order::ActiveModel> {
        let RecordData::Order(d) = &r.data else {
            return None;
        };
        let status = stored(d.status).ok()?;
        Some(shared_columns!(sales_order, tenant, r, {
            number: d.number.clone(), amount_minor: d.amount_minor, currency: d.currency.clone(), status: status,
        }))
    }
}

impl RecordTable for contract::Entity {
    const KIND: RecordKind = RecordKind::Contract;
    const ID: contract::Column = contract::Column::Id;
    const CUSTOMER_ID: contract::Column = contract::Column::CustomerId;
    const CREATE_TIME: contract::Column = contract::Column::CreateTime;
    const PURGE_TIME: contract::Column = contract::Column::PurgeTime;
    const DELETION_ID: contract::Column = contract::Column::DeletionId;
    const VERSION: contract::Column = contract::Column::Version;
    const STATE: Option<contract::Column> = Some(contract::Column::Status);

    fn into_record(row: contract::Model) -> Result<Record> {
        let data = RecordData::Contract(ContractData {
            number: row.number.clone(),
            status: Some(ContractStatus::from_stored(&row.status)?),
            end_date: row.end_date.clone().unwrap_or_default(),
        });
        record_from_row!(row, data)
    }
    fn to_row(tenant: &str, r: &Record) -> Option<contract::ActiveModel> {
        let RecordData::Contract(d) = &r.data else {
            return None;
        };
        let status = stored(d.status).ok()?;
        Some(shared_columns!(contract, tenant, r, {
            number: d.number.clone(), status: status, end_date: opt(&d.end_date),
        }))
    }
}

impl RecordTable for project::Entity {
    const KIND: RecordKind = RecordKind::Project;
    const ID: project::Column = project::Column::Id;
    const CUSTOMER_ID: project::Column = project::Column::CustomerId;
    const CREATE_TIME: project::Column = project::Column::CreateTime;
    const PURGE_TIME: project::Column = project::Column::PurgeTime;
    const DELETION_ID: project::Column = project::Column::DeletionId;
    const VERSION: project::Column = project::Column::Version;
    const STATE: Option<project::Column> = Some(project::Column::Status);

    fn into_record(row: project::Model) -> Result<Record> {
        let data = RecordData::Project(ProjectData {
            name: row.name.clone(),
            status: Some(ProjectStatus::from_stored(&row.status)?),
        });
        record_from_row!(row, data)
    }
    fn to_row(tenant: &str, r: &Record) -> Option<project::ActiveModel> {
        let RecordData::Project(d) = &r.data else {
            return None;
        };
        let status = stored(d.status).ok()?;
        Some(shared_columns!(project, tenant, r, { name: d.name.clone(), status: status }))
    }
}

impl RecordTable for activity::Entity {
    const KIND: RecordKind = RecordKind::Activity;
    const ID: activity::Column = activity::Column::Id;
    const CUSTOMER_ID: activity::Column = activity::Column::CustomerId;
    const CREATE_TIME: activity::Column = activity::Column::CreateTime;
    const PURGE_TIME: activity::Column = activity::Column::PurgeTime;
    const DELETION_ID: activity::Column = activity::Column::DeletionId;
    const VERSION: activity::Column = activity::Column::Version;
    const STATE: Option<activity::Column> = None;

    fn into_record(row: activity::Model) -> Result<Record> {
        let data = RecordData::Activity(ActivityData {
            kind: Some(ActivityKind::from_stored(&row.kind)?),
            subject: row.subject.clone(),
            occur_time: Some(row.occur_time),
        });
        record_from_row!(row, data)
    }
    fn to_row(tenant: &str, r: &Record) -> Option<activity::ActiveModel> {
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
    struct Insert<'a, C> {
        conn: &'a C,
        tenant: &'a str,
        record: &'a Record,
    }
    impl<C: ConnectionTrait> OnTable for Insert<'_, C> {
        type Output = ();
        async fn on<T: RecordTable>(self) -> Result<()> {
            let row = T::to_row(self.tenant, self.record).ok_or_else(|| unwritable(self.record))?;
            T::insert(row).exec_without_returning(self.conn).await?;
            Ok(())
        }
    }
    on_table(
        r.data.kind(),
        Insert {
            conn,
            tenant,
            record: r,
        },
    )
    .await
}

/// A record by id, live or deleted, optionally locked.
struct Find<'a, C> {
    conn: &'a C,
    tenant: &'a str,
    id: Uuid,
    lock: bool,
}

impl<C: ConnectionTrait> OnTable for Find<'_, C> {
    type Output = Option<Record>;
    async fn on<T: RecordTable>(self) -> Result<Option<Record>> {
        let mut select = T::in_tenant(self.tenant).with_id(self.id);
        if self.lock {
            select = select.lock_exclusive();
        }
        select.one(self.conn).await?.map(T::into_record).transpose()
    }
}

/// A record, live or deleted.
pub async fn find(
    conn: &impl ConnectionTrait,
    tenant: &str,
    kind: RecordKind,
    id: Uuid,
) -> Result<Option<Record>> {
    let lock = false;
    on_table(
        kind,
        Find {
            conn,
            tenant,
            id,
            lock,
        },
    )
    .await
}

/// A record, live or deleted, locked until the end of the transaction on PostgreSQL (a purger
/// pass skips it meanwhile; SQLite has one writer anyway).
pub async fn find_for_update(
    conn: &impl ConnectionTrait,
    tenant: &str,
    kind: RecordKind,
    id: Uuid,
) -> Result<Option<Record>> {
    let lock = true;
    on_table(
        kind,
        Find {
            conn,
            tenant,
            id,
            lock,
        },
    )
    .await
}

/// Writes `r` over the stored row if the row is still at `expected_version`; its customer stays.
pub async fn update(
    conn: &impl ConnectionTrait,
    tenant: &str,
    r: &Record,
    expected_version: i64,
) -> Result<Written> {
    write_over(conn, tenant, r, expected_version, false).await
}

/// Writes `r`, whose customer is another one now, over the stored row if the row is still at
/// `expected_version`.
pub async fn move_to(
    conn: &impl ConnectionTrait,
    tenant: &str,
    r: &Record,
    expected_version: i64,
) -> Result<Written> {
    write_over(conn, tenant, r, expected_version, true).await
}

async fn write_over(
    conn: &impl ConnectionTrait,
    tenant: &str,
    r: &Record,
    expected_version: i64,
    moves: bool,
) -> Result<Written> {
    struct Update<'a, C> {
        conn: &'a C,
        tenant: &'a str,
        record: &'a Record,
        expected_version: i64,
        moves: bool,
    }
    impl<C: ConnectionTrait> OnTable for Update<'_, C> {
        type Output = u64;
        async fn on<T: RecordTable>(self) -> Result<u64> {
            let r = self.record;
            let mut row = T::to_row(self.tenant, r).ok_or_else(|| unwritable(r))?;
            for fixed in [T::TENANT_ID, T::ID, T::CREATE_TIME] {
                row.not_set(fixed);
            }
            if !self.moves {
                row.not_set(T::CUSTOMER_ID);
            }
            Ok(T::update_in_tenant(self.tenant)
                .set(row)
                .with_id(r.id)
                .filter(T::VERSION.eq(self.expected_version))
                .exec(self.conn)
                .await?
                .rows_affected)
        }
    }
    let kind = r.data.kind();
    let rows = on_table(
        kind,
        Update {
            conn,
            tenant,
            record: r,
            expected_version,
            moves,
        },
    )
    .await?;
    Ok(if rows == 1 {
        Written::Applied
    } else {
        Written::VersionMoved
    })
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
    struct List<'a, C> {
        conn: &'a C,
        tenant: &'a str,
        customer_id: Uuid,
        show_deleted: bool,
        after: Option<Uuid>,
        limit: u64,
    }
    impl<C: ConnectionTrait> OnTable for List<'_, C> {
        type Output = Vec<Record>;
        async fn on<T: RecordTable>(self) -> Result<Vec<Record>> {
            let mut select = T::in_tenant(self.tenant).of_customer(self.customer_id);
            if !self.show_deleted {
                select = select.live();
            }
            if let Some(after) = self.after {
                select = select.filter(T::ID.gt(after));
            }
            let rows = select
                .order_by_asc(T::ID)
                .limit(self.limit)
                .all(self.conn)
                .await?;
            rows.into_iter().map(T::into_record).collect()
        }
    }
    let list = List {
        conn,
        tenant,
        customer_id,
        show_deleted,
        after,
        limit,
    };
    on_table(kind, list).await
}

/// Inserts many records at once (seeding), one multi-row INSERT per kind and batch.
pub async fn insert_many(
    conn: &impl ConnectionTrait,
    tenant: &str,
    records: &[Record],
    batch: usize,
) -> Result<()> {
    struct InsertMany<'a, C> {
        conn: &'a C,
        tenant: &'a str,
        records: &'a [Record],
        batch: usize,
    }
    impl<C: ConnectionTrait> OnTable for InsertMany<'_, C> {
        type Output = ();
        async fn on<T: RecordTable>(self) -> Result<()> {
            let of_kind: Vec<&Record> = self
                .records
                .iter()
                .filter(|r| r.data.kind() == T::KIND)
                .collect();
            for chunk in of_kind.chunks(self.batch.max(1)) {
                let rows = chunk
                    .iter()
                    .map(|r| T::to_row(self.tenant, r).ok_or_else(|| unwritable(r)))
                    .collect::<Result<Vec<_>>>()?;
                T::insert_many(rows)
                    .exec_without_returning(self.conn)
                    .await?;
            }
            Ok(())
        }
    }
    for kind in RecordKind::ALL {
        let op = InsertMany {
            conn,
            tenant,
            records,
            batch,
        };
        on_table(kind, op).await?;
    }
    Ok(())
}
