//! Write runs of the load benchmark (issue 22): the service's writes against the raw SQL of the same
//! semantics on the same database, in the same repetitions, as ratios with their targets.
//!
//! A closed-loop tokio + tonic client, like examples/load_bench.rs (whose method it follows: N
//! calls in flight over 1/2/4 HTTP/2 channels, every latency recorded, the server's CPU per call
//! from /proc/PID/stat around each timed run, an idle gate before each repetition). Interleaved
//! `--reps` times, which of the service and the raw SQL goes first alternating:
//!
//! - `Health/Check` c=1 (the floor of the p50 target) and `GetCustomer` c=64 (CPU per read);
//! - `CreateCustomer` and `UpdateCustomer` at c=1/16/64, in one tenant and across 16 (each writer
//!   its own tenant, round robin), without and with a `request_id`; each against the raw SQL of
//!   scripts/bench-sql (`create`/`update`): on PostgreSQL pgbench runs the `.pgbench` script
//!   (`-M prepared -j 2`) with as many clients as calls in flight up to the server's pool size
//!   (8, `--raw-connections`: more backends queued on one head row commit less, so they would
//!   be no ceiling), on SQLite this program runs the `.sqlite.sql` file from as many tasks over a
//!   pool of the server's size (8), computing the chain hash with the service's own function;
//! - the plain INSERT of the customer row alone (`insert-only`) at c=64: the table's ceiling;
//! - a mix at c=64 of 90 % GetCustomer and 10 % CreateCustomer callers (every tenth worker
//!   creates, the others read): the reads' rate against their rate alone;
//! - `BatchCreateCustomers` of `--batch-size` customers, c=1 and c=4, against one multi-row
//!   INSERT each of customers, audit events (the chain computed here) and outbox rows plus the
//!   head's update, in one transaction; skipped, and said so, while the server answers
//!   UNIMPLEMENTED.
//!
//! PostgreSQL's autovacuum may be off (it is on the machine these figures come from): every write
//! updates its tenant's `audit_head` row, whose dead versions the server vacuums itself every
//! 10 s. Before each raw run this program runs the same `VACUUM audit_head`, so both sides start
//! from a vacuumed head.
//!
//! `--long N`: only the one-tenant Create run at c=64, N times, calls/s per run (and the head's
//! dead rows on PostgreSQL): a decay run after run shows there.
//!
//! Driven by scripts/bench.sh (`--writes`, and in every mode), which makes the database and starts
//! and stops the server. Only loopback; every run bounded in time.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use clap::Parser;
use crm_service::auth::{TokenRequest, mint};
use crm_service::domain::audit::{AuditEvent, GENESIS, chain_hash};
use crm_service::proto::crm::v1 as pb;
use crm_service::proto::crm::v1::audit_service_client::AuditServiceClient;
use crm_service::proto::crm::v1::customer_service_client::CustomerServiceClient;
use sea_orm::sqlx::{self, Row};
use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Request, Status};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;
use uuid::Uuid;

/// The writers' tenants: `wbench0` … `wbench15` (one-tenant runs use `wbench0`).
const TENANT_PREFIX: &str = "wbench";
/// The token's subject: the owner of what the writers create, the audit events' actor.
const WRITER: &str = "writer";
/// The server's pool size (`CRM_DATABASE_MAX_CONNECTIONS`' default): the raw SQLite driver's too.
const SERVER_POOL: usize = 8;
/// No timed run longer than this.
const MAX_RUN: Duration = Duration::from_secs(120);

#[derive(Debug, Parser)]
#[command(about = "Write runs of the load benchmark (see scripts/bench.sh --writes)")]
struct Args {
    /// Database label for the report (SQLite, PostgreSQL).
    #[arg(long)]
    label: String,
    /// Server address (must be loopback).
    #[arg(long)]
    addr: SocketAddr,
    /// Server process id (CPU time from /proc).
    #[arg(long)]
    pid: u32,
    /// The server's CRM_JWT_SECRET.
    #[arg(long)]
    secret: String,
    /// The server's database: sqlite://FILE or postgres://…
    #[arg(long)]
    database_url: String,
    /// PostgreSQL schema of the server's tables.
    #[arg(long)]
    database_schema: Option<String>,
    /// Directory of the raw SQL files.
    #[arg(long, default_value = "scripts/bench-sql")]
    sql_dir: PathBuf,
    /// Repetitions of the interleaved runs.
    #[arg(long, default_value_t = 3)]
    reps: usize,
    /// Seconds of each timed run.
    #[arg(long, default_value_t = 3.0)]
    duration: f64,
    /// Seconds of warm-up before each timed run (not counted).
    #[arg(long, default_value_t = 0.5)]
    warmup: f64,
    /// Tenants of the spread runs.
    #[arg(long, default_value_t = 16)]
    tenants: usize,
    /// Customers per tenant that the Update runs update (made before the runs).
    #[arg(long, default_value_t = 1000)]
    targets: usize,
    /// Customers per BatchCreateCustomers call and per raw multi-row transaction (0: no batch run).
    #[arg(long, default_value_t = 1000)]
    batch_size: usize,
    /// Calls per batch worker in each repetition.
    #[arg(long, default_value_t = 3)]
    batch_calls: usize,
    /// Exit 1 if a target is missed. A failed call always exits 1.
    #[arg(long)]
    enforce: bool,
    /// Seconds each repetition waits at most for the machine to be ≥ 85 % idle (0: no wait).
    #[arg(long, default_value_t = 60.0)]
    idle_wait: f64,
    /// Calls in flight of the write runs; the highest also of GetCustomer, the mix and the plain
    /// INSERT, and the one the targets are judged at. pgbench opens as many connections.
    #[arg(long, value_delimiter = ',', default_values_t = [1, 16, 64])]
    concurrency: Vec<usize>,
    /// Only the one-tenant Create run at the highest concurrency, this many times (no raw SQL,
    /// no ratios).
    #[arg(long, default_value_t = 0)]
    long: usize,
    /// PostgreSQL: pgbench's clients (connections) at most, whatever the calls in flight: the
    /// server's pool, so the database sees as many transactions at once from either side (0: as
    /// many clients as calls in flight; with 64 backends queued on one tenant's head row,
    /// PostgreSQL commits fewer writes than with 8, so that is no ceiling). SQLite's raw tasks
    /// always share 8 connections.
    #[arg(long, default_value_t = SERVER_POOL)]
    raw_connections: usize,
    /// PostgreSQL without pgbench installed (bench.sh --ci only): the raw runs there are skipped.
    #[arg(long)]
    no_pgbench: bool,
}

// ---- helpers (as in examples/load_bench.rs) ---------------------------------------------------

fn tenant(t: usize) -> String {
    format!("{TENANT_PREFIX}{t}")
}

/// The Update runs' customer `k` (1 …) of every tenant: made before the runs with known ids, so
/// that pgbench can name them (update.pgbench computes the same).
fn target_id(k: usize) -> Uuid {
    Uuid::from_str(&format!("00000000-0000-7000-8000-{k:012x}")).expect("uuid")
}

fn bearer(secret: &str, tenant: &str) -> MetadataValue<Ascii> {
    bearer_as(secret, tenant, "sales_rep")
}

fn bearer_as(secret: &str, tenant: &str, role: &str) -> MetadataValue<Ascii> {
    let token = mint(
        secret.as_bytes(),
        &TokenRequest {
            tenant: tenant.into(),
            subject: WRITER.into(),
            roles: vec![role.into()],
            ttl: Duration::from_secs(6 * 3600),
            issuer: None,
            audience: None,
            claims: Default::default(),
        },
    )
    .expect("token");
    format!("Bearer {token}").parse().expect("ascii token")
}

fn authed<T>(message: T, auth: &MetadataValue<Ascii>) -> Request<T> {
    let mut request = Request::new(message);
    request.metadata_mut().insert("authorization", auth.clone());
    request
}

async fn connect_channels(addr: SocketAddr) -> Result<Vec<Channel>, tonic::transport::Error> {
    let mut channels = Vec::new();
    for _ in 0..4 {
        channels.push(
            Endpoint::from_shared(format!("http://{addr}"))?
                .tcp_nodelay(true)
                .connect()
                .await?,
        );
    }
    Ok(channels)
}

