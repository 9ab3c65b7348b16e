//! The command line: every flag also reads a `CRM_*` variable (flag > variable > default). Read
//! once, here; nothing else reads the environment (except `RUST_LOG`, left to tracing).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::telemetry::LogFormat;

use crate::app::{JwtSettings, Limits, Settings, Shutdown, TlsFiles};
use crate::domain::Clock;
use crate::domain::batches::BatchSettings;
use crate::domain::deletion::LifecycleSettings;
use crate::domain::tenant_settings::ApprovalSettings;
use crate::relay::RelaySettings;
use crate::store::{SessionLimits, StoreConfig};

#[derive(Debug, Parser)]
#[command(
    name = "crm-service",
    version,
    about = "A CRM's customers, with safe, approved, reversible deletion",
    // `crm-service --listen X` serves; flags before a command would be silently another
    // command's, so clap refuses them with the command's name instead.
    args_conflicts_with_subcommands = true,
    after_help = "Without a command, `serve` runs with the flags above."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub serve: ServeArgs,
}

impl Cli {
    /// The command to run: `serve` with the top-level flags when none is named.
    pub fn into_command(self) -> Command {
        self.command.unwrap_or(Command::Serve(self.serve))
    }
}

// Parsed once per process: the size of `serve`'s settings costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve gRPC (the default command).
    Serve(ServeArgs),
    /// Apply database migrations and exit.
    Migrate(MigrateArgs),
    /// Print a signed development token (HS256) that the server with the same settings accepts.
    #[command(long_about = TOKEN_ABOUT)]
    Token(TokenArgs),
    /// Fill the database with demo or benchmark data.
    Seed(SeedArgs),
    /// Erase, once, every deleted customer and every record deleted on its own whose retention has
    /// passed, and print what was done.
    Purge(PurgeArgs),
}

const TOKEN_ABOUT: &str = "Print a signed development token (HS256) that the server with the same \
settings accepts.

It signs with the key `serve` verifies with, found the same way: --jwt-secret, else \
--jwt-secret-file, else the development secret the server keeps beside its SQLite database \
(FILE.dev-secret for --database-url sqlite://FILE, relative to the directory the server was \
started in). It never creates a key: run it where the server runs, or give it the server's \
--database-url or secret. A server configured with --jwt-public-key-file takes tokens from your \
identity provider, not from here.";

/// Everything `serve` reads.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on: HOST:PORT (a name such as localhost is resolved) or a bare PORT on
    /// 127.0.0.1; 0.0.0.0:PORT listens on every interface; port 0 picks a free port (the bound
    /// address is printed).
    #[arg(long, env = "CRM_LISTEN", default_value = "127.0.0.1:50051", value_parser = parse_listen)]
    pub listen: SocketAddr,
    #[command(flatten)]
    pub database: DatabaseArgs,
    #[command(flatten)]
    pub jwt: JwtArgs,
    #[command(flatten)]
    pub lifecycle: LifecycleArgs,
    #[command(flatten)]
    pub batches: BatchArgs,
    #[command(flatten)]
    pub events: EventRelayArgs,
    /// The country calling code (1 to 3 digits, e.g. 44) of phone numbers written without one,
    /// so that duplicate search finds `020 7946 0000` and `+44 20 7946 0000` to be one number.
    /// Unset: a number written without a country code matches only numbers written so too.
    #[arg(long, env = "CRM_PHONE_DEFAULT_COUNTRY_CODE", value_parser = parse_country_code, help_heading = "Duplicates")]
    pub phone_default_country_code: Option<String>,
    #[command(flatten)]
    pub server: ServerArgs,
    #[command(flatten)]
    pub log: LogArgs,
}

#[derive(Debug, Args)]
pub struct MigrateArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,
    #[command(flatten)]
    pub log: LogArgs,
}

