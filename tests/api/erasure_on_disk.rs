//! Erasure as a data-protection officer checks it: not in the rows but in the bytes of the database
//! files. A customer and one record of each kind carry a distinct marker in every personal field
//! (and in an old value that an update replaced, and in the free text of its deletion requests);
//! after the erasure no file of the database may hold any marker.
//!
//! - SQLite: every file of the database (the file, `-wal`, `-shm`) holds no marker once the purge
//!   returns: deleted content is overwritten (`secure_delete`) and the WAL, which keeps old page
//!   images, is checkpointed and truncated.
//! - PostgreSQL: a purged row lives on as a dead tuple, then in free space, until the table is
//!   rewritten. The markers left in the relation files after the purge are counted and printed;
//!   after `crm-service purge --rewrite` there are none. Reading the files needs the data
//!   directory (this test runs as root or postgres on the project's machines); where it cannot be
//!   read, that assertion is skipped with a printed reason.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crm_service::domain::deletion::LifecycleSettings;
use crm_service::proto::crm::v1 as pb;
use sea_orm::{ConnectionTrait, Database, DatabaseBackend, Statement};
use tonic::Code;
use uuid::Uuid;

use crate::common::{
    Db, TestApp, execute, figure, new_activity, new_contact, new_contract, new_deal, new_order,
    new_project, reject, request_id,
};

crate::on_both_databases!(
    purge_customer_leaves_no_personal_data_in_the_database_files,
    the_in_server_purger_leaves_no_personal_data_in_the_database_files,
    a_record_the_purger_erases_on_its_own_leaves_no_personal_data_in_the_database_files,
    the_servers_connections_are_durable_and_overwrite_what_they_delete,
);

/// A server whose retention is zero (a deleted customer is due at once), with the in-server
/// purger on or off.
async fn zero_retention(db: Db, purge_every: Option<Duration>) -> Option<TestApp> {
    TestApp::spawn_configured(db, |settings| {
        settings.lifecycle = LifecycleSettings {
            request_ttl: Duration::from_secs(72 * 3600),
            retention: Duration::ZERO,
        };
        settings.purge_interval = purge_every;
    })
    .await
}

/// One marker per personal field, so a failure names the field whose bytes stayed behind.
struct Markers {
    tag: String,
    /// The fields this test marked, when not all of them (`all` names only these).
    only: Option<&'static [&'static str]>,
}

impl Markers {
    fn new() -> Self {
        // Lower case: the customer's search text is a lower-cased copy of its name, e-mail and
        // phone, and must be erased too.
        Self {
            tag: format!("zq{}", &Uuid::now_v7().simple().to_string()[20..]),
            only: None,
        }
    }

    /// Markers of the given fields only.
    fn of(fields: &'static [&'static str]) -> Self {
        Self {
            only: Some(fields),
            ..Self::new()
        }
    }

    fn text(&self, field: &str) -> String {
        format!("{}{field}", self.tag)
    }

    /// A phone number unique to this test (phones are digits and punctuation only).
    fn phone(&self, field: u8) -> String {
        let digits: String = self
            .tag
            .bytes()
            .map(|b| char::from(b'0' + b % 10))
            .collect();
        format!("+{field}{digits}")
    }

    /// Every marker this test writes, named by where it was written.
    fn all(&self) -> Vec<(String, String)> {
        let mut all: Vec<(String, String)> = [
            "customer.name",
            "customer.old_name",
            "customer.industry",
            "customer.external_ref",
            "contact.full_name",
            "contact.job_title",
            "contact_alone.full_name",
            "deal.title",
            "contract.number",
            "project.name",
            "activity.subject",
            "deletion_request.reason",
            "deletion_request.decision_comment",
        ]
        .into_iter()
        .map(|field| (field.to_owned(), self.text(&field.replace(['.', '_'], ""))))
        .collect();
        all.push(("customer.email".into(), self.email("customer")));
        all.push(("contact.email".into(), self.email("contact")));
        // The digits only: a phone's punctuation may be stored as given.
        all.push(("customer.phone".into(), self.phone(1)[1..].to_owned()));
        all.push(("contact.phone".into(), self.phone(2)[1..].to_owned()));
        if let Some(only) = self.only {
            all.retain(|(field, _)| only.contains(&field.as_str()));
        }
        all
    }

    fn email(&self, whose: &str) -> String {
        format!("{}{whose}@example.com", self.tag)
    }
}

