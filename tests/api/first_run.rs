//! What a newcomer meets on the first `cargo run --release`: the server started with no flags from
//! the directory it was built in, and the command it prints for minting a token.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

use crate::common::{Db, TestApp};
use crm_service::proto::crm::v1 as pb;

/// A shell in `dir` that knows the machine's tools but not `crm-service`, as a fresh terminal in
/// a fresh checkout does.
fn shell(dir: &Path, script: &str) -> Command {
    let mut command = Command::new("/bin/sh");
    command
        .args(["-c", script])
        .current_dir(dir)
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    command
}

#[tokio::test]
async fn a_server_started_like_cargo_run_prints_a_token_command_that_runs_as_printed() {
    // `cargo run --release` starts `target/release/crm-service` by that path, relative to the
    // repository root; the binary is not on PATH there.
    let root =
        std::env::temp_dir().join(format!("crm-first-run-{}", uuid::Uuid::now_v7().simple()));
    std::fs::create_dir_all(root.join("target/release")).unwrap();
    std::os::unix::fs::symlink(
        env!("CARGO_BIN_EXE_crm-service"),
        root.join("target/release/crm-service"),
    )
    .unwrap();
    // No flags and no key, as on a first run; only a free port instead of 50051, which another
    // test or checkout may hold.
    let mut server = shell(
        &root,
        "CRM_LISTEN=127.0.0.1:0 CRM_PURGE_INTERVAL=0 exec target/release/crm-service",
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::null())
    .spawn()
    .expect("the server starts");
    let mut lines = BufReader::new(server.stdout.take().unwrap()).lines();
    let (addr, hint) = tokio::time::timeout(Duration::from_secs(60), async {
        let mut addr = None;
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(rest) = line.strip_prefix("crm-service listening on ") {
                addr = Some(rest.trim().parse::<SocketAddr>().unwrap());
            }
            if let Some(hint) = line.trim_start().strip_prefix("mint a token:") {
                return (
                    addr.expect("the address comes first"),
                    hint.trim().to_owned(),
                );
            }
        }
        panic!("the server exited before printing how to mint a token")
    })
    .await
    .expect("the server prints its hints within 60 s");

    let minted = shell(&root, &hint).output().await.expect("sh runs");
    assert!(
        minted.status.success(),
        "the printed command `{hint}` failed from the directory the server was started in: {}",
        String::from_utf8_lossy(&minted.stderr)
    );
    let token = String::from_utf8(minted.stdout).unwrap().trim().to_owned();
    assert_eq!(token.split('.').count(), 3, "not a JWT: {token:?}");

    // The token is signed with the development secret this server made beside ./crm.db.
    let database_url = format!("sqlite://{}", root.join("crm.db").display());
    let app = TestApp::attach(addr, Db::Sqlite, &database_url, None).await;
    let listed = app
        .customers_with_token(Some(&token))
        .list_customers(pb::ListCustomersRequest::default())
        .await;
    assert!(listed.is_ok(), "the minted token is refused: {listed:?}");

    drop(server);
    let _ = std::fs::remove_dir_all(&root);
}