/// The database and the sessions the service opens on it.
#[derive(Debug, Args)]
#[command(next_help_heading = "Database")]
pub struct DatabaseArgs {
    /// Database URL: `sqlite://FILE` (created on first start) or `postgres://USER@HOST/DB`.
    #[arg(long, env = "CRM_DATABASE_URL", default_value = "sqlite://crm.db")]
    pub database_url: String,
    /// PostgreSQL schema to use (created if missing); the server's default if unset.
    #[arg(long, env = "CRM_DATABASE_SCHEMA")]
    pub database_schema: Option<String>,
    /// Size of the database connection pool.
    #[arg(long, env = "CRM_DATABASE_MAX_CONNECTIONS", default_value_t = 8)]
    pub database_max_connections: u32,
    /// PostgreSQL connections of GetCustomer and free-text pages, besides the pool; 0: one per
    /// CPU this process may use, at most the pool's size.
    #[arg(long, env = "CRM_DATABASE_READER_CONNECTIONS", default_value_t = 0)]
    pub database_reader_connections: u32,
    /// Milliseconds a call waits for a pooled connection before failing UNAVAILABLE.
    #[arg(long, env = "CRM_DATABASE_ACQUIRE_TIMEOUT_MS", default_value_t = 2000)]
    pub database_acquire_timeout_ms: u64,
    /// PostgreSQL: the longest one statement may run (`statement_timeout`); 0 = no limit.
    #[arg(long, env = "CRM_DATABASE_STATEMENT_TIMEOUT", default_value = "5s", value_parser = parse_duration)]
    pub database_statement_timeout: Duration,
    /// PostgreSQL: the longest a statement waits for a row or table lock (`lock_timeout`).
    #[arg(long, env = "CRM_DATABASE_LOCK_TIMEOUT", default_value = "2s", value_parser = parse_duration)]
    pub database_lock_timeout: Duration,
    /// PostgreSQL: a session idle inside a transaction this long is ended by the server
    /// (`idle_in_transaction_session_timeout`), the backstop against a leaked transaction.
    #[arg(long, env = "CRM_DATABASE_IDLE_IN_TRANSACTION_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub database_idle_in_transaction_timeout: Duration,
}

/// The key that verifies tokens, and the claims every token must carry.
#[derive(Debug, Args)]
#[command(next_help_heading = "Token verification")]
pub struct JwtArgs {
    /// HS256 secret (at least 32 bytes) for development tokens.
    #[arg(long, env = "CRM_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
    /// File holding the HS256 secret.
    #[arg(long, env = "CRM_JWT_SECRET_FILE")]
    pub jwt_secret_file: Option<PathBuf>,
    /// PEM public key (RSA for RS256, EC P-256 for ES256) that verifies production tokens.
    #[arg(long, env = "CRM_JWT_PUBLIC_KEY_FILE")]
    pub jwt_public_key_file: Option<PathBuf>,
    /// Required `iss` of tokens, if set.
    #[arg(long, env = "CRM_JWT_ISSUER")]
    pub jwt_issuer: Option<String>,
    /// Required `aud` of tokens, if set.
    #[arg(long, env = "CRM_JWT_AUDIENCE")]
    pub jwt_audience: Option<String>,
}

