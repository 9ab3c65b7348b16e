//! The errors a new user meets, tested the way they met them. Calls refused for a wrong etag, a
//! restore conflict or a role the server does not know, on both databases; and the real binary,
//! started from a scratch directory on a database it cannot use, which must say at once which
//! database, why, and which setting to change, without ever printing the password.

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use tokio::process::Command;
use tonic::Code;
use tonic_types::StatusExt;

use crate::common::*;
use crm_service::proto::crm::v1 as pb;

crate::on_both_databases!(
    a_wrong_etag_is_named_with_the_current_one,
    a_restore_conflict_names_the_live_customer_holding_the_external_ref,
    a_token_with_an_unknown_role_is_told_which_roles_exist,
);

fn error_info(status: &tonic::Status) -> std::collections::HashMap<String, String> {
    status
        .get_error_details()
        .error_info()
        .map(|info| info.metadata.clone())
        .unwrap_or_default()
}

async fn a_wrong_etag_is_named_with_the_current_one(app: TestApp) {
    let customer = app.create_customer("Etag Holder").await;
    let approved = app.approved_deletion(&customer.id, "duplicate").await;
    let current = get_customer(&mut app.customers(), &customer.id).await.etag;
    let mut rep = app.customers();

    // The customer did not change: the etag is simply not one of its etags.
    let status = assert_status(
        execute(&mut rep, &customer.id, &approved.id, "W/abc").await,
        Code::Aborted,
        "ETAG_MISMATCH",
    );
    assert_eq!(
        status.message(),
        format!(
            "etag \"W/abc\" does not match the customer's current etag \"{current}\": read the \
             customer again (or use the current etag) and retry"
        )
    );
    assert_eq!(error_info(&status)["currentEtag"], current);
    let deleted = execute(&mut rep, &customer.id, &approved.id, &current)
        .await
        .expect("the etag the message gave deletes the customer");
    assert!(deleted.customer.unwrap().delete_time.is_some());

    // UpdateCustomer: a garbled etag, then one the customer had before an update.
    let other = app.create_customer("Updated Twice").await;
    let update = |etag: &str| pb::UpdateCustomerRequest {
        customer: Some(pb::Customer {
            id: other.id.clone(),
            name: "Renamed".into(),
            ..Default::default()
        }),
        update_mask: mask(&["name"]),
        etag: etag.into(),
        request_id: String::new(),
    };
    let status = assert_status(
        rep.update_customer(update("\"7\"")).await,
        Code::Aborted,
        "ETAG_MISMATCH",
    );
    assert_eq!(
        status.message(),
        format!(
            "etag \"\\\"7\\\"\" does not match the customer's current etag \"{}\": read the \
             customer again (or use the current etag) and retry",
            other.etag
        )
    );
    let renamed = rep
        .update_customer(update(&other.etag))
        .await
        .unwrap()
        .into_inner()
        .customer
        .unwrap();
    let status = assert_status(
        rep.update_customer(update(&other.etag)).await,
        Code::Aborted,
        "ETAG_MISMATCH",
    );
    assert_eq!(
        status.message(),
        format!(
            "etag \"{}\" does not match the customer's current etag \"{}\" (an older version of \
             the customer): read the customer again (or use the current etag) and retry",
            other.etag, renamed.etag
        )
    );
    assert_eq!(error_info(&status)["currentEtag"], renamed.etag);

    // A record's etag says the same, naming the record's kind.
    let mut records = app.records();
    let contact = create_record(&mut records, Kind::Contact, &other.id)
        .await
        .unwrap();
    let status = assert_status(
        records
            .update_contact(pb::UpdateContactRequest {
                contact: Some(pb::Contact {
                    id: contact.id.clone(),
                    job_title: "CFO".into(),
                    ..Default::default()
                }),
                update_mask: mask(&["job_title"]),
                etag: "not-an-etag".into(),
                request_id: String::new(),
            })
            .await,
        Code::Aborted,
        "ETAG_MISMATCH",
    );
    assert_eq!(
        status.message(),
        format!(
            "etag \"not-an-etag\" does not match the contact's current etag \"{}\": read the \
             contact again (or use the current etag) and retry",
            contact.etag
        )
    );
    assert_eq!(error_info(&status)["currentEtag"], contact.etag);
}

