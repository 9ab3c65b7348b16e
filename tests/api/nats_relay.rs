//! The relay of customer events to NATS JetStream: every event once, in sequence order per
//! tenant, across crashes, a NATS outage and a change of leader. Each test has a stream and a
//! subject prefix of its own on the machine's NATS (`CRM_TEST_NATS_URL`, else 127.0.0.1:4222);
//! when NATS is out of reach a test is skipped with its reason, and fails under `CI=true`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use async_nats::jetstream;
use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, pull};
use crm_service::proto::crm::v1 as pb;
use futures_util::StreamExt;
use prost::Message as _;
use sea_orm::{ConnectionTrait, Statement};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::{TestApp, figure, new_customer};
use crate::process::ServerProcess;

crate::on_both_databases!(
    one_relay_publishes_every_event_once_in_order_and_another_takes_over,
    kill_9_during_2000_mutations_loses_and_repeats_nothing,
    a_10_s_nats_outage_is_a_backlog_published_after,
);

fn skip_or_fail(why: String) -> Option<jetstream::Context> {
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{why} under CI=true");
    }
    eprintln!("skipped: {why}");
    None
}

/// The machine's NATS, or `None` (skip) when it is out of reach outside CI.
async fn machine_nats() -> Option<(String, jetstream::Context)> {
    let url = std::env::var("CRM_TEST_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into());
    let connected = tokio::time::timeout(
        Duration::from_secs(5),
        async_nats::ConnectOptions::new()
            .connection_timeout(Duration::from_secs(2))
            .connect(url.as_str()),
    )
    .await;
    match connected {
        Ok(Ok(client)) => Some((url, jetstream::new(client))),
        Ok(Err(e)) => skip_or_fail(format!("NATS at {url} is unreachable: {e}")).map(|c| (url, c)),
        Err(_) => skip_or_fail(format!("NATS at {url} did not answer")).map(|c| (url, c)),
    }
}

/// A stream name and subject prefix of this test's own, and the relay settings that use them.
struct Target {
    stream: String,
    prefix: String,
}

impl Target {
    fn new() -> Self {
        let id = uuid::Uuid::now_v7().simple().to_string();
        Target {
            stream: format!("CRM_TEST_{id}"),
            prefix: format!("crmtest_{id}"),
        }
    }

    fn env(&self, url: &str, lease: &str) -> Vec<(&'static str, String)> {
        vec![
            ("CRM_EVENTS_NATS_URL", url.to_owned()),
            ("CRM_EVENTS_NATS_STREAM", self.stream.clone()),
            ("CRM_EVENTS_NATS_SUBJECT_PREFIX", self.prefix.clone()),
            ("CRM_EVENTS_NATS_LEASE", lease.to_owned()),
        ]
    }
}

/// Clients of a server process. Attached without the schema: the schema is the test's
/// `TestApp`'s, dropped with it, not with these.
async fn attached(process: &ServerProcess) -> TestApp {
    TestApp::attach(process.addr, process.db, &process.database_url, None).await
}

/// Each tenant's number of customer events in the database (N: its sequences are 1..=N).
async fn events_in_database(app: &TestApp) -> BTreeMap<String, i64> {
    let store = app.store().await;
    let conn = store.conn();
    let rows = conn
        .query_all_raw(Statement::from_string(
            conn.get_database_backend(),
            "SELECT tenant_id, COUNT(*) AS n, MAX(sequence) AS last FROM customer_event GROUP BY tenant_id",
        ))
        .await
        .unwrap();
    rows.into_iter()
        .map(|row| {
            let tenant: String = row.try_get("", "tenant_id").unwrap();
            let n: i64 = row.try_get("", "n").unwrap();
            let last: i64 = row.try_get("", "last").unwrap();
            assert_eq!(n, last, "{tenant}: the outbox itself has gaps");
            (tenant, n)
        })
        .collect()
}

/// Each tenant's published cursor in the database.
async fn cursors(app: &TestApp) -> BTreeMap<String, i64> {
    let store = app.store().await;
    let conn = store.conn();
    conn.query_all_raw(Statement::from_string(
        conn.get_database_backend(),
        "SELECT tenant_id, published_sequence FROM event_relay_cursor",
    ))
    .await
    .unwrap()
    .into_iter()
    .map(|row| {
        (
            row.try_get("", "tenant_id").unwrap(),
            row.try_get("", "published_sequence").unwrap(),
        )
    })
    .collect()
}

/// Waits until the cursors say every event of the database is published (they move just after
/// the acknowledgements, so a consumer may see the messages first).
async fn cursors_reach(app: &TestApp, database: &BTreeMap<String, i64>) {
    let started = Instant::now();
    loop {
        let now = cursors(app).await;
        if &now == database {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the cursors {now:?} do not reach {database:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until the stream holds `expected` messages (at most `within`), then reads them all with a
/// JetStream consumer, from the first: each tenant's sequences in the order delivered, after
/// checking each message's subject, headers and payload agree.
async fn consume_all(
    nats: &jetstream::Context,
    target: &Target,
    expected: i64,
    within: Duration,
) -> BTreeMap<String, Vec<i64>> {
    let started = Instant::now();
    let mut stream = loop {
        if let Ok(mut stream) = nats.get_stream(&target.stream).await
            && let Ok(info) = stream.info().await
            && info.state.messages as i64 >= expected
        {
            break stream;
        }
        assert!(
            started.elapsed() < within,
            "the stream {} did not reach {expected} messages within {within:?}",
            target.stream
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let held = stream.info().await.unwrap().state.messages as i64;
    assert_eq!(held, expected, "the stream holds more messages than events");
    let consumer = stream
        .create_consumer(pull::Config {
            deliver_policy: DeliverPolicy::All,
            ack_policy: AckPolicy::Explicit,
            ..Default::default()
        })
        .await
        .unwrap();
    let mut seen: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    let mut read = 0;
    while read < expected {
        let mut batch = consumer
            .fetch()
            .max_messages(500)
            .expires(Duration::from_secs(1))
            .messages()
            .await
            .unwrap();
        while let Some(message) = batch.next().await {
            let message = message.unwrap();
            let headers = message.headers.clone().expect("headers");
            let header = |name: &str| headers.get(name).expect(name).as_str().to_owned();
            let tenant = header("Crm-Tenant");
            let sequence: i64 = header("Crm-Sequence").parse().unwrap();
            assert_eq!(header("Nats-Msg-Id"), format!("{tenant}:{sequence}"));
            assert_eq!(header("Content-Type"), "application/x-protobuf");
            let event = pb::CustomerEvent::decode(message.payload.clone()).unwrap();
            assert_eq!(event.sequence, sequence);
            let event_type = header("Crm-Event-Type");
            assert_eq!(
                message.subject.as_str(),
                format!(
                    "{}.{}.customer.{}",
                    target.prefix,
                    tenant.replace('.', "%2E"),
                    event_type.to_ascii_lowercase()
                )
            );
            seen.entry(tenant).or_default().push(sequence);
            message.ack().await.unwrap();
            read += 1;
        }
        assert!(started.elapsed() < within * 2, "reading the stream stalls");
    }
    seen
}

/// Exactly 1..=N per tenant, in order, for every tenant of the database.
fn assert_exactly_once(seen: &BTreeMap<String, Vec<i64>>, database: &BTreeMap<String, i64>) {
    assert_eq!(
        seen.keys().collect::<Vec<_>>(),
        database.keys().collect::<Vec<_>>(),
        "tenants"
    );
    for (tenant, &n) in database {
        let sequences = &seen[tenant];
        if sequences.iter().copied().ne(1..=n) {
            let dupes = sequences.len() as i64 - n;
            panic!(
                "{tenant}: {} messages for {n} events ({dupes} extra), first out of place: {:?}",
                sequences.len(),
                sequences
                    .iter()
                    .zip(1..)
                    .find(|(s, i)| **s != *i)
                    .map(|(s, i)| (i, *s))
            );
        }
    }
}

/// The events a server's relay sent again and the stream dropped, as its log counts them.
fn duplicates_in(log: &str) -> u64 {
    log.lines()
        .filter_map(|line| line.split("duplicates=").nth(1))
        .filter_map(|rest| {
            rest.split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum()
}

async fn delete_stream(nats: &jetstream::Context, target: &Target) {
    let _ = nats.delete_stream(&target.stream).await;
}

/// A lease held by A; B, on the same database, waits. Both relays publish nothing twice and the
/// tenants' events arrive in order; A is killed, B takes over within its lease and publishes
/// what was written since; a restart resumes from the recorded cursors. A tenant with a `.` is
/// one subject token.
async fn one_relay_publishes_every_event_once_in_order_and_another_takes_over(app: TestApp) {
    let Some((url, nats)) = machine_nats().await else {
        return;
    };
    let target = Target::new();
    let env = target.env(&url, "2s");
    let mut a = ServerProcess::start(app.db, &app.database_url, app.schema.as_deref(), &env).await;
    let mut b = ServerProcess::start(app.db, &app.database_url, app.schema.as_deref(), &env).await;
    let (via_a, via_b) = (attached(&a).await, attached(&b).await);
    let tenants = ["acme", "eu.globex"];
    for i in 0..30 {
        let via = if i % 2 == 0 { &via_a } else { &via_b };
        let mut client = via.customers_as(tenants[i % 2], "writer", &["sales_rep"]);
        client
            .create_customer(new_customer(&format!("Customer {i}")))
            .await
            .unwrap();
    }
    // 700 events in one commit: more than the relay reads at once.
    via_a
        .customers_as("acme", "importer", &["service"])
        .batch_create_customers(pb::BatchCreateCustomersRequest {
            requests: (0..700)
                .map(|i| new_customer(&format!("Imported {i:04}")))
                .collect(),
            request_id: uuid::Uuid::now_v7().to_string(),
        })
        .await
        .unwrap();
    let database = events_in_database(&app).await;
    assert!(database["acme"] > 700, "{database:?}");
    let total: i64 = database.values().sum();
    let seen = consume_all(&nats, &target, total, Duration::from_secs(20)).await;
    assert_exactly_once(&seen, &database);
    let leaders: Vec<_> = [&a, &b]
        .iter()
        .map(|p| p.log().contains("this replica publishes"))
        .collect();
    assert_eq!(
        leaders.iter().filter(|l| **l).count(),
        1,
        "one leader: {leaders:?}"
    );
    cursors_reach(&app, &database).await;

    // The leader dies; the other takes over once its lease lapses.
    let (survivor, survivor_app) = if leaders[0] {
        a.kill().await;
        (&mut b, &via_b)
    } else {
        b.kill().await;
        (&mut a, &via_a)
    };
    for i in 0..10 {
        let mut client = survivor_app.customers_as(tenants[i % 2], "writer", &["sales_rep"]);
        client
            .create_customer(new_customer(&format!("After {i}")))
            .await
            .unwrap();
    }
    let database = events_in_database(&app).await;
    let total: i64 = database.values().sum();
    let started = Instant::now();
    let seen = consume_all(&nats, &target, total, Duration::from_secs(20)).await;
    assert_exactly_once(&seen, &database);
    assert!(survivor.log().contains("this replica publishes"));
    figure(format!(
        "nats relay takeover ({:?}): {total} events in {} tenants (700 of them from one BatchCreateCustomers), all published once by the survivor {:.1} s after the leader's kill",
        app.db,
        database.len(),
        started.elapsed().as_secs_f64()
    ));

    // A clean stop gives the lease up; a new process resumes from the cursors.
    survivor.sigterm();
    survivor.wait(Duration::from_secs(20)).await.expect("exits");
    let c = ServerProcess::start(app.db, &app.database_url, app.schema.as_deref(), &env).await;
    let mut client = attached(&c)
        .await
        .customers_as("acme", "writer", &["sales_rep"]);
    client
        .create_customer(new_customer("After the restart"))
        .await
        .unwrap();
    let database = events_in_database(&app).await;
    let total: i64 = database.values().sum();
    let seen = consume_all(&nats, &target, total, Duration::from_secs(10)).await;
    assert_exactly_once(&seen, &database);
    cursors_reach(&app, &database).await;

    // A crash between acknowledgements and their cursor update, as the relay sees it on restart:
    // the cursors fall back. What is sent again is dropped by the stream, and the cursors return.
    let store = app.store().await;
    let conn = store.conn();
    conn.execute_unprepared("UPDATE event_relay_cursor SET published_sequence = 3")
        .await
        .unwrap();
    let mut client = attached(&c)
        .await
        .customers_as("acme", "writer", &["sales_rep"]);
    client
        .create_customer(new_customer("After the rewind"))
        .await
        .unwrap();
    let database = events_in_database(&app).await;
    let total: i64 = database.values().sum();
    cursors_reach(&app, &database).await;
    let seen = consume_all(&nats, &target, total, Duration::from_secs(10)).await;
    assert_exactly_once(&seen, &database);
    let resent = database.values().map(|n| n - 3).sum::<i64>() - 1;
    let started = Instant::now();
    while duplicates_in(&c.log()) != resent as u64 {
        assert!(started.elapsed() < Duration::from_secs(5), "{}", c.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    delete_stream(&nats, &target).await;
}

const MUTATIONS: usize = 2000;
const WRITERS: usize = 6;
const KILLS: usize = 4;

fn random_below(n: u32) -> u32 {
    getrandom::u32().unwrap() % n
}

/// Writers create customers in three tenants through the server while it is killed (SIGKILL)
/// four times at random points and restarted; the stream then holds exactly 1..=N per tenant,
/// N being the tenant's events in the database.
async fn kill_9_during_2000_mutations_loses_and_repeats_nothing(app: TestApp) {
    let Some((url, nats)) = machine_nats().await else {
        return;
    };
    let target = Target::new();
    let env = target.env(&url, "1s");
    let mut kill_points: Vec<usize> = (0..KILLS)
        .map(|_| 100 + random_below((MUTATIONS - 200) as u32) as usize)
        .collect();
    kill_points.sort();
    let done = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let tenants = ["acme", "globex", "initech"];
    let started = Instant::now();
    let mut server = None;
    let mut logs = Vec::new();
    for round in 0..=KILLS {
        let mut process =
            ServerProcess::start(app.db, &app.database_url, app.schema.as_deref(), &env).await;
        let via = attached(&process).await;
        let stop_at = kill_points.get(round).copied().unwrap_or(MUTATIONS);
        let writers: Vec<_> = (0..WRITERS)
            .map(|w| {
                let mut client = via.customers_as(tenants[w % 3], "writer", &["sales_rep"]);
                let (done, failed) = (done.clone(), failed.clone());
                tokio::spawn(async move {
                    let mut i = 0;
                    while done.load(Ordering::SeqCst) < stop_at {
                        i += 1;
                        let created = client
                            .create_customer(new_customer(&format!("W{w} r{round} #{i}")))
                            .await;
                        if created.is_ok() {
                            done.fetch_add(1, Ordering::SeqCst);
                        } else {
                            failed.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                })
            })
            .collect();
        if round < KILLS {
            // Killed with the writers' calls in flight, and the relay wherever it is.
            while done.load(Ordering::SeqCst) < stop_at {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            process.kill().await;
            logs.push(process.log());
        }
        for writer in writers {
            writer.await.unwrap();
        }
        server = Some(process);
    }
    let database = events_in_database(&app).await;
    let total: i64 = database.values().sum();
    let seen = consume_all(&nats, &target, total, Duration::from_secs(30)).await;
    assert_exactly_once(&seen, &database);
    let server: ServerProcess = server.unwrap();
    logs.push(server.log());
    assert!(logs.iter().all(|log| !log.contains("panicked")), "{logs:?}");
    // What the relays sent again after the kills, and the stream dropped by its message id.
    let resent: u64 = logs.iter().map(|log| duplicates_in(log)).sum();
    figure(format!(
        "nats relay crash test ({:?}): {} successful creates from {WRITERS} writers, {} cut by the kills, SIGKILL at {kill_points:?}; {resent} events sent again and dropped as duplicates; JetStream holds exactly 1..=N per tenant {database:?} ({total} events), {:.1} s in all",
        app.db,
        done.load(Ordering::SeqCst),
        failed.load(Ordering::SeqCst),
        started.elapsed().as_secs_f64()
    ));
    delete_stream(&nats, &target).await;
}

/// A NATS server of this test's own, on a port and store directory kept across its restart.
struct PrivateNats {
    port: u16,
    dir: std::path::PathBuf,
    child: Option<tokio::process::Child>,
}

impl PrivateNats {
    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    async fn start(&mut self) {
        let child = tokio::process::Command::new("nats-server")
            .args([
                "-js",
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-sd",
            ])
            .arg(&self.dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("nats-server starts");
        self.child = Some(child);
        let started = Instant::now();
        while tokio::net::TcpStream::connect(("127.0.0.1", self.port))
            .await
            .is_err()
        {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "nats-server listens"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let pid = child.id().unwrap().to_string();
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &pid])
                .status();
            let _ = tokio::time::timeout(Duration::from_secs(10), child.wait()).await;
        }
    }
}

async fn scrape(addr: SocketAddr) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: test\r\n\r\n")
        .await
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    response
}

fn sample(metrics: &str, name: &str) -> Option<f64> {
    metrics
        .lines()
        .find(|line| {
            line.starts_with(&format!("{name}{{")) || line.starts_with(&format!("{name} "))
        })
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
}

/// NATS stops for 10 s: every write still succeeds, the backlog shows in the lag gauges and the
/// log, and once NATS is back the backlog is published, nothing lost or repeated.
async fn a_10_s_nats_outage_is_a_backlog_published_after(app: TestApp) {
    if std::process::Command::new("nats-server")
        .arg("--version")
        .output()
        .is_err()
    {
        skip_or_fail("nats-server is not on the PATH".into());
        return;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut nats_server = PrivateNats {
        port,
        dir: std::env::temp_dir().join(format!("crm-nats-{}", uuid::Uuid::now_v7().simple())),
        child: None,
    };
    nats_server.start().await;
    let target = Target::new();
    let mut env = target.env(&nats_server.url(), "2s");
    env.push(("CRM_METRICS_LISTEN", "127.0.0.1:0".into()));
    let process =
        ServerProcess::start(app.db, &app.database_url, app.schema.as_deref(), &env).await;
    let metrics = process.metrics_addr.expect("metrics address printed");
    let via = attached(&process).await;
    let mut client = via.customers_as("acme", "writer", &["sales_rep"]);
    for i in 0..10 {
        client
            .create_customer(new_customer(&format!("Before {i}")))
            .await
            .unwrap();
    }
    let nats_url = nats_server.url();
    let connect =
        || async { jetstream::new(async_nats::connect(nats_url.as_str()).await.unwrap()) };
    {
        let nats = connect().await;
        let database = events_in_database(&app).await;
        consume_all(
            &nats,
            &target,
            database.values().sum(),
            Duration::from_secs(10),
        )
        .await;
    }

    nats_server.stop().await;
    let outage = Instant::now();
    let mut written = 0;
    let (mut backlog, mut lag) = (0.0f64, 0.0f64);
    while outage.elapsed() < Duration::from_secs(10) {
        client
            .create_customer(new_customer(&format!("During {written}")))
            .await
            .expect("the service keeps serving while NATS is down");
        written += 1;
        let scraped = scrape(metrics).await;
        backlog = backlog.max(sample(&scraped, "crm_events_relay_backlog").unwrap_or(0.0));
        lag = lag.max(sample(&scraped, "crm_events_relay_lag_seconds").unwrap_or(0.0));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        backlog >= 10.0 && lag >= 5.0,
        "the gauges show the backlog: {backlog} events, {lag} s"
    );
    assert!(
        process.log().contains("event relay behind"),
        "{}",
        process.log()
    );
    nats_server.start().await;
    let back = Instant::now();
    let nats = connect().await;
    let database = events_in_database(&app).await;
    let total: i64 = database.values().sum();
    let seen = consume_all(&nats, &target, total, Duration::from_secs(30)).await;
    assert_exactly_once(&seen, &database);
    figure(format!(
        "nats relay outage ({:?}): {written} creates served during 10 s without NATS; gauges peaked at {backlog} events / {lag:.1} s; all {total} events in JetStream {:.1} s after NATS came back",
        app.db,
        back.elapsed().as_secs_f64()
    ));
    // Caught up: the gauges fall back to zero.
    let started = Instant::now();
    loop {
        let scraped = scrape(metrics).await;
        if sample(&scraped, "crm_events_relay_backlog") == Some(0.0) {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "{scraped}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    nats_server.stop().await;
    let _ = std::fs::remove_dir_all(&nats_server.dir);
}
