//! The server's optional TLS and mTLS, black-box: certificates minted here with rcgen (a CA, a
//! server certificate for `localhost`/127.0.0.1, client certificates valid, expired, not yet valid
//! and from a foreign CA), the real server on an ephemeral port, tonic clients over TLS.
//!
//! `TestApp` connects a plaintext channel at start, which a TLS server refuses, so the server is
//! started here the way `common.rs` starts it, and the channels are made here.

use std::error::Error as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crm_service::app::{Application, TlsFiles};
use crm_service::auth::{TokenRequest, mint};
use crm_service::proto::crm::v1 as pb;
use crm_service::proto::crm::v1::customer_service_client::CustomerServiceClient;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, date_time_ymd,
};
use tokio::sync::oneshot;
use tonic::Code;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use uuid::Uuid;

use crate::common::{Bearer, SECRET, TestApp, new_customer};

/// A refused client must learn of it well within this; a hang fails the test instead of stalling.
const CALL_TIMEOUT: Duration = Duration::from_secs(3);

// ----- certificates ---------------------------------------------------------------------------

type Ca = CertifiedIssuer<'static, KeyPair>;

fn new_ca(name: &str) -> Ca {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
}

/// A leaf certificate and its key, as PEM.
struct Leaf {
    cert: String,
    key: String,
}

#[derive(Clone, Copy)]
enum Validity {
    Current,
    Expired,
    NotYetValid,
}

fn leaf(ca: &Ca, name: &str, usage: ExtendedKeyUsagePurpose, validity: Validity) -> Leaf {
    let mut params =
        CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![usage];
    (params.not_before, params.not_after) = match validity {
        Validity::Current => (date_time_ymd(2020, 1, 1), date_time_ymd(2999, 1, 1)),
        Validity::Expired => (date_time_ymd(2001, 1, 1), date_time_ymd(2002, 1, 1)),
        Validity::NotYetValid => (date_time_ymd(2998, 1, 1), date_time_ymd(2999, 1, 1)),
    };
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, ca).unwrap();
    Leaf {
        cert: cert.pem(),
        key: key.serialize_pem(),
    }
}

fn client_leaf(ca: &Ca, name: &str, validity: Validity) -> Leaf {
    leaf(ca, name, ExtendedKeyUsagePurpose::ClientAuth, validity)
}

/// The PKI of one test: the server's CA and certificate, written as PEM files to a temp dir.
struct Pki {
    dir: PathBuf,
    ca: Ca,
    server_cert: PathBuf,
    server_key: PathBuf,
    ca_file: PathBuf,
}

