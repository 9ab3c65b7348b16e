//! Replicas: several server processes on one PostgreSQL database.

use crm_service::proto::crm::v1 as pb;

use crate::common::{Db, TestApp};

/// PostgreSQL only: SQLite has one process by design.
mod postgres {
    use super::*;

    /// Two replicas starting together on one fresh PostgreSQL schema: the advisory lock lets one
    /// migrate while the other waits, and both then serve.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_replicas_starting_at_once_both_migrate_and_serve() {
        let Some(first) = TestApp::spawn(Db::Postgres).await else {
            return;
        };
        // A second server on the same schema, started while the first one is up: migrations are a
        // no-op for it. Then two more started at the same instant on a brand-new schema.
        let second = TestApp::spawn_on(Db::Postgres, first.schema.clone())
            .await
            .unwrap();
        second.create_customer("from the second replica").await;
        let schema = Some(format!("t_{}", uuid::Uuid::now_v7().simple()));
        let (a, b) = tokio::join!(
            TestApp::spawn_on(Db::Postgres, schema.clone()),
            TestApp::spawn_on(Db::Postgres, schema)
        );
        let (a, b) = (a.unwrap(), b.unwrap());
        a.create_customer("via a").await;
        let listed = b
            .customers()
            .list_customers(pb::ListCustomersRequest::default())
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            listed.customers.len(),
            1,
            "both replicas see one migrated schema"
        );
    }
}
