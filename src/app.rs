//! Start-up: connect and migrate the database, resolve the signing key, bind the listener (port 0
//! works, for tests), and serve until a shutdown signal.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use tokio::net::TcpListener;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Certificate, Identity, ServerTlsConfig};
use tonic_health::ServingStatus;
use tonic_health::pb::health_server::HealthServer;
use tonic_health::server::{HealthReporter, HealthService};

use crate::api::audit::AuditApi;
use crate::api::batches::BatchApi;
use crate::api::customers::CustomerApi;
use crate::api::deletion::DeletionApi;
use crate::api::events::EventApi;
use crate::api::records::RecordApi;
use crate::api::settings::SettingsApi;
use crate::auth::{AuthConfig, Authenticator, KeySource};
use crate::domain::Clock;
use crate::domain::audit::AuditLog;
use crate::domain::batches::{BatchSettings, Batches};
use crate::domain::customers::Customers;
use crate::domain::deletion::{Deletions, LifecycleSettings};
use crate::domain::duplicates::Duplicates;
use crate::domain::escalation::Escalations;
use crate::domain::events::{CustomerEvents, EventSignal};
use crate::domain::export::Exports;
use crate::domain::paging::PageTokenKey;
use crate::domain::purge::Purges;
use crate::domain::records::Records;
use crate::domain::tenant_settings::{ApprovalSettings, TenantPolicies, TenantSettings};
use crate::layers::{AdmissionLayer, MAX_METADATA_BYTES, MetadataLimitLayer, TelemetryLayer};
use crate::proto::crm::v1::audit_service_server::AuditServiceServer;
use crate::proto::crm::v1::customer_event_service_server::CustomerEventServiceServer;
use crate::proto::crm::v1::customer_service_server::CustomerServiceServer;
use crate::proto::crm::v1::deletion_approval_service_server::DeletionApprovalServiceServer;
use crate::proto::crm::v1::deletion_batch_service_server::DeletionBatchServiceServer;
use crate::proto::crm::v1::record_service_server::RecordServiceServer;
use crate::proto::crm::v1::tenant_settings_service_server::TenantSettingsServiceServer;
use crate::store::{Store, StoreConfig, secrets};

/// Requests larger than this are refused by tonic's framing (`OUT_OF_RANGE`); no call of this API
/// needs more.
const MAX_REQUEST_BYTES: usize = 1024 * 1024;
/// The header list HTTP/2 accepts (`SETTINGS_MAX_HEADER_LIST_SIZE`; hyper's default is 16 KiB).
/// Far above the service's own limit (`layers::MAX_METADATA_BYTES`), so that a call between the
/// two reaches the metadata layer and gets a gRPC status instead of HTTP 431 or a GOAWAY; no more
/// than a message may hold, since h2 keeps a header list whole in memory. Above it h2 still
/// refuses the call itself (README: "Limits and what a client sees").
pub const TRANSPORT_MAX_HEADER_LIST_BYTES: u32 = 1024 * 1024;
/// The named services readiness probes ask about.
pub const SERVICE_NAMES: [&str; 7] = [
    "crm.v1.CustomerService",
    "crm.v1.RecordService",
    "crm.v1.DeletionApprovalService",
    "crm.v1.DeletionBatchService",
    "crm.v1.AuditService",
    "crm.v1.CustomerEventService",
    "crm.v1.TenantSettingsService",
];

/// Where the JWT verification key comes from, as configured.
#[derive(Debug, Clone, Default)]
pub struct JwtSettings {
    /// HS256 shared secret (development and tests).
    pub secret: Option<String>,
    /// File holding the HS256 secret (a mounted Secret).
    pub secret_file: Option<PathBuf>,
    /// PEM public key (RS256 or ES256) for production.
    pub public_key_file: Option<PathBuf>,
    pub issuer: Option<String>,
    pub audience: Option<String>,
}

