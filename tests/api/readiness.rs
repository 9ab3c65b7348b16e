//! Readiness follows a database outage: when PostgreSQL goes away, the first call that fails for
//! it wakes the server's database watch, and health of the named services turns NOT_SERVING
//! within a second (not at the watch's next periodic check, up to 5 s later); when PostgreSQL
//! comes back, SERVING again and calls succeed.
//!
//! PostgreSQL only, on a throwaway cluster of the test's own (initdb on a free port) that it can
//! stop and start. An embedded SQLite file has no outage of this kind: it cannot stop answering
//! while the process holds it open.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use crm_service::proto::crm::v1 as pb;
use tokio::time::Instant;
use tonic::Code;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::common::{Db, TestApp, figure};

mod postgres_only {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn readiness_turns_not_serving_within_a_second_of_a_failed_call_and_back_when_the_database_returns()
     {
        let Some(cluster) = super::Cluster::start() else {
            return;
        };
        super::readiness_follows_an_outage(cluster).await;
    }
}

/// A PostgreSQL cluster of this test's own, removed when dropped.
struct Cluster {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
}

impl Cluster {
    /// `None`, with a printed reason, where PostgreSQL's server binaries are missing (a failure
    /// under CI=true).
    fn start() -> Option<Cluster> {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .ok()
            .and_then(|versions| {
                versions
                    .filter_map(|v| v.ok().map(|v| v.path().join("bin")))
                    .filter(|bin| bin.join("initdb").is_file())
                    .max()
            });
        let Some(bin) = bin else {
            let why = "no PostgreSQL server binaries under /usr/lib/postgresql";
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("{why}, under CI=true");
            }
            use std::io::Write as _;
            let _ = writeln!(std::io::stderr(), "SKIPPED: {why}");
            return None;
        };
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let dir = std::env::temp_dir().join(format!("crm-readiness-{}", uuid::Uuid::now_v7()));
        std::fs::create_dir_all(&dir).expect("cluster dir");
        let cluster = Cluster { bin, dir, port };
        // initdb and the server refuse to run as root: as root, run them as postgres.
        let _ = Command::new("chown")
            .args(["postgres:postgres"])
            .arg(&cluster.dir)
            .status();
        cluster.run(
            "initdb",
            &[
                "-D",
                &cluster.data().display().to_string(),
                "-A",
                "trust",
                "-U",
                "postgres",
            ],
        );
        cluster.pg_ctl_start();
        Some(cluster)
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn run(&self, tool: &str, args: &[&str]) {
        let path = self.bin.join(tool);
        let status = if running_as_root() {
            Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .arg(&path)
                .args(args)
                .output()
        } else {
            Command::new(&path).args(args).output()
        }
        .expect("runs");
        assert!(
            status.status.success(),
            "{tool} {args:?} failed: {}",
            String::from_utf8_lossy(&status.stderr)
        );
    }

    fn pg_ctl_start(&self) {
        self.run(
            "pg_ctl",
            &[
                "-D",
                &self.data().display().to_string(),
                "-l",
                &self.dir.join("log").display().to_string(),
                "-w",
                "-o",
                &format!(
                    "-c listen_addresses=127.0.0.1 -c port={} -c unix_socket_directories={} \
                     -c fsync=off",
                    self.port,
                    self.dir.display()
                ),
                "start",
            ],
        );
    }

    fn stop_immediately(&self) {
        self.run(
            "pg_ctl",
            &[
                "-D",
                &self.data().display().to_string(),
                "-m",
                "immediate",
                "-w",
                "stop",
            ],
        );
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let pg_ctl = self.bin.join("pg_ctl");
        let data = self.data().display().to_string();
        let args = ["-D", data.as_str(), "-m", "immediate", "stop"];
        let _ = if running_as_root() {
            Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .arg(&pg_ctl)
                .args(args)
                .output()
        } else {
            Command::new(&pg_ctl).args(args).output()
        };
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Whether this process runs as root (uid 0), read from /proc without a libc binding.
fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

async fn status_of(health: &mut HealthClient<tonic::transport::Channel>) -> ServingStatus {
    let response = health
        .check(HealthCheckRequest {
            service: "crm.v1.CustomerService".into(),
        })
        .await
        .expect("health answers")
        .into_inner();
    ServingStatus::try_from(response.status).expect("a known status")
}

/// Polls health until `want`, failing after `within`; how long it took.
async fn until(
    health: &mut HealthClient<tonic::transport::Channel>,
    want: ServingStatus,
    within: Duration,
) -> Duration {
    let started = Instant::now();
    loop {
        if status_of(health).await == want {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < within,
            "health did not turn {want:?} within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn readiness_follows_an_outage(cluster: Cluster) {
    let url = cluster.url();
    let Some(app) = TestApp::spawn_configured(Db::Postgres, |settings| {
        settings.database.url = url;
        settings.database.acquire_timeout = Duration::from_secs(2);
    })
    .await
    else {
        return;
    };
    let mut health = HealthClient::new(app.channel());
    // Health turns SERVING right after one of the watch's checks: stopping the database now means
    // its next periodic check is a whole period away.
    until(&mut health, ServingStatus::Serving, Duration::from_secs(10)).await;
    let customer = app.create_customer("Outage GmbH").await;

    cluster.stop_immediately();
    let failed = app
        .customers()
        .list_customers(pb::ListCustomersRequest::default())
        .await
        .expect_err("the database is gone");
    assert_eq!(failed.code(), Code::Unavailable, "{failed:?}");
    let after = until(
        &mut health,
        ServingStatus::NotServing,
        Duration::from_secs(10),
    )
    .await;
    figure(format_args!(
        "readiness NOT_SERVING {} ms after the first call failed for the outage",
        after.as_millis()
    ));
    assert!(
        after <= Duration::from_secs(1),
        "readiness took {after:?} to follow the outage"
    );

    cluster.pg_ctl_start();
    let back = until(&mut health, ServingStatus::Serving, Duration::from_secs(10)).await;
    figure(format_args!(
        "readiness SERVING {} ms after the database came back",
        back.as_millis()
    ));
    // Pooled connections that died with the server fail the calls that find them; a client's
    // retry gets a new one.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match app
            .customers()
            .get_customer(pb::GetCustomerRequest {
                customer_id: customer.id.clone(),
            })
            .await
        {
            Ok(found) => {
                assert_eq!(found.into_inner().customer.unwrap().id, customer.id);
                break;
            }
            Err(status) if status.code() == Code::Unavailable && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(status) => panic!("calls did not recover: {status:?}"),
        }
    }
}
