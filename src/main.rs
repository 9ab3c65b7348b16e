//! The `crm-service` binary: a thin command line over the library.

use std::process::ExitCode;

use clap::Parser;
use crm_service::app::{
    Application, DevSecret, ResolvedKey, cannot_listen, resolve_key, shutdown_signal,
};
use crm_service::auth::{KeySource, TokenRequest, mint};
use crm_service::config::{
    Cli, Command, DatabaseArgs, MigrateArgs, PurgeArgs, ServeArgs, TokenArgs,
};
use crm_service::store::Store;
use crm_service::telemetry::{self, LogFormat, Telemetry, TelemetryConfig};

fn main() -> ExitCode {
    limit_malloc_arenas();
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime.block_on(run()),
        Err(e) => {
            complain(&format!("cannot start the async runtime: {e}"));
            ExitCode::FAILURE
        }
    }
}

/// glibc gives a thread that allocates while others hold the arenas an arena of its own, up to
/// eight per core, and each arena keeps what was freed in it for its next allocation. Here every
/// SQLite connection has its own thread besides the runtime's, so the pool's eight connections
/// and the workers spread the heap over up to sixteen arenas on two cores. Capped at two
/// (measured on SQLite after 110,000 creates: RSS 43.1 → 30.6 MiB; over a 10,000-customer
/// deletion batch, peak 67.2 → 51.8 MiB; docs/performance.md P13). A `MALLOC_ARENA_MAX` in the
/// environment still decides.
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: called first thing in main, before any other thread exists; mallopt only sets
        // a parameter of the allocator.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 2);
        }
    }
}

async fn run() -> ExitCode {
    let command = Cli::parse().into_command();
    let telemetry = match telemetry::init(&telemetry_config(&command)) {
        Ok(telemetry) => telemetry,
        Err(message) => {
            complain(&message);
            return ExitCode::FAILURE;
        }
    };
    let outcome = match &command {
        Command::Serve(args) => serve(args, &telemetry).await,
        Command::Migrate(args) => migrate(args).await,
        Command::Token(args) => token(args),
        Command::Seed(args) => crm_service::seed::run(&args.database.store_config(), args).await,
        Command::Purge(args) => purge(args).await,
    };
    telemetry.shutdown();
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            complain(&message);
            ExitCode::FAILURE
        }
    }
}

/// Prints an error for the user; a closed stderr loses it rather than panicking.
fn complain(message: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "crm-service: {message}");
}

/// Only `serve` exports traces and metrics; the one-shot commands log.
fn telemetry_config(command: &Command) -> TelemetryConfig {
    let log_format = match command {
        Command::Serve(args) => args.log.log_format,
        Command::Migrate(args) => args.log.log_format,
        Command::Seed(args) => args.log.log_format,
        Command::Purge(args) => args.log.log_format,
        Command::Token(_) => LogFormat::Text,
    };
    match command {
        Command::Serve(args) => TelemetryConfig {
            log_format,
            otlp_endpoint: args.server.otlp_endpoint.clone(),
            prometheus: args.server.metrics_listen.is_some(),
        },
        _ => TelemetryConfig {
            log_format,
            ..TelemetryConfig::default()
        },
    }
}

/// Writes a line to stdout. `false` once nobody reads it (`crm-service serve | head -3`): the
/// standard library's `println!` would panic there.
fn say(line: std::fmt::Arguments<'_>) -> bool {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    stdout.write_fmt(line).is_ok() && stdout.write_all(b"\n").is_ok() && stdout.flush().is_ok()
}

macro_rules! say {
    ($($arg:tt)*) => {
        say(format_args!($($arg)*))
    };
}

async fn serve(args: &ServeArgs, telemetry: &Telemetry) -> Result<(), String> {
    let app = Application::build(args.settings()).await?;
    let addr = app.local_addr();
    let scheme = if args.server.tls_cert_file.is_some() {
        "TLS"
    } else {
        "plaintext"
    };
    tracing::info!(%addr, scheme, database = %redact(&args.database.database_url), "crm-service listening");
    let metrics = match (args.server.metrics_listen, telemetry.registry()) {
        (Some(listen), Some(registry)) => {
            let listener = tokio::net::TcpListener::bind(listen).await.map_err(|e| {
                cannot_listen(
                    " for metrics",
                    listen,
                    &e,
                    "--metrics-listen / CRM_METRICS_LISTEN",
                )
            })?;
            let bound = listener.local_addr().map_err(|e| e.to_string())?;
            say!("metrics at http://{bound}/metrics");
            Some(tokio::spawn(telemetry::serve_metrics(listener, registry)))
        }
        _ => None,
    };
    let mut heard = true;
    if let Some(health) = app.health_addr() {
        heard &= say!("health checks (plaintext) on {health}");
    }
    heard &= say!("crm-service listening on {addr}");
    heard &= say!(
        "  mint a token:  {} token{} --tenant demo --user alice --role sales_rep",
        invoked_as(),
        key_flags(args)
    );
    heard &= if scheme == "plaintext" {
        say!("  list services: grpcurl -plaintext {addr} list")
    } else {
        say!("  TLS is on: grpcurl -cacert CA.pem [-cert C.pem -key K.pem] {addr} list")
    };
    // Whoever started us stopped reading what we print (`serve | head -3`): end as every
    // command in a closed pipe does, at once and without a word, rather than serve unseen.
    let outcome = if heard {
        app.run_until(shutdown_signal()).await
    } else {
        Ok(())
    };
    if let Some(metrics) = metrics {
        metrics.abort();
    }
    outcome
}

