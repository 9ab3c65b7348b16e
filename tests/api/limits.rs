//! Limits (docs/reliability.md B1, B4, B5, D3, D4): message size, load shedding, deadlines, pool
//! exhaustion and cancellation. Slow calls are real ones: an UpdateCustomer waiting for a lock
//! that the test holds from its own connection (a row lock on PostgreSQL, the write lock on
//! SQLite), so the test decides exactly when they can finish.

use std::time::{Duration, Instant};

use crm_service::proto::crm::v1 as pb;
use crm_service::proto::crm::v1::customer_service_client::CustomerServiceClient;
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection};
use tonic::Code;
use tonic::transport::Channel;
use tonic_types::StatusExt;

use crate::common::{AuthedChannel, Bearer, Db, TestApp, figure, mask};

/// A lock on one customer taken from outside the server, until `release`.
pub struct HeldLock {
    db: DatabaseConnection,
}

impl HeldLock {
    pub async fn take(app: &TestApp, customer_id: &str) -> HeldLock {
        let mut options = ConnectOptions::new(app.database_url.clone());
        options.max_connections(1).min_connections(1);
        if let Some(schema) = &app.schema {
            options.set_schema_search_path(schema.clone());
        }
        let db = Database::connect(options).await.expect("connect");
        match app.db {
            Db::Sqlite => {
                db.execute_unprepared("BEGIN IMMEDIATE").await.unwrap();
            }
            Db::Postgres => {
                db.execute_unprepared("BEGIN").await.unwrap();
                db.execute_unprepared(&format!(
                    "SELECT 1 FROM customer WHERE id = '{customer_id}' FOR UPDATE"
                ))
                .await
                .unwrap();
            }
        }
        HeldLock { db }
    }

    pub async fn release(self) {
        self.db.execute_unprepared("ROLLBACK").await.unwrap();
        self.db.close().await.ok();
    }
}

pub fn rename(customer_id: &str, name: &str) -> pb::UpdateCustomerRequest {
    pb::UpdateCustomerRequest {
        customer: Some(pb::Customer {
            id: customer_id.into(),
            name: name.into(),
            ..Default::default()
        }),
        update_mask: mask(&["name"]),
        ..Default::default()
    }
}