/// A customer of `acme` with one record of each kind that goes with it, every personal field
/// marked, a renamed name, a contact deleted on its own, a rejected then an approved deletion
/// request and an idempotent create (whose stored answer carries the personal data): deleted.
/// Returns the customer's id.
async fn marked_and_deleted_customer(app: &TestApp, m: &Markers) -> String {
    let customer = app
        .customers()
        .create_customer(pb::CreateCustomerRequest {
            customer: Some(pb::Customer {
                name: m.text("customeroldname"),
                email: m.email("customer"),
                phone: m.phone(1),
                industry: m.text("customerindustry"),
                external_ref: m.text("customerexternalref"),
                lifecycle_stage: pb::LifecycleStage::Customer as i32,
                ..Default::default()
            }),
            request_id: request_id(),
        })
        .await
        .expect("create")
        .into_inner()
        .customer
        .unwrap();
    let id = customer.id.clone();
    app.customers()
        .update_customer(pb::UpdateCustomerRequest {
            customer: Some(pb::Customer {
                id: id.clone(),
                name: m.text("customername"),
                ..Default::default()
            }),
            update_mask: crate::common::mask(&["name"]),
            etag: String::new(),
            request_id: request_id(),
        })
        .await
        .expect("rename");

    let mut r = app.records();
    r.create_contact(pb::CreateContactRequest {
        contact: Some(pb::Contact {
            full_name: m.text("contactfullname"),
            email: m.email("contact"),
            phone: m.phone(2),
            job_title: m.text("contactjobtitle"),
            ..new_contact(&id)
        }),
        request_id: request_id(),
    })
    .await
    .expect("contact");
    let alone = r
        .create_contact(pb::CreateContactRequest {
            contact: Some(pb::Contact {
                full_name: m.text("contactalonefullname"),
                ..new_contact(&id)
            }),
            request_id: String::new(),
        })
        .await
        .expect("contact")
        .into_inner()
        .contact
        .unwrap();
    r.delete_contact(pb::DeleteContactRequest {
        contact_id: alone.id,
        etag: alone.etag,
        request_id: request_id(),
    })
    .await
    .expect("contact deleted on its own");
    r.create_deal(pb::CreateDealRequest {
        deal: Some(pb::Deal {
            title: m.text("dealtitle"),
            ..new_deal(&id, pb::DealStage::Open)
        }),
        request_id: request_id(),
    })
    .await
    .expect("deal");
    r.create_contract(pb::CreateContractRequest {
        contract: Some(pb::Contract {
            number: m.text("contractnumber"),
            ..new_contract(&id, pb::ContractStatus::Draft)
        }),
        request_id: request_id(),
    })
    .await
    .expect("contract");
    r.create_project(pb::CreateProjectRequest {
        project: Some(pb::Project {
            name: m.text("projectname"),
            ..new_project(&id, pb::ProjectStatus::Done)
        }),
        request_id: request_id(),
    })
    .await
    .expect("project");
    r.create_activity(pb::CreateActivityRequest {
        activity: Some(pb::Activity {
            subject: m.text("activitysubject"),
            ..new_activity(&id)
        }),
        request_id: request_id(),
    })
    .await
    .expect("activity");
    // A paid order stays for the books (KEEP): it carries no marker.
    r.create_order(pb::CreateOrderRequest {
        order: Some(new_order(&id, pb::OrderStatus::Paid)),
        request_id: String::new(),
    })
    .await
    .expect("order");

    let first = app
        .pending_deletion(&id, &m.text("deletionrequestreason"))
        .await;
    reject(
        &mut app.approvals_as("acme", "sup-1", &["supervisor"]),
        &first.id,
        &m.text("deletionrequestdecisioncomment"),
    )
    .await
    .expect("reject");
    let approved = app
        .approved_deletion(&id, &m.text("deletionrequestreason"))
        .await;
    execute(
        &mut app.customers(),
        &id,
        &approved.id,
        &approved.preview.as_ref().unwrap().etag,
    )
    .await
    .expect("delete");
    id
}

