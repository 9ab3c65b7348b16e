//! The `crm-service` binary: a thin command line over the library.

use std::process::ExitCode;

use clap::Parser;
use crm_service::app::{Application, ResolvedKey, resolve_key, shutdown_signal};
use crm_service::auth::{TokenRequest, mint};
use crm_service::config::{Cli, Command};
use crm_service::store::Store;
use crm_service::telemetry::{self, Telemetry, TelemetryConfig};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let serving = matches!(cli.command, None | Some(Command::Serve));
    let telemetry = match telemetry::init(&TelemetryConfig {
        log_format: cli.common.log_format.clone(),
        otlp_endpoint: cli.common.server.otlp_endpoint.clone().filter(|_| serving),
        prometheus: serving && cli.common.server.metrics_listen.is_some(),
    }) {
        Ok(telemetry) => telemetry,
        Err(message) => {
            eprintln!("crm-service: {message}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = match cli.command {
        None | Some(Command::Serve) => serve(&cli.common, &telemetry).await,
        Some(Command::Migrate) => migrate(&cli.common).await,
        Some(Command::Token(args)) => token(&cli.common, &args),
        Some(Command::Seed(args)) => {
            crm_service::seed::run(&cli.common.store_config(), &args).await
        }
        Some(Command::Purge(args)) => purge(&cli.common, &args).await,
    };
    telemetry.shutdown();
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("crm-service: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(
    common: &crm_service::config::CommonArgs,
    telemetry: &Telemetry,
) -> Result<(), String> {
    let app = Application::build(common.settings()).await?;
    let addr = app.local_addr();
    let scheme = if common.server.tls_cert_file.is_some() {
        "TLS"
    } else {
        "plaintext"
    };
    tracing::info!(%addr, scheme, database = %redact(&common.database_url), "crm-service listening");
    let metrics = match (common.server.metrics_listen, telemetry.registry()) {
        (Some(listen), Some(registry)) => {
            let listener = tokio::net::TcpListener::bind(listen)
                .await
                .map_err(|e| format!("cannot listen for metrics on {listen}: {e}"))?;
            let bound = listener.local_addr().map_err(|e| e.to_string())?;
            println!("metrics at http://{bound}/metrics");
            Some(tokio::spawn(telemetry::serve_metrics(listener, registry)))
        }
        _ => None,
    };
    if let Some(health) = app.health_addr() {
        println!("health checks (plaintext) on {health}");
    }
    println!("crm-service listening on {addr}");
    println!(
        "  mint a token:  {} token --tenant demo --user alice --role sales_rep",
        invoked_as()
    );
    if scheme == "plaintext" {
        println!("  list services: grpcurl -plaintext {addr} list");
    } else {
        println!("  TLS is on: grpcurl -cacert CA.pem [-cert C.pem -key K.pem] {addr} list");
    }
    let outcome = app.run_until(shutdown_signal()).await;
    if let Some(metrics) = metrics {
        metrics.abort();
    }
    outcome
}

async fn migrate(common: &crm_service::config::CommonArgs) -> Result<(), String> {
    let store = Store::connect(&common.store_config())
        .await
        .map_err(|e| format!("cannot open the database: {e}"))?;
    store
        .migrate()
        .await
        .map_err(|e| format!("migration failed: {e}"))?;
    println!("migrations applied to {}", redact(&common.database_url));
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
    let plain = program
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-+:@%".contains(c));
    if plain {
        program
    } else {
        format!("'{}'", program.replace('\'', r"'\''"))
    }
}

fn token(
    common: &crm_service::config::CommonArgs,
    args: &crm_service::config::TokenArgs,
) -> Result<(), String> {
    let secret = match resolve_key(&common.jwt(), &common.database_url)? {
        ResolvedKey::Development { secret, .. } => secret,
        ResolvedKey::Configured(crm_service::auth::KeySource::Secret(secret)) => secret,
        ResolvedKey::Configured(_) => {
            return Err(
                "tokens for a public-key setup come from your identity provider, not from here"
                    .into(),
            );
        }
    };
    let request = TokenRequest {
        tenant: args.tenant.clone(),
        subject: args.user.clone(),
        roles: args.roles.clone(),
        ttl: args.ttl,
        issuer: common.jwt_issuer.clone(),
        audience: common.jwt_audience.clone(),
    };
    println!("{}", mint(&secret, &request)?);
    Ok(())
}

async fn purge(
    common: &crm_service::config::CommonArgs,
    args: &crm_service::config::PurgeArgs,
) -> Result<(), String> {
    let store = Store::connect(&common.store_config())
        .await
        .map_err(|e| format!("cannot open the database: {e}"))?;
    store
        .migrate()
        .await
        .map_err(|e| format!("migration failed: {e}"))?;
    let purges = crm_service::domain::purge::Purges::new(store, crm_service::domain::Clock);
    let (mut customers, mut records) = (0, 0);
    loop {
        let report = purges
            .run_due(args.batch.max(1), args.dry_run)
            .await
            .map_err(|e| e.to_string())?;
        for (tenant, erased) in &report.erased {
            println!(
                "{} tenant {tenant} customer {}: {} deleted records {}, {} kept records stay",
                if args.dry_run {
                    "would erase"
                } else {
                    "erased"
                },
                erased.customer_id,
                erased.erased_records,
                if args.dry_run { "would go" } else { "gone" },
                erased.kept_records
            );
        }
        for record in &report.records {
            println!(
                "{} tenant {} {} {} of customer {} (deleted on its own)",
                if args.dry_run {
                    "would erase"
                } else {
                    "erased"
                },
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
    println!("{customers} customer(s) {done}");
    println!("{records} record(s) deleted on their own {done}");
    if args.rewrite {
        for rewritten in purges.rewrite().await.map_err(|e| e.to_string())? {
            println!(
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