/// A client on a connection of its own (one HTTP/2 connection carries at most
/// max_concurrent_streams calls; a real fleet of callers uses many).
async fn own_connection(app: &TestApp) -> CustomerServiceClient<AuthedChannel> {
    let channel = Channel::from_shared(format!("http://{}", app.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let token = app.token("acme", "rep-1", &["sales_rep"]);
    CustomerServiceClient::with_interceptor(channel, Bearer::new(&token))
}

fn reason(status: &tonic::Status) -> String {
    status
        .get_details_error_info()
        .map(|info| info.reason)
        .unwrap_or_default()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// The number of this app's sessions idle inside a transaction for longer than 200 ms
/// (PostgreSQL; a transaction between two statements is idle in transaction for a moment).
async fn leaked_transactions(app: &TestApp) -> i64 {
    let db = Database::connect(&app.database_url).await.unwrap();
    let name = format!("crm-service:{}", app.schema.as_deref().unwrap());
    let row = db
        .query_one_raw(sea_orm::Statement::from_string(
            sea_orm::DatabaseBackend::Postgres,
            format!(
                "SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = '{name}' \
                 AND state LIKE 'idle in transaction%' AND state_change < now() - interval '200 ms'"
            ),
        ))
        .await
        .unwrap()
        .unwrap();
    db.close().await.ok();
    row.try_get::<i64>("", "n").unwrap()
}

/// B1: requests are limited to 1 MiB; the client gets OUT_OF_RANGE (tonic's framing), and a
/// request under the limit reaches validation.
async fn oversized_requests(db: Db) {
    let Some(app) = TestApp::spawn(db).await else {
        return;
    };
    let mut client = app.customers();
    let create = |len: usize| pb::CreateCustomerRequest {
        customer: Some(pb::Customer {
            name: "x".repeat(len),
            ..Default::default()
        }),
        ..Default::default()
    };
    let over = client
        .create_customer(create(1024 * 1024 + 1))
        .await
        .unwrap_err();
    assert_eq!(over.code(), Code::OutOfRange, "{over:?}");
    let under = client
        .create_customer(create(1024 * 1024 - 1024))
        .await
        .unwrap_err();
    assert_eq!(under.code(), Code::InvalidArgument, "{under:?}");
    assert_eq!(
        under.get_details_bad_request().unwrap().field_violations[0].field,
        "customer.name"
    );
    // The server is fine afterwards.
    app.create_customer("after the big ones").await;
}

mod sqlite {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_oversized_request_is_out_of_range_and_one_under_the_limit_is_decoded() {
        oversized_requests(Db::Sqlite).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_excess_over_the_concurrency_limit_is_shed_at_once() {
        excess_is_shed(Db::Sqlite).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_call_past_its_deadline_stops_and_changes_nothing() {
        deadline_stops_work(Db::Sqlite).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_server_caps_call_duration() {
        server_caps_duration(Db::Sqlite).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn writers_queue_for_the_one_writer_and_leave_the_pool_to_reads() {
        writers_queue_on_sqlite().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_storm_of_cancelled_calls_leaves_the_server_healthy() {
        cancellation_storm(Db::Sqlite).await;
    }
}

mod postgres {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_oversized_request_is_out_of_range_and_one_under_the_limit_is_decoded() {
        oversized_requests(Db::Postgres).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_excess_over_the_concurrency_limit_is_shed_at_once() {
        excess_is_shed(Db::Postgres).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_call_past_its_deadline_stops_and_changes_nothing() {
        deadline_stops_work(Db::Postgres).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_server_caps_call_duration() {
        server_caps_duration(Db::Postgres).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_exhausted_pool_answers_unavailable_within_the_acquire_timeout() {
        pool_exhaustion(Db::Postgres).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_storm_of_cancelled_calls_leaves_the_server_healthy() {
        cancellation_storm(Db::Postgres).await;
    }
}

/// B4: 512 concurrent slow calls over 8 connections against a limit of 128: exactly 128 are
/// admitted and finish once the lock goes; the other 384 are refused RESOURCE_EXHAUSTED while
/// the admitted ones still wait (no queueing to a deadline), and nothing is INTERNAL. Health
/// checks still answer at saturation.
async fn excess_is_shed(db: Db) {
    let Some(app) = TestApp::spawn_configured(db, |s| {
        s.limits.max_concurrent_calls = 128;
        s.database.acquire_timeout = Duration::from_secs(10);
    })
    .await
    else {
        return;
    };
    let customer = app.create_customer("Contended").await;
    let mut clients = Vec::new();
    for _ in 0..8 {
        clients.push(own_connection(&app).await);
    }
    let lock = HeldLock::take(&app, &customer.id).await;
    let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel();
    let mut calls = Vec::new();
    for i in 0..512 {
        let mut client = clients[i % 8].clone();
        let request = rename(&customer.id, &format!("name {i}"));
        let done = done_tx.clone();
        calls.push(tokio::spawn(async move {
            let started = Instant::now();
            let outcome = client.update_customer(request).await;
            let _ = done.send(());
            (started.elapsed(), outcome.err())
        }));
    }
    // While the lock is held no admitted call can finish: the first 384 answers are the shed ones.
    let waited = Instant::now();
    for _ in 0..384 {
        tokio::time::timeout(Duration::from_secs(10), done_rx.recv())
            .await
            .expect("the excess is answered while the admitted calls wait");
    }
    let shed_in = waited.elapsed();
    let mut health = tonic_health::pb::health_client::HealthClient::new(app.channel());
    let probe = Instant::now();
    let serving = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: "crm.v1.CustomerService".into(),
        })
        .await
        .expect("health answers at saturation")
        .into_inner()
        .status;
    let probe_took = probe.elapsed();
    assert_eq!(
        serving,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        done_rx.try_recv().is_err(),
        "no more than 384 calls may finish while the lock is held"
    );
    lock.release().await;

    let mut shed = Vec::new();
    let mut admitted = Vec::new();
    for call in calls {
        let (took, error) = call.await.unwrap();
        match error {
            None => admitted.push(took),
            Some(status) => {
                assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
                assert_eq!(reason(&status), "SERVER_OVERLOADED");
                assert!(
                    status.get_details_retry_info().is_some(),
                    "a shed call says when to retry"
                );
                shed.push(took);
            }
        }
    }
    shed.sort();
    admitted.sort();
    figure(format_args!(
        "{db:?}: 512 calls, limit 128: admitted {} (all OK; p50 {:?}, p99 {:?}), shed {} (p50 {:?}, \
         p99 {:?}; all shed {:?} after the first call); health check at saturation {:?}",
        admitted.len(),
        percentile(&admitted, 0.5),
        percentile(&admitted, 0.99),
        shed.len(),
        percentile(&shed, 0.5),
        percentile(&shed, 0.99),
        shed_in,
        probe_took
    ));
    assert_eq!((admitted.len(), shed.len()), (128, 384));
    // Shedding answers at once: far below the time the admitted calls were kept waiting.
    assert!(percentile(&shed, 0.99) < Duration::from_secs(1));
}

/// B5: a call whose client deadline passes while it waits for a lock gets DEADLINE_EXCEEDED, and
/// the server stops its work: once the lock is free the change has not happened, and on
/// PostgreSQL no session is left idle in a transaction.
async fn deadline_stops_work(db: Db) {
    let Some(app) = TestApp::spawn(db).await else {
        return;
    };
    let customer = app.create_customer("Original").await;
    let lock = HeldLock::take(&app, &customer.id).await;
    let mut request = tonic::Request::new(rename(&customer.id, "Too late"));
    request.set_timeout(Duration::from_millis(50));
    let started = Instant::now();
    let status = app.customers().update_customer(request).await.unwrap_err();
    let took = started.elapsed();
    // Whichever timer fires first: the server's (DEADLINE_EXCEEDED) or tonic's client-side one,
    // which reports CANCELLED "Timeout expired".
    assert!(
        status.code() == Code::DeadlineExceeded
            || (status.code() == Code::Cancelled && status.message() == "Timeout expired"),
        "{status:?}"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    lock.release().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let now = crate::common::get_customer(&mut app.customers(), &customer.id).await;
    assert_eq!(now.name, "Original", "the late change never landed");
    assert_eq!(now.etag, customer.etag);
    if db == Db::Postgres {
        assert_eq!(leaked_transactions(&app).await, 0);
    }
    figure(format_args!(
        "{db:?}: deadline 50 ms on a blocked update: DEADLINE_EXCEEDED after {took:?}; change applied \
         later: no",
    ));
}

/// The server's cap on call duration ends a call that set no deadline (or a longer one) with
/// DEADLINE_EXCEEDED naming the cap, and the work stops as with a client deadline.
async fn server_caps_duration(db: Db) {
    let Some(app) = TestApp::spawn_configured(db, |s| {
        s.limits.max_call_duration = Duration::from_millis(300);
    })
    .await
    else {
        return;
    };
    let customer = app.create_customer("Original").await;
    let lock = HeldLock::take(&app, &customer.id).await;
    let mut request = tonic::Request::new(rename(&customer.id, "Too late"));
    request.set_timeout(Duration::from_secs(30));
    let started = Instant::now();
    let status = app.customers().update_customer(request).await.unwrap_err();
    let took = started.elapsed();
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    assert_eq!(reason(&status), "DEADLINE_EXCEEDED");
    assert!(status.message().contains("cap"), "{}", status.message());
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_secs(3),
        "{took:?}"
    );
    lock.release().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let now = crate::common::get_customer(&mut app.customers(), &customer.id).await;
    assert_eq!(now.name, "Original");
    // Short calls are unaffected by the cap.
    app.create_customer("quick").await;
}

/// D3: a pool of 2 with a 250 ms acquire timeout, both connections held by calls waiting on a
/// lock, and 64 more calls: those get UNAVAILABLE within about the acquire timeout (never
/// INTERNAL, never a hang), and the server serves normally once the lock goes.
async fn pool_exhaustion(db: Db) {
    let Some(app) = TestApp::spawn_configured(db, |s| {
        s.database.max_connections = 2;
        s.database.acquire_timeout = Duration::from_millis(250);
    })
    .await
    else {
        return;
    };
    let customer = app.create_customer("Contended").await;
    let lock = HeldLock::take(&app, &customer.id).await;
    let client = own_connection(&app).await;
    let mut holders = Vec::new();
    for i in 0..2 {
        let mut client = client.clone();
        let request = rename(&customer.id, &format!("holder {i}"));
        holders.push(tokio::spawn(async move {
            client.update_customer(request).await
        }));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut calls = Vec::new();
    for i in 0..64 {
        let mut client = client.clone();
        let request = rename(&customer.id, &format!("waiter {i}"));
        calls.push(tokio::spawn(async move {
            let started = Instant::now();
            let outcome = client.update_customer(request).await;
            (started.elapsed(), outcome.err())
        }));
    }
    let mut waits = Vec::new();
    for call in calls {
        let (took, error) = call.await.unwrap();
        let status = error.expect("no connection was free for the waiters");
        assert_eq!(status.code(), Code::Unavailable, "{status:?}");
        assert_eq!(reason(&status), "DATABASE_UNAVAILABLE");
        waits.push(took);
    }
    waits.sort();
    lock.release().await;
    for holder in holders {
        holder
            .await
            .unwrap()
            .expect("the holders finish once the lock is free");
    }
    app.create_customer("healthy again").await;
    figure(format_args!(
        "{db:?}: pool 2, acquire timeout 250 ms, 64 waiters: 64 UNAVAILABLE, wait p50 {:?}, max {:?}",
        percentile(&waits, 0.5),
        waits.last().unwrap()
    ));
    assert!(*waits.last().unwrap() < Duration::from_millis(1500));
}

/// SQLite has one writer connection: writers waiting for the write lock queue for it, in order,
/// instead of each holding a pooled connection while it busy-waits. With the lock held outside
/// the server, 16 writers wait; ListCustomers (which reads through the pool of 2, with a 250 ms
/// acquire timeout) still answers at once; and once the lock goes, every writer finishes.
async fn writers_queue_on_sqlite() {
    let Some(app) = TestApp::spawn_configured(Db::Sqlite, |s| {
        s.database.max_connections = 2;
        s.database.acquire_timeout = Duration::from_millis(250);
    })
    .await
    else {
        return;
    };
    let customer = app.create_customer("Contended").await;
    let lock = HeldLock::take(&app, &customer.id).await;
    let client = own_connection(&app).await;
    let mut writers = Vec::new();
    for i in 0..16 {
        let mut client = client.clone();
        let request = rename(&customer.id, &format!("writer {i}"));
        writers.push(tokio::spawn(async move {
            client.update_customer(request).await
        }));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut reader = app.customers();
    let mut read_times = Vec::new();
    for _ in 0..20 {
        let started = Instant::now();
        let page = reader
            .list_customers(pb::ListCustomersRequest {
                page_size: 10,
                ..Default::default()
            })
            .await
            .expect("reads do not wait for the writers")
            .into_inner();
        assert_eq!(page.customers.len(), 1);
        read_times.push(started.elapsed());
    }
    assert!(
        writers.iter().all(|w| !w.is_finished()),
        "the writers wait while the lock is held"
    );
    lock.release().await;
    let mut names = Vec::new();
    for writer in writers {
        let updated = writer
            .await
            .unwrap()
            .expect("every queued writer finishes once the lock is free")
            .into_inner();
        names.push(updated.customer.unwrap().name);
    }
    names.sort();
    names.dedup();
    assert_eq!(names.len(), 16, "each writer wrote its own change");
    read_times.sort();
    figure(format_args!(
        "Sqlite: 16 writers queued on the lock; 20 ListCustomers meanwhile, max {:?}",
        read_times.last().unwrap()
    ));
    assert!(*read_times.last().unwrap() < Duration::from_millis(250));
}

/// D4: 300 mutations with deadlines between 1 and 50 ms (cancelled at every stage: before the
/// transaction, mid-transaction, at commit), then: no session idle in a transaction on
/// PostgreSQL, and 50 ordinary calls all succeed.
async fn cancellation_storm(db: Db) {
    let Some(app) = TestApp::spawn(db).await else {
        return;
    };
    let customer = app.create_customer("Stormy").await;
    let client = own_connection(&app).await;
    let mut calls = Vec::new();
    for i in 0..300u64 {
        let mut client = client.clone();
        let id = customer.id.clone();
        calls.push(tokio::spawn(async move {
            let mut request = tonic::Request::new(rename(&id, &format!("storm {i}")));
            request.set_timeout(Duration::from_millis(1 + (i * 7919) % 50));
            client.update_customer(request).await.err()
        }));
    }
    let mut by_code = std::collections::BTreeMap::new();
    for call in calls {
        let status = call.await.unwrap();
        // tonic's client reports its own timeouts and the streams it reset itself (CANCELLED,
        // or UNKNOWN "transport error" with the I/O error as source); what the server sent has
        // no source.
        let key = match &status {
            None => "OK".to_owned(),
            Some(s) if std::error::Error::source(s).is_some() => format!("client {:?}", s.code()),
            Some(s) => format!("server {:?}", s.code()),
        };
        *by_code.entry(key).or_insert(0) += 1;
        if let Some(status) = status.filter(|s| std::error::Error::source(s).is_none()) {
            assert!(
                !matches!(status.code(), Code::Internal | Code::Unknown),
                "a cancelled call is never INTERNAL: {status:?}"
            );
        }
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let leaked = if db == Db::Postgres {
        leaked_transactions(&app).await
    } else {
        0
    };
    let mut ok = 0;
    for i in 0..50 {
        app.customers()
            .update_customer(rename(&customer.id, &format!("calm {i}")))
            .await
            .expect("ordinary calls succeed after the storm");
        ok += 1;
    }
    figure(format_args!(
        "{db:?}: 300 calls with 1-50 ms deadlines: outcomes {by_code:?}; sessions idle in transaction \
         afterwards: {leaked}; later calls OK: {ok}/50",
    ));
    assert_eq!(leaked, 0);
}