/// How many times each marker occurs in `files`, for the markers that occur at all.
fn markers_in(files: &[PathBuf], m: &Markers) -> Vec<(String, usize)> {
    let mut found = Vec::new();
    let contents: Vec<Vec<u8>> = files
        .iter()
        .filter_map(|file| match std::fs::read(file) {
            Ok(bytes) => Some(bytes),
            // A relation file can go between listing and reading (a rewrite, a checkpoint).
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => panic!("cannot read {}: {e}", file.display()),
        })
        .collect();
    for (field, marker) in m.all() {
        let needle = marker.as_bytes();
        let copies: usize = contents
            .iter()
            .map(|bytes| bytes.windows(needle.len()).filter(|w| *w == needle).count())
            .sum();
        if copies > 0 {
            found.push((field, copies));
        }
    }
    found
}

fn total(found: &[(String, usize)]) -> usize {
    found.iter().map(|(_, n)| n).sum()
}

/// Every file of the test's SQLite database: the file, `-wal`, `-shm` and anything else beside it.
fn sqlite_files(app: &TestApp) -> Vec<PathBuf> {
    let file = app
        .database_url
        .strip_prefix("sqlite://")
        .expect("a sqlite:// url");
    let dir = Path::new(file).parent().expect("the database's directory");
    std::fs::read_dir(dir)
        .expect("the database's directory")
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.is_file())
        .collect()
}

/// PostgreSQL: the relation files of every table, index and TOAST table of the test's schema
/// (every segment of the main fork), or why they cannot be read from here.
async fn postgres_files(app: &TestApp) -> Result<Vec<PathBuf>, String> {
    let db = Database::connect(&app.database_url)
        .await
        .map_err(|e| e.to_string())?;
    let data_dir = db
        .query_one_raw(Statement::from_string(
            DatabaseBackend::Postgres,
            "SELECT current_setting('data_directory') AS dir",
        ))
        .await
        .map_err(|e| format!("cannot read data_directory: {e}"))?
        .map(|row| row.try_get::<String>("", "dir"))
        .transpose()
        .map_err(|e| e.to_string())?
        .ok_or("no data_directory")?;
    let schema = app.schema.clone().expect("a schema of its own");
    let rows = db
        .query_all_raw(Statement::from_sql_and_values(
            DatabaseBackend::Postgres,
            "SELECT pg_relation_filepath(c.oid) AS path FROM pg_class c \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = $1 AND c.relkind IN ('r', 'i', 'm') \
             UNION ALL \
             SELECT pg_relation_filepath(t.oid) FROM pg_class c \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             JOIN pg_class t ON t.oid = c.reltoastrelid \
             WHERE n.nspname = $1 \
             UNION ALL \
             SELECT pg_relation_filepath(i.indexrelid) FROM pg_class c \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             JOIN pg_index i ON i.indrelid = c.reltoastrelid \
             WHERE n.nspname = $1",
            [schema.into()],
        ))
        .await
        .map_err(|e| e.to_string())?;
    db.close().await.ok();
    let mut files = Vec::new();
    for row in rows {
        let Some(relative) = row
            .try_get::<Option<String>>("", "path")
            .map_err(|e| e.to_string())?
        else {
            continue;
        };
        let main = Path::new(&data_dir).join(relative);
        if let Err(e) = std::fs::metadata(&main) {
            return Err(format!("cannot read {}: {e}", main.display()));
        }
        files.push(main.clone());
        for segment in 1.. {
            let next = PathBuf::from(format!("{}.{segment}", main.display()));
            if !next.exists() {
                break;
            }
            files.push(next);
        }
    }
    Ok(files)
}

