//! Deletion batches against crashes, with the real binary: killed with SIGKILL while a batch runs
//! (several times, at different points of the run), the batch resumes after each restart and
//! finishes, every customer deleted exactly once, no record left live under a deleted customer,
//! and the audit chain verifies. On PostgreSQL, two replicas share one batch: one works it at a
//! time, and when that one dies the other takes over within the lease.

use std::time::{Duration, Instant};

use crm_service::proto::crm::v1 as pb;
use pb::DeletionBatchState as B;
use sea_orm::{ConnectionTrait, Database, DatabaseConnection, Statement};

use crate::common::batches::{approve, get, rep, run, submitted, sup};
use crate::common::{Db, Kind, TestApp, create_record, figure, get_customer};
use crate::process::{ServerProcess, fresh_database};

crate::on_both_databases!(
    a_batch_killed_mid_run_resumes_after_each_restart_and_deletes_each_customer_once
);

/// PostgreSQL only: replicas share a database server, which SQLite's one file does not.
mod postgres_replicas {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_replicas_work_a_batch_one_at_a_time_and_the_survivor_takes_over_within_the_lease()
    {
        super::two_replicas_take_over().await;
    }
}

const CUSTOMERS: usize = 120;
const RECORDS_PER_CUSTOMER: usize = 2;
/// Short, so that a restarted process (a new lease owner) takes the batch back within a second.
const LEASE: Duration = Duration::from_secs(1);

fn batch_env(lease: Duration) -> Vec<(&'static str, String)> {
    vec![
        // One customer per transaction: many chunks, so kills land between and inside them.
        ("CRM_BATCH_CHUNK_SIZE", "1".into()),
        ("CRM_BATCH_LEASE", format!("{}ms", lease.as_millis())),
    ]
}

/// `CUSTOMERS` customers of `acme`, each with `RECORDS_PER_CUSTOMER` contacts.
async fn customers(app: &TestApp) -> Vec<String> {
    let mut ids = Vec::with_capacity(CUSTOMERS);
    let mut records = app.records();
    for n in 0..CUSTOMERS {
        let c = app.create_customer(&format!("Crash test {n}")).await;
        for _ in 0..RECORDS_PER_CUSTOMER {
            create_record(&mut records, Kind::Contact, &c.id)
                .await
                .expect("contact");
        }
        ids.push(c.id);
    }
    ids
}

/// Submitted by rep-1, approved by sup-1, started by rep-1: the batch id.
async fn started(app: &TestApp, ids: &[String]) -> String {
    let (batch, _) = submitted(app, ids, "crash test").await;
    approve(&mut sup(app), &batch.id).await.expect("approve");
    run(&mut rep(app), &batch.id).await.expect("run");
    batch.id
}

