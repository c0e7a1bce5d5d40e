//! `control-plane`: wires configuration, telemetry and the library together.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use flatrender_control_plane::{
    db::migrate,
    embedded_pg::{PgCluster, PgClusterOptions},
};

/// FlatRender render-farm control plane.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Apply the embedded migrations to a database (as its owner or a superuser).
    Migrate {
        /// Superuser or owner connection URL.
        #[arg(long, env = "FLATRENDER_DATABASE_URL")]
        database_url: String,
    },
    /// Manage a private PostgreSQL cluster in a data folder (development and tests).
    Pg {
        #[command(subcommand)]
        action: PgAction,
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
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Migrate { database_url } => {
            let report = migrate::run_embedded(&database_url).await.context("migrating")?;
            tracing::info!(
                applied = report.applied.len(),
                already_applied = report.already_applied.len(),
                "migrations done"
            );
        }
        Command::Pg {
            action: PgAction::Start { data_dir, ephemeral },
        } => {
            let mut options = PgClusterOptions::new(data_dir);
            options.ephemeral = ephemeral;
            let cluster = PgCluster::start(&options).await?;
            #[allow(clippy::print_stdout)] // the URL is this command's output, for scripts
            {
                println!("{}", cluster.superuser_url("postgres"));
            }
            cluster.detach();
        }
        Command::Pg {
            action: PgAction::Stop { data_dir },
        } => {
            let stopped = PgCluster::stop_in(&data_dir, "postgres").await?;
            tracing::info!(stopped, "pg stop");
        }
    }
    Ok(())
}