fn channels_for(concurrency: usize) -> usize {
    match concurrency {
        1 => 1,
        2..=16 => 2,
        _ => 4,
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn secs(s: f64) -> Duration {
    let d = Duration::from_secs_f64(s.max(0.0));
    assert!(d <= MAX_RUN, "runs are capped at {MAX_RUN:?}");
    d
}

fn median(values: &[f64]) -> f64 {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| !x.is_nan()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// The q-quantile (nearest rank) of sorted latencies, in ms.
fn quantile(sorted: &[Duration], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    ms(sorted[rank - 1])
}

/// SplitMix64.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// utime + stime of the server process (all its threads), in µs.
fn server_cpu_us(pid: u32, clk_tck: f64) -> f64 {
    let stat =
        std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("the server process is gone");
    let rest = &stat[stat.rfind(')').expect("stat format") + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap_or(f64::NAN)
        + fields[12].parse::<f64>().unwrap_or(f64::NAN);
    ticks * 1e6 / clk_tck
}

fn clk_tck() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

fn machine_jiffies() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let fields: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    let total: u64 = fields.iter().take(8).sum();
    let idle = fields.get(3).copied().unwrap_or(0) + fields.get(4).copied().unwrap_or(0);
    (total - idle, total)
}

/// Waits (at most `limit`) until the machine is ≥ 85 % idle over 2 s; returns the busy share.
async fn wait_idle(limit: Duration) -> f64 {
    let started = Instant::now();
    loop {
        let (busy0, total0) = machine_jiffies();
        tokio::time::sleep(Duration::from_secs(2)).await;
        let (busy1, total1) = machine_jiffies();
        let busy = (busy1 - busy0) as f64 / (total1 - total0).max(1) as f64;
        if busy <= 0.15 || started.elapsed() >= limit {
            return busy;
        }
    }
}

fn assert_local_database(url: &str) {
    if url.starts_with("sqlite:") {
        return;
    }
    let opts = sqlx::postgres::PgConnectOptions::from_str(url).expect("a postgres:// URL");
    let host = opts.get_host();
    let local = host.starts_with('/')
        || host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    assert!(local, "the database must be on loopback, not {host}");
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex32(text: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = text
            .get(2 * i..2 * i + 2)
            .and_then(|h| u8::from_str_radix(h, 16).ok())
            .unwrap_or(0);
    }
    out
}

// ---- figures ----------------------------------------------------------------------------------

/// One timed run.
#[derive(Debug, Clone, Copy)]
struct Stats {
    calls: usize,
    errors: usize,
    rps: f64,
    p50: f64,
    p99: f64,
    /// Server CPU µs per call (NaN for raw SQL).
    cpu: f64,
    /// The mix's GetCustomer calls a second.
    reads_rps: f64,
}

impl Stats {
    fn from_latencies(mut all: Vec<Duration>, errors: usize, timed: Duration, cpu_us: f64) -> Self {
        all.sort_unstable();
        let calls = all.len();
        Stats {
            calls,
            errors,
            rps: calls as f64 / timed.as_secs_f64(),
            p50: quantile(&all, 0.50),
            p99: quantile(&all, 0.99),
            cpu: cpu_us / calls.max(1) as f64,
            reads_rps: f64::NAN,
        }
    }
}

#[derive(Default)]
struct Results {
    runs: BTreeMap<String, Vec<Stats>>,
    order: Vec<String>,
}

impl Results {
    fn add(&mut self, name: &str, stats: Stats) {
        println!(
            "   {name:<46} {:>8.0} calls/s  p50 {:>7.2} ms  p99 {:>8.2} ms  cpu {:>6} µs/call  n {:>6}{}",
            stats.rps,
            stats.p50,
            stats.p99,
            if stats.cpu.is_nan() {
                "—".to_owned()
            } else {
                format!("{:.0}", stats.cpu)
            },
            stats.calls,
            if stats.errors > 0 {
                format!("  ERRORS {}", stats.errors)
            } else {
                String::new()
            }
        );
        if !self.runs.contains_key(name) {
            self.order.push(name.to_owned());
        }
        self.runs.entry(name.to_owned()).or_default().push(stats);
    }

    fn get(&self, name: &str) -> &[Stats] {
        self.runs.get(name).map_or(&[], Vec::as_slice)
    }

    fn per_rep(&self, a: &str, b: &str, f: impl Fn(&Stats, &Stats) -> f64) -> Vec<f64> {
        self.get(a)
            .iter()
            .zip(self.get(b))
            .map(|(x, y)| f(x, y))
            .collect()
    }

    fn errors(&self) -> usize {
        self.runs.values().flatten().map(|s| s.errors).sum()
    }
}

// ---- the service's side -----------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Write {
    Create,
    Update,
}

impl Write {
    fn name(self) -> &'static str {
        match self {
            Write::Create => "Create",
            Write::Update => "Update",
        }
    }

    fn file(self) -> &'static str {
        match self {
            Write::Create => "create",
            Write::Update => "update",
        }
    }
}

#[derive(Clone, Copy, Debug)]
enum Op {
    Health,
    Get,
    Write {
        write: Write,
        rid: bool,
    },
    /// 90 % GetCustomer, 10 % CreateCustomer.
    Mixed,
}

/// What one closed-loop worker needs: its clients, tenant, and the Update targets it owns
/// (target k and the version it is at), so that its etag is always the current one.
struct Worker {
    health: HealthClient<Channel>,
    customers: CustomerServiceClient<Channel>,
    auth: MetadataValue<Ascii>,
    id: usize,
    rng: Rng,
    n: u64,
    targets: Vec<(usize, i64)>,
    next_target: usize,
    get_ids: Arc<Vec<Uuid>>,
}

impl Worker {
    fn new_customer(&mut self) -> pb::Customer {
        self.n += 1;
        pb::Customer {
            name: format!("Writer {} customer {}-{}", self.id, self.n, self.rng.next()),
            email: format!("w{}.{}.{}@example.com", self.id, self.n, self.rng.next()),
            phone: "+1 555 0100".into(),
            lifecycle_stage: pb::LifecycleStage::Lead as i32,
            ..Default::default()
        }
    }

    fn request_id(&self, rid: bool) -> String {
        if rid {
            Uuid::now_v7().to_string()
        } else {
            String::new()
        }
    }

    /// One call: Ok(true) if it was a read.
    async fn call(&mut self, op: Op) -> Result<bool, Status> {
        match op {
            Op::Health => self
                .health
                .check(HealthCheckRequest {
                    service: String::new(),
                })
                .await
                .map(|_| false),
            Op::Get => self.get().await.map(|()| true),
            // Every tenth worker writes, the others read: reads and writes come from different
            // callers, as they do in service, so a read never waits behind its own caller's
            // write (a per-call draw would make each reader's rate that of the writes).
            Op::Mixed => {
                if self.id.is_multiple_of(10) {
                    self.create(false).await.map(|()| false)
                } else {
                    self.get().await.map(|()| true)
                }
            }
            Op::Write {
                write: Write::Create,
                rid,
            } => self.create(rid).await.map(|()| false),
            Op::Write {
                write: Write::Update,
                rid,
            } => self.update(rid).await.map(|()| false),
        }
    }

    async fn get(&mut self) -> Result<(), Status> {
        let id = self.get_ids[(self.rng.next() % self.get_ids.len() as u64) as usize];
        let found = self
            .customers
            .get_customer(authed(
                pb::GetCustomerRequest {
                    customer_id: id.to_string(),
                },
                &self.auth,
            ))
            .await?
            .into_inner()
            .customer;
        match found {
            Some(c) if c.id == id.to_string() => Ok(()),
            _ => Err(Status::internal("wrong or no customer")),
        }
    }

    async fn create(&mut self, rid: bool) -> Result<(), Status> {
        let customer = self.new_customer();
        let request = pb::CreateCustomerRequest {
            customer: Some(customer),
            request_id: self.request_id(rid),
        };
        self.customers
            .create_customer(authed(request, &self.auth))
            .await
            .map(|_| ())
    }

    async fn update(&mut self, rid: bool) -> Result<(), Status> {
        if self.targets.is_empty() {
            return Err(Status::internal("no customer to update"));
        }
        let slot = self.next_target % self.targets.len();
        self.next_target += 1;
        let (k, version) = self.targets[slot];
        self.n += 1;
        let request = pb::UpdateCustomerRequest {
            customer: Some(pb::Customer {
                id: target_id(k).to_string(),
                name: format!("Updated {} {}", self.id, self.n),
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["name".into()],
            }),
            etag: version.to_string(),
            request_id: self.request_id(rid),
        };
        let updated = self
            .customers
            .update_customer(authed(request, &self.auth))
            .await?
            .into_inner()
            .customer
            .ok_or_else(|| Status::internal("no customer"))?;
        self.targets[slot].1 = updated
            .etag
            .parse()
            .map_err(|_| Status::internal("etag not a version"))?;
        Ok(())
    }
}

