//! Why a database could not be opened, in words for whoever started the process: where it was
//! looked for, what went wrong, and the setting to change. These messages reach a terminal or a
//! pod's log, never a client, and never hold the URL itself: it may carry a password.

use std::path::{Path, PathBuf};
use std::time::Duration;

use sea_orm::sqlx::postgres::{PgConnectOptions, PgConnection};
use sea_orm::sqlx::sqlite::SqliteConnectOptions;
use sea_orm::sqlx::{self, ConnectOptions as _, Connection as _};
use sea_orm::{DbErr, RuntimeErr};

/// The one setting every message below sends its reader to.
const SETTING: &str = "--database-url / CRM_DATABASE_URL";

/// How long the first connection to PostgreSQL may take before start-up gives up on it.
pub(super) const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Why `Store::connect` or `Store::migrate` failed, as a sentence naming the database (its file,
/// or its host and port), the cause and what to change. Never holds a password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetupError(pub(super) String);

impl SetupError {
    pub fn message(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for SetupError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SetupError {}

/// Which database a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Sqlite,
    Postgres,
}

/// Checks that `url` is a database URL this service can use (`sqlite:` or `postgres:` /
/// `postgresql:`, and parseable as one), before anything is derived from it (the development
/// secret's path, a connection). The error is a sentence for the person who set the URL; it
/// never repeats the URL, which may hold a password.
pub fn check_database_url(url: &str) -> Result<(), String> {
    kind_of(url).map(|_| ())
}

pub(super) fn kind_of(url: &str) -> Result<Kind, String> {
    const USE: &str = "use sqlite://FILE or postgres://USER@HOST/DB";
    if url.trim().is_empty() {
        return Err(format!("the database URL is empty: {USE} ({SETTING})"));
    }
    let scheme = url.split_once(':').map(|(scheme, _)| scheme).filter(|s| {
        // Only something shaped like a scheme is quoted back: anything else might be a
        // password typed in the wrong place.
        !s.is_empty()
            && s.len() <= 32
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
    });
    let Some(scheme) = scheme else {
        return Err(format!("the database URL has no scheme: {USE} ({SETTING})"));
    };
    let invalid = |e: sqlx::Error, form: &str| {
        format!(
            "the database URL is not valid ({}): use {form} ({SETTING})",
            cause(&e)
        )
    };
    match scheme {
        "sqlite" => url
            .parse::<SqliteConnectOptions>()
            .map(|_| Kind::Sqlite)
            .map_err(|e| invalid(e, "sqlite://FILE")),
        "postgres" | "postgresql" => url
            .parse::<PgConnectOptions>()
            .map(|_| Kind::Postgres)
            .map_err(|e| invalid(e, "postgres://USER[:PASSWORD]@HOST[:PORT]/DB")),
        other => Err(format!(
            "the database URL scheme `{other}` is not supported; {USE} ({SETTING})"
        )),
    }
}

/// A configuration error's own cause, without sqlx's "error with configuration" around it (url's
/// parse errors never quote their input).
fn cause(e: &sqlx::Error) -> String {
    match e {
        sqlx::Error::Configuration(inner) => inner.to_string(),
        other => other.to_string(),
    }
}

/// Where a PostgreSQL URL points, for messages: host and port (or socket), user and database.
pub(super) struct PgTarget {
    options: PgConnectOptions,
}

impl PgTarget {
    /// `name`: the application name the attempt shows in pg_stat_activity, as the pool's do.
    pub(super) fn new(url: &str, name: &str) -> Result<Self, SetupError> {
        let options = url
            .parse::<PgConnectOptions>()
            .map_err(|e| SetupError(format!("the PostgreSQL URL is not valid: {}", cause(&e))))?
            .application_name(name);
        Ok(Self { options })
    }

    fn socket(&self) -> Option<PathBuf> {
        let o = &self.options;
        let dir = o
            .get_socket()
            .cloned()
            .or_else(|| o.get_host().starts_with('/').then(|| o.get_host().into()))?;
        Some(dir.join(format!(".s.PGSQL.{}", o.get_port())))
    }

    /// `PostgreSQL at 127.0.0.1:5432`, or at its socket.
    fn at(&self) -> String {
        match self.socket() {
            Some(socket) => format!("PostgreSQL at the socket {}", socket.display()),
            None => {
                let host = self.options.get_host();
                if host.contains(':') {
                    format!("PostgreSQL at [{host}]:{}", self.options.get_port())
                } else {
                    format!("PostgreSQL at {host}:{}", self.options.get_port())
                }
            }
        }
    }

    fn user(&self) -> &str {
        self.options.get_username()
    }

    /// The database the URL names; PostgreSQL's default is the user's name.
    fn database(&self) -> &str {
        self.options.get_database().unwrap_or(self.user())
    }

    /// One connection, as the pool would make it, with its failure explained. The pool retries
    /// a refused connection until its acquire timeout and then reports only that it timed out;
    /// a single attempt fails at once and says why.
    pub(super) async fn try_connect(&self) -> Result<(), SetupError> {
        let attempt = tokio::time::timeout(CONNECT_TIMEOUT, self.options.connect()).await;
        match attempt {
            Ok(Ok(conn)) => {
                let _ = PgConnection::close(conn).await;
                Ok(())
            }
            Ok(Err(e)) => Err(SetupError(self.explain(&e).await)),
            Err(_) => Err(SetupError(format!(
                "{} did not answer within {} s: check the host and port in {SETTING}, and that \
                 no firewall drops the connection",
                self.at(),
                CONNECT_TIMEOUT.as_secs()
            ))),
        }
    }

    /// Why connecting failed.
    pub(super) async fn explain(&self, e: &sqlx::Error) -> String {
        let at = self.at();
        match e {
            sqlx::Error::Database(db) => self.refused(db.code().as_deref(), db.message()),
            sqlx::Error::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => {
                format!(
                    "{at} refused the connection (connection refused: nothing listens there): \
                     start PostgreSQL, or point {SETTING} at the host and port where it listens"
                )
            }
            sqlx::Error::Io(io) if io.kind() == std::io::ErrorKind::NotFound => {
                if let Some(socket) = self.socket() {
                    format!(
                        "no PostgreSQL listens at the socket {} ({io}): start PostgreSQL, or \
                         point {SETTING} at where it listens",
                        socket.display()
                    )
                } else {
                    format!("cannot reach {at} ({io}): check the host and port in {SETTING}")
                }
            }
            sqlx::Error::Io(io) => {
                if self.socket().is_none() {
                    let host = self.options.get_host();
                    if let Err(lookup) =
                        tokio::net::lookup_host((host, self.options.get_port())).await
                    {
                        return format!(
                            "the database host {host:?} was not found ({lookup}): fix the host \
                             in {SETTING}"
                        );
                    }
                }
                format!("cannot reach {at} ({io}): check the host and port in {SETTING}")
            }
            sqlx::Error::Tls(tls) => format!(
                "the TLS handshake with {at} failed ({tls}): check sslmode and the certificates \
                 in {SETTING}"
            ),
            other => format!(
                "cannot connect to {at}: {}",
                without_location(&other.to_string())
            ),
        }
    }

    /// A failure of the pool or of a statement while opening, after the first connection
    /// succeeded: connecting again can still fail (the server went away, too many clients).
    pub(super) async fn explain_db(&self, err: &DbErr) -> SetupError {
        match err {
            DbErr::Conn(RuntimeErr::SqlxError(e)) => SetupError(self.explain(e).await),
            other => SetupError(format!("{}: {}", self.at(), describe(other))),
        }
    }

    /// PostgreSQL's own refusal (its message, never sqlx's rendering of it, which appends the
    /// server's source line), with what to do about it.
    fn refused(&self, code: Option<&str>, message: &str) -> String {
        let at = self.at();
        match code {
            // invalid_password, invalid_authorization_specification (no such role, no
            // pg_hba.conf entry, a failed peer check).
            Some("28P01") | Some("28000") => format!(
                "{at} refused to log in user {:?}: {message}; check the user and password in \
                 {SETTING}",
                self.user()
            ),
            // invalid_catalog_name
            Some("3D000") => {
                let database = self.database();
                let host = match self.socket() {
                    Some(_) => String::new(),
                    None => format!(
                        "-h {} -p {} ",
                        self.options.get_host(),
                        self.options.get_port()
                    ),
                };
                format!(
                    "{at}: {message}; create it (createdb {host}-U {} {}, or CREATE DATABASE \
                     \"{}\" in psql), or point {SETTING} at an existing database",
                    self.user(),
                    shell_word(database),
                    database.replace('"', "\"\"")
                )
            }
            _ => format!("{at} refused the connection: {message}"),
        }
    }
}

/// `word` as one shell word.
fn shell_word(word: &str) -> String {
    if !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-./".contains(c))
    {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// sqlx renders a PostgreSQL error with the server's source line ("… at line 948"), which means
/// nothing to a reader.
fn without_location(text: &str) -> String {
    let mut out = text.to_owned();
    while let Some(at) = out.find(" at line ") {
        let digits = out[at + " at line ".len()..]
            .chars()
            .take_while(char::is_ascii_digit)
            .count();
        if digits == 0 {
            break;
        }
        out.replace_range(at..at + " at line ".len() + digits, "");
    }
    out
}

/// A database failure while opening or migrating, in words: the database's own message for an
/// error it returned, never a source location.
pub(super) fn describe(err: &DbErr) -> String {
    let sqlx = match err {
        DbErr::Conn(RuntimeErr::SqlxError(e))
        | DbErr::Exec(RuntimeErr::SqlxError(e))
        | DbErr::Query(RuntimeErr::SqlxError(e)) => Some(&**e),
        _ => None,
    };
    if let DbErr::Custom(text) = err {
        return text.clone();
    }
    match sqlx {
        Some(sqlx::Error::Database(db)) => match db.code() {
            Some(code) => format!("{} (error {code})", db.message()),
            None => db.message().to_owned(),
        },
        Some(other) => without_location(&other.to_string()),
        None => without_location(&err.to_string()),
    }
}

/// Why the SQLite file `url` names could not be opened: the file system's answer when it has
/// one (a missing directory, no permission, a read-only file system), else SQLite's.
pub(super) fn explain_sqlite(url: &str, err: &DbErr) -> String {
    if let Some(problem) = sqlite_file_problem(url) {
        return problem;
    }
    match sqlite_path(url) {
        Some(file) => format!(
            "SQLite file {}: {}; check the file, or point {SETTING} at another file",
            file.display(),
            describe(err)
        ),
        None => format!("SQLite database: {}", describe(err)),
    }
}

/// What the file system says keeps the SQLite file `url` names from being written, if anything.
/// SQLite opens a file it may only read without complaint and fails at the first write (a
/// migration), with "attempt to write a readonly database" naming neither file nor cause.
pub(super) fn sqlite_file_problem(url: &str) -> Option<String> {
    let file = sqlite_path(url)?;
    let why = file_problem(&file)?;
    Some(format!(
        "SQLite file {}: {why}, or point {SETTING} at another file",
        file.display()
    ))
}

/// An existing SQLite file this process may not write. SQLite opens it read-only without a word
/// and fails at the first write, wherever that is, saying only "attempt to write a readonly
/// database": checked before connecting, so the message names the file and the cause.
pub(super) fn sqlite_read_only(url: &str) -> Option<String> {
    let file = sqlite_path(url).filter(|file| file.is_file())?;
    let denied = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&file)
        .err()?;
    Some(format!(
        "SQLite file {}: {}, or point {SETTING} at another file",
        file.display(),
        cannot_read_and_write(&denied)
    ))
}

fn cannot_read_and_write(e: &std::io::Error) -> String {
    format!(
        "it cannot be opened for reading and writing ({e}); give this user read and write \
         access to it"
    )
}

/// The file a SQLite URL names, made absolute (a relative one is relative to the directory the
/// process started in, which the reader may not know); `None` for an in-memory database.
fn sqlite_path(url: &str) -> Option<PathBuf> {
    let options = url.parse::<SqliteConnectOptions>().ok()?;
    let file = options.get_filename();
    if file == Path::new(":memory:") || file.as_os_str().is_empty() {
        return None;
    }
    Some(std::path::absolute(file).unwrap_or_else(|_| file.to_owned()))
}

/// What keeps `file` from being opened for writing, with its WAL beside it, and what to do
/// about it; `None` if the file system finds nothing wrong.
fn file_problem(file: &Path) -> Option<String> {
    let dir = file
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let shown = dir.display();
    match std::fs::metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Some(format!(
                "its directory {shown} does not exist; create it (mkdir -p {})",
                shell_word(&shown.to_string())
            ));
        }
        Err(e) => {
            return Some(format!(
                "its directory {shown} cannot be read ({e}); fix its permissions"
            ));
        }
        Ok(meta) if !meta.is_dir() => {
            return Some(format!("{shown} is not a directory"));
        }
        Ok(_) => {}
    }
    if file.is_dir() {
        return Some("that is a directory, not a file".into());
    }
    let existed = file.exists();
    match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(!existed)
        .truncate(false)
        .open(file)
    {
        Ok(_) if !existed => {
            let _ = std::fs::remove_file(file);
        }
        Ok(_) => {}
        Err(e) if existed => return Some(cannot_read_and_write(&e)),
        Err(e) => {
            return Some(format!(
                "it cannot be created in {shown} ({e}); let this user write to that directory"
            ));
        }
    }
    // SQLite keeps its write-ahead log and shared memory in files beside the database.
    let probe = dir.join(format!(".crm-service-probe-{}", std::process::id()));
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
    {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            None
        }
        Err(e) => Some(format!(
            "its directory {shown} is not writable ({e}), and SQLite keeps its -wal and -shm \
             files there; let this user write to that directory"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_sqlite_and_postgres_urls_pass() {
        for url in [
            "sqlite://crm.db",
            "sqlite:crm.db",
            "sqlite::memory:",
            "sqlite://data/crm.db?mode=rwc",
            "postgres://postgres@127.0.0.1:5432/test",
            "postgresql://u:p@db.example/crm?sslmode=require",
        ] {
            assert_eq!(check_database_url(url), Ok(()), "{url}");
        }
        let mysql = check_database_url("mysql://root:hunter22@localhost/crm").unwrap_err();
        assert_eq!(
            mysql,
            "the database URL scheme `mysql` is not supported; use sqlite://FILE or \
             postgres://USER@HOST/DB (--database-url / CRM_DATABASE_URL)"
        );
        for url in ["", "crm.db", "hunter22 secret://x"] {
            let error = check_database_url(url).unwrap_err();
            assert!(error.contains("sqlite://FILE"), "{error}");
            assert!(!error.contains("hunter22"), "{error}");
        }
        let bad_port = check_database_url("postgres://u:hunter22@host:99999/db").unwrap_err();
        assert!(bad_port.contains("invalid port number"), "{bad_port}");
        assert!(!bad_port.contains("hunter22"), "{bad_port}");
    }

    fn target(url: &str) -> PgTarget {
        PgTarget::new(url, "crm-service").unwrap()
    }

    #[test]
    fn a_refused_login_names_the_user_and_the_setting() {
        let t = target("postgres://crm:hunter22@db.example:6543/crm");
        let message = t.refused(
            Some("28P01"),
            "password authentication failed for user \"crm\"",
        );
        assert_eq!(
            message,
            "PostgreSQL at db.example:6543 refused to log in user \"crm\": password \
             authentication failed for user \"crm\"; check the user and password in \
             --database-url / CRM_DATABASE_URL"
        );
        let hba = t.refused(Some("28000"), "no pg_hba.conf entry for host \"10.0.0.9\"");
        assert!(hba.contains("refused to log in user \"crm\""), "{hba}");
    }

    #[test]
    fn a_missing_database_says_how_to_create_it() {
        let message = target("postgres://postgres@127.0.0.1:5432/nope")
            .refused(Some("3D000"), "database \"nope\" does not exist");
        assert_eq!(
            message,
            "PostgreSQL at 127.0.0.1:5432: database \"nope\" does not exist; create it \
             (createdb -h 127.0.0.1 -p 5432 -U postgres nope, or CREATE DATABASE \"nope\" in \
             psql), or point --database-url / CRM_DATABASE_URL at an existing database"
        );
    }

    #[test]
    fn source_locations_are_cut() {
        assert_eq!(
            without_location(
                "error returned from database: database \"x\" does not exist at line 948"
            ),
            "error returned from database: database \"x\" does not exist"
        );
        assert_eq!(without_location("at line of sight"), "at line of sight");
    }

    #[test]
    fn a_missing_directory_is_named() {
        let dir = std::env::temp_dir().join(format!("crm-open-{}", uuid::Uuid::now_v7()));
        let problem = file_problem(&dir.join("crm.db")).unwrap();
        assert!(problem.contains("does not exist"), "{problem}");
        assert!(problem.contains(&dir.display().to_string()), "{problem}");
    }
}