impl Pki {
    fn new() -> Pki {
        let dir = std::env::temp_dir().join(format!("crm-tls-{}", Uuid::now_v7().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let ca = new_ca("crm test CA");
        let server = leaf(
            &ca,
            "crm server",
            ExtendedKeyUsagePurpose::ServerAuth,
            Validity::Current,
        );
        let write = |name: &str, pem: &str| {
            let path = dir.join(name);
            std::fs::write(&path, pem).unwrap();
            path
        };
        Pki {
            server_cert: write("server.pem", &server.cert),
            server_key: write("server.key", &server.key),
            ca_file: write("ca.pem", &ca.pem()),
            ca,
            dir,
        }
    }

    fn files(&self, mtls: bool) -> TlsFiles {
        TlsFiles {
            cert: self.server_cert.clone(),
            key: self.server_key.clone(),
            client_ca: mtls.then(|| self.ca_file.clone()),
        }
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

// ----- the server -----------------------------------------------------------------------------

struct Server {
    addr: SocketAddr,
    health_addr: Option<SocketAddr>,
    shutdown: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), String>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.task.abort();
    }
}

/// `Application::build` with `tls`, on a SQLite file in `dir`.
async fn build(dir: &Path, tls: TlsFiles, health_listen: bool) -> Result<Application, String> {
    let url = format!("sqlite://{}", dir.join("crm.db").display());
    let mut settings = TestApp::test_settings(&url, None);
    settings.tls = Some(tls);
    if health_listen {
        settings.health_listen = Some("127.0.0.1:0".parse().unwrap());
    }
    Application::build(settings).await
}

fn run(app: Application) -> Server {
    let addr = app.local_addr();
    let health_addr = app.health_addr();
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(app.run_until(async move {
        let _ = rx.await;
    }));
    Server {
        addr,
        health_addr,
        shutdown: Some(tx),
        task,
    }
}

async fn serve(pki: &Pki, mtls: bool) -> Server {
    run(build(&pki.dir, pki.files(mtls), false)
        .await
        .expect("server starts"))
}

// ----- clients --------------------------------------------------------------------------------

/// A TLS channel to `addr` trusting `ca` (PEM), presenting `identity` if given.
async fn connect(
    addr: SocketAddr,
    ca: &str,
    identity: Option<&Leaf>,
) -> Result<Channel, tonic::transport::Error> {
    let mut tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(ca))
        .domain_name("localhost");
    if let Some(leaf) = identity {
        tls = tls.identity(Identity::from_pem(&leaf.cert, &leaf.key));
    }
    Channel::from_shared(format!("https://127.0.0.1:{}", addr.port()))
        .unwrap()
        .tls_config(tls)?
        .connect_timeout(CALL_TIMEOUT)
        .timeout(CALL_TIMEOUT)
        .connect()
        .await
}

/// The overall health (`""`), or the call's error.
async fn health(channel: Channel) -> Result<ServingStatus, tonic::Status> {
    let response = HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await?;
    Ok(response.into_inner().status())
}

/// CreateCustomer then GetCustomer as a sales rep of `acme`: the customer read back.
async fn create_and_read(channel: Channel, name: &str) -> Result<pb::Customer, tonic::Status> {
    let token = mint(
        SECRET.as_bytes(),
        &TokenRequest {
            tenant: "acme".into(),
            subject: "rep-tls".into(),
            roles: vec!["sales_rep".into()],
            ttl: Duration::from_secs(600),
            issuer: None,
            audience: None,
            claims: Default::default(),
        },
    )
    .unwrap();
    let mut customers = CustomerServiceClient::with_interceptor(channel, Bearer::new(&token));
    let created = customers
        .create_customer(new_customer(name))
        .await?
        .into_inner()
        .customer
        .unwrap();
    let read = customers
        .get_customer(pb::GetCustomerRequest {
            customer_id: created.id.clone(),
        })
        .await?
        .into_inner()
        .customer
        .unwrap();
    assert_eq!(read.id, created.id);
    Ok(read)
}

/// An error and its sources, one line.
fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut out = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        out.push_str(" <- ");
        out.push_str(&e.to_string());
        source = e.source();
    }
    out
}

/// The fatal alerts a refused client may see (when the connection is not reset first).
const ALERT: &str = "received fatal alert";
/// How a client learns of a refusal when the alert is lost to the connection's reset.
const CLOSED: [&str; 4] = [
    "connection closed",
    "broken pipe",
    "connection was not ready",
    "connection reset",
];

/// Asserts that a client presenting `identity` (or none) is refused at the TLS layer: either the
/// connect or its first call (an authenticated CreateCustomer) fails with a transport error, the
/// TLS alert `alert` when the client got to read it, never a gRPC answer. Returns what it saw.
async fn assert_refused(
    addr: SocketAddr,
    ca: &str,
    identity: Option<&Leaf>,
    alert: &str,
) -> String {
    let seen = match connect(addr, ca, identity).await {
        Err(e) => format!("connect: {}", chain(&e)),
        Ok(channel) => {
            let status = create_and_read(channel, "Refused Ltd")
                .await
                .expect_err("a refused client must not be served");
            assert!(
                matches!(
                    status.code(),
                    Code::Unknown | Code::Cancelled | Code::Unavailable
                ),
                "not a transport failure: {status:?}"
            );
            assert!(
                status
                    .source()
                    .is_some_and(|s| s.is::<tonic::transport::Error>()),
                "not a transport failure: {status:?}"
            );
            format!("call: {:?}: {}", status.code(), chain(&status))
        }
    };
    if seen.contains(ALERT) {
        assert!(seen.contains(&format!("{ALERT}: {alert}")), "{seen}");
    } else {
        assert!(CLOSED.iter().any(|c| seen.contains(c)), "{seen}");
    }
    seen
}

/// Every customer of `acme`, by name, as read over `channel`.
async fn customer_names(channel: Channel) -> Vec<String> {
    let token = mint(
        SECRET.as_bytes(),
        &TokenRequest {
            tenant: "acme".into(),
            subject: "reader".into(),
            roles: vec!["sales_rep".into()],
            ttl: Duration::from_secs(600),
            issuer: None,
            audience: None,
            claims: Default::default(),
        },
    )
    .unwrap();
    let mut names: Vec<String> =
        CustomerServiceClient::with_interceptor(channel, Bearer::new(&token))
            .list_customers(pb::ListCustomersRequest {
                page_size: 1000,
                ..Default::default()
            })
            .await
            .expect("list customers")
            .into_inner()
            .customers
            .into_iter()
            .map(|c| c.name)
            .collect();
    names.sort();
    names
}