/// What one process takes on at once, and for how long.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Calls in flight across all connections; the excess is refused at once.
    pub max_concurrent_calls: usize,
    /// Cap on a call's deadline.
    pub max_call_duration: Duration,
    pub http2_max_concurrent_streams: u32,
    pub http2_keepalive_interval: Option<Duration>,
    pub http2_keepalive_timeout: Duration,
    /// Connections are closed gracefully after this age, so clients spread over new replicas.
    pub max_connection_age: Option<Duration>,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_concurrent_calls: 256,
            max_call_duration: Duration::from_secs(30),
            http2_max_concurrent_streams: 128,
            http2_keepalive_interval: Some(Duration::from_secs(30)),
            http2_keepalive_timeout: Duration::from_secs(10),
            max_connection_age: None,
        }
    }
}

/// PEM files of the server's TLS identity, and of the CA its clients' certificates must chain to
/// (mTLS) if set.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub client_ca: Option<PathBuf>,
}

/// How the server stops on SIGTERM: health NOT_SERVING and still serving for `delay`, then no new
/// calls and at most `grace` for the calls in flight.
#[derive(Debug, Clone)]
pub struct Shutdown {
    pub delay: Duration,
    pub grace: Duration,
}

impl Default for Shutdown {
    fn default() -> Self {
        Self {
            delay: Duration::ZERO,
            grace: Duration::from_secs(20),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: SocketAddr,
    pub limits: Limits,
    pub tls: Option<TlsFiles>,
    /// A plaintext listener for grpc.health.v1 alone (probes that cannot speak TLS).
    pub health_listen: Option<SocketAddr>,
    pub shutdown: Shutdown,
    pub database: StoreConfig,
    pub jwt: JwtSettings,
    pub lifecycle: LifecycleSettings,
    /// Deletion batches: their limits and the pace of their background work.
    pub batches: BatchSettings,
    /// How long a `request_id` is remembered; a retry after that is a new request.
    pub idempotency_key_ttl: Duration,
    /// How often the purger looks for deleted customers whose retention has passed (`None`: never,
    /// e.g. when purging runs as a job with `crm-service purge`).
    pub purge_interval: Option<Duration>,
    /// How often pending requests and batches past their escalation time are escalated (`None`:
    /// never).
    pub escalation_interval: Option<Duration>,
    /// The time of every write and rule: the system's, or in tests one they move forward.
    pub clock: Clock,
    /// The country calling code (digits) of phone numbers written without one, for duplicate
    /// search; `None`: such numbers match only numbers written the same way.
    pub phone_default_country_code: Option<String>,
    /// Escalation and the team claims. With `lifecycle` and the phone country, the settings of
    /// a tenant that never changed its own (TenantSettingsService).
    pub approvals: ApprovalSettings,
    /// The relay of customer events to NATS JetStream; `None`: off.
    pub event_relay: Option<crate::relay::RelaySettings>,
}

impl Settings {
    /// What a tenant that never changed its settings has: this process's.
    pub fn tenant_defaults(&self) -> TenantSettings {
        TenantSettings {
            retention: self.lifecycle.retention,
            request_ttl: self.lifecycle.request_ttl,
            escalate_after: self.approvals.escalate_after,
            teams_claim: self.approvals.teams_claim.clone(),
            supervises_claim: self.approvals.supervises_claim.clone(),
            phone_default_country_code: self.phone_default_country_code.clone(),
            two_person: Default::default(),
            version: 0,
            update_time: None,
            updated_by: String::new(),
        }
    }
}

/// A configured key, or for a SQLite database without one, the development secret kept beside the
/// database file (created on first use, so `serve` and `token` agree without set-up).
pub enum ResolvedKey {
    Configured(KeySource),
    Development {
        secret: Vec<u8>,
        path: PathBuf,
        created: bool,
    },
}

impl ResolvedKey {
    pub fn key_source(&self) -> KeySource {
        match self {
            ResolvedKey::Configured(source) => source.clone(),
            ResolvedKey::Development { secret, .. } => KeySource::Secret(secret.clone()),
        }
    }
}

/// The SQLite file a `sqlite:` URL names, if it names one.
pub fn sqlite_file(url: &str) -> Option<PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or_default();
    (!path.is_empty() && path != ":memory:").then(|| PathBuf::from(path))
}

/// Whether a missing development secret is made (by the server, on its first start) or is an
/// error (for `token`: a new secret would sign tokens that no running server accepts).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DevSecret {
    CreateIfMissing,
    MustExist,
}