async fn a_restore_conflict_names_the_live_customer_holding_the_external_ref(app: TestApp) {
    let with_ref = |name: &str| {
        let mut request = bare_customer(name);
        request.customer.as_mut().unwrap().external_ref = "ERP-42".into();
        request
    };
    // Another tenant's live customer with the same external_ref, made first: it must never be
    // the one named.
    app.customers_as("globex", "rep-9", &["sales_rep"])
        .create_customer(with_ref("Globex Holder"))
        .await
        .unwrap();
    let mut rep = app.customers();
    let original = rep
        .create_customer(with_ref("Original Holder"))
        .await
        .unwrap()
        .into_inner()
        .customer
        .unwrap();
    app.delete_customer(&original.id).await;
    let holder = rep
        .create_customer(with_ref("Dupont & Fils"))
        .await
        .unwrap()
        .into_inner()
        .customer
        .unwrap();

    let mut sup = app.customers_as("acme", "sup-2", &["supervisor"]);
    for validate_only in [true, false] {
        let status = assert_status(
            restore(&mut sup, &original.id, validate_only).await,
            Code::FailedPrecondition,
            "RESTORE_CONFLICT",
        );
        assert_eq!(
            status.message(),
            format!(
                "the customer's external_ref is now used by live customer {} (\"Dupont & Fils\"): \
                 change or clear the external_ref of one of them, then restore again",
                holder.id
            )
        );
        let info = error_info(&status);
        assert_eq!(info["conflictingCustomerId"], holder.id);
        assert_eq!(info["conflictingCustomerName"], "Dupont & Fils");
        assert_eq!(info["customerId"], original.id);
        assert_eq!(info["field"], "external_ref");
        let details = status.get_error_details();
        let violation = &details.precondition_failure().unwrap().violations[0];
        assert_eq!(violation.subject, "external_ref");
        assert!(violation.description.contains(&holder.id), "{violation:?}");
    }
}

async fn a_token_with_an_unknown_role_is_told_which_roles_exist(app: TestApp) {
    let status = assert_status(
        app.customers_as("acme", "new-user", &["salesrep"])
            .list_customers(pb::ListCustomersRequest::default())
            .await,
        Code::PermissionDenied,
        "ROLE_NOT_ALLOWED",
    );
    assert_eq!(
        status.message(),
        "this server does not recognise the role(s) \"salesrep\" in your token (it knows: \
         sales_rep, supervisor, admin, service); to read customers you need one of: sales_rep, \
         supervisor, admin, service"
    );
    let info = error_info(&status);
    assert_eq!(info["unknownRoles"], "salesrep");
    assert_eq!(info["knownRoles"], "sales_rep,supervisor,admin,service");
    assert_eq!(info["requiredRoles"], "sales_rep,supervisor,admin,service");

    // A known role beside a misspelt one: the refusal still names the misspelt one.
    let customer = app.create_customer("Needs Approval").await;
    let pending = app.pending_deletion(&customer.id, "duplicate").await;
    let status = assert_status(
        approve(
            &mut app.approvals_as("acme", "sup-3", &["sales_rep", "superviser"]),
            &pending.id,
        )
        .await,
        Code::PermissionDenied,
        "ROLE_NOT_ALLOWED",
    );
    assert_eq!(
        status.message(),
        "this server does not recognise the role(s) \"superviser\" in your token (it knows: \
         sales_rep, supervisor, admin, service); to approve or reject deletion requests you need \
         one of: supervisor, admin"
    );

    // Known roles only: the refusal is as before.
    let status = assert_status(
        approve(
            &mut app.approvals_as("acme", "rep-3", &["sales_rep"]),
            &pending.id,
        )
        .await,
        Code::PermissionDenied,
        "ROLE_NOT_ALLOWED",
    );
    assert_eq!(
        status.message(),
        "your roles do not allow you to approve or reject deletion requests; needs one of: \
         supervisor, admin"
    );
    assert!(!error_info(&status).contains_key("unknownRoles"));
}

// ----- the binary, started on a database it cannot use ---------------------------------------