fn figure(line: impl std::fmt::Display) {
    crate::common::figure(format_args!("tls: {line}"));
}

// ----- the tests ------------------------------------------------------------------------------

/// TLS without client certificates: a client trusting the CA is served; a plaintext client and
/// a client that does not trust the server's CA get nowhere, and the server serves on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_serves_clients_that_trust_its_ca() {
    let pki = Pki::new();
    let server = serve(&pki, false).await;
    let ca = pki.ca.pem();

    // A TCP connection that never says hello does not hold up the handshakes of others.
    let _silent = tokio::net::TcpStream::connect(server.addr).await.unwrap();

    let trusted = connect(server.addr, &ca, None).await.expect("TLS connect");
    assert_eq!(
        health(trusted.clone()).await.unwrap(),
        ServingStatus::Serving
    );
    let created = create_and_read(trusted.clone(), "Secure Ltd")
        .await
        .unwrap();
    assert_eq!(created.name, "Secure Ltd");

    // Plaintext HTTP/2 to the TLS port: the server answers with a TLS alert, which the client
    // cannot read as HTTP/2.
    let plaintext = Channel::from_shared(format!("http://{}", server.addr))
        .unwrap()
        .connect_timeout(CALL_TIMEOUT)
        .timeout(CALL_TIMEOUT);
    let seen = match plaintext.connect().await {
        Err(e) => format!("connect: {}", chain(&e)),
        Ok(channel) => {
            let status = health(channel)
                .await
                .expect_err("plaintext must not be served");
            assert!(
                matches!(
                    status.code(),
                    Code::Internal | Code::Unknown | Code::Cancelled | Code::Unavailable
                ),
                "{status:?}"
            );
            format!("call: {:?}: {}", status.code(), chain(&status))
        }
    };
    figure(format_args!("plaintext client: {seen}"));

    // A client trusting another CA refuses the server's certificate during the handshake.
    let foreign = new_ca("foreign CA");
    let error = connect(server.addr, &foreign.pem(), None)
        .await
        .expect_err("a client that does not trust the CA must not connect");
    let seen = chain(&error);
    assert!(
        seen.contains("invalid peer certificate: UnknownIssuer"),
        "{seen}"
    );
    figure(format_args!("distrusting client: connect: {seen}"));

    // The server is still up: the open channel and a new one are served.
    assert_eq!(
        health(trusted.clone()).await.unwrap(),
        ServingStatus::Serving
    );
    let again = connect(server.addr, &ca, None).await.expect("TLS connect");
    create_and_read(again.clone(), "Secure Again Ltd")
        .await
        .unwrap();
    assert_eq!(
        customer_names(again).await,
        ["Secure Again Ltd", "Secure Ltd"]
    );
}

/// mTLS: only clients with a current certificate from the configured CA are served; the refused
/// ones write nothing, and the server serves on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mtls_requires_a_current_client_certificate_from_the_ca() {
    let pki = Pki::new();
    let server = serve(&pki, true).await;
    let ca = pki.ca.pem();

    let valid = client_leaf(&pki.ca, "alice", Validity::Current);
    let trusted = connect(server.addr, &ca, Some(&valid))
        .await
        .expect("mTLS connect");
    assert_eq!(
        health(trusted.clone()).await.unwrap(),
        ServingStatus::Serving
    );
    create_and_read(trusted.clone(), "Mutual Ltd")
        .await
        .unwrap();

    let foreign_ca = new_ca("foreign CA");
    let cases = [
        ("no certificate", None, "CertificateRequired"),
        (
            "foreign CA",
            Some(client_leaf(&foreign_ca, "mallory", Validity::Current)),
            "UnknownCA",
        ),
        (
            "expired",
            Some(client_leaf(&pki.ca, "bob", Validity::Expired)),
            "CertificateExpired",
        ),
        (
            "not yet valid",
            Some(client_leaf(&pki.ca, "carol", Validity::NotYetValid)),
            "CertificateExpired",
        ),
        (
            "server-only certificate",
            Some(leaf(
                &pki.ca,
                "dave",
                ExtendedKeyUsagePurpose::ServerAuth,
                Validity::Current,
            )),
            "UnsupportedCertificate",
        ),
    ];
    for (name, identity, alert) in &cases {
        let seen = assert_refused(server.addr, &ca, identity.as_ref(), alert).await;
        figure(format_args!("mTLS, {name}: {seen}"));
    }

    // The open channel, and a new valid client, are still served; the refused wrote nothing.
    assert_eq!(
        health(trusted.clone()).await.unwrap(),
        ServingStatus::Serving
    );
    let again = connect(server.addr, &ca, Some(&valid))
        .await
        .expect("mTLS connect");
    create_and_read(again.clone(), "Mutual Again Ltd")
        .await
        .unwrap();
    assert_eq!(
        customer_names(again).await,
        ["Mutual Again Ltd", "Mutual Ltd"]
    );
}