/// The key `serve` verifies tokens with and `token` signs them with. The database URL is checked
/// first: the development secret's path is derived from it, and a URL this service cannot use
/// must be reported as such, not as a missing key.
pub fn resolve_key(
    jwt: &JwtSettings,
    database_url: &str,
    dev_secret: DevSecret,
) -> Result<ResolvedKey, String> {
    crate::store::check_database_url(database_url)?;
    if let Some(secret) = jwt.secret.as_ref().filter(|s| !s.is_empty()) {
        return Ok(ResolvedKey::Configured(KeySource::Secret(
            secret.as_bytes().to_vec(),
        )));
    }
    if let Some(path) = &jwt.secret_file {
        let secret = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        return Ok(ResolvedKey::Configured(KeySource::Secret(
            secret.trim().as_bytes().to_vec(),
        )));
    }
    if let Some(path) = &jwt.public_key_file {
        let pem =
            std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        return Ok(ResolvedKey::Configured(KeySource::PublicKeyPem(pem)));
    }
    let Some(file) = sqlite_file(database_url) else {
        return Err(
            "no JWT key configured: set CRM_JWT_PUBLIC_KEY_FILE (RS256/ES256) or CRM_JWT_SECRET \
                    (HS256); only a SQLite database gets a development secret"
                .into(),
        );
    };
    let path = crate::auth::dev_secret_path(&file);
    if dev_secret == DevSecret::MustExist && !path.exists() {
        let looked = std::path::absolute(&path).unwrap_or_else(|_| path.clone());
        return Err(format!(
            "no signing key: neither --jwt-secret nor --jwt-secret-file is set, and there is no \
             development secret at {} (a server started with --database-url {database_url} in \
             this directory would keep it there). Run this command in the directory the server \
             runs in, or point it at the server's database with --database-url \
             sqlite:///ABSOLUTE/PATH/crm.db (or CRM_DATABASE_URL), or give the server's secret \
             with --jwt-secret-file (or CRM_JWT_SECRET_FILE). No key was created: a new one \
             would not match the server's.",
            looked.display()
        ));
    }
    let (secret, created) = crate::auth::load_or_create_dev_secret(&path)
        .map_err(|e| format!("cannot use the development secret {}: {e}", path.display()))?;
    Ok(ResolvedKey::Development {
        secret,
        path,
        created,
    })
}

/// Why an address cannot be listened on, and the setting that chooses another.
pub fn cannot_listen(
    purpose: &str,
    addr: SocketAddr,
    error: &std::io::Error,
    setting: &str,
) -> String {
    use std::io::ErrorKind;
    let why = match error.kind() {
        ErrorKind::AddrInUse => format!(
            "another process (perhaps another crm-service) already listens on port {}",
            addr.port()
        ),
        ErrorKind::AddrNotAvailable => format!("{} is not an address of this machine", addr.ip()),
        ErrorKind::PermissionDenied => format!(
            "this user may not listen on port {} (ports below 1024 need privileges)",
            addr.port()
        ),
        _ => error.to_string(),
    };
    format!(
        "cannot listen{purpose} on {addr}: {why}. Choose another address with {setting} \
         (port 0 picks a free one)"
    )
}