struct Service {
    channels: Vec<Channel>,
    pid: u32,
    clk_tck: f64,
    bearers: Vec<MetadataValue<Ascii>>,
    get_ids: Arc<Vec<Uuid>>,
}

impl Service {
    /// Closed loop: `concurrency` workers over `tenants` tenants (worker w in tenant w mod
    /// tenants), warm-up not recorded; `versions` are the Update targets' current versions.
    #[allow(clippy::too_many_arguments)]
    async fn closed_loop(
        &self,
        op: Op,
        concurrency: usize,
        tenants: usize,
        versions: &HashMap<(usize, usize), i64>,
        targets: usize,
        warmup: Duration,
        duration: Duration,
    ) -> Stats {
        let nchan = channels_for(concurrency).min(self.channels.len());
        let start = tokio::time::Instant::now();
        let (warm_end, end) = (start + warmup, start + warmup + duration);
        let mut tasks = Vec::with_capacity(concurrency);
        for w in 0..concurrency {
            let t = w % tenants;
            // The workers of tenant t share its targets: worker j of m takes every m-th.
            let (j, m) = (w / tenants, (concurrency - t).div_ceil(tenants));
            let owned: Vec<(usize, i64)> = (1..=targets)
                .filter(|k| (k - 1) % m == j)
                .map(|k| (k, versions.get(&(t, k)).copied().unwrap_or(1)))
                .collect();
            let channel = self.channels[w % nchan].clone();
            let mut worker = Worker {
                health: HealthClient::new(channel.clone()),
                customers: CustomerServiceClient::new(channel),
                auth: self.bearers[t].clone(),
                id: w,
                rng: Rng(0x5EED_0000 + w as u64 + 7919 * Utc::now().timestamp_micros() as u64),
                n: 0,
                targets: owned,
                next_target: 0,
                get_ids: self.get_ids.clone(),
            };
            tasks.push(tokio::spawn(async move {
                let (mut latencies, mut errors, mut reads) = (Vec::with_capacity(16_384), 0, 0);
                let mut first_error = None;
                loop {
                    let started = tokio::time::Instant::now();
                    if started >= end {
                        break;
                    }
                    let outcome = worker.call(op).await;
                    let elapsed = started.elapsed();
                    if started >= warm_end {
                        latencies.push(elapsed);
                        match outcome {
                            Ok(true) => reads += 1,
                            Ok(false) => {}
                            Err(status) => {
                                errors += 1;
                                first_error.get_or_insert(status);
                            }
                        }
                    }
                }
                (latencies, errors, reads, first_error)
            }));
        }
        tokio::time::sleep_until(warm_end).await;
        let cpu_before = server_cpu_us(self.pid, self.clk_tck);
        let timed_start = tokio::time::Instant::now();
        tokio::time::sleep_until(end).await;
        let cpu_after = server_cpu_us(self.pid, self.clk_tck);
        let timed = timed_start.elapsed();
        let (mut all, mut errors, mut reads) = (Vec::new(), 0, 0usize);
        for task in tasks {
            let (latencies, task_errors, task_reads, first_error) = task.await.expect("load task");
            if let Some(status) = first_error {
                eprintln!("   error: {status}");
            }
            all.extend(latencies);
            errors += task_errors;
            reads += task_reads;
        }
        let mut stats = Stats::from_latencies(all, errors, timed, cpu_after - cpu_before);
        stats.reads_rps = reads as f64 / timed.as_secs_f64();
        stats
    }
}

// ---- the raw SQL's side -----------------------------------------------------------------------

/// The raw side's connection(s): a PostgreSQL pool for setup and vacuum (the runs are pgbench's),
/// or the SQLite pool the raw tasks share.
enum Db {
    Pg {
        pool: sqlx::PgPool,
        url: String,
        schema: Option<String>,
        pgbench: bool,
        /// pgbench's clients at most (0: no cap).
        connections: usize,
    },
    Lite(sqlx::SqlitePool),
}

/// A statement of a `.sqlite.sql` file.
struct Statement {
    text: &'static str,
    request_id_only: bool,
}

/// Splits a `.sqlite.sql` file into statements (one ends with `;` at the end of a line); a
/// statement after a `-- request_id` line runs only with a request_id.
fn read_statements(path: &Path) -> Result<Vec<Statement>, Box<dyn std::error::Error>> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut statements = Vec::new();
    let (mut current, mut request_id_only) = (String::new(), false);
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed == "-- request_id" {
            request_id_only = true;
            continue;
        }
        if trimmed.starts_with("--") || (trimmed.is_empty() && current.is_empty()) {
            continue;
        }
        current.push_str(line);
        current.push('\n');
        if trimmed.ends_with(';') {
            statements.push(Statement {
                text: Box::leak(std::mem::take(&mut current).into_boxed_str()),
                request_id_only,
            });
            request_id_only = false;
        }
    }
    Ok(statements)
}

/// The arguments of the `.sqlite.sql` files, $1 … $19 (see create.sqlite.sql's header).
#[derive(Clone)]
enum Arg {
    Text(String),
    Id(Uuid),
    MaybeId(Option<Uuid>),
    Time(DateTime<Utc>),
    Int(i64),
}

/// One raw write in progress: what its statements bind, and the head and version read on the way.
struct RawWrite {
    tenant: String,
    id: Uuid,
    now: DateTime<Utc>,
    name: String,
    email: String,
    request_id: Option<Uuid>,
    head: Option<(i64, [u8; 32], i64)>,
    version: i64,
    hash: [u8; 32],
    action: &'static str,
    summary: &'static str,
}

impl RawWrite {
    fn args(&self) -> Vec<Arg> {
        let (sequence, previous, event_sequence) = self.head.unwrap_or((0, GENESIS, 0));
        let email = self.email.to_lowercase();
        let answer = format!(
            "{{\"id\":\"{}\",\"name\":\"{}\",\"email\":\"{}\",\"phone\":\"+1 555 0100\",\"owner_id\":\"{WRITER}\",\
             \"lifecycle_stage\":\"Lead\",\"status\":\"Active\",\"legal_hold\":false,\"key_account\":false,\
             \"create_time\":\"{}\",\"update_time\":\"{}\",\"version\":{}}}",
            self.id,
            self.name,
            self.email,
            self.now.to_rfc3339(),
            self.now.to_rfc3339(),
            self.version + 1
        );
        let fingerprint = {
            use sha2::{Digest, Sha256};
            hex(&Sha256::digest(answer.as_bytes()))
        };
        vec![
            Arg::Text(self.tenant.clone()),
            Arg::Id(self.id),
            Arg::Time(self.now),
            Arg::Text(self.name.clone()),
            Arg::Text(self.email.clone()),
            Arg::Text(format!(
                "{}\u{1}{}\u{1}+1 555 0100",
                self.name.to_lowercase(),
                email
            )),
            Arg::Text(email),
            Arg::Text(self.name.to_lowercase()),
            Arg::MaybeId(self.request_id),
            Arg::Int(sequence + 1),
            Arg::Text(hex(&previous)),
            Arg::Text(hex(&self.hash)),
            Arg::Int(event_sequence + 1),
            Arg::Text(fingerprint),
            Arg::Text(answer),
            Arg::Text(WRITER.into()),
            Arg::Text("+1 555 0100".into()),
            Arg::Text("+15550100".into()),
            Arg::Int(self.version),
        ]
    }

    /// The audit event this write appends after `previous`, hashed as the service hashes it.
    fn chain(&mut self) {
        let (sequence, previous, _) = self.head.unwrap_or((0, GENESIS, 0));
        let event = AuditEvent {
            tenant: self.tenant.clone(),
            sequence: sequence + 1,
            time: self.now,
            actor: WRITER.into(),
            action: self.action.into(),
            target_type: "customer".into(),
            target_id: self.id,
            customer_id: Some(self.id),
            request_id: self.request_id,
            trace_id: String::new(),
            summary: self.summary.into(),
            previous_hash: previous,
            hash: GENESIS,
        };
        self.hash = chain_hash(&previous, &event);
    }
}

