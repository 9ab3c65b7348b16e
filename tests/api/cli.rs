//! The command line as a newcomer meets it: the real binary, run from a directory of its own (not
//! the repository), with nothing in its environment but PATH. Each test is one thing a user ran and
//! what they must see.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::common::{Db, TestApp};
use crm_service::proto::crm::v1 as pb;

const BIN: &str = env!("CARGO_BIN_EXE_crm-service");

/// A fresh, empty directory, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("crm-cli-{name}-{}", uuid::Uuid::now_v7().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    fn entries(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(&self.0)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `crm-service ARGS` in `dir`, with an environment holding PATH only.
fn crm(dir: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(BIN);
    command
        .args(args)
        .current_dir(dir)
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    command
}

async fn run(dir: &Path, args: &[&str]) -> Output {
    tokio::time::timeout(Duration::from_secs(60), crm(dir, args).output())
        .await
        .expect("the command ends within 60 s")
        .expect("the binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A server started in `dir` on a free port, and the address it printed.
async fn start_server(dir: &Path, args: &[&str]) -> (Child, SocketAddr) {
    let mut all = vec!["serve", "--purge-interval", "0"];
    all.extend_from_slice(args);
    let mut server = crm(dir, &all)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the server starts");
    let mut lines = BufReader::new(server.stdout.take().unwrap()).lines();
    let addr = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(rest) = line.strip_prefix("crm-service listening on ") {
                return rest.trim().parse::<SocketAddr>().unwrap();
            }
        }
        panic!("the server exited before saying where it listens")
    })
    .await
    .expect("the server listens within 60 s");
    // Keep reading so that the server never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (server, addr)
}

async fn lists_customers(addr: SocketAddr, database_url: &str, token: &str) -> bool {
    let app = TestApp::attach(addr, Db::Sqlite, database_url, None).await;
    app.customers_with_token(Some(token))
        .list_customers(pb::ListCustomersRequest::default())
        .await
        .is_ok()
}

#[tokio::test]
async fn token_outside_the_servers_directory_refuses_and_creates_nothing() {
    let elsewhere = Scratch::new("elsewhere");
    let out = run(
        &elsewhere.0,
        &[
            "token", "--tenant", "demo", "--user", "alice", "--role", "admin",
        ],
    )
    .await;
    let stderr = text(&out.stderr);
    assert!(!out.status.success(), "a token was minted with no key");
    assert!(
        out.stdout.is_empty(),
        "it printed a token: {:?}",
        text(&out.stdout)
    );
    let looked = elsewhere.0.join("crm.db.dev-secret");
    assert!(
        stderr.contains(&looked.display().to_string()),
        "it does not say where it looked ({}): {stderr}",
        looked.display()
    );
    for hint in ["--database-url", "--jwt-secret-file"] {
        assert!(stderr.contains(hint), "no hint of {hint}: {stderr}");
    }
    assert!(
        elsewhere.entries().is_empty(),
        "token created files: {:?}",
        elsewhere.entries()
    );
}

#[tokio::test]
async fn token_pointed_at_the_servers_database_mints_what_the_server_accepts() {
    let server_dir = Scratch::new("server");
    let (_server, addr) = start_server(&server_dir.0, &["--listen", "127.0.0.1:0"]).await;
    let database_url = format!("sqlite://{}", server_dir.0.join("crm.db").display());

    let elsewhere = Scratch::new("elsewhere");
    let out = run(
        &elsewhere.0,
        &[
            "token",
            "--database-url",
            &database_url,
            "--tenant",
            "demo",
            "--user",
            "alice",
            "--role",
            "sales_rep",
            "--ttl",
            "1.5h",
        ],
    )
    .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let token = text(&out.stdout).trim().to_owned();
    assert!(
        lists_customers(addr, &database_url, &token).await,
        "the server refuses the token"
    );
    assert!(elsewhere.entries().is_empty(), "{:?}", elsewhere.entries());

    // 1.5h is 5,400 seconds of validity.
    let payload = token.split('.').nth(1).unwrap();
    use base64::Engine as _;
    let claims: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        claims["exp"].as_u64().unwrap() - claims["nbf"].as_u64().unwrap(),
        5400
    );
}

