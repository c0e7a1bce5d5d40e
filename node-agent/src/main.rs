//! `node-agent`: parses the command line, loads configuration, starts telemetry and calls the
//! library.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use flatrender_node_agent::{
    aerender_log,
    config::AgentConfig,
    doctor, install,
    logfile::{self, RotatingLog},
    service::Agent,
};
use tokio_util::sync::CancellationToken;

/// FlatRender node agent: renders frame chunks with After Effects for the FlatRender farm.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Configuration flags.
#[derive(clap::Args, Clone)]
struct ConfigArgs {
    /// TOML configuration file.
    #[arg(long, env = "FLATRENDER_AGENT_CONFIG")]
    config: Option<PathBuf>,
    /// Override a key, e.g. --set node.max_leases=2 (repeatable; wins over the file and
    /// FLATRENDER_AGENT_* variables).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    overrides: Vec<String>,
}

impl ConfigArgs {
    fn load(&self) -> anyhow::Result<AgentConfig> {
        Ok(AgentConfig::load(
            self.config.as_deref(),
            std::env::vars(),
            &self.overrides,
        )?)
    }
}

#[derive(Subcommand)]
enum Command {
    /// Run the agent (also what the OS service runs).
    Run {
        #[command(flatten)]
        config: ConfigArgs,
        /// Write the agent's log to this file (rotated at 32 MiB, 4 old files kept) instead of
        /// stderr; the Windows service uses it, having no console.
        #[arg(long, value_name = "FILE")]
        log_file: Option<PathBuf>,
        /// Print the effective configuration as TOML (the join token hidden) and exit.
        #[arg(long)]
        dump_config: bool,
    },
    /// Check aerender, disks, folders and the control plane, and say what to fix.
    Doctor {
        #[command(flatten)]
        config: ConfigArgs,
    },
    /// Parse an aerender log (stdout capture or AE render-log file) and print one JSON summary.
    ParseLog {
        /// The log file to read.
        file: PathBuf,
    },
    /// Install, remove or inspect the agent as an OS service (systemd, launchd, Windows service).
    Service {
        #[command(subcommand)]
        action: ServiceAction,
    },
}

#[derive(Subcommand)]
enum ServiceAction {
    /// Install and start the service, running `node-agent run --config <CONFIG>`.
    Install {
        /// The configuration file the service uses (absolute path recommended).
        #[arg(long)]
        config: PathBuf,
        /// Where service logs go.
        #[arg(long, default_value = default_log_dir())]
        log_dir: PathBuf,
        /// Run as this account instead of root / LocalSystem.
        #[arg(long)]
        user: Option<String>,
    },
    /// Stop and remove the service.
    Uninstall,
    /// Print the service's state.
    Status,
}

const fn default_log_dir() -> &'static str {
    if cfg!(windows) {
        "C:\\ProgramData\\FlatRender\\logs"
    } else if cfg!(target_os = "macos") {
        "/Library/Logs/FlatRender"
    } else {
        "/var/log/flatrender"
    }
}

/// Exit code for an unreadable input file.
const EXIT_UNREADABLE_FILE: u8 = 2;

fn main() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    match cli.command {
        Command::ParseLog { file } => parse_log_command(&file),
        Command::Run {
            config,
            log_file,
            dump_config,
        } => {
            if dump_config {
                print_line(&config.load()?.to_redacted_toml()?);
                return Ok(ExitCode::SUCCESS);
            }
            init_tracing(log_file.as_deref())?;
            let config = config.load()?;
            run(config)
        }
        Command::Doctor { config } => {
            let config = config.load()?;
            let runtime = tokio::runtime::Runtime::new()?;
            let checks = runtime.block_on(doctor::run_checks(&config));
            let failed = checks.iter().filter(|check| !check.ok).count();
            for check in &checks {
                print_line(&format!(
                    "{} {:<28} {}",
                    if check.ok { "ok  " } else { "FAIL" },
                    check.name,
                    check.detail
                ));
            }
            Ok(if failed == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Command::Service { action } => service_command(action),
    }
}

fn run(config: AgentConfig) -> anyhow::Result<ExitCode> {
    #[cfg(windows)]
    {
        // Under the Service Control Manager the dispatcher takes over; from a console it fails
        // at once and the agent runs in the foreground.
        let _ = RUN_CONFIG.set(config.clone());
        if install::windows::run_as_windows_service(
            install::DEFAULT_SERVICE_NAME,
            install::DEFAULT_STOP_TIMEOUT,
            service_main,
        )
        .is_ok()
        {
            return Ok(ExitCode::SUCCESS);
        }
    }
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let shutdown = CancellationToken::new();
        tokio::spawn(stop_on_signal(shutdown.clone()));
        let agent = Agent::start(config).await?;
        agent.run(shutdown).await
    })?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(windows)]