fn bind_all<'q>(
    mut query: sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments>,
    args: &[Arg],
) -> sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments> {
    for arg in args {
        query = match arg {
            Arg::Text(s) => query.bind(s.clone()),
            Arg::Id(id) => query.bind(*id),
            Arg::MaybeId(id) => query.bind(*id),
            Arg::Time(t) => query.bind(*t),
            Arg::Int(i) => query.bind(*i),
        };
    }
    query
}

/// Runs one `.sqlite.sql` write on `conn`; a failed statement rolls the transaction back.
async fn sqlite_write(
    conn: &mut sqlx::SqliteConnection,
    statements: &[Statement],
    write: &mut RawWrite,
) -> Result<(), sqlx::Error> {
    let mut args = write.args();
    let mut in_transaction = false;
    for statement in statements {
        if statement.request_id_only && write.request_id.is_none() {
            continue;
        }
        let text = statement.text.trim_start();
        let outcome = async {
            if text.starts_with("SELECT") {
                let row = bind_all(sqlx::query(statement.text), &args)
                    .fetch_optional(&mut *conn)
                    .await?;
                if let Some(row) = row {
                    if text.contains("FROM audit_head") {
                        let hash: String = row.try_get("hash")?;
                        write.head = Some((
                            row.try_get("sequence")?,
                            unhex32(&hash),
                            row.try_get("event_sequence")?,
                        ));
                        write.chain();
                    } else if text.contains("FROM customer ") {
                        write.version = row.try_get("version")?;
                    }
                    args = write.args();
                }
                Ok(())
            } else {
                bind_all(sqlx::query(statement.text), &args)
                    .execute(&mut *conn)
                    .await
                    .map(|_| ())
            }
        }
        .await;
        if text.starts_with("BEGIN") {
            in_transaction = outcome.is_ok();
        }
        if let Err(e) = outcome {
            if in_transaction {
                let _ = sqlx::query("ROLLBACK").execute(&mut *conn).await;
            }
            return Err(e);
        }
    }
    Ok(())
}

/// Which raw SQL: a write's file, or the plain INSERT of the row alone.
#[derive(Clone, Copy)]
enum RawOp {
    Write { write: Write, rid: bool },
    InsertOnly,
}

impl RawOp {
    fn file(self) -> &'static str {
        match self {
            RawOp::Write { write, .. } => write.file(),
            RawOp::InsertOnly => "insert-only",
        }
    }

    fn rid(self) -> bool {
        matches!(self, RawOp::Write { rid: true, .. })
    }
}

impl Db {
    async fn connect(
        url: &str,
        schema: Option<&str>,
        pgbench: bool,
        connections: usize,
    ) -> Result<Self, sqlx::Error> {
        use sqlx::pool::PoolOptions;
        if url.starts_with("sqlite:") {
            // As the server opens its file (src/store/mod.rs): a commit is synced before it returns.
            let options = sqlx::sqlite::SqliteConnectOptions::from_str(url)?
                .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
                .synchronous(sqlx::sqlite::SqliteSynchronous::Full)
                .busy_timeout(Duration::from_secs(5))
                .foreign_keys(true);
            let pool = PoolOptions::new()
                .max_connections(SERVER_POOL as u32)
                .test_before_acquire(false)
                .connect_with(options)
                .await?;
            Ok(Db::Lite(pool))
        } else {
            let mut options = sqlx::postgres::PgConnectOptions::from_str(url)?;
            if let Some(schema) = schema {
                options = options.options([("search_path", schema)]);
            }
            // Setup, vacuum, and the raw batches (up to 4 at once); the raw runs are pgbench's.
            let pool = PoolOptions::new()
                .max_connections(4)
                .test_before_acquire(false)
                .connect_with(options)
                .await?;
            Ok(Db::Pg {
                pool,
                url: url.to_owned(),
                schema: schema.map(str::to_owned),
                pgbench,
                connections,
            })
        }
    }

    fn is_pg(&self) -> bool {
        matches!(self, Db::Pg { .. })
    }

    /// The tenants' audit heads (at genesis where new) and `targets` customers per tenant with
    /// known ids (target_id), version 1, unless there already.
    async fn setup(&self, tenants: usize, targets: usize) -> Result<(), sqlx::Error> {
        let now = Utc::now();
        let head = "INSERT INTO audit_head (tenant_id, sequence, hash, event_sequence) \
                    VALUES ($1, 0, $2, 0) ON CONFLICT (tenant_id) DO NOTHING";
        let customer = "INSERT INTO customer (tenant_id, id, name, phone, email, industry, owner_id, \
             lifecycle_stage, status, external_ref, legal_hold, search_text, create_time, update_time, \
             delete_time, purge_time, deletion_id, version, erase_time, key_account, match_email, \
             match_phone, match_ref, match_name) \
             VALUES ($1, $2, $3, '+1 555 0100', $4, NULL, $5, 'LEAD', 'ACTIVE', NULL, false, $6, $7, $7, \
             NULL, NULL, NULL, 1, NULL, false, $4, '+15550100', NULL, $8) \
             ON CONFLICT (tenant_id, id) DO NOTHING";
        macro_rules! fill {
            ($pool:expr, $begin:expr) => {{
                let mut conn = $pool.acquire().await?;
                sqlx::query($begin).execute(&mut *conn).await?;
                for t in 0..tenants {
                    let tenant = tenant(t);
                    sqlx::query(head)
                        .bind(&tenant)
                        .bind(hex(&GENESIS))
                        .execute(&mut *conn)
                        .await?;
                    for k in 1..=targets {
                        let (name, email) = (format!("Target {k}"), format!("t{k}@example.com"));
                        sqlx::query(customer)
                            .bind(&tenant)
                            .bind(target_id(k))
                            .bind(&name)
                            .bind(&email)
                            .bind(WRITER)
                            .bind(format!("target {k}\u{1}{email}\u{1}+1 555 0100"))
                            .bind(now)
                            .bind(name.to_lowercase())
                            .execute(&mut *conn)
                            .await?;
                    }
                }
                sqlx::query("COMMIT").execute(&mut *conn).await?;
            }};
        }
        match self {
            Db::Pg { pool, .. } => fill!(pool, "BEGIN"),
            Db::Lite(pool) => fill!(pool, "BEGIN IMMEDIATE"),
        }
        Ok(())
    }

    /// The Update targets' current versions, by (tenant, k).
    async fn versions(
        &self,
        tenants: usize,
        targets: usize,
    ) -> Result<HashMap<(usize, usize), i64>, sqlx::Error> {
        let ids: HashMap<Uuid, usize> = (1..=targets).map(|k| (target_id(k), k)).collect();
        let q = "SELECT id, version FROM customer WHERE tenant_id = $1 AND id <= $2";
        let mut versions = HashMap::new();
        for t in 0..tenants {
            let rows = match self {
                Db::Pg { pool, .. } => {
                    let rows = sqlx::query(q)
                        .bind(tenant(t))
                        .bind(target_id(targets))
                        .fetch_all(pool)
                        .await?;
                    rows.iter()
                        .map(|r| Ok((r.try_get::<Uuid, _>(0)?, r.try_get::<i64, _>(1)?)))
                        .collect::<Result<Vec<_>, sqlx::Error>>()?
                }
                Db::Lite(pool) => {
                    let rows = sqlx::query(q)
                        .bind(tenant(t))
                        .bind(target_id(targets))
                        .fetch_all(pool)
                        .await?;
                    rows.iter()
                        .map(|r| Ok((r.try_get::<Uuid, _>(0)?, r.try_get::<i64, _>(1)?)))
                        .collect::<Result<Vec<_>, sqlx::Error>>()?
                }
            };
            for (id, version) in rows {
                if let Some(k) = ids.get(&id) {
                    versions.insert((t, *k), version);
                }
            }
        }
        Ok(versions)
    }

    /// PostgreSQL: `VACUUM audit_head`, as the server's maintenance does every 10 s; the head's
    /// dead rows after it. Nothing on SQLite, which updates in place.
    async fn vacuum_heads(&self) -> Result<Option<i64>, sqlx::Error> {
        let Db::Pg { pool, .. } = self else {
            return Ok(None);
        };
        sqlx::query("VACUUM audit_head").execute(pool).await?;
        self.head_dead_rows().await
    }

    async fn head_dead_rows(&self) -> Result<Option<i64>, sqlx::Error> {
        let Db::Pg { pool, .. } = self else {
            return Ok(None);
        };
        let dead: i64 = sqlx::query(
            "SELECT n_dead_tup FROM pg_stat_user_tables \
             WHERE relname = 'audit_head' AND schemaname = current_schema()",
        )
        .fetch_optional(pool)
        .await?
        .map_or(Ok(0), |r| r.try_get(0))?;
        Ok(Some(dead))
    }

