//! The command line: every flag also reads a `CRM_*` variable (flag > variable > default). Read
//! once, here; nothing else reads the environment (except `RUST_LOG`, left to tracing).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::app::{JwtSettings, Limits, Settings, Shutdown, TlsFiles};
use crate::domain::deletion::LifecycleSettings;
use crate::store::{SessionLimits, StoreConfig};

#[derive(Debug, Parser)]
#[command(
    name = "crm-service",
    version,
    about = "A CRM's customers, with safe, approved, reversible deletion"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve gRPC (the default command).
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Print a signed development token (HS256, with the configured or development secret).
    Token(TokenArgs),
    /// Fill the database with demo or benchmark data.
    Seed(SeedArgs),
    /// Erase, once, every deleted customer and every record deleted on its own whose retention has
    /// passed, and print what was done.
    Purge(PurgeArgs),
}

#[derive(Debug, Args)]
pub struct CommonArgs {
    /// Address `serve` listens on; port 0 picks a free port (the bound address is printed).
    #[arg(
        long,
        global = true,
        env = "CRM_LISTEN",
        default_value = "127.0.0.1:50051"
    )]
    pub listen: SocketAddr,
    /// Database URL: `sqlite://FILE` (created on first start) or `postgres://USER@HOST/DB`.
    #[arg(
        long,
        global = true,
        env = "CRM_DATABASE_URL",
        default_value = "sqlite://crm.db"
    )]
    pub database_url: String,
    /// PostgreSQL schema to use (created if missing); the server's default if unset.
    #[arg(long, global = true, env = "CRM_DATABASE_SCHEMA")]
    pub database_schema: Option<String>,
    /// Size of the database connection pool.
    #[arg(
        long,
        global = true,
        env = "CRM_DATABASE_MAX_CONNECTIONS",
        default_value_t = 8
    )]
    pub database_max_connections: u32,
    /// PostgreSQL connections of GetCustomer and free-text pages, besides the pool; 0: one per
    /// CPU this process may use, at most the pool's size.
    #[arg(
        long,
        global = true,
        env = "CRM_DATABASE_READER_CONNECTIONS",
        default_value_t = 0
    )]
    pub database_reader_connections: u32,
    /// Milliseconds a call waits for a pooled connection before failing UNAVAILABLE.
    #[arg(
        long,
        global = true,
        env = "CRM_DATABASE_ACQUIRE_TIMEOUT_MS",
        default_value_t = 2000
    )]
    pub database_acquire_timeout_ms: u64,
    /// HS256 secret (at least 32 bytes) for development tokens.
    #[arg(long, global = true, env = "CRM_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
    /// File holding the HS256 secret.
    #[arg(long, global = true, env = "CRM_JWT_SECRET_FILE")]
    pub jwt_secret_file: Option<PathBuf>,
    /// PEM public key (RSA for RS256, EC P-256 for ES256) that verifies production tokens.
    #[arg(long, global = true, env = "CRM_JWT_PUBLIC_KEY_FILE")]
    pub jwt_public_key_file: Option<PathBuf>,
    /// Required `iss` of tokens, if set.
    #[arg(long, global = true, env = "CRM_JWT_ISSUER")]
    pub jwt_issuer: Option<String>,
    /// Required `aud` of tokens, if set.
    #[arg(long, global = true, env = "CRM_JWT_AUDIENCE")]
    pub jwt_audience: Option<String>,
    /// How long a deletion request waits for approval, then for execution, before it lapses.
    #[arg(long, global = true, env = "CRM_DELETION_REQUEST_TTL", default_value = "72h", value_parser = parse_duration)]
    pub deletion_request_ttl: Duration,
    /// How long a deleted customer, or a record deleted on its own, can be restored before it is
    /// erased.
    #[arg(long, global = true, env = "CRM_RETENTION", default_value = "30d", value_parser = parse_duration)]
    pub retention: Duration,
    /// How long a mutation's request_id is remembered (AIP-155 retries within it get the first answer).
    #[arg(long, global = true, env = "CRM_IDEMPOTENCY_KEY_TTL", default_value = "24h", value_parser = parse_duration)]
    pub idempotency_key_ttl: Duration,
    /// How often the server's purger erases deleted customers and records whose retention has
    /// passed; 0 turns it off (run `crm-service purge` as a job instead).
    #[arg(long, global = true, env = "CRM_PURGE_INTERVAL", default_value = "60s", value_parser = parse_duration)]
    pub purge_interval: Duration,
    /// Log format: `text` for people, `json` for log collectors.
    #[arg(long, global = true, env = "CRM_LOG_FORMAT", default_value = "text")]
    pub log_format: String,
    /// PostgreSQL: the longest one statement may run (`statement_timeout`); 0 = no limit.
    #[arg(long, global = true, env = "CRM_DATABASE_STATEMENT_TIMEOUT", default_value = "5s", value_parser = parse_duration)]
    pub database_statement_timeout: Duration,
    /// PostgreSQL: the longest a statement waits for a row or table lock (`lock_timeout`).
    #[arg(long, global = true, env = "CRM_DATABASE_LOCK_TIMEOUT", default_value = "2s", value_parser = parse_duration)]
    pub database_lock_timeout: Duration,
    /// PostgreSQL: a session idle inside a transaction this long is ended by the server
    /// (`idle_in_transaction_session_timeout`), the backstop against a leaked transaction.
    #[arg(long, global = true, env = "CRM_DATABASE_IDLE_IN_TRANSACTION_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub database_idle_in_transaction_timeout: Duration,
    #[command(flatten)]
    pub server: ServerArgs,
}