/// How long requests, deleted data and request ids live.
#[derive(Debug, Args)]
#[command(next_help_heading = "Lifecycle")]
pub struct LifecycleArgs {
    /// How long a deletion request waits for approval, then for execution, before it lapses.
    #[arg(long, env = "CRM_DELETION_REQUEST_TTL", default_value = "72h", value_parser = parse_duration)]
    pub deletion_request_ttl: Duration,
    /// How long a deleted customer, or a record deleted on its own, can be restored before it is
    /// erased.
    #[arg(long, env = "CRM_RETENTION", default_value = "30d", value_parser = parse_duration)]
    pub retention: Duration,
    /// How long a mutation's request_id is remembered (AIP-155 retries within it get the first answer).
    #[arg(long, env = "CRM_IDEMPOTENCY_KEY_TTL", default_value = "24h", value_parser = parse_duration)]
    pub idempotency_key_ttl: Duration,
    /// How often the server's purger erases deleted customers and records whose retention has
    /// passed; 0 turns it off (run `crm-service purge` as a job instead).
    #[arg(long, env = "CRM_PURGE_INTERVAL", default_value = "60s", value_parser = parse_duration)]
    pub purge_interval: Duration,
    /// How often the server looks for deletion requests and batches pending past their tenant's
    /// escalation time (each is escalated once, with a DELETION_ESCALATED event); 0 turns it off.
    #[arg(long, env = "CRM_ESCALATION_INTERVAL", default_value = "30s", value_parser = parse_duration)]
    pub escalation_interval: Duration,
    /// A deletion request or batch still pending this long after submission is escalated (one
    /// event); 0: never. Must be shorter than the request lifetime to matter.
    #[arg(long, env = "CRM_ESCALATE_AFTER", default_value = "0s", value_parser = parse_duration)]
    pub escalate_after: Duration,
    /// The token claim (an array of strings) naming the teams a user belongs to.
    #[arg(long, env = "CRM_TEAMS_CLAIM", default_value = "teams")]
    pub teams_claim: String,
    /// The token claim (an array of strings) naming the teams a supervisor supervises.
    #[arg(long, env = "CRM_SUPERVISES_CLAIM", default_value = "supervises")]
    pub supervises_claim: String,
}

/// The relay of customer events to NATS JetStream.
#[derive(Debug, Args)]
#[command(next_help_heading = "Customer events on NATS JetStream")]
pub struct EventRelayArgs {
    /// NATS server URL (e.g. nats://nats:4222): publish every customer event to JetStream, once,
    /// in sequence order per tenant. Unset: no relay (the gRPC event stream is always there).
    #[arg(long, env = "CRM_EVENTS_NATS_URL")]
    pub events_nats_url: Option<String>,
    /// The JetStream stream the events go to, created if absent.
    #[arg(long, env = "CRM_EVENTS_NATS_STREAM", default_value = "CRM_CUSTOMER_EVENTS", value_parser = parse_nats_name)]
    pub events_nats_stream: String,
    /// The first token of the subjects: PREFIX.<tenant>.customer.<event type>.
    #[arg(long, env = "CRM_EVENTS_NATS_SUBJECT_PREFIX", default_value = "crm", value_parser = parse_nats_name)]
    pub events_nats_subject_prefix: String,
    /// How long the publishing replica's lease lasts unrenewed: how soon another replica takes
    /// over when it dies.
    #[arg(long, env = "CRM_EVENTS_NATS_LEASE", default_value = "15s", value_parser = parse_duration)]
    pub events_nats_lease: Duration,
}

/// A stream name or subject token: no separators, wildcards or white space.
fn parse_nats_name(value: &str) -> Result<String, String> {
    if value.is_empty()
        || value.chars().any(|c| {
            c.is_whitespace() || c.is_control() || matches!(c, '.' | '*' | '>' | '/' | '\\')
        })
    {
        return Err(format!(
            "{value:?}: use letters, digits, `-` and `_` (no `.`, `*`, `>`, `/` or spaces)"
        ));
    }
    Ok(value.to_owned())
}

/// Deletion batches: how big, how many at once, how their background work is paced.
#[derive(Debug, Args)]
#[command(next_help_heading = "Deletion batches")]
pub struct BatchArgs {
    /// The most customers one deletion batch may name (by id or by filter).
    #[arg(long, env = "CRM_MAX_BATCH_ITEMS", default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub max_batch_items: u32,
    /// The most open batches (pending, approved, running, restoring) a tenant may have.
    #[arg(long, env = "CRM_MAX_OPEN_BATCHES", default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_open_batches: u32,
    /// Customers a batch deletes (or restores) per transaction.
    #[arg(long, env = "CRM_BATCH_CHUNK_SIZE", default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub batch_chunk_size: u32,
    /// How long a replica's claim on a running batch holds unrenewed: how soon another replica
    /// takes over a batch whose replica died.
    #[arg(long, env = "CRM_BATCH_LEASE", default_value = "30s", value_parser = parse_duration)]
    pub batch_lease: Duration,
}