    /// The raw SQL of `op` from `concurrency` clients over `tenants` tenants for `duration`; None
    /// on PostgreSQL without pgbench.
    #[allow(clippy::too_many_arguments)]
    async fn run(
        &self,
        sql_dir: &Path,
        op: RawOp,
        concurrency: usize,
        tenants: usize,
        targets: usize,
        warmup: Duration,
        duration: Duration,
    ) -> Result<Option<Stats>, Box<dyn std::error::Error>> {
        self.vacuum_heads().await?;
        match self {
            Db::Pg { pgbench: false, .. } => Ok(None),
            Db::Pg {
                url,
                schema,
                connections,
                ..
            } => {
                let script = sql_dir.join(format!("{}.pgbench", op.file()));
                let clients = match *connections {
                    0 => concurrency,
                    cap => concurrency.min(cap),
                };
                pgbench(
                    url,
                    schema.as_deref(),
                    &script,
                    op.rid(),
                    clients,
                    tenants,
                    targets,
                    duration,
                )
                .await
                .map(Some)
            }
            Db::Lite(pool) => {
                let file = sql_dir.join(format!("{}.sqlite.sql", op.file()));
                let statements = Arc::new(read_statements(&file)?);
                Ok(Some(
                    sqlite_loop(
                        pool,
                        statements,
                        op,
                        concurrency,
                        tenants,
                        targets,
                        warmup,
                        duration,
                    )
                    .await,
                ))
            }
        }
    }
}

/// The raw SQLite closed loop: `concurrency` tasks, each running the file's statements on a
/// connection of the pool per write, as the server's handlers do.
#[allow(clippy::too_many_arguments)]
async fn sqlite_loop(
    pool: &sqlx::SqlitePool,
    statements: Arc<Vec<Statement>>,
    op: RawOp,
    concurrency: usize,
    tenants: usize,
    targets: usize,
    warmup: Duration,
    duration: Duration,
) -> Stats {
    let start = tokio::time::Instant::now();
    let (warm_end, end) = (start + warmup, start + warmup + duration);
    let mut tasks = Vec::new();
    for w in 0..concurrency {
        let (pool, statements) = (pool.clone(), statements.clone());
        tasks.push(tokio::spawn(async move {
            let mut rng = Rng(0xAB5E_0000 + w as u64 + Utc::now().timestamp_micros() as u64);
            let tenant = tenant(w % tenants);
            let (mut latencies, mut errors, mut first_error) = (Vec::new(), 0, None);
            let mut n = 0u64;
            loop {
                let started = tokio::time::Instant::now();
                if started >= end {
                    break;
                }
                n += 1;
                let (id, name, action, summary) = match op {
                    RawOp::Write {
                        write: Write::Update,
                        ..
                    } => (
                        target_id((rng.next() % targets.max(1) as u64) as usize + 1),
                        format!("Raw update {w} {n}"),
                        "customer.update",
                        "fields=name",
                    ),
                    _ => (
                        Uuid::now_v7(),
                        format!("Raw writer {w} customer {n}-{}", rng.next()),
                        "customer.create",
                        "created",
                    ),
                };
                let mut write = RawWrite {
                    tenant: tenant.clone(),
                    id,
                    now: Utc::now(),
                    email: format!("raw{w}.{n}.{}@example.com", rng.next()),
                    name,
                    request_id: op.rid().then(Uuid::now_v7),
                    head: None,
                    version: 0,
                    hash: GENESIS,
                    action,
                    summary,
                };
                let outcome = match pool.acquire().await {
                    Ok(mut conn) => sqlite_write(&mut conn, &statements, &mut write).await,
                    Err(e) => Err(e),
                };
                if started >= warm_end {
                    latencies.push(started.elapsed());
                    if let Err(e) = outcome {
                        errors += 1;
                        first_error.get_or_insert(e);
                    }
                }
            }
            (latencies, errors, first_error)
        }));
    }
    tokio::time::sleep_until(warm_end).await;
    let timed_start = tokio::time::Instant::now();
    tokio::time::sleep_until(end).await;
    let timed = timed_start.elapsed();
    let (mut all, mut errors) = (Vec::new(), 0);
    for task in tasks {
        let (latencies, task_errors, first_error) = task.await.expect("raw task");
        if let Some(e) = first_error {
            eprintln!("   raw SQL error: {e}");
        }
        all.extend(latencies);
        errors += task_errors;
    }
    Stats::from_latencies(all, errors, timed, f64::NAN)
}

/// pgbench on `script` (`-n -M prepared -c C -j 2`, -T seconds; under a second, 20 transactions
/// a client), the schema by PGOPTIONS; rate from its `tps`, p50/p99 from its per-transaction log.
#[allow(clippy::too_many_arguments)]
async fn pgbench(
    url: &str,
    schema: Option<&str>,
    script: &Path,
    rid: bool,
    concurrency: usize,
    tenants: usize,
    targets: usize,
    duration: Duration,
) -> Result<Stats, Box<dyn std::error::Error>> {
    let logs = std::env::temp_dir().join(format!("crm-write-load-{}", Uuid::now_v7()));
    std::fs::create_dir_all(&logs)?;
    let prefix = logs.join("pgbench");
    let mut command = tokio::process::Command::new("pgbench");
    command.args(["-n", "-M", "prepared", "-j", "2"]);
    command.args(["-c", &concurrency.to_string()]);
    if duration >= Duration::from_secs(1) {
        command.args(["-T", &duration.as_secs().to_string()]);
    } else {
        command.args(["-t", "20"]);
    }
    command.args(["-D", &format!("tenants={tenants}")]);
    command.args(["-D", &format!("rid={}", u8::from(rid))]);
    command.args(["-D", &format!("targets={}", targets.max(1))]);
    command.arg("-f").arg(script);
    command
        .arg("-l")
        .arg(format!("--log-prefix={}", prefix.display()));
    command.arg(url);
    if let Some(schema) = schema {
        command.env("PGOPTIONS", format!("-c search_path={schema}"));
    }
    let output = command
        .output()
        .await
        .map_err(|e| format!("cannot run pgbench: {e}"))?;
    let text = String::from_utf8_lossy(&output.stdout);
    let tps: Option<f64> = text
        .lines()
        .find_map(|l| l.strip_prefix("tps = "))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|tps| tps.parse().ok());
    let failed: usize = text
        .lines()
        .find_map(|l| l.strip_prefix("number of failed transactions: "))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let mut latencies = Vec::new();
    for entry in std::fs::read_dir(&logs)? {
        let log = std::fs::read_to_string(entry?.path())?;
        // client_id transaction_no time(µs) script_no time_epoch time_us
        latencies.extend(log.lines().filter_map(|l| {
            l.split_whitespace()
                .nth(2)
                .and_then(|us| us.parse::<u64>().ok())
                .map(Duration::from_micros)
        }));
    }
    let _ = std::fs::remove_dir_all(&logs);
    let (Some(tps), true) = (tps, output.status.success()) else {
        return Err(format!(
            "pgbench {} failed: {text}{}",
            script.display(),
            String::from_utf8_lossy(&output.stderr)
        )
        .into());
    };
    latencies.sort_unstable();
    Ok(Stats {
        calls: latencies.len(),
        errors: failed,
        rps: tps,
        p50: quantile(&latencies, 0.5),
        p99: quantile(&latencies, 0.99),
        cpu: f64::NAN,
        reads_rps: f64::NAN,
    })
}

// ---- BatchCreateCustomers ---------------------------------------------------------------------

