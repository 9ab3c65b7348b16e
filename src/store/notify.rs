//! Waking event watchers after a commit (PostgreSQL). A NOTIFY sent inside the write transaction
//! takes a lock at commit that every notifying transaction of the cluster queues on, whatever its
//! tenant: CreateCustomer + CreateContact across 16 tenants ran 1.11–1.15× faster once it left
//! the transaction (docs/performance.md P18). So a transaction that wrote customer events hands its tenants, once committed, to one
//! task per process, which sends them in one statement, coalescing the tenants of every commit
//! that came in while the previous statement ran. Watchers re-read the outbox by sequence and look
//! anyway every few seconds, so a notification lost to a crash between the commit and the send
//! costs latency, never an event.

use std::collections::BTreeSet;

use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};
use tokio::sync::mpsc;

use super::audit::EVENTS_CHANNEL;

/// Hands committed tenants to the notifying task; cheap to clone, and a no-op on SQLite.
#[derive(Clone, Debug, Default)]
pub struct CommitNotifier {
    tenants: Option<mpsc::UnboundedSender<String>>,
}

impl CommitNotifier {
    /// A notifier sending on `db` (PostgreSQL) from a task of its own, which ends when the last
    /// clone of the notifier is dropped.
    pub fn postgres(db: DatabaseConnection) -> Self {
        let (tenants, committed) = mpsc::unbounded_channel();
        tokio::spawn(send_notifications(db, committed));
        Self {
            tenants: Some(tenants),
        }
    }

    /// Tells watchers that `tenant` has new events, after its transaction committed.
    pub fn committed(&self, tenant: String) {
        if let Some(tenants) = &self.tenants {
            // The task ends only with the last sender, so the send cannot fail while one exists.
            let _ = tenants.send(tenant);
        }
    }
}

async fn send_notifications(
    db: DatabaseConnection,
    mut committed: mpsc::UnboundedReceiver<String>,
) {
    while let Some(first) = committed.recv().await {
        let mut tenants = BTreeSet::from([first]);
        while let Ok(more) = committed.try_recv() {
            tenants.insert(more);
        }
        let tenants: Vec<String> = tenants.into_iter().collect();
        let notify = Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT pg_notify($1, tenant) FROM unnest($2::text[]) AS tenant",
            [EVENTS_CHANNEL.into(), tenants.into()],
        );
        if let Err(e) = db.execute_raw(notify).await {
            tracing::warn!(error = %e, "notifying event watchers failed; they will look on their own within seconds");
        }
    }
}