static RUN_CONFIG: std::sync::OnceLock<AgentConfig> = std::sync::OnceLock::new();

#[cfg(windows)]
fn service_main(shutdown: CancellationToken) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let config = RUN_CONFIG.get().cloned().ok_or("configuration not loaded")?;
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let agent = Agent::start(config).await?;
        agent.run(shutdown).await
    })?;
    Ok(())
}

fn service_command(action: ServiceAction) -> anyhow::Result<ExitCode> {
    let executable = std::env::current_exe().context("locating the node-agent executable")?;
    let spec_for = |config: PathBuf, log_dir: PathBuf| install::ServiceSpec::new(executable.clone(), config, log_dir);
    match action {
        ServiceAction::Install { config, log_dir, user } => {
            let config =
                std::fs::canonicalize(&config).with_context(|| format!("configuration file {}", config.display()))?;
            // Fail now, not at boot, on a configuration the agent would refuse.
            AgentConfig::load(Some(&config), std::env::vars(), &[])?;
            let mut spec = spec_for(config, log_dir);
            spec.user = user;
            let report = install::install(&spec)?;
            print_line(&report.to_string());
        }
        ServiceAction::Uninstall => {
            let report = install::uninstall(&spec_for(PathBuf::new(), PathBuf::from(default_log_dir())))?;
            print_line(&report.to_string());
        }
        ServiceAction::Status => {
            let state = install::status(&spec_for(PathBuf::new(), PathBuf::from(default_log_dir())))?;
            print_line(&state.to_string());
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn init_tracing(log_file: Option<&Path>) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match log_file {
        Some(path) => {
            let log = RotatingLog::open(path, logfile::DEFAULT_MAX_BYTES, logfile::DEFAULT_KEEP)
                .with_context(|| format!("cannot open the log file {}", path.display()))?;
            builder.with_writer(std::sync::Arc::new(log)).with_ansi(false).init();
        }
        None => builder
            .with_writer(std::io::stderr)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
    }
    Ok(())
}

async fn stop_on_signal(shutdown: CancellationToken) {
    #[cfg(unix)]
    {
        if let Ok(mut terminate) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = terminate.recv() => {}
            }
            tracing::info!("stopping");
            shutdown.cancel();
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
    tracing::info!("stopping");
    shutdown.cancel();
}

/// Reads, decodes and parses `file`; exit 0 whatever the render's outcome, 2 if unreadable.
fn parse_log_command(file: &Path) -> anyhow::Result<ExitCode> {
    let bytes = match std::fs::read(file) {
        Ok(bytes) => bytes,
        Err(error) => {
            eprintln!("node-agent parse-log: cannot read {}: {error}", file.display());
            return Ok(ExitCode::from(EXIT_UNREADABLE_FILE));
        }
    };
    let summary = aerender_log::parse_log(&aerender_log::decode_log_bytes(&bytes));
    print_line(&serde_json::to_string(&summary)?);
    Ok(ExitCode::SUCCESS)
}

/// Writes one line of a command's output (JSON, doctor's report) to stdout. A reader that went
/// away (`node-agent parse-log FILE | head`) ends the program quietly, as Unix tools do, instead
/// of the panic `println!` gives; any other write error is reported.
fn print_line(text: &str) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    match writeln!(stdout, "{text}").and_then(|()| stdout.flush()) {
        Ok(()) => {}
        Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        Err(error) => {
            eprintln!("node-agent: cannot write to stdout: {error}");
            std::process::exit(1);
        }
    }
}