/// Limits, transport security, telemetry endpoints and shutdown of `serve`.
#[derive(Debug, Args)]
pub struct ServerArgs {
    /// Calls served at once by this process; beyond it calls are refused at once with
    /// RESOURCE_EXHAUSTED (health checks are never refused).
    #[arg(
        long,
        global = true,
        env = "CRM_MAX_CONCURRENT_CALLS",
        default_value_t = 256
    )]
    pub max_concurrent_calls: usize,
    /// Cap on a call's deadline: a call without one, or with a longer one, ends DEADLINE_EXCEEDED
    /// after this long. Streams are not capped (their clients set their own deadlines).
    #[arg(long, global = true, env = "CRM_MAX_CALL_DURATION", default_value = "30s", value_parser = parse_duration)]
    pub max_call_duration: Duration,
    /// HTTP/2 streams (calls) one connection may have open at once.
    #[arg(
        long,
        global = true,
        env = "CRM_HTTP2_MAX_CONCURRENT_STREAMS",
        default_value_t = 128
    )]
    pub http2_max_concurrent_streams: u32,
    /// Interval of HTTP/2 keepalive pings to each client (0 = none).
    #[arg(long, global = true, env = "CRM_HTTP2_KEEPALIVE_INTERVAL", default_value = "30s", value_parser = parse_duration)]
    pub http2_keepalive_interval: Duration,
    /// A client that does not answer a keepalive ping within this is disconnected.
    #[arg(long, global = true, env = "CRM_HTTP2_KEEPALIVE_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub http2_keepalive_timeout: Duration,
    /// Connections are closed gracefully after this age so clients re-balance over new replicas
    /// (0 = never).
    #[arg(long, global = true, env = "CRM_MAX_CONNECTION_AGE", default_value = "0s", value_parser = parse_duration)]
    pub max_connection_age: Duration,
    /// PEM certificate chain: serve TLS (with --tls-key-file).
    #[arg(
        long,
        global = true,
        env = "CRM_TLS_CERT_FILE",
        requires = "tls_key_file"
    )]
    pub tls_cert_file: Option<PathBuf>,
    /// PEM private key of --tls-cert-file.
    #[arg(
        long,
        global = true,
        env = "CRM_TLS_KEY_FILE",
        requires = "tls_cert_file"
    )]
    pub tls_key_file: Option<PathBuf>,
    /// PEM CA bundle: require client certificates signed by it (mTLS).
    #[arg(
        long,
        global = true,
        env = "CRM_TLS_CLIENT_CA_FILE",
        requires = "tls_cert_file"
    )]
    pub tls_client_ca_file: Option<PathBuf>,
    /// Also serve grpc.health.v1 alone, in plaintext, here: for probes that cannot speak TLS
    /// (Kubernetes' native gRPC probes).
    #[arg(long, global = true, env = "CRM_HEALTH_LISTEN")]
    pub health_listen: Option<SocketAddr>,
    /// Serve Prometheus metrics at http://ADDR/metrics.
    #[arg(long, global = true, env = "CRM_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
    /// OTLP/gRPC collector for traces and metrics (the standard variable; unset = no export).
    #[arg(long, global = true, env = "OTEL_EXPORTER_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,
    /// After SIGTERM, keep serving this long with health NOT_SERVING, so load balancers stop
    /// sending new calls before the listener closes.
    #[arg(long, global = true, env = "CRM_SHUTDOWN_DELAY", default_value = "0s", value_parser = parse_duration)]
    pub shutdown_delay: Duration,
    /// Then wait at most this long for in-flight calls to finish before exiting.
    #[arg(long, global = true, env = "CRM_SHUTDOWN_GRACE", default_value = "20s", value_parser = parse_duration)]
    pub shutdown_grace: Duration,
}

#[derive(Debug, Args)]
pub struct TokenArgs {
    /// Tenant the token is scoped to.
    #[arg(long)]
    pub tenant: String,
    /// User or service id (`sub`).
    #[arg(long)]
    pub user: String,
    /// Role: sales_rep, supervisor, admin or service (repeat for several).
    #[arg(long = "role", required = true)]
    pub roles: Vec<String>,
    /// Lifetime, e.g. 30m, 1h, 7d.
    #[arg(long, default_value = "1h", value_parser = parse_duration)]
    pub ttl: Duration,
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
}

pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let (number, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len()),
    );
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 30m, 1h or 7d"))?;
    let secs = match unit {
        "ms" => return Ok(Duration::from_millis(n)),
        "s" | "" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        _ => return Err(format!("{text:?}: the unit must be ms, s, m, h or d")),
    };
    Ok(Duration::from_secs(secs))
}

impl CommonArgs {
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

    pub fn jwt(&self) -> JwtSettings {
        JwtSettings {
            secret: self.jwt_secret.clone(),
            secret_file: self.jwt_secret_file.clone(),
            public_key_file: self.jwt_public_key_file.clone(),
            issuer: self.jwt_issuer.clone(),
            audience: self.jwt_audience.clone(),
        }
    }

    pub fn settings(&self) -> Settings {
        let server = &self.server;
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
            database: self.store_config(),
            jwt: self.jwt(),
            idempotency_key_ttl: self.idempotency_key_ttl,
            purge_interval: (!self.purge_interval.is_zero()).then_some(self.purge_interval),
            lifecycle: LifecycleSettings {
                request_ttl: self.deletion_request_ttl,
                retention: self.retention,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("30m").unwrap(), Duration::from_secs(1800));
        assert_eq!(parse_duration("7d").unwrap(), Duration::from_secs(604_800));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert!(parse_duration("1w").is_err());
        assert!(parse_duration("h").is_err());
    }
}