pub struct Application {
    listener: TcpListener,
    local_addr: SocketAddr,
    health_listener: Option<TcpListener>,
    limits: Limits,
    tls: Option<ServerTlsConfig>,
    shutdown: Shutdown,
    store: Store,
    health: HealthReporter,
    customers: Customers,
    duplicates: Duplicates,
    records: Records,
    deletions: Deletions,
    batches: Batches,
    policies: TenantPolicies,
    audit: AuditLog,
    authenticator: Authenticator,
    idempotency_key_ttl: Duration,
    purges: Purges,
    purge_interval: Option<Duration>,
    escalations: Escalations,
    escalation_interval: Option<Duration>,
    event_relay: Option<crate::relay::RelaySettings>,
}

impl Application {
    pub async fn build(settings: Settings) -> Result<Self, String> {
        let key = resolve_key(
            &settings.jwt,
            &settings.database.url,
            DevSecret::CreateIfMissing,
        )?;
        if let ResolvedKey::Development { path, created, .. } = &key {
            tracing::warn!(
                path = %path.display(),
                created,
                "no JWT key configured: using the development secret beside the SQLite file (never in production)"
            );
        }
        let authenticator = Authenticator::new(&AuthConfig {
            key: key.key_source(),
            issuer: settings.jwt.issuer.clone(),
            audience: settings.jwt.audience.clone(),
        })?;
        let tls = settings.tls.as_ref().map(tls_config).transpose()?;

        let health = HealthReporter::new();
        for name in SERVICE_NAMES {
            health
                .set_service_status(name, ServingStatus::NotServing)
                .await;
        }

        let store = Store::connect(&settings.database)
            .await
            .map_err(|e| format!("cannot open the database: {e}"))?;
        store
            .migrate()
            .await
            .map_err(|e| format!("cannot migrate the database: {e}"))?;
        let page_key = secrets::get_or_create(store.conn(), "page_token_key")
            .await
            .map_err(|e| format!("cannot read the page-token key: {e}"))?;
        let page_key = PageTokenKey::new(page_key);
        let customers = Customers::new(store.clone(), page_key.clone(), settings.clock.clone());
        let policies = TenantPolicies::new(
            store.clone(),
            settings.clock.clone(),
            settings.tenant_defaults(),
        );
        let duplicates = Duplicates::new(
            store.clone(),
            page_key.clone(),
            settings.clock.clone(),
            policies.clone(),
        );
        let records = Records::new(
            store.clone(),
            page_key.clone(),
            settings.clock.clone(),
            policies.clone(),
        );
        let deletions = Deletions::new(
            store.clone(),
            page_key.clone(),
            settings.clock.clone(),
            policies.clone(),
        );
        let batches = Batches::new(
            store.clone(),
            deletions.clone(),
            page_key.clone(),
            settings.clock.clone(),
            settings.batches,
        );
        let audit = AuditLog::new(store.clone(), page_key, settings.clock.clone());
        let store_for_purges = store.clone();
        let store_for_escalations = store.clone();

        let listener = TcpListener::bind(settings.listen)
            .await
            .map_err(|e| cannot_listen("", settings.listen, &e, "--listen / CRM_LISTEN"))?;
        let local_addr = listener.local_addr().map_err(|e| e.to_string())?;
        let health_listener = match settings.health_listen {
            Some(addr) => Some(TcpListener::bind(addr).await.map_err(|e| {
                cannot_listen(
                    " for health checks",
                    addr,
                    &e,
                    "--health-listen / CRM_HEALTH_LISTEN",
                )
            })?),
            None => None,
        };
        Ok(Self {
            listener,
            local_addr,
            health_listener,
            limits: settings.limits,
            tls,
            shutdown: settings.shutdown,
            store,
            health,
            customers,
            duplicates,
            records,
            deletions,
            batches,
            policies,
            audit,
            authenticator,
            idempotency_key_ttl: settings.idempotency_key_ttl,
            purges: Purges::new(store_for_purges, settings.clock.clone()),
            purge_interval: settings.purge_interval,
            escalations: Escalations::new(store_for_escalations, settings.clock.clone()),
            escalation_interval: settings.escalation_interval,
            event_relay: settings.event_relay,
        })
    }