/// Polls the batch every 10 ms until `done(progress)` or it completes; the last read.
async fn watch(
    app: &TestApp,
    id: &str,
    within: Duration,
    done: impl Fn(&pb::DeletionBatchProgress) -> bool,
) -> pb::DeletionBatch {
    let started = Instant::now();
    loop {
        let batch = get(app, id).await;
        if batch.state == B::Completed as i32 || done(&batch.progress.unwrap()) {
            return batch;
        }
        assert!(
            started.elapsed() < within,
            "batch {id} made no progress in {within:?}: {:?}",
            batch.progress
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// What an attached app must not do when it goes: drop the schema the next process uses.
fn detach(mut app: TestApp) {
    app.schema = None;
}

/// Everything the batch promised, read after it completed: each item DELETED once, its customer
/// deleted with all of its records, once, and the chain intact.
async fn assert_deleted_exactly_once(app: &TestApp, batch_id: &str, ids: &[String]) {
    let batch = get(app, batch_id).await;
    let progress = batch.progress.unwrap();
    assert_eq!(batch.state, B::Completed as i32, "{batch:?}");
    assert_eq!(
        (
            progress.deleted as usize,
            progress.queued,
            progress.stale,
            progress.blocked
        ),
        (CUSTOMERS, 0, 0, 0)
    );
    assert_eq!(
        progress.deleted_records as usize,
        CUSTOMERS * RECORDS_PER_CUSTOMER
    );
    let mut customers = app.customers();
    for id in ids {
        let customer = get_customer(&mut customers, id).await;
        assert!(customer.delete_time.is_some(), "{id} is deleted");
        let graph = app.snapshot(id).await;
        assert_eq!(graph.live(), 0, "{id}: no record left live (no orphan)");
        assert!(
            graph
                .contacts
                .iter()
                .all(|c| c.delete_time == customer.delete_time),
            "{id}: every record went in its customer's deletion (the same transaction's time)"
        );
        assert_eq!(
            app.audit_count(id, "customer.delete").await,
            1,
            "{id} deleted exactly once"
        );
    }
    let verified = app.verify_audit().await;
    assert!(verified.valid, "{verified:?}");
}

async fn a_batch_killed_mid_run_resumes_after_each_restart_and_deletes_each_customer_once(
    app: TestApp,
) {
    // The in-process server only prepares the database: the batch runs in child processes.
    let db = app.db;
    drop(app);
    let Some((url, schema)) = fresh_database(db).await else {
        return;
    };
    let env = batch_env(LEASE);
    let mut server = ServerProcess::start(db, &url, schema.as_deref(), &env).await;
    let mut client = server.app().await;
    let ids = customers(&client).await;
    let batch = started(&client, &ids).await;

    // Three kills, each once the run has deleted another quarter of the batch (so each lands
    // while it runs, wherever inside a chunk that is), then a restart each time.
    let mut kills_mid_run = 0;
    for quarter in 1..=3 {
        let target = CUSTOMERS * quarter / 4;
        let seen = watch(&client, &batch, Duration::from_secs(60), |p| {
            p.deleted as usize >= target
        })
        .await;
        if seen.state == B::Completed as i32 {
            break;
        }
        server.kill().await;
        let after_kill = seen.progress.unwrap().deleted;
        kills_mid_run += 1;
        server = ServerProcess::start(db, &url, schema.as_deref(), &env).await;
        let restarted = server.app().await;
        detach(std::mem::replace(&mut client, restarted));
        figure(format_args!(
            "{db:?}: SIGKILL {quarter} at {after_kill}/{CUSTOMERS} deleted; restarted"
        ));
    }
    assert_eq!(
        kills_mid_run, 3,
        "every kill landed while the batch was running"
    );
    let started = Instant::now();
    watch(&client, &batch, Duration::from_secs(60), |_| false).await;
    figure(format_args!(
        "{db:?}: the batch completed {:?} after the last restart",
        started.elapsed()
    ));
    assert_deleted_exactly_once(&client, &batch, &ids).await;
    // The last process goes with its database.
    drop(server);
    drop(client);
}

/// The batch's lease as the database holds it: (owner, expiry in the past or not).
async fn lease_owner(db: &DatabaseConnection, schema: &str, batch: &str) -> Option<String> {
    let row = db
        .query_one_raw(Statement::from_string(
            db.get_database_backend(),
            format!("SELECT lease_owner FROM \"{schema}\".deletion_batch WHERE id = '{batch}'"),
        ))
        .await
        .expect("read the lease")
        .expect("the batch row");
    row.try_get::<Option<String>>("", "lease_owner")
        .expect("lease_owner")
}

async fn two_replicas_take_over() {
    let Some((url, Some(schema))) = fresh_database(Db::Postgres).await else {
        return;
    };
    let lease = Duration::from_secs(2);
    let env = batch_env(lease);
    let mut servers = [
        ServerProcess::start(Db::Postgres, &url, Some(&schema), &env).await,
        ServerProcess::start(Db::Postgres, &url, Some(&schema), &env).await,
    ];
    let pids = [servers[0].pid().to_string(), servers[1].pid().to_string()];
    let client = servers[0].app().await;
    let ids = customers(&client).await;
    let batch = started(&client, &ids).await;
    let db = Database::connect(&url).await.expect("connect");
    // The worker's lease owner is "<pid>-<uuid>".
    let owner_pid =
        |owner: Option<String>| owner.map(|o| o.split('-').next().unwrap_or_default().to_owned());

    // While both live, the lease names one of them all along: the other never works the batch.
    let mut owners = std::collections::BTreeSet::new();
    let started = Instant::now();
    loop {
        if let Some(pid) = owner_pid(lease_owner(&db, &schema, &batch).await) {
            owners.insert(pid);
        }
        let read = get(&client, &batch).await;
        assert_eq!(read.state, B::Running as i32, "still running: {read:?}");
        if read.progress.unwrap().deleted as usize >= CUSTOMERS / 4 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "no progress");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(owners.len(), 1, "one owner at a time: {owners:?}");
    let holder = owners.into_iter().next().unwrap();
    let (dead, alive) = if pids[0] == holder { (0, 1) } else { (1, 0) };
    assert_eq!(pids[dead], holder, "the owner is one of {pids:?}");

    // Kill the holder; the survivor must take the batch over within the lease (plus its poll).
    servers[dead].kill().await;
    let killed = Instant::now();
    let survivor = servers[alive].app().await;
    while owner_pid(lease_owner(&db, &schema, &batch).await).as_ref() != Some(&pids[alive]) {
        assert!(
            killed.elapsed() < lease * 3,
            "no takeover {:?} after the kill (lease {lease:?})",
            killed.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let takeover = killed.elapsed();
    figure(format_args!(
        "PostgreSQL replicas: the survivor took the batch over {takeover:?} after SIGKILL \
         (lease {lease:?}, poll {:?})",
        lease / 4
    ));
    assert!(
        takeover <= lease + lease / 4 + Duration::from_millis(500),
        "takeover took {takeover:?}, more than the lease {lease:?} and a poll"
    );
    watch(&survivor, &batch, Duration::from_secs(60), |_| false).await;
    assert_deleted_exactly_once(&survivor, &batch, &ids).await;
    detach(client);
    drop(survivor);
    drop(servers);
}