async fn open_store(database: &DatabaseArgs) -> Result<Store, String> {
    let store = Store::connect(&database.store_config())
        .await
        .map_err(|e| format!("cannot open the database: {e}"))?;
    store
        .migrate()
        .await
        .map_err(|e| format!("migration failed: {e}"))?;
    Ok(store)
}

async fn migrate(args: &MigrateArgs) -> Result<(), String> {
    open_store(&args.database).await?;
    say!(
        "migrations applied to {}",
        redact(&args.database.database_url)
    );
    Ok(())
}

/// The program as this process was started, quoted for a shell: `cargo run --release` starts
/// `target/release/crm-service`, which is not on PATH, so a hint naming plain `crm-service` fails
/// with "command not found" where this one runs as printed from the same directory.
fn invoked_as() -> String {
    let program = std::env::args_os()
        .next()
        .map(|arg0| arg0.to_string_lossy().into_owned())
        .filter(|arg0| !arg0.is_empty())
        .unwrap_or_else(|| "crm-service".into());
    shell_word(&program)
}

/// `word` quoted for a POSIX shell where it needs it.
fn shell_word(word: &str) -> String {
    let plain = word
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-+:@%".contains(c));
    if plain {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// The flags `token` needs to find the key this server verifies with, when the defaults would
/// not: a secret file, or the database beside which the development secret lives. A secret given
/// in CRM_JWT_SECRET is read by `token` from the same variable.
fn key_flags(args: &ServeArgs) -> String {
    let jwt = &args.jwt;
    if let Some(file) = &jwt.jwt_secret_file {
        return format!(" --jwt-secret-file {}", shell_word(&file.to_string_lossy()));
    }
    let url = &args.database.database_url;
    if jwt.jwt_secret.is_some() || jwt.jwt_public_key_file.is_some() || url == "sqlite://crm.db" {
        return String::new();
    }
    format!(" --database-url {}", shell_word(url))
}

fn token(args: &TokenArgs) -> Result<(), String> {
    let jwt = args.jwt.settings();
    let request = TokenRequest {
        tenant: args.tenant.clone(),
        subject: args.user.clone(),
        roles: args.roles.clone(),
        ttl: args.ttl,
        issuer: jwt.issuer.clone(),
        audience: jwt.audience.clone(),
        claims: args.claims.iter().cloned().collect(),
    };
    request.validate()?;
    let secret = match resolve_key(&jwt, &args.database_url, DevSecret::MustExist)? {
        ResolvedKey::Development { secret, .. } => secret,
        ResolvedKey::Configured(KeySource::Secret(secret)) => secret,
        ResolvedKey::Configured(_) => {
            return Err(
                "the server verifies RS256/ES256 tokens with --jwt-public-key-file: tokens come \
                 from your identity provider, not from here"
                    .into(),
            );
        }
    };
    say!("{}", mint(&secret, &request)?);
    Ok(())
}

async fn purge(args: &PurgeArgs) -> Result<(), String> {
    let store = open_store(&args.database).await?;
    let purges =
        crm_service::domain::purge::Purges::new(store, crm_service::domain::Clock::system());
    let (mut customers, mut records) = (0, 0);
    let (erased, gone) = if args.dry_run {
        ("would erase", "would go")
    } else {
        ("erased", "gone")
    };
    // A closed stdout silences the report; the erasure goes on, batch by batch.
    loop {
        let report = purges
            .run_due(args.batch.max(1), args.dry_run)
            .await
            .map_err(|e| e.to_string())?;
        for (tenant, customer) in &report.erased {
            say!(
                "{erased} tenant {tenant} customer {}: {} deleted records {gone}, {} kept records stay",
                customer.customer_id,
                customer.erased_records,
                customer.kept_records
            );
        }
        for record in &report.records {
            say!(
                "{erased} tenant {} {} {} of customer {} (deleted on its own)",
                record.tenant,
                record.kind.name(),
                record.id,
                record.customer_id
            );
        }
        customers += report.erased.len();
        records += report.records.len();
        // A dry run sees the same due customers and records every time: one pass is the whole
        // answer.
        if args.dry_run || !report.filled(args.batch.max(1)) {
            break;
        }
    }
    let done = if args.dry_run {
        "due for erasure"
    } else {
        "erased"
    };
    say!("{customers} customer(s) {done}");
    say!("{records} record(s) deleted on their own {done}");
    if args.rewrite {
        for rewritten in purges.rewrite().await.map_err(|e| e.to_string())? {
            say!(
                "rewrote {} in {:.1} s: {} → {} bytes",
                rewritten.table,
                rewritten.took.as_secs_f64(),
                rewritten.bytes_before,
                rewritten.bytes_after
            );
        }
    }
    Ok(())
}

/// The database URL without its password, for logs.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}