    /// The address actually bound (the port is the real one when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The plaintext health-check address, if one was asked for.
    pub fn health_addr(&self) -> Option<SocketAddr> {
        self.health_listener
            .as_ref()
            .and_then(|l| l.local_addr().ok())
    }

    /// Serves until `shutdown` completes, then stops as [`Shutdown`] says: health NOT_SERVING
    /// (and event streams ended) at once, new calls still served for the delay, then in-flight
    /// calls given the grace period.
    pub async fn run_until(self, shutdown: impl Future<Output = ()> + Send) -> Result<(), String> {
        let signal = EventSignal::new(if self.store.is_postgres() {
            // Watchers wake on PostgreSQL NOTIFY and look anyway every few seconds.
            Duration::from_secs(5)
        } else {
            Duration::from_millis(200)
        });
        let mut background = BackgroundTasks::default();
        background.spawn(crate::domain::events::listen(
            self.store.clone(),
            signal.clone(),
        ));
        let watchdog = tokio::spawn(watch_database(self.store.clone(), self.health.clone()));
        background.spawn(sweep_idempotency_keys(
            self.store.clone(),
            self.idempotency_key_ttl,
        ));
        // Each process works batches under an owner name of its own: a replica that restarts is
        // a new owner, and waits for its previous self's claims to lapse like anyone else's.
        let worker = format!("{}-{}", std::process::id(), uuid::Uuid::now_v7());
        background.spawn(self.batches.clone().work(worker));
        if let Some(every) = self.purge_interval {
            background.spawn(purge_due(self.purges.clone(), every));
        }
        if self.store.is_postgres() {
            background.spawn(vacuum_audit_heads(self.store.clone()));
        }
        if let Some(every) = self.escalation_interval {
            background.spawn(escalate_due(self.escalations.clone(), every));
        }
        // Every replica runs the relay; the one holding its lease publishes.
        let relay = self.event_relay.clone().map(|settings| {
            let holder = crate::relay::holder_name();
            let task = tokio::spawn(crate::relay::run(
                self.store.clone(),
                signal.clone(),
                settings,
                holder.clone(),
            ));
            (task, holder)
        });

        let (stop, stopped) = tokio::sync::watch::channel(false);
        let stop_signal = |mut stopped: tokio::sync::watch::Receiver<bool>| async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        };
        let health_service =
            HealthServer::new(HealthService::from_health_reporter(self.health.clone()));
        if let Some(health_listener) = self.health_listener {
            background.spawn(
                Server::builder()
                    .add_service(health_service.clone())
                    .serve_with_incoming_shutdown(
                        TcpIncoming::from(health_listener).with_nodelay(Some(true)),
                        stop_signal(stopped.clone()),
                    ),
            );
        }