/// Writes PostgreSQL's dirty pages to the relation files, so the files show what the database
/// holds now.
async fn checkpoint(app: &TestApp) {
    let db = Database::connect(&app.database_url).await.expect("connect");
    db.execute_unprepared("CHECKPOINT")
        .await
        .expect("CHECKPOINT");
    db.close().await.ok();
}

/// The files of the test's database, or `None` (with a printed reason) where PostgreSQL's data
/// directory cannot be read from this process.
async fn database_files(app: &TestApp) -> Option<Vec<PathBuf>> {
    match app.db {
        Db::Sqlite => Some(sqlite_files(app)),
        Db::Postgres => {
            checkpoint(app).await;
            match postgres_files(app).await {
                Ok(files) => Some(files),
                Err(why) => {
                    use std::io::Write as _;
                    let _ = writeln!(
                        std::io::stderr(),
                        "SKIPPED (the on-disk assertions only): PostgreSQL's relation files \
                         cannot be read here: {why}"
                    );
                    None
                }
            }
        }
    }
}

/// After the purge: none on SQLite; on PostgreSQL the count (printed), then none once the tables
/// are rewritten.
async fn assert_no_markers_left(app: &TestApp, m: &Markers, how: &str) {
    let Some(files) = database_files(app).await else {
        return;
    };
    let left = markers_in(&files, m);
    match app.db {
        Db::Sqlite => assert_eq!(
            left,
            Vec::<(String, usize)>::new(),
            "SQLite files still hold personal data after {how}: {files:?}"
        ),
        Db::Postgres => {
            figure(format_args!(
                "PostgreSQL after {how}: {} marker copies left in the relation files (dead \
                 tuples and free space until a rewrite): {left:?}",
                total(&left)
            ));
            let report = app.run_cli(&["purge", "--rewrite"]).await;
            assert!(report.contains("rewrote"), "{report}");
            let files = database_files(app).await.expect("readable a moment ago");
            let left = markers_in(&files, m);
            assert_eq!(
                left,
                Vec::<(String, usize)>::new(),
                "PostgreSQL relation files still hold personal data after the rewrite"
            );
        }
    }
}

/// Before any erasure the markers are on disk: the scan can see what it looks for.
async fn assert_markers_present(app: &TestApp, m: &Markers) {
    let Some(files) = database_files(app).await else {
        return;
    };
    let found = markers_in(&files, m);
    let fields: Vec<&str> = found.iter().map(|(f, _)| f.as_str()).collect();
    for (field, _) in m.all() {
        assert!(
            fields.contains(&field.as_str()),
            "{field} not found on disk before the purge: the scan would prove nothing"
        );
    }
}

async fn purge_customer_leaves_no_personal_data_in_the_database_files(app: TestApp) {
    let db = app.db;
    drop(app);
    let app = zero_retention(db, None).await.expect("database answers");
    let m = Markers::new();
    let id = marked_and_deleted_customer(&app, &m).await;
    assert_markers_present(&app, &m).await;

    app.customers_as("acme", "admin-1", &["admin"])
        .purge_customer(pb::PurgeCustomerRequest {
            customer_id: id.clone(),
            validate_only: false,
            request_id: String::new(),
        })
        .await
        .expect("purge");
    let status = app
        .customers()
        .get_customer(pb::GetCustomerRequest { customer_id: id })
        .await
        .expect_err("erased");
    assert_eq!(status.code(), Code::NotFound);
    assert_no_markers_left(&app, &m, "PurgeCustomer").await;
}

