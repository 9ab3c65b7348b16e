//! The real `crm-service` binary as a child process: for what only a process shows (signals,
//! exit codes, telemetry exporters installed process-wide) and for replicas that share nothing
//! but the database.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::common::{Db, SECRET, TestApp, postgres_url};

pub struct ServerProcess {
    child: Child,
    pub addr: SocketAddr,
    /// Everything the process printed on stdout after its address, and on stderr (a log file).
    pub stderr: PathBuf,
    pub metrics_addr: Option<SocketAddr>,
    pub database_url: String,
    pub schema: Option<String>,
    pub db: Db,
}

/// A fresh database for a process: a SQLite file in a temporary directory, or a new PostgreSQL
/// schema (`None` when PostgreSQL is out of reach outside CI: the caller skips).
pub async fn fresh_database(db: Db) -> Option<(String, Option<String>)> {
    match db {
        Db::Sqlite => {
            let dir =
                std::env::temp_dir().join(format!("crm-proc-{}", uuid::Uuid::now_v7().simple()));
            std::fs::create_dir_all(&dir).unwrap();
            Some((format!("sqlite://{}", dir.join("crm.db").display()), None))
        }
        Db::Postgres => {
            // TestApp::spawn knows whether PostgreSQL answers and how to report a skip.
            let probe = TestApp::spawn(Db::Postgres).await?;
            drop(probe);
            Some((
                postgres_url(),
                Some(format!("p_{}", uuid::Uuid::now_v7().simple())),
            ))
        }
    }
}

impl ServerProcess {
    /// Starts `crm-service serve` on a free port with the test secret, the database given, and
    /// `env` on top; returns once it prints where it listens.
    pub async fn start(
        db: Db,
        database_url: &str,
        schema: Option<&str>,
        env: &[(&str, String)],
    ) -> ServerProcess {
        let stderr =
            std::env::temp_dir().join(format!("crm-proc-{}.log", uuid::Uuid::now_v7().simple()));
        let mut command = Command::new(env!("CARGO_BIN_EXE_crm-service"));
        command
            .arg("serve")
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("CRM_LISTEN", "127.0.0.1:0")
            .env("CRM_DATABASE_URL", database_url)
            .env("CRM_JWT_SECRET", SECRET)
            .env("CRM_PURGE_INTERVAL", "0")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .kill_on_drop(true);
        if let Some(schema) = schema {
            command.env("CRM_DATABASE_SCHEMA", schema);
        }
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command.spawn().expect("crm-service starts");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut metrics_addr = None;
        let addr = tokio::time::timeout(Duration::from_secs(60), async {
            while let Some(line) = lines.next_line().await.unwrap() {
                if let Some(rest) = line.strip_prefix("metrics at http://") {
                    metrics_addr = rest.trim_end_matches("/metrics").parse().ok();
                }
                if let Some(addr) = line.strip_prefix("crm-service listening on ") {
                    return addr.trim().parse::<SocketAddr>().unwrap();
                }
            }
            panic!(
                "crm-service exited before listening:\n{}",
                std::fs::read_to_string(&stderr).unwrap_or_default()
            )
        })
        .await
        .expect("crm-service listens within 60 s");
        // Keep draining stdout so the child never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        ServerProcess {
            child,
            addr,
            stderr,
            metrics_addr,
            database_url: database_url.to_owned(),
            schema: schema.map(str::to_owned),
            db,
        }
    }

    /// A `TestApp` whose clients talk to this process.
    pub async fn app(&self) -> TestApp {
        TestApp::attach(self.addr, self.db, &self.database_url, self.schema.clone()).await
    }

    pub fn pid(&self) -> u32 {
        self.child.id().expect("running")
    }

    /// SIGKILL, as a crash or the OOM killer would end it: no shutdown, nothing flushed. Returns
    /// once the process is gone.
    pub async fn kill(&mut self) {
        self.child.kill().await.expect("SIGKILL");
    }

    pub fn sigterm(&self) {
        let pid = self.child.id().expect("running");
        let status = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -TERM {pid}");
    }

    /// Waits for the process to exit, at most `within`.
    pub async fn wait(&mut self, within: Duration) -> Option<ExitStatus> {
        tokio::time::timeout(within, self.child.wait())
            .await
            .ok()
            .map(|status| status.expect("wait"))
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }
}