        let auth = &self.authenticator;
        let limits = &self.limits;
        let server = server_builder(limits, self.tls.clone())?
            .layer(TelemetryLayer::new())
            .layer(MetadataLimitLayer::new(MAX_METADATA_BYTES))
            .layer(AdmissionLayer::new(
                limits.max_concurrent_calls,
                limits.max_call_duration,
            ))
            .add_service(health_service)
            .add_service(reflection().build_v1().map_err(|e| e.to_string())?)
            .add_service(reflection().build_v1alpha().map_err(|e| e.to_string())?)
            .add_service(InterceptedService::new(
                CustomerServiceServer::new(CustomerApi::new(
                    self.customers,
                    self.deletions.clone(),
                    self.purges.clone(),
                    Exports::new(self.store.clone()),
                    self.duplicates,
                ))
                .max_decoding_message_size(MAX_REQUEST_BYTES),
                auth.clone(),
            ))
            .add_service(InterceptedService::new(
                RecordServiceServer::new(RecordApi::new(self.records))
                    .max_decoding_message_size(MAX_REQUEST_BYTES),
                auth.clone(),
            ))
            .add_service(InterceptedService::new(
                DeletionApprovalServiceServer::new(DeletionApi::new(self.deletions))
                    .max_decoding_message_size(MAX_REQUEST_BYTES),
                auth.clone(),
            ))
            .add_service(InterceptedService::new(
                DeletionBatchServiceServer::new(BatchApi::new(self.batches))
                    .max_decoding_message_size(MAX_REQUEST_BYTES),
                auth.clone(),
            ))
            .add_service(InterceptedService::new(
                AuditServiceServer::new(AuditApi::new(self.audit))
                    .max_decoding_message_size(MAX_REQUEST_BYTES),
                auth.clone(),
            ))
            .add_service(InterceptedService::new(
                TenantSettingsServiceServer::new(SettingsApi::new(self.policies))
                    .max_decoding_message_size(MAX_REQUEST_BYTES),
                auth.clone(),
            ))
            .add_service(InterceptedService::new(
                CustomerEventServiceServer::new(EventApi::new(CustomerEvents::new(
                    self.store.clone(),
                    signal.clone(),
                )))
                .max_decoding_message_size(MAX_REQUEST_BYTES),
                auth.clone(),
            ))
            .serve_with_incoming_shutdown(
                // Nagle off: a response's header, data and trailer frames would otherwise wait on
                // the client's delayed ACK (a 40 ms stall per call, measured on PreviewDelete).
                TcpIncoming::from(self.listener)
                    .with_nodelay(Some(true))
                    .with_keepalive(limits.http2_keepalive_interval),
                stop_signal(stopped),
            );
        tokio::pin!(server);

        let result = tokio::select! {
            ended = &mut server => ended.map_err(|e| e.to_string()),
            () = shutdown => {
                // Readiness first, so load balancers stop sending calls; the database watch
                // must not turn it back on.
                watchdog.abort();
                announce_shutdown(&self.health, &signal).await;
                drain(server, &stop, &self.shutdown).await
            }
        };
        let _ = stop.send(true);
        watchdog.abort();
        if let Some((task, holder)) = relay {
            // Stopped before its lease is given up, so the next leader starts where it ended.
            task.abort();
            let _ = task.await;
            crate::relay::release(&self.store, &holder).await;
        }
        result
    }
}

/// Tasks that live as long as the server: ended when it returns, however it returns.
#[derive(Default)]
struct BackgroundTasks(Vec<tokio::task::JoinHandle<()>>);

impl BackgroundTasks {
    fn spawn<T: Send + 'static>(&mut self, task: impl Future<Output = T> + Send + 'static) {
        self.0.push(tokio::spawn(async move {
            task.await;
        }));
    }
}