#[derive(Debug, Args)]
#[command(next_help_heading = "Logging")]
pub struct LogArgs {
    /// Log format: `text` for people, `json` for log collectors.
    #[arg(long, env = "CRM_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// Limits, transport security, telemetry endpoints and shutdown of `serve`.
#[derive(Debug, Args)]
#[command(next_help_heading = "Server")]
pub struct ServerArgs {
    /// Calls served at once by this process; beyond it calls are refused at once with
    /// RESOURCE_EXHAUSTED (health checks are never refused).
    #[arg(long, env = "CRM_MAX_CONCURRENT_CALLS", default_value_t = 256)]
    pub max_concurrent_calls: usize,
    /// Cap on a call's deadline: a call without one, or with a longer one, ends DEADLINE_EXCEEDED
    /// after this long. Streams are not capped (their clients set their own deadlines).
    #[arg(long, env = "CRM_MAX_CALL_DURATION", default_value = "30s", value_parser = parse_duration)]
    pub max_call_duration: Duration,
    /// HTTP/2 streams (calls) one connection may have open at once.
    #[arg(long, env = "CRM_HTTP2_MAX_CONCURRENT_STREAMS", default_value_t = 128)]
    pub http2_max_concurrent_streams: u32,
    /// Interval of HTTP/2 keepalive pings to each client (0 = none).
    #[arg(long, env = "CRM_HTTP2_KEEPALIVE_INTERVAL", default_value = "30s", value_parser = parse_duration)]
    pub http2_keepalive_interval: Duration,
    /// A client that does not answer a keepalive ping within this is disconnected.
    #[arg(long, env = "CRM_HTTP2_KEEPALIVE_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub http2_keepalive_timeout: Duration,
    /// Connections are closed gracefully after this age so clients re-balance over new replicas
    /// (0 = never).
    #[arg(long, env = "CRM_MAX_CONNECTION_AGE", default_value = "0s", value_parser = parse_duration)]
    pub max_connection_age: Duration,
    /// PEM certificate chain: serve TLS (with --tls-key-file).
    #[arg(long, env = "CRM_TLS_CERT_FILE", requires = "tls_key_file")]
    pub tls_cert_file: Option<PathBuf>,
    /// PEM private key of --tls-cert-file.
    #[arg(long, env = "CRM_TLS_KEY_FILE", requires = "tls_cert_file")]
    pub tls_key_file: Option<PathBuf>,
    /// PEM CA bundle: require client certificates signed by it (mTLS).
    #[arg(long, env = "CRM_TLS_CLIENT_CA_FILE", requires = "tls_cert_file")]
    pub tls_client_ca_file: Option<PathBuf>,
    /// Also serve grpc.health.v1 alone, in plaintext, here: for probes that cannot speak TLS
    /// (Kubernetes' native gRPC probes).
    #[arg(long, env = "CRM_HEALTH_LISTEN", value_parser = parse_listen)]
    pub health_listen: Option<SocketAddr>,
    /// Serve Prometheus metrics at http://ADDR/metrics.
    #[arg(long, env = "CRM_METRICS_LISTEN", value_parser = parse_listen)]
    pub metrics_listen: Option<SocketAddr>,
    /// OTLP/gRPC collector for traces and metrics (the standard variable; unset = no export).
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,
    /// After SIGTERM, keep serving this long with health NOT_SERVING, so load balancers stop
    /// sending new calls before the listener closes.
    #[arg(long, env = "CRM_SHUTDOWN_DELAY", default_value = "0s", value_parser = parse_duration)]
    pub shutdown_delay: Duration,
    /// Then wait at most this long for in-flight calls to finish before exiting.
    #[arg(long, env = "CRM_SHUTDOWN_GRACE", default_value = "20s", value_parser = parse_duration)]
    pub shutdown_grace: Duration,
}

#[derive(Debug, Args)]
pub struct TokenArgs {
    /// Tenant the token is scoped to: 1 to 64 letters, digits, '.', '_' or '-'.
    #[arg(long)]
    pub tenant: String,
    /// User or service id (`sub`): 1 to 128 characters, no control characters.
    #[arg(long)]
    pub user: String,
    /// Role: sales_rep, supervisor, admin or service (repeat for several).
    #[arg(long = "role", required = true)]
    pub roles: Vec<String>,
    /// Lifetime, e.g. 30m, 1.5h, 1h30m, 7d.
    #[arg(long, default_value = "1h", value_parser = parse_duration)]
    pub ttl: Duration,
    /// An extra claim holding a list of strings, NAME=VALUE[,VALUE...]: the teams a user belongs
    /// to (teams=emea) or supervises (supervises=emea,apac), as an identity provider would say
    /// (repeat for several claims).
    #[arg(long = "claim", value_name = "NAME=VALUES", value_parser = parse_list_claim)]
    pub claims: Vec<(String, Vec<String>)>,
    /// The server's database URL: for sqlite://FILE the development secret is FILE.dev-secret.
    #[arg(
        long,
        env = "CRM_DATABASE_URL",
        default_value = "sqlite://crm.db",
        help_heading = "Signing key (as the server finds it)"
    )]
    pub database_url: String,
    #[command(flatten)]
    pub jwt: TokenKeyArgs,
}

