//! The `cloak-api` command line: `serve` (the default), `migrate`, `openapi`, `tenant create`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use cloak_proto::tenants::TenantCreated;
use secrecy::ExposeSecret;

use crate::clock::{Clock, SystemClock};
use crate::config::Settings;
use crate::services::tenants;
use crate::startup::Application;
use crate::store::{self, PoolOptions};
use crate::{http, telemetry};

/// Cloak API server.
#[derive(Debug, Parser)]
#[command(
    name = "cloak-api",
    version,
    about = "Cloak: end-to-end-encrypted messaging API server"
)]
struct Cli {
    /// Optional TOML settings file; `CLOAK_*` environment variables override it.
    #[arg(long, env = "CLOAK_CONFIG", global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Runs the server (the default).
    Serve,
    /// Applies database migrations and exits.
    Migrate,
    /// Prints the OpenAPI document.
    Openapi {
        /// Writes to this file instead of stdout.
        #[arg(long)]
        output: Option<PathBuf>,
    },
    /// Manages tenants.
    Tenant {
        #[command(subcommand)]
        command: TenantCommand,
    },
}

#[derive(Debug, Subcommand)]
enum TenantCommand {
    /// Creates a tenant and prints its first API key (shown once).
    Create {
        /// The tenant's name.
        #[arg(long)]
        name: String,
        /// Prints `{"tenant_id": …, "api_key": …}`.
        #[arg(long)]
        json: bool,
    },
}

/// Parses arguments and runs the command.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Command::Openapi { output }) = &cli.command {
        return write_openapi(output.as_ref());
    }
    let settings = match Settings::load(cli.config.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("cloak-api: {e}");
            return ExitCode::from(2);
        }
    };
    telemetry::init(settings.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cloak-api: cannot start runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            None | Some(Command::Serve) => serve(settings).await,
            Some(Command::Migrate) => migrate(&settings).await,
            Some(Command::Tenant {
                command: TenantCommand::Create { name, json },
            }) => create_tenant(&settings, &name, json).await,
            Some(Command::Openapi { .. }) => Ok(()),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("cloak-api: {message}");
            ExitCode::FAILURE
        }
    }
}

fn write_openapi(output: Option<&PathBuf>) -> ExitCode {
    let json = http::openapi_json();
    match output {
        Some(path) => match std::fs::write(path, json) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("cloak-api: cannot write {}: {e}", path.display());
                ExitCode::FAILURE
            }
        },
        None => {
            print!("{json}");
            ExitCode::SUCCESS
        }
    }
}

async fn serve(settings: Settings) -> Result<(), String> {
    let app = Application::build(settings)
        .await
        .map_err(|e| e.to_string())?;
    app.run_until_stopped().await.map_err(|e| e.to_string())
}

async fn open_store(settings: &Settings) -> Result<std::sync::Arc<dyn store::Store>, String> {
    let pool = PoolOptions {
        max_connections: 2,
        ..PoolOptions::default()
    };
    let store = store::connect(&settings.database_url, &pool)
        .await
        .map_err(|e| e.to_string())?;
    store.migrate().await.map_err(|e| e.to_string())?;
    Ok(store)
}

async fn migrate(settings: &Settings) -> Result<(), String> {
    let store = open_store(settings).await?;
    tracing::info!(database = store.backend(), "migrations applied");
    Ok(())
}

async fn create_tenant(settings: &Settings, name: &str, json: bool) -> Result<(), String> {
    let store = open_store(settings).await?;
    let created = tenants::create(
        store.as_ref(),
        name,
        SystemClock.now_ms(),
        &mut rand::rngs::OsRng,
    )
    .await
    .map_err(|e| e.to_string())?;
    let out = TenantCreated {
        tenant_id: created.tenant_id,
        name: created.name,
        api_key: created.api_key.expose_secret().to_owned(),
    };
    if json {
        let text = serde_json::to_string(&out).map_err(|e| e.to_string())?;
        println!("{text}");
    } else {
        println!("tenant_id: {}", out.tenant_id);
        println!("name:      {}", out.name);
        println!("api_key:   {}", out.api_key);
        println!();
        println!("Store the API key now: it is shown only once.");
    }
    Ok(())
}