impl Drop for BackgroundTasks {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

/// HTTP/2 and TLS as configured; the services and layers come on top.
fn server_builder(limits: &Limits, tls: Option<ServerTlsConfig>) -> Result<Server, String> {
    let mut builder = Server::builder()
        .http2_max_header_list_size(TRANSPORT_MAX_HEADER_LIST_BYTES)
        .max_concurrent_streams(limits.http2_max_concurrent_streams)
        .http2_keepalive_interval(limits.http2_keepalive_interval)
        .http2_keepalive_timeout(Some(limits.http2_keepalive_timeout));
    if let Some(age) = limits.max_connection_age {
        builder = builder.max_connection_age(age);
    }
    if let Some(tls) = tls {
        builder = builder
            .tls_config(tls)
            .map_err(|e| format!("cannot set up TLS: {e}"))?;
    }
    Ok(builder)
}

/// The first step of a shutdown: every health status NOT_SERVING, and event streams ended (they
/// never end by themselves), telling their clients to resume elsewhere.
async fn announce_shutdown(health: &HealthReporter, signal: &EventSignal) {
    health
        .set_not_serving::<HealthServer<HealthService>>()
        .await;
    health
        .set_service_status("", ServingStatus::NotServing)
        .await;
    for name in SERVICE_NAMES {
        health
            .set_service_status(name, ServingStatus::NotServing)
            .await;
    }
    signal.close();
}

/// Then: new calls still served for `delay`, then no new calls and at most `grace` for those in
/// flight.
async fn drain<E: std::fmt::Display>(
    mut server: std::pin::Pin<&mut impl Future<Output = Result<(), E>>>,
    stop: &tokio::sync::watch::Sender<bool>,
    &Shutdown { delay, grace }: &Shutdown,
) -> Result<(), String> {
    tracing::info!(
        delay_ms = delay.as_millis() as u64,
        grace_ms = grace.as_millis() as u64,
        "shutting down: health NOT_SERVING"
    );
    tokio::select! {
        ended = &mut server => return ended.map_err(|e| e.to_string()),
        () = tokio::time::sleep(delay) => {}
    }
    let _ = stop.send(true);
    match tokio::time::timeout(grace, server).await {
        Ok(ended) => ended.map_err(|e| e.to_string()),
        Err(_) => {
            tracing::warn!(
                grace_ms = grace.as_millis() as u64,
                "calls still in flight after the grace period: stopping anyway"
            );
            Ok(())
        }
    }
}

/// Reads and checks the TLS files at start-up: a missing, unreadable or unusable file is an
/// error that names it, before anything is served.
fn tls_config(files: &TlsFiles) -> Result<ServerTlsConfig, String> {
    let read = |path: &PathBuf, holds: &str| {
        let pem =
            std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        if !String::from_utf8_lossy(&pem).contains(&format!("{holds}-----")) {
            return Err(format!("{} holds no PEM {holds}", path.display()));
        }
        Ok(pem)
    };
    let mut config = ServerTlsConfig::new()
        .identity(Identity::from_pem(
            read(&files.cert, "CERTIFICATE")?,
            read(&files.key, "PRIVATE KEY")?,
        ))
        // A peer that never finishes its handshake must not hold a connection forever.
        .timeout(Duration::from_secs(10));
    let mut described = format!(
        "{} with the key {}",
        files.cert.display(),
        files.key.display()
    );
    if let Some(ca) = &files.client_ca {
        config = config.client_ca_root(Certificate::from_pem(read(ca, "CERTIFICATE")?));
        described.push_str(&format!(" and the client CA {}", ca.display()));
    }
    // tonic builds the rustls configuration here: a key that does not match its certificate, or
    // a certificate rustls cannot use, is found now rather than when serving starts.
    Server::builder()
        .tls_config(config.clone())
        .map_err(|e| format!("cannot serve TLS with {described}: {}", error_chain(&e)))?;
    Ok(config)
}

/// An error and its causes, `: `-separated (tonic's transport errors hide the rustls cause).
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn reflection() -> tonic_reflection::server::Builder<'static> {
    tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(crate::proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_types::pb::FILE_DESCRIPTOR_SET)
}

/// How long the database watch waits for an answer before it counts the database as gone.
const DATABASE_CHECK_TIMEOUT: Duration = Duration::from_millis(500);
/// Between the watch's periodic checks: while serving, and while not.
const DATABASE_CHECK_SERVING: Duration = Duration::from_secs(5);
const DATABASE_CHECK_NOT_SERVING: Duration = Duration::from_secs(1);
/// However many calls fail, the watch checks at most this often.
const DATABASE_CHECK_AT_MOST: Duration = Duration::from_millis(200);

/// Keeps the named services' health in step with the database: SERVING while it answers,
/// NOT_SERVING while it does not, so readiness probes take a replica out of rotation. Besides its
/// periodic checks, it checks at once when a call has failed for a database reason
/// (`store::database_trouble`): readiness follows an outage within a second of the first call
/// that met it, instead of up to a period later.
async fn watch_database(store: Store, health: HealthReporter) {
    let mut trouble = crate::store::database_trouble().subscribe();
    let mut serving = None;
    loop {
        let checked = tokio::time::Instant::now();
        let ok = store.answers(DATABASE_CHECK_TIMEOUT).await;
        if serving != Some(ok) {
            let status = if ok {
                ServingStatus::Serving
            } else {
                ServingStatus::NotServing
            };
            for name in SERVICE_NAMES {
                health.set_service_status(name, status).await;
            }
            if ok {
                tracing::info!("database reachable: serving");
            } else {
                tracing::warn!("database unreachable: not serving");
            }
            serving = Some(ok);
        }
        let period = if ok {
            DATABASE_CHECK_SERVING
        } else {
            DATABASE_CHECK_NOT_SERVING
        };
        tokio::select! {
            () = tokio::time::sleep_until(checked + period) => {}
            Ok(()) = trouble.changed() => {
                tokio::time::sleep_until(checked + DATABASE_CHECK_AT_MOST).await;
            }
        }
    }
}