/// A directory of its own to start the binary in, outside the repository.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Self {
        let dir =
            std::env::temp_dir().join(format!("crm-errors-{}", uuid::Uuid::now_v7().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        // Directories a test made read-only must be writable again to be removed.
        if let Ok(entries) = std::fs::read_dir(&self.0) {
            for entry in entries.flatten() {
                use std::os::unix::fs::PermissionsExt as _;
                let _ =
                    std::fs::set_permissions(entry.path(), std::fs::Permissions::from_mode(0o755));
            }
        }
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

struct Outcome {
    status: ExitStatus,
    stderr: String,
    took: Duration,
}

/// What a user sees starting `crm-service ARGS` in `dir` with only `env` set (and PATH), run as
/// `uid` when one is given.
async fn run_in(dir: &Path, args: &[&str], env: &[(&str, &str)], uid: Option<u32>) -> Outcome {
    let mut command = Command::new(env!("CARGO_BIN_EXE_crm-service"));
    command
        .args(args)
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("CRM_PURGE_INTERVAL", "0")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    for (key, value) in env {
        command.env(key, value);
    }
    if let Some(uid) = uid {
        command.uid(uid).gid(uid);
    }
    let started = Instant::now();
    let output = tokio::time::timeout(Duration::from_secs(60), command.output())
        .await
        .unwrap_or_else(|_| panic!("crm-service {args:?} neither failed nor stopped within 60 s"))
        .expect("crm-service runs");
    Outcome {
        status: output.status,
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        took: started.elapsed(),
    }
}

async fn run(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Outcome {
    run_in(dir, args, env, None).await
}

/// The commands that open the database, each as a user would start it (serve on a free port and
/// with a key, since a key is what serve asks for first).
const OPENING: [&[&str]; 4] = [
    &["serve", "--listen", "127.0.0.1:0", "--jwt-secret", SECRET],
    &["migrate"],
    &["purge"],
    &["seed", "--customers", "1"],
];

/// Asserts that `outcome` failed with a message containing each of `needles`.
fn assert_fails_saying(outcome: &Outcome, what: &str, needles: &[&str]) {
    assert!(!outcome.status.success(), "{what} succeeded");
    for needle in needles {
        assert!(
            outcome.stderr.contains(needle),
            "{what}: {needle:?} missing from: {}",
            outcome.stderr
        );
    }
    for leak in [
        "pool timed out",
        " at line ",
        "Connection Error",
        "Custom Error",
    ] {
        assert!(
            !outcome.stderr.contains(leak),
            "{what}: {leak:?} in: {}",
            outcome.stderr
        );
    }
}

/// A port on 127.0.0.1 nothing listens on.
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// The test PostgreSQL's URL with `user` (and `password`) and `database` in place of its own, or
/// `None` (SKIPPED) when it is out of reach outside CI.
async fn test_postgres_with(user: Option<(&str, &str)>, database: &str) -> Option<String> {
    // TestApp knows whether PostgreSQL answers and how to report a skip.
    drop(TestApp::spawn(Db::Postgres).await?);
    let mut url = url_parts(&postgres_url());
    if let Some((user, password)) = user {
        url.userinfo = format!("{user}:{password}@");
    }
    url.database = database.to_owned();
    Some(url.to_string())
}

struct UrlParts {
    scheme: String,
    userinfo: String,
    host: String,
    database: String,
    query: String,
}

impl std::fmt::Display for UrlParts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let UrlParts {
            scheme,
            userinfo,
            host,
            database,
            query,
        } = self;
        write!(f, "{scheme}://{userinfo}{host}/{database}{query}")
    }
}

fn url_parts(url: &str) -> UrlParts {
    let (scheme, rest) = url.split_once("://").expect("a URL");
    let (rest, query) = match rest.find('?') {
        Some(at) => (&rest[..at], &rest[at..]),
        None => (rest, ""),
    };
    let (authority, database) = rest.split_once('/').unwrap_or((rest, ""));
    let (userinfo, host) = match authority.rfind('@') {
        Some(at) => (&authority[..=at], &authority[at + 1..]),
        None => ("", authority),
    };
    UrlParts {
        scheme: scheme.into(),
        userinfo: userinfo.into(),
        host: host.into(),
        database: database.into(),
        query: query.into(),
    }
}

fn random() -> String {
    uuid::Uuid::now_v7().simple().to_string()
}

#[tokio::test]
async fn a_postgres_that_does_not_listen_is_named_at_once_with_the_setting_to_change() {
    let scratch = Scratch::new();
    let port = free_port();
    let password = format!("pw-{}", random());
    let url = format!("postgres://crm:{password}@127.0.0.1:{port}/crm");
    // Far longer than any of these may take: the pool's acquire timeout is what the first
    // connection used to wait out before saying only that it had timed out.
    let env = [
        ("CRM_DATABASE_URL", url.as_str()),
        ("CRM_DATABASE_ACQUIRE_TIMEOUT_MS", "30000"),
    ];
    for args in OPENING {
        let outcome = run(scratch.path(), args, &env).await;
        assert_fails_saying(
            &outcome,
            args[0],
            &[
                &format!("PostgreSQL at 127.0.0.1:{port} refused the connection"),
                "connection refused",
                "--database-url / CRM_DATABASE_URL",
            ],
        );
        assert!(!outcome.stderr.contains(&password), "{}", outcome.stderr);
        assert!(
            outcome.took < Duration::from_secs(10),
            "{} took {:?} to fail",
            args[0],
            outcome.took
        );
    }
    // The flag says the same as the variable.
    let flagged = run(scratch.path(), &["migrate", "--database-url", &url], &[]).await;
    assert_fails_saying(
        &flagged,
        "migrate --database-url",
        &[&format!(
            "PostgreSQL at 127.0.0.1:{port} refused the connection"
        )],
    );
    assert!(!flagged.stderr.contains(&password), "{}", flagged.stderr);
}

#[tokio::test]
async fn a_missing_postgres_database_is_named_with_how_to_create_it() {
    let database = format!("crm_missing_{}", random());
    let Some(url) = test_postgres_with(None, &database).await else {
        return;
    };
    let scratch = Scratch::new();
    for args in [OPENING[0], OPENING[1]] {
        let outcome = run(scratch.path(), args, &[("CRM_DATABASE_URL", &url)]).await;
        assert_fails_saying(
            &outcome,
            args[0],
            &[
                &format!("database \"{database}\" does not exist"),
                "createdb ",
                &format!("CREATE DATABASE \"{database}\""),
                "or point --database-url / CRM_DATABASE_URL at an existing database",
            ],
        );
        assert!(outcome.took < Duration::from_secs(10), "{:?}", outcome.took);
    }
}

#[tokio::test]
async fn a_postgres_login_refused_names_the_user_and_never_the_password() {
    let user = format!("crm_no_role_{}", random());
    let password = format!("pw-{}", random());
    let base = url_parts(&postgres_url()).database;
    let Some(url) = test_postgres_with(Some((&user, &password)), &base).await else {
        return;
    };
    let scratch = Scratch::new();
    let outcome = run(scratch.path(), &["migrate"], &[("CRM_DATABASE_URL", &url)]).await;
    // A role that does not exist is refused whatever the cluster's authentication: "role … does
    // not exist" under trust, "password authentication failed" under a password method.
    assert_fails_saying(
        &outcome,
        "migrate",
        &[
            &format!("refused to log in user \"{user}\""),
            &user,
            "check the user and password in --database-url / CRM_DATABASE_URL",
        ],
    );
    assert!(!outcome.stderr.contains(&password), "{}", outcome.stderr);
}

#[tokio::test]
async fn a_database_url_of_another_scheme_is_refused_by_every_command_before_anything_else() {
    let scratch = Scratch::new();
    let password = format!("pw-{}", random());
    let url = format!("mysql://root:{password}@127.0.0.1:3306/crm");
    let expected = "the database URL scheme `mysql` is not supported; use sqlite://FILE or \
                    postgres://USER@HOST/DB";
    let commands: [&[&str]; 5] = [
        // No key: a URL the service cannot use was reported as a missing JWT key.
        &["serve", "--listen", "127.0.0.1:0"],
        &["migrate"],
        &["purge"],
        &["seed", "--customers", "1"],
        &[
            "token",
            "--tenant",
            "demo",
            "--user",
            "alice",
            "--role",
            "sales_rep",
        ],
    ];
    for args in commands {
        let outcome = run(scratch.path(), args, &[("CRM_DATABASE_URL", &url)]).await;
        assert_fails_saying(&outcome, args[0], &[expected]);
        assert!(!outcome.stderr.contains("JWT"), "{}", outcome.stderr);
        assert!(!outcome.stderr.contains(&password), "{}", outcome.stderr);
    }
    assert_eq!(
        std::fs::read_dir(scratch.path()).unwrap().count(),
        0,
        "nothing is made for a URL the service cannot use"
    );
}

#[tokio::test]
async fn a_sqlite_file_in_a_missing_directory_names_the_file_and_the_directory() {
    let scratch = Scratch::new();
    let dir = scratch.path().join("no/such/dir");
    let absolute = format!("sqlite://{}", dir.join("crm.db").display());
    for args in OPENING {
        let outcome = run(scratch.path(), args, &[("CRM_DATABASE_URL", &absolute)]).await;
        assert_fails_saying(
            &outcome,
            args[0],
            &[
                &format!("SQLite file {}:", dir.join("crm.db").display()),
                &format!("its directory {} does not exist", dir.display()),
                &format!("mkdir -p {}", dir.display()),
                "--database-url / CRM_DATABASE_URL",
            ],
        );
    }
    // A relative path is named as the absolute one it stands for.
    let outcome = run(
        scratch.path(),
        &["migrate"],
        &[("CRM_DATABASE_URL", "sqlite://data/crm.db")],
    )
    .await;
    assert_fails_saying(
        &outcome,
        "migrate",
        &[&format!(
            "its directory {} does not exist",
            scratch.path().join("data").display()
        )],
    );
    // A file where a directory should be.
    std::fs::write(scratch.path().join("plain"), "").unwrap();
    let outcome = run(
        scratch.path(),
        &["migrate"],
        &[("CRM_DATABASE_URL", "sqlite://plain/crm.db")],
    )
    .await;
    assert_fails_saying(
        &outcome,
        "migrate",
        &[&format!(
            "{} is not a directory",
            scratch.path().join("plain").display()
        )],
    );
}

#[tokio::test]
async fn a_sqlite_file_this_user_may_not_write_names_the_file_and_the_cause() {
    use std::os::unix::fs::PermissionsExt as _;
    let scratch = Scratch::new();
    std::fs::set_permissions(scratch.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let locked = scratch.path().join("locked");
    std::fs::create_dir(&locked).unwrap();
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o555)).unwrap();
    // A user who may write anywhere (root) runs the binary as nobody instead.
    let uid = match std::fs::write(locked.join("probe"), "") {
        Ok(()) => {
            std::fs::remove_file(locked.join("probe")).unwrap();
            Some(65534)
        }
        Err(_) => None,
    };
    let url = format!("sqlite://{}", locked.join("crm.db").display());
    let outcome = run_in(
        scratch.path(),
        &["migrate"],
        &[("CRM_DATABASE_URL", &url)],
        uid,
    )
    .await;
    assert_fails_saying(
        &outcome,
        "migrate",
        &[
            &format!("SQLite file {}:", locked.join("crm.db").display()),
            &format!("it cannot be created in {}", locked.display()),
            "Permission denied",
            "--database-url / CRM_DATABASE_URL",
        ],
    );

    // An existing database this user may only read: SQLite opens it read-only and fails at the
    // first write, the migration.
    let shared = scratch.path().join("shared");
    std::fs::create_dir(&shared).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o777)).unwrap();
    let url = format!("sqlite://{}", shared.join("crm.db").display());
    let made = run(scratch.path(), &["migrate"], &[("CRM_DATABASE_URL", &url)]).await;
    assert!(made.status.success(), "{}", made.stderr);
    std::fs::set_permissions(
        shared.join("crm.db"),
        std::fs::Permissions::from_mode(0o444),
    )
    .unwrap();
    let outcome = run_in(
        scratch.path(),
        &["serve", "--listen", "127.0.0.1:0", "--jwt-secret", SECRET],
        &[("CRM_DATABASE_URL", &url)],
        uid,
    )
    .await;
    assert_fails_saying(
        &outcome,
        "serve",
        &[
            &format!("SQLite file {}:", shared.join("crm.db").display()),
            "it cannot be opened for reading and writing",
            "Permission denied",
        ],
    );
}
