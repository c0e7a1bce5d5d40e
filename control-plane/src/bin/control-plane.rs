//! `control-plane`: parses the command line, loads configuration, starts telemetry and calls
//! the library.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use flatrender_control_plane::{
    auth,
    config::Config,
    db::migrate,
    embedded_pg::{PgCluster, PgClusterOptions},
    server,
};
use flatrender_proto::types::{TenantId, TokenKind};
use tokio_util::sync::CancellationToken;

/// FlatRender render-farm control plane.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Configuration flags shared by the commands that need the database.
#[derive(clap::Args)]
struct ConfigArgs {
    /// TOML configuration file.
    #[arg(long, env = "FLATRENDER_CONFIG")]
    config: Option<PathBuf>,
    /// Override a key, e.g. --set dispatch.lease_ttl_seconds=90 (repeatable; wins over the file
    /// and FLATRENDER_* variables).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    overrides: Vec<String>,
    /// Shortcut for --set database.url=URL (empty: embedded PostgreSQL).
    #[arg(long)]
    database_url: Option<String>,
    /// Shortcut for --set database.data_dir=DIR.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Shortcut for --set server.grpc_listen=ADDR.
    #[arg(long)]
    grpc_listen: Option<String>,
    /// Shortcut for --set server.http_listen=ADDR.
    #[arg(long)]
    http_listen: Option<String>,
}

impl ConfigArgs {
    fn load(&self) -> anyhow::Result<Config> {
        let mut overrides = self.overrides.clone();
        let shortcuts = [
            ("database.url", self.database_url.clone()),
            (
                "database.data_dir",
                self.data_dir.as_ref().map(|dir| dir.display().to_string()),
            ),
            ("server.grpc_listen", self.grpc_listen.clone()),
            ("server.http_listen", self.http_listen.clone()),
        ];
        for (key, value) in shortcuts {
            if let Some(value) = value {
                overrides.push(format!("{key}={value}"));
            }
        }
        Ok(Config::load(self.config.as_deref(), std::env::vars(), &overrides)?)
    }
}

#[derive(Subcommand)]
enum Command {
    /// Run the control plane (embedded PostgreSQL when no database URL is configured).
    Serve {
        #[command(flatten)]
        config: ConfigArgs,
        /// Print the effective configuration (secrets hidden) and exit.
        #[arg(long)]
        dump_config: bool,
    },
    /// Apply the embedded migrations to a database (as its owner or a superuser).
    Migrate {
        /// Owner or superuser connection URL.
        #[arg(long, env = "FLATRENDER_MIGRATE_URL")]
        database_url: String,
    },
    /// Manage bearer tokens directly in the database.
    Token {
        #[command(subcommand)]
        action: TokenAction,
    },
    /// Manage a private PostgreSQL cluster in a data folder (development and tests).
    Pg {
        #[command(subcommand)]
        action: PgAction,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum KindArg {
    Join,
    Service,
    Admin,
}

#[derive(Subcommand)]
enum TokenAction {
    /// Create a token and print it (shown once; only its hash is stored).
    Create {
        #[command(flatten)]
        config: ConfigArgs,
        /// What the token is for.
        #[arg(long, value_enum)]
        kind: KindArg,
        /// A note for ops.
        #[arg(long, default_value = "")]
        label: String,
        /// Service tokens only: a tenant it may act for (repeatable; none means all).
        #[arg(long = "tenant")]
        tenants: Vec<String>,
    },
}

#[derive(Subcommand)]
enum PgAction {
    /// Start (initialising if new) and leave running; prints a superuser URL.
    Start {
        /// Folder that holds the cluster.
        #[arg(long)]
        data_dir: PathBuf,
        /// Disable fsync: for throwaway test clusters only.
        #[arg(long)]
        ephemeral: bool,
    },
    /// Stop the cluster running in the folder, if any.
    Stop {
        /// Folder that holds the cluster.
        #[arg(long)]
        data_dir: PathBuf,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match Cli::parse().command {
        Command::Serve { config, dump_config } => serve(config.load()?, dump_config).await,
        Command::Migrate { database_url } => {
            let report = migrate::run_embedded(&database_url).await.context("migrating")?;
            tracing::info!(
                applied = report.applied.len(),
                already_applied = report.already_applied.len(),
                "migrations done"
            );
            Ok(())
        }
        Command::Token {
            action:
                TokenAction::Create {
                    config,
                    kind,
                    label,
                    tenants,
                },
        } => {
            let config = config.load()?;
            let (pool, _embedded) = server::connect_database(&config).await?;
            let kind = match kind {
                KindArg::Join => TokenKind::Join,
                KindArg::Service => TokenKind::Service,
                KindArg::Admin => TokenKind::Admin,
            };
            let tenants = tenants
                .iter()
                .map(|tenant| TenantId::parse_field(tenant, "--tenant"))
                .collect::<Result<Vec<_>, _>>()?;
            let scope = (!tenants.is_empty()).then_some(tenants.as_slice());
            let (_, token) = auth::create_token(&pool, kind, &label, scope, None, None).await?;
            print_line(&token);
            Ok(())
        }
        Command::Pg {
            action: PgAction::Start { data_dir, ephemeral },
        } => {
            let mut options = PgClusterOptions::new(data_dir);
            options.ephemeral = ephemeral;
            let cluster = PgCluster::start(&options).await?;
            print_line(&cluster.superuser_url("postgres"));
            cluster.detach();
            Ok(())
        }
        Command::Pg {
            action: PgAction::Stop { data_dir },
        } => {
            let stopped = PgCluster::stop_in(&data_dir, "postgres").await?;
            tracing::info!(stopped, "pg stop");
            Ok(())
        }
    }
}

async fn serve(config: Config, dump_config: bool) -> anyhow::Result<()> {
    if dump_config {
        print_line(&config.to_redacted_toml());
        return Ok(());
    }
    let (pool, embedded) = server::connect_database(&config).await?;
    if let Some(database) = &embedded {
        tracing::info!(
            admin_token_file = %database.admin_token_file.display(),
            join_token_file = %database.join_token_file.display(),
            "embedded database ready"
        );
    }
    let shutdown = CancellationToken::new();
    tokio::spawn(stop_on_signal(shutdown.clone()));
    server::run(config, pool, shutdown, |_| {}).await?;
    drop(embedded);
    Ok(())
}

async fn stop_on_signal(shutdown: CancellationToken) {
    let mut terminate = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(signal) => signal,
        Err(error) => {
            tracing::warn!(%error, "cannot watch SIGTERM; Ctrl-C still works");
            let _ = tokio::signal::ctrl_c().await;
            shutdown.cancel();
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
    tracing::info!("shutting down");
    shutdown.cancel();
}

#[allow(clippy::print_stdout)] // these commands' output is for scripts and people
fn print_line(text: &str) {
    println!("{text}");
}