/// The server's settings that decide the key a token is signed with and the claims it must carry.
#[derive(Debug, Args)]
#[command(next_help_heading = "Signing key (as the server finds it)")]
pub struct TokenKeyArgs {
    /// The server's HS256 secret.
    #[arg(long, env = "CRM_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
    /// File holding the server's HS256 secret.
    #[arg(long, env = "CRM_JWT_SECRET_FILE")]
    pub jwt_secret_file: Option<PathBuf>,
    /// Set when the server verifies RS256/ES256 tokens: then tokens come from your identity
    /// provider and this command refuses.
    #[arg(long, env = "CRM_JWT_PUBLIC_KEY_FILE", hide = true)]
    pub jwt_public_key_file: Option<PathBuf>,
    /// `iss` to put in the token (the server's --jwt-issuer, if it requires one).
    #[arg(long, env = "CRM_JWT_ISSUER")]
    pub jwt_issuer: Option<String>,
    /// `aud` to put in the token (the server's --jwt-audience, if it requires one).
    #[arg(long, env = "CRM_JWT_AUDIENCE")]
    pub jwt_audience: Option<String>,
}

#[derive(Debug, Args)]
pub struct PurgeArgs {
    /// Print what would be erased, erase nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// At most this many customers, and this many records, per transaction.
    #[arg(long, default_value_t = 100)]
    pub batch: u64,
    /// Then rewrite the tables erasure touches, so that no database file keeps erased bytes in
    /// dead rows or free space: on PostgreSQL `VACUUM FULL` of each, which locks the table
    /// against every call while it runs (a maintenance window's job); on SQLite `VACUUM`.
    #[arg(long, conflicts_with = "dry_run")]
    pub rewrite: bool,
    #[command(flatten)]
    pub database: DatabaseArgs,
    #[command(flatten)]
    pub log: LogArgs,
}