async fn the_in_server_purger_leaves_no_personal_data_in_the_database_files(app: TestApp) {
    let db = app.db;
    drop(app);
    let app = zero_retention(db, Some(Duration::from_millis(200)))
        .await
        .expect("database answers");
    let m = Markers::new();
    let id = marked_and_deleted_customer(&app, &m).await;

    // The purger erases, then (SQLite) checkpoints: wait until the files are clean, as an
    // operator's scan after the purge would, and fail if they never are.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let erased = app
            .customers()
            .get_customer(pb::GetCustomerRequest {
                customer_id: id.clone(),
            })
            .await
            .is_err_and(|s| s.code() == Code::NotFound);
        let clean = match app.db {
            Db::Sqlite => markers_in(&sqlite_files(&app), &m).is_empty(),
            Db::Postgres => true,
        };
        if erased && clean {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the purger did not leave the files clean within 15 s (erased: {erased}): {:?}",
            markers_in(&sqlite_files(&app), &m)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_no_markers_left(&app, &m, "the purger").await;
}

/// A contact deleted on its own (its customer stays live) and erased by the purger once its own
/// retention has passed.
async fn a_record_the_purger_erases_on_its_own_leaves_no_personal_data_in_the_database_files(
    app: TestApp,
) {
    let db = app.db;
    drop(app);
    let app = zero_retention(db, Some(Duration::from_millis(200)))
        .await
        .expect("database answers");
    let m = Markers::of(&[
        "contact.full_name",
        "contact.email",
        "contact.phone",
        "contact.job_title",
    ]);
    let customer = app.create_customer("Stays GmbH").await;
    let mut r = app.records();
    let contact = r
        .create_contact(pb::CreateContactRequest {
            contact: Some(pb::Contact {
                full_name: m.text("contactfullname"),
                email: m.email("contact"),
                phone: m.phone(2),
                job_title: m.text("contactjobtitle"),
                ..new_contact(&customer.id)
            }),
            request_id: request_id(),
        })
        .await
        .expect("contact")
        .into_inner()
        .contact
        .unwrap();
    assert_markers_present(&app, &m).await;
    r.delete_contact(pb::DeleteContactRequest {
        contact_id: contact.id.clone(),
        etag: contact.etag,
        request_id: request_id(),
    })
    .await
    .expect("deleted on its own");

    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let erased = r
            .get_contact(pb::GetContactRequest {
                contact_id: contact.id.clone(),
            })
            .await
            .is_err_and(|s| s.code() == Code::NotFound);
        let clean = match app.db {
            Db::Sqlite => markers_in(&sqlite_files(&app), &m).is_empty(),
            Db::Postgres => true,
        };
        if erased && clean {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the purger did not erase the contact and leave the files clean within 15 s \
             (erased: {erased})"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_no_markers_left(&app, &m, "the purger erased a record deleted on its own").await;
}

/// SQLite: every pooled connection writes each commit durably (`synchronous = FULL`: a power
/// loss cannot take a commit the client was told of) and overwrites deleted content
/// (`secure_delete`). PostgreSQL: commits wait for the WAL flush (`synchronous_commit = on`).
async fn the_servers_connections_are_durable_and_overwrite_what_they_delete(app: TestApp) {
    use sea_orm::TransactionTrait;
    let store = app.store().await;
    // Hold several connections at once so that each pragma is read on a different one.
    let mut held = Vec::new();
    for _ in 0..3 {
        let tx = store.conn().begin().await.expect("begin");
        let pragmas: Vec<(&str, &str)> = match app.db {
            Db::Sqlite => vec![("synchronous", "2"), ("secure_delete", "1")],
            Db::Postgres => vec![("synchronous_commit", "on")],
        };
        for (name, want) in pragmas {
            let sql = match app.db {
                Db::Sqlite => format!("PRAGMA {name}"),
                Db::Postgres => format!("SELECT current_setting('{name}') AS {name}"),
            };
            let row = tx
                .query_one_raw(Statement::from_string(store.backend(), sql))
                .await
                .expect("pragma")
                .expect("a row");
            let got = match app.db {
                Db::Sqlite => row.try_get::<i64>("", name).unwrap().to_string(),
                Db::Postgres => row.try_get::<String>("", name).unwrap(),
            };
            assert_eq!(got, want, "{name}");
        }
        held.push(tx);
    }
}
