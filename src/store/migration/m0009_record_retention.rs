//! Records deleted on their own get a retention of their own: a `purge_time` on the six record
//! tables, the index the purger scans for those that are due, and a purge_time for the records
//! that were already deleted when this migration runs.
//!
//! Until now a record deleted on its own (DeleteContact…) kept its data for good: no purge time,
//! never erased, never restorable. From now on its delete sets `purge_time = delete_time +
//! CRM_RETENTION`; it can be restored until then and the purger erases it after.

use sea_orm::DatabaseBackend;
use sea_orm_migration::{prelude::*, schema::*};

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0009_record_retention"
    }
}

const RECORD_TABLES: [&str; 6] = [
    "contact",
    "deal",
    "sales_order",
    "contract",
    "project",
    "activity",
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        // The backfill's `delete_time + 30 days`, computed by the database. PostgreSQL: 720
        // hours, not '30 days', because a day added to a timestamptz follows the session's time
        // zone across a daylight-saving change, and the service's retention is exact hours.
        // SQLite keeps a DateTimeUtc as RFC 3339 text with a variable fraction
        // ("2026-12-04T19:32:37.307510+00:00"); its date functions would round the fraction to
        // milliseconds, so the whole seconds are shifted and the original fraction and offset are
        // put back, which keeps the exact format every other time is written in (the purger
        // compares these texts with the ones it binds).
        let backfilled = match manager.get_database_backend() {
            DatabaseBackend::Postgres => "delete_time + interval '720 hours'",
            _ => {
                "strftime('%Y-%m-%dT%H:%M:%S', substr(delete_time, 1, 19), '+30 days') \
                 || substr(delete_time, 20)"
            }
        };
        for table in RECORD_TABLES {
            // Set while the record is deleted: when it is erased. For a record deleted on its own,
            // delete_time + the retention; for one deleted with its customer, the customer's
            // purge_time (informational: the customer's erasure removes it, never the record's).
            // Cleared by a restore. NULL on live records.
            manager
                .alter_table(
                    Table::alter()
                        .table(table)
                        .add_column(timestamp_with_time_zone_null("purge_time"))
                        .to_owned(),
                )
                .await?;
            // Records already deleted on their own get what the rule gives them with the default
            // retention, 30 days after their delete (the configured CRM_RETENTION is not known
            // to a migration, which may run from `crm-service migrate` alone). So those deleted
            // more than 30 days before the upgrade are erased by the first purger pass after it:
            // the point of this change is that deleted personal data does not stay for ever. An
            // operator who must keep them exports the customer first or sets a legal hold.
            db.execute_unprepared(&format!(
                "UPDATE {table} SET purge_time = {backfilled} \
                 WHERE delete_time IS NOT NULL AND deletion_id IS NULL"
            ))
            .await?;
            // Records deleted with their customer show the customer's purge_time.
            db.execute_unprepared(&format!(
                "UPDATE {table} SET purge_time = (SELECT c.purge_time FROM customer c \
                 WHERE c.tenant_id = {table}.tenant_id AND c.id = {table}.customer_id) \
                 WHERE deletion_id IS NOT NULL"
            ))
            .await?;
            // The purger looks across tenants for records deleted on their own whose purge_time
            // has passed, oldest due first. Like ix_customer_purge_due (m0003) it does not start
            // with tenant_id, because that scan is the other query that is not tenant-scoped.
            // Partial, so it holds only records waiting to be erased on their own: not the live
            // ones (no purge_time) and not those deleted with their customer (a deletion_id), which
            // the customer's erasure removes.
            db.execute_unprepared(&format!(
                "CREATE INDEX ix_{table}_purge_due ON {table} (purge_time) \
                 WHERE deletion_id IS NULL AND purge_time IS NOT NULL"
            ))
            .await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Duration, SubsecRound, Utc};
    use sea_orm::sea_query::{Query, SimpleExpr};
    use sea_orm::{ConnectionTrait, TransactionTrait, Value};
    use sea_orm_migration::MigratorTrait as _;
    use uuid::Uuid;

    use crate::domain::model::record::RecordKind;
    use crate::store::migration::Migrator;
    use crate::store::{Store, StoreConfig};

    const TENANT: &str = "t";

    async fn insert(store: &Store, table: &str, columns: &[&str], values: Vec<Value>) {
        let mut insert = Query::insert();
        insert
            .into_table(sea_orm::sea_query::Alias::new(table))
            .columns(columns.iter().map(|c| sea_orm::sea_query::Alias::new(*c)))
            .values_panic(values.into_iter().map(SimpleExpr::from));
        let backend = store.conn().get_database_backend();
        store
            .conn()
            .execute_raw(backend.build(&insert))
            .await
            .unwrap();
    }

    async fn customer(store: &Store, id: Uuid, deleted: Option<(DateTime<Utc>, DateTime<Utc>)>) {
        let now = Utc::now().trunc_subsecs(6);
        insert(
            store,
            "customer",
            &[
                "tenant_id",
                "id",
                "name",
                "owner_id",
                "lifecycle_stage",
                "status",
                "legal_hold",
                "search_text",
                "create_time",
                "update_time",
                "delete_time",
                "purge_time",
                "deletion_id",
                "version",
            ],
            vec![
                TENANT.into(),
                id.into(),
                "c".into(),
                "rep".into(),
                "LEAD".into(),
                "ACTIVE".into(),
                false.into(),
                "c".into(),
                now.into(),
                now.into(),
                deleted.map(|d| d.0).into(),
                deleted.map(|d| d.1).into(),
                deleted.map(|_| Uuid::now_v7()).into(),
                1i64.into(),
            ],
        )
        .await;
    }

    async fn contact(
        store: &Store,
        customer_id: Uuid,
        delete_time: Option<DateTime<Utc>>,
        deletion_id: Option<Uuid>,
    ) -> Uuid {
        let id = Uuid::now_v7();
        let now = Utc::now().trunc_subsecs(6);
        insert(
            store,
            "contact",
            &[
                "tenant_id",
                "id",
                "customer_id",
                "full_name",
                "create_time",
                "update_time",
                "delete_time",
                "deletion_id",
                "version",
            ],
            vec![
                TENANT.into(),
                id.into(),
                customer_id.into(),
                "Ana".into(),
                now.into(),
                now.into(),
                delete_time.into(),
                deletion_id.into(),
                1i64.into(),
            ],
        )
        .await;
        id
    }

    async fn purge_time(store: &Store, id: Uuid) -> Option<DateTime<Utc>> {
        crate::store::records::find(store.conn(), TENANT, RecordKind::Contact, id)
            .await
            .unwrap()
            .unwrap()
            .purge_time
    }

    /// Records stored before m0009 get what the rule would have given them, to the microsecond,
    /// in the format every other time is written in: the purger finds one due exactly from its
    /// purge_time on.
    async fn backfill(store: &Store, session: &str) {
        Migrator::up(store.conn(), Some(8)).await.unwrap();
        let (live_customer, deleted_customer) = (Uuid::now_v7(), Uuid::now_v7());
        // A whole second, a millisecond and a microsecond fraction: SQLite's text differs in each.
        let times = [
            DateTime::parse_from_rfc3339("2026-02-27T23:59:59Z")
                .unwrap()
                .to_utc(),
            DateTime::parse_from_rfc3339("2026-03-15T01:30:00.125Z")
                .unwrap()
                .to_utc(),
            DateTime::parse_from_rfc3339("2026-10-20T12:00:00.654321Z")
                .unwrap()
                .to_utc(),
        ];
        let customer_purge = times[2] + Duration::days(30);
        customer(store, live_customer, None).await;
        customer(store, deleted_customer, Some((times[2], customer_purge))).await;
        let mut alone = Vec::new();
        for time in times {
            alone.push((time, contact(store, live_customer, Some(time), None).await));
        }
        let cascaded = contact(
            store,
            deleted_customer,
            Some(times[2]),
            Some(Uuid::now_v7()),
        )
        .await;
        let live = contact(store, live_customer, None, None).await;

        let tx = store.conn().begin().await.unwrap();
        if !session.is_empty() {
            tx.execute_unprepared(session).await.unwrap();
        }
        Migrator::up(&tx, None).await.unwrap();
        tx.commit().await.unwrap();
        for (time, id) in &alone {
            let due = *time + Duration::hours(720);
            assert_eq!(purge_time(store, *id).await, Some(due), "{time}");
            let scan = |now| {
                crate::store::purge::due_records(store.conn(), RecordKind::Contact, now, 10, false)
            };
            let found = |rows: Vec<(String, Uuid, Uuid)>| rows.iter().any(|r| r.1 == *id);
            assert!(found(scan(due).await.unwrap()), "due at {due}");
            assert!(!found(scan(due - Duration::microseconds(1)).await.unwrap()));
        }
        assert_eq!(purge_time(store, cascaded).await, Some(customer_purge));
        assert_eq!(purge_time(store, live).await, None);
        let far_future = times[2] + Duration::days(3650);
        let due = crate::store::purge::due_records(
            store.conn(),
            RecordKind::Contact,
            far_future,
            10,
            false,
        )
        .await
        .unwrap();
        assert!(
            due.iter().all(|r| r.1 != cascaded && r.1 != live),
            "never a record deleted with its customer, never a live one"
        );
    }

    #[tokio::test]
    async fn sqlite_records_deleted_before_get_delete_time_plus_thirty_days() {
        let dir = std::env::temp_dir().join(format!("crm-m0009-{}", Uuid::now_v7()));
        std::fs::create_dir_all(&dir).unwrap();
        let store = Store::connect(&StoreConfig {
            url: format!("sqlite://{}", dir.join("crm.db").display()),
            schema: None,
            max_connections: 2,
            reader_connections: 0,
            acquire_timeout: std::time::Duration::from_secs(5),
            session: Default::default(),
        })
        .await
        .unwrap();
        backfill(&store, "").await;
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test]
    async fn postgres_records_deleted_before_get_delete_time_plus_thirty_days() {
        let Some(url) = crate::store::test_postgres_url().await else {
            return;
        };
        let schema = format!("unit_{}", Uuid::now_v7().simple());
        let store = Store::connect(&StoreConfig {
            url,
            schema: Some(schema.clone()),
            max_connections: 2,
            reader_connections: 0,
            acquire_timeout: std::time::Duration::from_secs(5),
            session: Default::default(),
        })
        .await
        .unwrap();
        // A session time zone with daylight saving, whose changes (2026-03-29 and 2026-10-25)
        // each delete time's 30 days cross: they are still 720 hours.
        backfill(&store, "SET LOCAL TIME ZONE 'Europe/Berlin'").await;
        store
            .conn()
            .execute_unprepared(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
            .await
            .unwrap();
    }
}