#[derive(Debug, Args)]
pub struct SeedArgs {
    /// Tenant to fill.
    #[arg(long, default_value = "demo")]
    pub tenant: String,
    /// Number of customers.
    #[arg(long, default_value_t = 100)]
    pub customers: u64,
    /// Related records per customer (spread over the six kinds).
    #[arg(long, default_value_t = 6)]
    pub records_per_customer: u64,
    /// Also make one customer with this many related records (for deletion benchmarks).
    #[arg(long, default_value_t = 0)]
    pub big_customer_records: u64,
    /// Rows per INSERT statement.
    #[arg(long, default_value_t = 500)]
    pub batch: usize,
    #[command(flatten)]
    pub database: DatabaseArgs,
    #[command(flatten)]
    pub log: LogArgs,
}

const DURATION_FORM: &str = "a number and a unit (ms, s, m, h or d), e.g. 90s, 30m, 1.5h or 1h30m";

/// A duration as people write it: `90s`, `1.5h`, `1h30m`; a bare number is seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(format!("an empty duration: write {DURATION_FORM}"));
    }
    if let Ok(seconds) = trimmed.parse::<u64>() {
        return Ok(Duration::from_secs(seconds));
    }
    let mut total = Duration::ZERO;
    let mut rest = trimmed;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (number, after) = rest.split_at(number_len);
        let unit_len = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, next) = after.split_at(unit_len);
        let amount: f64 = number
            .parse()
            .ok()
            .filter(|n: &f64| n.is_finite())
            .ok_or_else(|| format!("{text:?} is not a duration: write {DURATION_FORM}"))?;
        let unit_seconds = match unit {
            "ms" => 0.001,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "d" => 86_400.0,
            "" => {
                return Err(format!(
                    "{text:?} lacks a unit after {number}: write {DURATION_FORM}"
                ));
            }
            other => {
                return Err(format!(
                    "{text:?}: unknown unit {other:?}; write {DURATION_FORM}"
                ));
            }
        };
        total = Duration::try_from_secs_f64(amount * unit_seconds)
            .ok()
            .and_then(|part| total.checked_add(part))
            .ok_or_else(|| format!("{text:?} is too long a duration"))?;
        rest = next;
    }
    // Whole milliseconds: `0.0001s` is no setting anybody means.
    Ok(Duration::from_millis(
        total.as_millis().try_into().unwrap_or(u64::MAX),
    ))
}

const LISTEN_FORM: &str =
    "HOST:PORT (127.0.0.1:50051, localhost:50051, [::1]:50051, 0.0.0.0:50051) or a bare PORT";