#[tokio::test]
async fn the_start_up_hint_for_a_database_elsewhere_mints_a_token_the_server_accepts() {
    let data = Scratch::new("data");
    let database_url = format!("sqlite://{}", data.0.join("shop.db").display());
    let server_dir = Scratch::new("server");
    let mut server = crm(
        &server_dir.0,
        &[
            "--listen",
            "127.0.0.1:0",
            "--purge-interval",
            "0",
            "--database-url",
            &database_url,
        ],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    let mut lines = BufReader::new(server.stdout.take().unwrap()).lines();
    let (addr, hint) = tokio::time::timeout(Duration::from_secs(60), async {
        let mut addr = None;
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(rest) = line.strip_prefix("crm-service listening on ") {
                addr = Some(rest.trim().parse::<SocketAddr>().unwrap());
            }
            if let Some(hint) = line.trim_start().strip_prefix("mint a token:") {
                return (addr.unwrap(), hint.trim().to_owned());
            }
        }
        panic!("no hint")
    })
    .await
    .unwrap();
    // Pasted into a shell in another directory: the binary's path is absolute under cargo test,
    // and the hint names the database whose secret signs.
    let elsewhere = Scratch::new("elsewhere");
    let out = Command::new("/bin/sh")
        .args(["-c", &hint])
        .current_dir(&elsewhere.0)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "`{hint}` failed: {}",
        text(&out.stderr)
    );
    let token = text(&out.stdout).trim().to_owned();
    assert!(
        lists_customers(addr, &database_url, &token).await,
        "`{hint}` minted a refused token"
    );
    drop(server);
}