/// Forgets idempotency keys older than `ttl`, a sweep every tenth of it (at most every 10 minutes),
/// so each sweep deletes a bounded slice. Every replica sweeps; the deletes are idempotent.
async fn sweep_idempotency_keys(store: Store, ttl: Duration) {
    let every = (ttl / 10).clamp(Duration::from_secs(1), Duration::from_secs(600));
    loop {
        tokio::time::sleep(every).await;
        let cutoff =
            chrono::Utc::now() - chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::MAX);
        match crate::store::idempotency::sweep(store.conn(), cutoff).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(forgotten = n, "expired idempotency keys swept"),
            Err(e) => {
                tracing::warn!(error = %e, "sweeping idempotency keys failed; retrying later")
            }
        }
    }
}

/// Batches of the purger: bounded work per transaction, repeated until nothing is due.
const PURGE_BATCH: u64 = 100;

/// The purger: every replica runs it; replicas skip each other's customers and records (SKIP
/// LOCKED on PostgreSQL, one writer on SQLite), so each is erased once.
async fn purge_due(purges: Purges, every: Duration) {
    loop {
        tokio::time::sleep(every).await;
        loop {
            match purges.run_due(PURGE_BATCH, false).await {
                Ok(report) => {
                    for (tenant, erased) in &report.erased {
                        tracing::info!(%tenant, customer_id = %erased.customer_id, erased = erased.erased_records,
                            kept = erased.kept_records, "customer erased after its retention");
                    }
                    for record in &report.records {
                        tracing::info!(tenant = %record.tenant, kind = record.kind.name(), id = %record.id,
                            customer_id = %record.customer_id, "record deleted on its own erased after its retention");
                    }
                    if !report.filled(PURGE_BATCH) {
                        break;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "purge pass failed; retrying at the next interval");
                    break;
                }
            }
        }
    }
}

/// How often the server vacuums the audit head table on PostgreSQL (`store::audit::vacuum_heads`):
/// whatever autovacuum does, the table stays at the size 10 s of writes leave it.
const AUDIT_HEAD_VACUUM_INTERVAL: Duration = Duration::from_secs(10);

async fn vacuum_audit_heads(store: Store) {
    loop {
        tokio::time::sleep(AUDIT_HEAD_VACUUM_INTERVAL).await;
        if let Err(e) = crate::store::audit::vacuum_heads(store.conn()).await {
            tracing::warn!(error = %e, "vacuuming the audit head table failed; retrying at the next interval");
        }
    }
}

/// Requests and batches escalated per pass and kind; a pass repeats while it fills.
const ESCALATION_BATCH: u64 = 100;

/// The escalation sweep: every replica runs it; each request or batch is escalated once.
async fn escalate_due(escalations: Escalations, every: Duration) {
    loop {
        tokio::time::sleep(every).await;
        loop {
            match escalations.run_due(ESCALATION_BATCH).await {
                Ok(escalated) => {
                    for e in &escalated {
                        tracing::info!(tenant = %e.tenant, id = %e.id, request = e.request,
                            pending_seconds = e.pending_seconds, "pending deletion escalated");
                    }
                    if (escalated.len() as u64) < ESCALATION_BATCH {
                        break;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "escalation pass failed; retrying at the next interval");
                    break;
                }
            }
        }
    }
}

/// Completes on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutdown signal received: finishing in-flight calls");
}