/// Beside TLS, `health_listen` serves grpc.health.v1 alone in plaintext (for probes).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plaintext_health_listener_serves_health_alone() {
    let pki = Pki::new();
    let server = run(build(&pki.dir, pki.files(true), true)
        .await
        .expect("server starts"));
    let probe = Channel::from_shared(format!("http://{}", server.health_addr.unwrap()))
        .unwrap()
        .timeout(CALL_TIMEOUT)
        .connect()
        .await
        .expect("plaintext connect to the health port");
    assert_eq!(health(probe.clone()).await.unwrap(), ServingStatus::Serving);
    let status = create_and_read(probe, "Probe Ltd")
        .await
        .expect_err("the health port serves nothing else");
    assert_eq!(status.code(), Code::Unimplemented, "{status:?}");
}

/// A missing certificate, key or client CA file is a start-up error naming the file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_tls_files_are_start_up_errors_naming_the_file() {
    let pki = Pki::new();
    let missing = pki.dir.join("missing.pem");
    let cases = [
        TlsFiles {
            cert: missing.clone(),
            ..pki.files(false)
        },
        TlsFiles {
            key: missing.clone(),
            ..pki.files(false)
        },
        TlsFiles {
            client_ca: Some(missing.clone()),
            ..pki.files(false)
        },
    ];
    for files in cases {
        let error = build(&pki.dir, files, false)
            .await
            .err()
            .expect("start-up must fail");
        assert_eq!(
            error,
            format!(
                "cannot read {}: No such file or directory (os error 2)",
                missing.display()
            )
        );
    }
}

/// The TLS files of `unusable_tls_files`: (what is wrong, the files, the file at fault).
fn unusable_tls_files(pki: &Pki) -> Vec<(&'static str, TlsFiles, PathBuf)> {
    let not_pem = pki.dir.join("not-pem.pem");
    std::fs::write(&not_pem, "this is not a certificate\n").unwrap();
    let other_key = pki.dir.join("other.key");
    std::fs::write(&other_key, KeyPair::generate().unwrap().serialize_pem()).unwrap();
    vec![
        (
            "certificate not PEM",
            TlsFiles {
                cert: not_pem.clone(),
                ..pki.files(false)
            },
            not_pem.clone(),
        ),
        (
            "key of another certificate",
            TlsFiles {
                key: other_key.clone(),
                ..pki.files(false)
            },
            other_key,
        ),
        (
            "client CA not PEM",
            TlsFiles {
                client_ca: Some(not_pem.clone()),
                ..pki.files(false)
            },
            not_pem,
        ),
    ]
}

/// Unusable TLS files (not PEM, a key that is not the certificate's) stop the server before it
/// serves: `build` or `run_until` fails, promptly, without a panic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unusable_tls_files_stop_the_server() {
    let pki = Pki::new();
    for (what, files, _) in unusable_tls_files(&pki) {
        let dir = pki.dir.join(Uuid::now_v7().simple().to_string());
        std::fs::create_dir_all(&dir).unwrap();
        let error = match build(&dir, files, false).await {
            Err(error) => error,
            Ok(app) => tokio::time::timeout(CALL_TIMEOUT, app.run_until(std::future::pending()))
                .await
                .unwrap_or_else(|_| panic!("{what}: the server runs"))
                .expect_err(what),
        };
        figure(format_args!("{what}: {error}"));
    }
}

/// Unusable TLS files are found by `build` (before the database is migrated and "listening" is
/// printed), and the error names the file and what is wrong with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unusable_tls_files_are_build_errors_naming_the_file() {
    let pki = Pki::new();
    for (what, files, at_fault) in unusable_tls_files(&pki) {
        let dir = pki.dir.join(Uuid::now_v7().simple().to_string());
        std::fs::create_dir_all(&dir).unwrap();
        let error = build(&dir, files, false)
            .await
            .err()
            .unwrap_or_else(|| panic!("{what}: build accepted it"));
        assert!(
            error.contains(&at_fault.display().to_string()),
            "{what}: {error}"
        );
    }
}