#[tokio::test]
async fn token_refuses_claims_the_server_would_refuse_and_names_what_it_accepts() {
    let dir = Scratch::new("claims");
    // A secret, so that only the claims can be at fault.
    let secret = "0123456789abcdef0123456789abcdef";
    let cases: &[(&[&str], &[&str])] = &[
        (
            &["--tenant", "demo", "--user", "alice", "--role", "salesrep"],
            &[
                "\"salesrep\"",
                "sales_rep",
                "supervisor",
                "admin",
                "service",
            ],
        ),
        (
            &[
                "--tenant",
                "demo tenant",
                "--user",
                "alice",
                "--role",
                "admin",
            ],
            &["--tenant", "\"demo tenant\"", "letters, digits"],
        ),
        (
            &["--tenant", "", "--user", "alice", "--role", "admin"],
            &["--tenant", "1 to 64"],
        ),
        (
            &["--tenant", "demo", "--user", "", "--role", "admin"],
            &["--user", "1 to 128"],
        ),
        (
            &[
                "--tenant", "demo", "--user", "alice", "--role", "admin", "--ttl", "0s",
            ],
            &["--ttl"],
        ),
    ];
    for (args, expected) in cases {
        let mut all = vec!["token", "--jwt-secret", secret];
        all.extend_from_slice(args);
        let out = run(&dir.0, &all).await;
        let stderr = text(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{args:?} was accepted: {stderr}"
        );
        assert!(out.stdout.is_empty(), "{args:?} printed a token");
        for word in *expected {
            assert!(
                stderr.contains(word),
                "{args:?}: {word:?} missing from {stderr:?}"
            );
        }
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

#[tokio::test]
async fn token_help_shows_what_minting_uses_and_the_key_it_signs_with() {
    let dir = Scratch::new("help");
    let out = run(&dir.0, &["token", "--help"]).await;
    assert!(out.status.success());
    let help = text(&out.stdout);
    for flag in [
        "--tenant",
        "--user",
        "--role",
        "--ttl",
        "--database-url",
        "--jwt-secret",
        "--jwt-secret-file",
    ] {
        assert!(help.contains(flag), "{flag} missing from token --help");
    }
    for server_only in [
        "--listen",
        "--max-concurrent-calls",
        "--retention",
        "--tls-cert-file",
        "--database-max-connections",
        "--shutdown-grace",
    ] {
        assert!(
            !help.contains(server_only),
            "token --help lists {server_only}"
        );
    }
    assert!(
        help.contains("dev-secret") && help.contains("never creates"),
        "{help}"
    );
    let flags = help
        .lines()
        .filter(|l| l.trim_start().starts_with("--"))
        .count();
    assert!(flags <= 10, "token --help lists {flags} flags:\n{help}");
}

#[tokio::test]
async fn listen_takes_host_names_and_bare_ports_and_names_the_form_when_wrong() {
    let dir = Scratch::new("listen");
    let (_server, addr) = start_server(&dir.0, &["--listen", "localhost:0"]).await;
    assert_eq!(addr.ip().to_string(), "127.0.0.1");
    let port = addr.port();
    drop(_server);

    // A bare port, and `:PORT`, listen on 127.0.0.1 — never on every interface unasked.
    let free = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    for form in [free.to_string(), format!(":{free}")] {
        let (server, addr) = start_server(&dir.0, &["--listen", &form]).await;
        assert_eq!(addr, SocketAddr::from(([127, 0, 0, 1], free)), "{form}");
        drop(server);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_ne!(port, 0);

    for bad in ["localhost", "host:port", "70000", "1.2.3.4:99999"] {
        let out = run(&dir.0, &["serve", "--listen", bad]).await;
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "--listen {bad}: {stderr}");
        assert!(
            stderr.contains("HOST:PORT") || stderr.contains("65535"),
            "--listen {bad}: {stderr}"
        );
    }
}

#[tokio::test]
async fn a_port_in_use_names_the_setting_that_moves_it() {
    let dir = Scratch::new("in-use");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = run(&dir.0, &["serve", "--listen", &addr]).await;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    for word in [addr.as_str(), "already listens", "--listen", "CRM_LISTEN"] {
        assert!(stderr.contains(word), "{word:?} missing: {stderr}");
    }
}

#[tokio::test]
async fn unknown_values_and_units_are_refused_with_the_accepted_ones() {
    let dir = Scratch::new("values");
    let out = run(&dir.0, &["serve", "--log-format", "jsn"]).await;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "--log-format jsn was accepted");
    assert!(
        stderr.contains("text") && stderr.contains("json"),
        "{stderr}"
    );

    let out = run(&dir.0, &["serve", "--retention", "1.5x"]).await;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr.contains("unknown unit") && stderr.contains("1.5h"),
        "{stderr}"
    );
    // A refused setting starts nothing and leaves nothing behind.
    assert!(dir.entries().is_empty(), "{:?}", dir.entries());
}

#[tokio::test]
async fn serve_into_a_pipe_that_closes_exits_quietly() {
    let dir = Scratch::new("pipe");
    // As the user typed it, with the exit status of crm-service itself (pipefail); then with a
    // reader that is gone before the server prints anything, and stderr kept to look for a panic.
    // (A reader that leaves after the start-up lines is not noticed: the server goes on serving.)
    let script = format!(
        "set -o pipefail; '{BIN}' serve --listen 127.0.0.1:0 --purge-interval 0 2>&1 | head -3 \
         >/dev/null; echo status=$?; '{BIN}' serve --listen 127.0.0.1:0 --purge-interval 0 \
         2>stderr.txt | true; echo status=$?"
    );
    let out = tokio::time::timeout(
        Duration::from_secs(60),
        Command::new("/bin/bash")
            .args(["-c", &script])
            .current_dir(&dir.0)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("crm-service ends once its reader is gone")
    .unwrap();
    let stdout = text(&out.stdout);
    assert_eq!(stdout, "status=0\nstatus=0\n", "{}", text(&out.stderr));
    let stderr = std::fs::read_to_string(dir.0.join("stderr.txt")).unwrap();
    assert!(!stderr.contains("panicked"), "{stderr}");
}