/// The raw multi-row create of `size` customers in one transaction: one INSERT of the customer
/// rows, the head locked, one INSERT of the outbox rows, one of the audit events (their chain
/// computed here, as the service computes it in its process), the head moved; on PostgreSQL one
/// pg_notify after the commit. Chunked under the databases' bound-parameter limits.
async fn raw_batch(db: &Db, tenant: &str, size: usize) -> Result<(), sqlx::Error> {
    const CUSTOMER_COLUMNS: usize = 9;
    let now = Utc::now();
    let ids: Vec<Uuid> = (0..size).map(|_| Uuid::now_v7()).collect();
    let tuples = |columns: usize, rows: usize, pg: bool, tail: &str| -> String {
        (0..rows)
            .map(|r| {
                let params: Vec<String> = (1..=columns)
                    .map(|c| {
                        let n = r * columns + c;
                        if pg { format!("${n}") } else { format!("?{n}") }
                    })
                    .collect();
                format!("({}{tail})", params.join(", "))
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    let customer_sql = |rows: usize, pg: bool| {
        format!(
            "INSERT INTO customer (tenant_id, id, name, email, search_text, create_time, update_time, \
             match_name, match_email, phone, owner_id, lifecycle_stage, status, legal_hold, key_account, \
             version, match_phone) VALUES {}",
            tuples(
                CUSTOMER_COLUMNS,
                rows,
                pg,
                ", '+1 555 0100', 'writer', 'LEAD', 'ACTIVE', false, false, 1, '+15550100'"
            )
        )
    };
    let event_sql = |rows: usize, pg: bool| {
        format!(
            "INSERT INTO customer_event (tenant_id, sequence, customer_id, record_id, time, event_type, \
             record_type, action, counts) VALUES {}",
            tuples(
                5,
                rows,
                pg,
                ", 'CREATED', 'customer', 'customer.create', ''"
            )
        )
    };
    let audit_sql = |rows: usize, pg: bool| {
        format!(
            "INSERT INTO audit_event (tenant_id, sequence, time, target_id, customer_id, previous_hash, \
             hash, actor, action, target_type, trace_id, summary) VALUES {}",
            tuples(
                7,
                rows,
                pg,
                ", 'writer', 'customer.create', 'customer', '', 'created'"
            )
        )
    };
    // Chunks of 500 rows: 4,000 parameters at most, under both databases' limits.
    const CHUNK: usize = 500;
    macro_rules! batch {
        ($pool:expr, $begin:expr, $pg:expr, $lock:expr) => {{
            let mut tx = $pool.begin_with($begin).await?;
            for chunk in ids.chunks(CHUNK) {
                let text = customer_sql(chunk.len(), $pg);
                let mut q = sqlx::query(sqlx::AssertSqlSafe(text));
                for (i, id) in chunk.iter().enumerate() {
                    let name = format!("Batch raw {id} {i}");
                    let email = format!("b{id}@example.com");
                    q = q
                        .bind(tenant)
                        .bind(*id)
                        .bind(name.clone())
                        .bind(email.clone())
                        .bind(format!(
                            "{}\u{1}{email}\u{1}+1 555 0100",
                            name.to_lowercase()
                        ))
                        .bind(now)
                        .bind(now)
                        .bind(name.to_lowercase())
                        .bind(email);
                }
                q.execute(&mut *tx).await?;
            }
            let head = sqlx::query($lock)
                .bind(tenant)
                .fetch_one(&mut *tx)
                .await?;
            let (mut sequence, mut event_sequence): (i64, i64) =
                (head.try_get("sequence")?, head.try_get("event_sequence")?);
            let mut previous = unhex32(&head.try_get::<String, _>("hash")?);
            let first_event = event_sequence + 1;
            let mut chain = Vec::with_capacity(ids.len());
            for id in &ids {
                sequence += 1;
                let event = AuditEvent {
                    tenant: tenant.to_owned(),
                    sequence,
                    time: now,
                    actor: WRITER.into(),
                    action: "customer.create".into(),
                    target_type: "customer".into(),
                    target_id: *id,
                    customer_id: Some(*id),
                    request_id: None,
                    trace_id: String::new(),
                    summary: "created".into(),
                    previous_hash: previous,
                    hash: GENESIS,
                };
                let hash = chain_hash(&previous, &event);
                chain.push((sequence, hex(&previous), hex(&hash)));
                previous = hash;
            }
            for (n, chunk) in ids.chunks(CHUNK).enumerate() {
                let mut q = sqlx::query(sqlx::AssertSqlSafe(event_sql(chunk.len(), $pg)));
                for (i, id) in chunk.iter().enumerate() {
                    q = q
                        .bind(tenant)
                        .bind(first_event + (n * CHUNK + i) as i64)
                        .bind(*id)
                        .bind(*id)
                        .bind(now);
                }
                q.execute(&mut *tx).await?;
                let mut q = sqlx::query(sqlx::AssertSqlSafe(audit_sql(chunk.len(), $pg)));
                for (i, id) in chunk.iter().enumerate() {
                    let (seq, prev, hash) = &chain[n * CHUNK + i];
                    q = q
                        .bind(tenant)
                        .bind(*seq)
                        .bind(now)
                        .bind(*id)
                        .bind(*id)
                        .bind(prev.clone())
                        .bind(hash.clone());
                }
                q.execute(&mut *tx).await?;
            }
            event_sequence += ids.len() as i64;
            sqlx::query(
                "UPDATE audit_head SET sequence = $1, hash = $2, event_sequence = $3 WHERE tenant_id = $4",
            )
            .bind(sequence)
            .bind(hex(&previous))
            .bind(event_sequence)
            .bind(tenant)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
        }};
    }
    match db {
        Db::Pg { pool, .. } => {
            batch!(
                pool,
                "BEGIN",
                true,
                "SELECT sequence, hash, event_sequence FROM audit_head WHERE tenant_id = $1 FOR UPDATE"
            );
            sqlx::query("SELECT pg_notify('crm_customer_events', $1)")
                .bind(tenant)
                .execute(pool)
                .await?;
        }
        Db::Lite(pool) => batch!(
            pool,
            "BEGIN IMMEDIATE",
            false,
            "SELECT sequence, hash, event_sequence FROM audit_head WHERE tenant_id = ?1"
        ),
    }
    Ok(())
}

/// What the batch run measured: customers a second, per side and concurrency (`rpc` None while
/// the server answers UNIMPLEMENTED).
struct BatchFigures {
    concurrency: usize,
    rpc: Option<f64>,
    raw: f64,
}

/// `calls` BatchCreateCustomers of `size` customers from each of `concurrency` workers (tenant
/// wbench0), then as many raw multi-row transactions: customers a second of each (the raw SQL's
/// also when the server answers UNIMPLEMENTED).
async fn batch_run(
    service: &Service,
    db: &Db,
    size: usize,
    calls: usize,
    concurrency: usize,
) -> Result<BatchFigures, Box<dyn std::error::Error>> {
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..concurrency {
        let mut client =
            CustomerServiceClient::new(service.channels[w % service.channels.len()].clone())
                .max_decoding_message_size(64 << 20);
        let auth = service.bearers[0].clone();
        tasks.spawn(async move {
            for call in 0..calls {
                let requests = (0..size)
                    .map(|i| pb::CreateCustomerRequest {
                        customer: Some(pb::Customer {
                            name: format!("Batch {w} {call} {i} {}", Uuid::now_v7()),
                            email: format!("b{w}.{call}.{i}@example.com"),
                            phone: "+1 555 0100".into(),
                            lifecycle_stage: pb::LifecycleStage::Lead as i32,
                            ..Default::default()
                        }),
                        request_id: String::new(),
                    })
                    .collect();
                let created = client
                    .batch_create_customers(authed(
                        pb::BatchCreateCustomersRequest {
                            requests,
                            request_id: String::new(),
                        },
                        &auth,
                    ))
                    .await?
                    .into_inner();
                if created.customers.len() != size {
                    return Err(Status::internal(format!(
                        "created {} of {size}",
                        created.customers.len()
                    )));
                }
            }
            Ok(())
        });
    }
    let mut implemented = true;
    while let Some(done) = tasks.join_next().await {
        match done? {
            Ok(()) => {}
            Err(status) if status.code() == Code::Unimplemented => implemented = false,
            Err(status) => return Err(format!("BatchCreateCustomers: {status}").into()),
        }
    }
    let rpc =
        implemented.then(|| (concurrency * calls * size) as f64 / started.elapsed().as_secs_f64());
    db.vacuum_heads().await?;
    let started = Instant::now();
    let mut raw = Vec::new();
    for _ in 0..concurrency {
        raw.push(async {
            for _ in 0..calls {
                raw_batch(db, &tenant(0), size).await?;
            }
            Ok::<_, sqlx::Error>(())
        });
    }
    for outcome in futures_join_all(raw).await {
        outcome?;
    }
    let raw = (concurrency * calls * size) as f64 / started.elapsed().as_secs_f64();
    Ok(BatchFigures {
        concurrency,
        rpc,
        raw,
    })
}

/// Awaits the futures together (no futures crate here): each polled in turn by a local set.
async fn futures_join_all<F: Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut pinned: Vec<_> = futures.into_iter().map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = pinned.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (future, output) in pinned.iter_mut().zip(outputs.iter_mut()) {
            if output.is_none() {
                match future.as_mut().poll(cx) {
                    std::task::Poll::Ready(value) => *output = Some(value),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    outputs
        .into_iter()
        .map(|o| o.expect("polled to completion"))
        .collect()
}

// ---- the report -------------------------------------------------------------------------------

struct Check {
    name: String,
    target: String,
    values: Vec<f64>,
    limit: Option<(bool, f64)>,
}

impl Check {
    /// `at_least`: the median must be ≥ `limit` (else ≤).
    fn new(name: impl Into<String>, values: Vec<f64>, at_least: bool, limit: f64) -> Self {
        Self {
            name: name.into(),
            target: format!("{} {limit}", if at_least { "≥" } else { "≤" }),
            values,
            limit: Some((at_least, limit)),
        }
    }

    fn info(name: impl Into<String>, values: Vec<f64>, note: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            target: note.into(),
            values,
            limit: None,
        }
    }

    fn pass(&self) -> Option<bool> {
        let m = median(&self.values);
        self.limit
            .map(|(at_least, limit)| if at_least { m >= limit } else { m <= limit })
    }
}

fn fmt_num(v: f64) -> String {
    if v.is_nan() {
        "—".into()
    } else if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn run_name(side: &str, write: Write, c: usize, tenants: usize, rid: bool) -> String {
    format!(
        "{side} {} c={c} {}{}",
        write.name(),
        if tenants == 1 {
            "1 tenant".to_owned()
        } else {
            format!("{tenants} tenants")
        },
        if rid { " +request_id" } else { "" }
    )
}

// ---- main -------------------------------------------------------------------------------------

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    assert!(
        args.addr.ip().is_loopback(),
        "the load goes to loopback only, not {}",
        args.addr
    );
    assert_local_database(&args.database_url);
    let started = Instant::now();
    let (duration, warmup) = (secs(args.duration), secs(args.warmup));
    let spread = args.tenants.max(1);

    let label = args.label.clone();
    let levels: Vec<usize> = args
        .concurrency
        .iter()
        .copied()
        .filter(|&c| c > 0)
        .collect();
    let top = levels.iter().copied().max().unwrap_or(64);
    let targets = args.targets.max(top);
    println!(
        "== {label}: write runs against {} (pid {}); {spread} tenants, {targets} customers each to update",
        args.addr, args.pid
    );
    let db = Db::connect(
        &args.database_url,
        args.database_schema.as_deref(),
        !args.no_pgbench,
        args.raw_connections,
    )
    .await?;
    if args.no_pgbench && db.is_pg() {
        println!("   pgbench is not installed: the raw SQL runs are skipped on PostgreSQL");
    }
    db.setup(spread, targets).await?;
    let service = Service {
        channels: connect_channels(args.addr).await?,
        pid: args.pid,
        clk_tck: clk_tck(),
        bearers: (0..spread)
            .map(|t| bearer(&args.secret, &tenant(t)))
            .collect(),
        get_ids: Arc::new((1..=targets).map(target_id).collect()),
    };
    let mut results = Results::default();
    let no_versions = HashMap::new();

    // Warm-up of the whole path, not recorded.
    for op in [
        Op::Get,
        Op::Write {
            write: Write::Create,
            rid: false,
        },
    ] {
        service
            .closed_loop(op, 16, 1, &no_versions, targets, Duration::ZERO, warmup * 2)
            .await;
    }

    let get_name = format!("GetCustomer c={top}");
    let insert_name = format!("raw plain INSERT c={top}");
    let mix_name = format!("mix 90 % Get / 10 % Create c={top}");
    let create64 = Op::Write {
        write: Write::Create,
        rid: false,
    };
    if args.long > 0 {
        println!(
            "-- long run: Create c={top} in one tenant, {} runs of {:.1} s (the server vacuums the head every 10 s)",
            args.long,
            duration.as_secs_f64()
        );
        let (mut rates, mut long_errors) = (Vec::new(), 0);
        for run in 1..=args.long {
            let stats = service
                .closed_loop(create64, top, 1, &no_versions, targets, warmup, duration)
                .await;
            let dead = db.head_dead_rows().await?;
            println!(
                "   run {run:>3}: {:>8.0} calls/s  p50 {:>7.2} ms  p99 {:>8.2} ms{}{}",
                stats.rps,
                stats.p50,
                stats.p99,
                dead.map_or(String::new(), |d| format!("  audit_head dead rows {d}")),
                if stats.errors > 0 {
                    format!("  ERRORS {}", stats.errors)
                } else {
                    String::new()
                }
            );
            rates.push(stats.rps);
            long_errors += stats.errors;
        }
        let n = rates.len();
        let third = (n / 3).max(1);
        let first = median(&rates[..third]);
        let last = median(&rates[n - third..]);
        println!(
            "== {label}: long run: median of the last third ÷ the first third {} ({} → {} calls/s)",
            fmt_num(last / first),
            fmt_num(first),
            fmt_num(last)
        );
        return match long_errors {
            0 => Ok(()),
            n => Err(format!("{n} failed calls").into()),
        };
    }

    let mut batches: Vec<BatchFigures> = Vec::new();
    let mut batch_skipped = false;
    for rep in 1..=args.reps {
        let gate = Instant::now();
        let busy = if args.idle_wait > 0.0 {
            wait_idle(secs(args.idle_wait)).await
        } else {
            f64::NAN
        };
        println!(
            "-- repetition {rep} of {} (machine {} % busy before it{})",
            args.reps,
            fmt_num(busy * 100.0),
            match gate.elapsed().as_secs() {
                s if s > 3 => format!(", waited {s} s for it to be ≥ 85 % idle"),
                _ => String::new(),
            }
        );
        let health = service
            .closed_loop(Op::Health, 1, 1, &no_versions, targets, warmup, duration)
            .await;
        results.add("Health/Check c=1", health);
        let get = service
            .closed_loop(Op::Get, top, 1, &no_versions, targets, warmup, duration)
            .await;
        results.add(&get_name, get);
        let service_first = rep % 2 == 1;
        for write in [Write::Create, Write::Update] {
            for &c in &levels {
                for tenants in [1, spread] {
                    if c == 1 && tenants > 1 {
                        continue;
                    }
                    for rid in [false, true] {
                        for side in [service_first, !service_first] {
                            if side {
                                let versions = if write == Write::Update {
                                    db.versions(tenants, targets).await?
                                } else {
                                    HashMap::new()
                                };
                                let stats = service
                                    .closed_loop(
                                        Op::Write { write, rid },
                                        c,
                                        tenants,
                                        &versions,
                                        targets,
                                        warmup,
                                        duration,
                                    )
                                    .await;
                                results.add(&run_name("rpc", write, c, tenants, rid), stats);
                            } else {
                                let stats = db
                                    .run(
                                        &args.sql_dir,
                                        RawOp::Write { write, rid },
                                        c,
                                        tenants,
                                        targets,
                                        warmup,
                                        duration,
                                    )
                                    .await?;
                                if let Some(stats) = stats {
                                    results.add(&run_name("raw", write, c, tenants, rid), stats);
                                }
                            }
                        }
                    }
                }
            }
        }
        let insert = db
            .run(
                &args.sql_dir,
                RawOp::InsertOnly,
                top,
                spread,
                targets,
                warmup,
                duration,
            )
            .await?;
        if let Some(insert) = insert {
            results.add(&insert_name, insert);
        }
        let mixed = service
            .closed_loop(Op::Mixed, top, 1, &no_versions, targets, warmup, duration)
            .await;
        results.add(&mix_name, mixed);
        println!(
            "   {:<46} {:>8.0} GetCustomer calls/s in the mix",
            "", mixed.reads_rps
        );
        if args.batch_size > 0 {
            for c in [1, 4] {
                let figures =
                    batch_run(&service, &db, args.batch_size, args.batch_calls, c).await?;
                let name = format!("BatchCreateCustomers of {} c={c}", args.batch_size);
                match figures.rpc {
                    Some(rpc) => println!(
                        "   {name:<46} {rpc:>8.0} customers/s  (raw multi-row SQL {:.0} customers/s)",
                        figures.raw
                    ),
                    None => {
                        println!(
                            "   {name:<46} UNIMPLEMENTED on this server — skipped  (raw multi-row SQL {:.0} customers/s)",
                            figures.raw
                        );
                        batch_skipped = true;
                    }
                }
                batches.push(figures);
            }
        }
    }

    // The raw SQL wrote the same events as the service, interleaved in the same chains: the
    // server's own verification must find every chain whole (else the raw SQL did other work).
    let mut broken = 0;
    for t in [0, 1.min(spread - 1)] {
        let verified = AuditServiceClient::new(service.channels[0].clone())
            .verify_audit_chain(authed(
                pb::VerifyAuditChainRequest {},
                &bearer_as(&args.secret, &tenant(t), "admin"),
            ))
            .await?
            .into_inner();
        println!(
            "   audit chain of {}: {} events (service's and raw SQL's) verified: {}",
            tenant(t),
            verified.events_checked,
            if verified.valid {
                "whole".to_owned()
            } else {
                broken += 1;
                format!(
                    "BROKEN at {}: {}",
                    verified.first_broken_sequence, verified.problem
                )
            }
        );
    }

    // ---- report ----
    let pg = db.is_pg();
    println!();
    println!(
        "== {label}: medians of {} repetitions (calls/s; latency ms; server CPU µs per call)",
        args.reps
    );
    println!(
        "   {:<46} {:>9} {:>9} {:>9} {:>9}",
        "run", "calls/s", "p50 ms", "p99 ms", "cpu µs"
    );
    for name in &results.order {
        let runs = results.get(name);
        let col = |f: fn(&Stats) -> f64| fmt_num(median(&runs.iter().map(f).collect::<Vec<_>>()));
        println!(
            "   {name:<46} {:>9} {:>9} {:>9} {:>9}",
            col(|s| s.rps),
            col(|s| s.p50),
            col(|s| s.p99),
            col(|s| s.cpu)
        );
    }

    let rps = |a: &Stats, b: &Stats| a.rps / b.rps;
    let mut checks = Vec::new();
    for write in [Write::Create, Write::Update] {
        for rid in [false, true] {
            let one = if pg { 0.8 } else { 0.7 };
            let many = if pg { 0.9 } else { 0.7 };
            for (c, tenants, limit) in [(top, 1, Some(one)), (top, spread, Some(many))] {
                let values = results.per_rep(
                    &run_name("rpc", write, c, tenants, rid),
                    &run_name("raw", write, c, tenants, rid),
                    rps,
                );
                let name = format!(
                    "{} ÷ raw SQL{}",
                    run_name("", write, c, tenants, rid).trim(),
                    ""
                );
                checks.push(match limit {
                    Some(limit) => Check::new(name, values, true, limit),
                    None => Check::info(name, values, "info"),
                });
            }
            let others = levels.iter().filter(|&&c| c != top);
            for (c, tenants) in others.flat_map(|&c| {
                if c == 1 {
                    vec![(1, 1)]
                } else {
                    vec![(c, 1), (c, spread)]
                }
            }) {
                checks.push(Check::info(
                    format!("{} ÷ raw SQL", run_name("", write, c, tenants, rid).trim()),
                    results.per_rep(
                        &run_name("rpc", write, c, tenants, rid),
                        &run_name("raw", write, c, tenants, rid),
                        rps,
                    ),
                    "info",
                ));
            }
        }
    }
    let create1 = run_name("rpc", Write::Create, 1, 1, false);
    let raw1 = run_name("raw", Write::Create, 1, 1, false);
    let p50_floor: Vec<f64> = results
        .per_rep(&raw1, "Health/Check c=1", |raw, health| {
            raw.p50 + health.p50
        })
        .into_iter()
        .zip(results.get(&create1))
        .map(|(floor, create)| create.p50 / floor)
        .collect();
    checks.push(Check::new(
        "Create p50 c=1 ÷ (raw SQL p50 + Health p50)",
        p50_floor,
        false,
        1.5,
    ));
    checks.push(Check::new(
        format!("server CPU/call: Create ÷ GetCustomer, c={top}"),
        results.per_rep(
            &run_name("rpc", Write::Create, top, 1, false),
            &get_name,
            |a, b| a.cpu / b.cpu,
        ),
        false,
        3.0,
    ));
    checks.push(Check::new(
        format!("GetCustomer calls/s in the 90/10 mix ÷ alone, c={top}"),
        results.per_rep(&mix_name, &get_name, |m, g| m.reads_rps / g.rps),
        true,
        0.85,
    ));
    for c in [1, 4] {
        let figures: Vec<&BatchFigures> = batches.iter().filter(|b| b.concurrency == c).collect();
        if figures.is_empty() {
            continue;
        }
        checks.push(Check::info(
            format!(
                "raw multi-row create of {} c={c}, customers/s",
                args.batch_size
            ),
            figures.iter().map(|b| b.raw).collect(),
            "info: the batch's ceiling",
        ));
        if batch_skipped {
            continue;
        }
        checks.push(Check::new(
            format!(
                "BatchCreateCustomers of {} c={c} ÷ raw multi-row",
                args.batch_size
            ),
            figures
                .iter()
                .map(|b| b.rpc.unwrap_or(f64::NAN) / b.raw)
                .collect(),
            true,
            0.7,
        ));
        let rates: Vec<f64> = figures.iter().filter_map(|b| b.rpc).collect();
        checks.push(if pg {
            Check::new(
                format!("BatchCreateCustomers c={c}, customers/s"),
                rates,
                true,
                10_000.0,
            )
        } else {
            Check::info(
                format!("BatchCreateCustomers c={c}, customers/s"),
                rates,
                "info (≥ 10000 is PostgreSQL's)",
            )
        });
    }
    let create16 = run_name("rpc", Write::Create, top, spread, false);
    checks.push(Check::info(
        format!("stretch: Create c={top} {spread} tenants ÷ plain INSERT"),
        results.per_rep(&create16, &insert_name, rps),
        "stretch ≥ 0.5 (not judged)",
    ));
    checks.push(Check::info(
        format!("raw Create c={top} 1 tenant ÷ plain INSERT"),
        results.per_rep(
            &run_name("raw", Write::Create, top, 1, false),
            &insert_name,
            rps,
        ),
        "info: the table's ceiling",
    ));
    checks.push(Check::info(
        format!("Create c={top} 1 tenant ÷ plain INSERT"),
        results.per_rep(
            &run_name("rpc", Write::Create, top, 1, false),
            &insert_name,
            rps,
        ),
        "info",
    ));

    println!();
    println!("== {label}: write ratios (median of per-repetition values) and targets");
    println!(
        "   {:<52} {:<28} {:>7}  {:<10} per repetition",
        "what", "target", "median", "result"
    );
    let mut failed = 0;
    for check in &checks {
        let result = match check.pass() {
            None => "",
            Some(_) if !args.enforce => "not judged",
            Some(true) => "PASS",
            Some(false) => {
                failed += 1;
                "FAIL"
            }
        };
        let values: Vec<String> = check.values.iter().map(|v| fmt_num(*v)).collect();
        println!(
            "   {:<52} {:<28} {:>7}  {:<10} {}",
            check.name,
            check.target,
            fmt_num(median(&check.values)),
            result,
            values.join(" ")
        );
    }
    if batch_skipped {
        println!("   BatchCreateCustomers: UNIMPLEMENTED on this server — skipped");
    }
    println!(
        "   (raw SQL: scripts/bench-sql, {}; VACUUM audit_head before each raw run)",
        if pg {
            match args.raw_connections {
                0 => "pgbench -M prepared -j 2, as many clients as calls in flight".to_owned(),
                n => format!("pgbench -M prepared -j 2, min(calls in flight, {n}) clients"),
            }
        } else {
            "the .sqlite.sql files from as many tasks over 8 connections".to_owned()
        }
    );
    if args.enforce {
        let gated = checks.iter().filter(|c| c.limit.is_some()).count();
        println!(
            "== {label}: {} of {gated} write targets met, {failed} missed; {:.0} s",
            gated - failed,
            started.elapsed().as_secs_f64()
        );
    } else {
        println!(
            "== {label}: write targets not judged (run without --enforce: figures only); {:.0} s",
            started.elapsed().as_secs_f64()
        );
    }
    let errors = results.errors();
    if errors > 0 {
        println!("== {label}: {errors} calls failed");
        std::process::exit(1);
    }
    if broken > 0 {
        println!("== {label}: {broken} audit chains do not verify");
        std::process::exit(1);
    }
    if failed > 0 && args.enforce {
        std::process::exit(1);
    }
    Ok(())
}