/// A listening address: `HOST:PORT` with an IP or a name to resolve, or a bare `PORT` (or `:PORT`)
/// on 127.0.0.1. Every interface is only ever asked for by name (`0.0.0.0`, `[::]`): a bare port
/// that silently exposed the service would surprise its operator.
pub fn parse_listen(text: &str) -> Result<SocketAddr, String> {
    let text = text.trim();
    let port_only = text.strip_prefix(':').unwrap_or(text);
    if !port_only.is_empty() && port_only.bytes().all(|b| b.is_ascii_digit()) {
        let port: u16 = port_only
            .parse()
            .map_err(|_| format!("port {port_only} is out of range: ports go from 0 to 65535"))?;
        return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let Some((host, port)) = text.rsplit_once(':') else {
        return Err(format!("{text:?} lacks a port: write {LISTEN_FORM}"));
    };
    let port: u16 = port.parse().map_err(|_| {
        format!("{port:?} is not a port (0 to 65535) in {text:?}: write {LISTEN_FORM}")
    })?;
    if host.is_empty() || host.contains(':') {
        return Err(format!("{text:?} is not an address: write {LISTEN_FORM}"));
    }
    use std::net::ToSocketAddrs;
    let mut addrs = (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {host:?}: {e}; write {LISTEN_FORM}"))?
        .collect::<Vec<_>>();
    // `localhost` resolves to ::1 and 127.0.0.1 in either order; IPv4 first keeps the address
    // the same as the default's on every machine.
    addrs.sort_by_key(|addr| addr.is_ipv6());
    addrs
        .into_iter()
        .next()
        .ok_or_else(|| format!("{host:?} resolves to no address; write {LISTEN_FORM}"))
}

impl DatabaseArgs {
    pub fn store_config(&self) -> StoreConfig {
        StoreConfig {
            url: self.database_url.clone(),
            schema: self.database_schema.clone(),
            max_connections: self.database_max_connections.max(1),
            reader_connections: self.database_reader_connections,
            acquire_timeout: Duration::from_millis(self.database_acquire_timeout_ms),
            session: SessionLimits {
                statement_timeout: self.database_statement_timeout,
                lock_timeout: self.database_lock_timeout,
                idle_in_transaction_timeout: self.database_idle_in_transaction_timeout,
            },
        }
    }
}

impl JwtArgs {
    pub fn settings(&self) -> JwtSettings {
        JwtSettings {
            secret: self.jwt_secret.clone(),
            secret_file: self.jwt_secret_file.clone(),
            public_key_file: self.jwt_public_key_file.clone(),
            issuer: self.jwt_issuer.clone(),
            audience: self.jwt_audience.clone(),
        }
    }
}

impl TokenKeyArgs {
    pub fn settings(&self) -> JwtSettings {
        JwtSettings {
            secret: self.jwt_secret.clone(),
            secret_file: self.jwt_secret_file.clone(),
            public_key_file: self.jwt_public_key_file.clone(),
            issuer: self.jwt_issuer.clone(),
            audience: self.jwt_audience.clone(),
        }
    }
}

impl ServeArgs {
    pub fn settings(&self) -> Settings {
        let server = &self.server;
        let lifecycle = &self.lifecycle;
        let lease = self.batches.batch_lease.max(Duration::from_secs(1));
        let nonzero = |d: Duration| (!d.is_zero()).then_some(d);
        Settings {
            listen: self.listen,
            limits: Limits {
                max_concurrent_calls: server.max_concurrent_calls.max(1),
                max_call_duration: server.max_call_duration,
                http2_max_concurrent_streams: server.http2_max_concurrent_streams.max(1),
                http2_keepalive_interval: nonzero(server.http2_keepalive_interval),
                http2_keepalive_timeout: server.http2_keepalive_timeout,
                max_connection_age: nonzero(server.max_connection_age),
            },
            tls: server.tls_cert_file.as_ref().map(|cert| TlsFiles {
                cert: cert.clone(),
                key: server.tls_key_file.clone().unwrap_or_default(),
                client_ca: server.tls_client_ca_file.clone(),
            }),
            health_listen: server.health_listen,
            shutdown: Shutdown {
                delay: server.shutdown_delay,
                grace: server.shutdown_grace,
            },
            database: self.database.store_config(),
            jwt: self.jwt.settings(),
            idempotency_key_ttl: lifecycle.idempotency_key_ttl,
            purge_interval: nonzero(lifecycle.purge_interval),
            escalation_interval: nonzero(lifecycle.escalation_interval),
            lifecycle: LifecycleSettings {
                request_ttl: lifecycle.deletion_request_ttl,
                retention: lifecycle.retention,
            },
            batches: BatchSettings {
                max_items: self.batches.max_batch_items as usize,
                max_open: self.batches.max_open_batches as usize,
                chunk_size: self.batches.batch_chunk_size as usize,
                lease,
                // A replica looks for a dead replica's batch four times per lease, so it takes
                // over within 1.25 leases of the last renewal; never slower than the default.
                poll_interval: (lease / 4).min(BatchSettings::default().poll_interval),
            },
            clock: Clock::system(),
            phone_default_country_code: self.phone_default_country_code.clone(),
            approvals: ApprovalSettings {
                escalate_after: nonzero(lifecycle.escalate_after),
                teams_claim: lifecycle.teams_claim.clone(),
                supervises_claim: lifecycle.supervises_claim.clone(),
            },
            event_relay: self
                .events
                .events_nats_url
                .as_ref()
                .map(|url| RelaySettings {
                    url: url.clone(),
                    stream: self.events.events_nats_stream.clone(),
                    subject_prefix: self.events.events_nats_subject_prefix.clone(),
                    lease: self.events.events_nats_lease.max(Duration::from_secs(1)),
                }),
        }
    }
}

fn parse_country_code(value: &str) -> Result<String, String> {
    let code = value.trim().trim_start_matches('+');
    if crate::domain::model::matching::valid_country_code(code) {
        Ok(code.to_owned())
    } else {
        Err(format!(
            "\"{value}\" is not a country calling code: write its 1 to 3 digits, e.g. 44 or 1"
        ))
    }
}

/// `NAME=V1,V2` as a claim name and its values.
fn parse_list_claim(text: &str) -> Result<(String, Vec<String>), String> {
    let (name, values) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?}: write NAME=VALUE[,VALUE...], e.g. teams=emea"))?;
    let values: Vec<String> = values
        .split(',')
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
        .collect();
    if name.trim().is_empty() || values.is_empty() {
        return Err(format!(
            "{text:?}: give a claim name and at least one value, e.g. teams=emea"
        ));
    }
    Ok((name.trim().to_owned(), values))
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn jetstream_names_are_one_subject_token() {
        for good in ["crm", "CRM_CUSTOMER_EVENTS", "events-eu"] {
            assert_eq!(parse_nats_name(good).unwrap(), good);
        }
        for bad in ["", "crm.events", "crm.*", ">", "a b", "a/b"] {
            assert!(parse_nats_name(bad).is_err(), "{bad:?}");
        }
        let cli = Cli::try_parse_from([
            "crm-service",
            "--events-nats-url",
            "nats://127.0.0.1:4222",
            "--events-nats-lease",
            "0",
        ])
        .unwrap();
        let Command::Serve(serve) = cli.into_command() else {
            panic!("serve")
        };
        let relay = serve.settings().event_relay.expect("on with a URL");
        assert_eq!(
            (relay.stream.as_str(), relay.subject_prefix.as_str()),
            ("CRM_CUSTOMER_EVENTS", "crm")
        );
        assert_eq!(relay.lease, Duration::from_secs(1), "at least a second");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("30m").unwrap(), Duration::from_secs(1800));
        assert_eq!(parse_duration("7d").unwrap(), Duration::from_secs(604_800));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("1.5h").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("0.5s").unwrap(), Duration::from_millis(500));
        for bad in [
            "1w",
            "h",
            "",
            "1.5",
            "1..5h",
            "-1h",
            "1e3s",
            "99999999999999999999d",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
        assert!(
            parse_duration("1w")
                .unwrap_err()
                .contains("unknown unit \"w\"")
        );
        assert!(parse_duration("1.5").unwrap_err().contains("lacks a unit"));
    }

    #[test]
    fn listen_addresses() {
        let local = |port| SocketAddr::from(([127, 0, 0, 1], port));
        assert_eq!(parse_listen("50052").unwrap(), local(50052));
        assert_eq!(parse_listen(":50052").unwrap(), local(50052));
        assert_eq!(parse_listen("localhost:50052").unwrap(), local(50052));
        assert_eq!(
            parse_listen("0.0.0.0:50052").unwrap(),
            SocketAddr::from(([0, 0, 0, 0], 50052))
        );
        assert_eq!(parse_listen("[::1]:0").unwrap().port(), 0);
        for bad in [
            "",
            "localhost",
            "70000",
            "host:port",
            "1.2.3.4:99999",
            "::1:5",
        ] {
            let message = parse_listen(bad).unwrap_err();
            assert!(
                message.contains("HOST:PORT") || message.contains("out of range"),
                "{bad:?}: {message}"
            );
        }
    }
}
