//! The command line: global flags and one subcommand tree per area (clap derive). Values that
//! clap can check (durations, states, classes) are parsed here so mistakes exit 2 before any
//! network call.

use std::{path::PathBuf, time::Duration};

use clap::{Args, Parser, Subcommand, ValueEnum};
use flatrender_proto::types::{CrashClass, FrameJobState, JobStatus, NodeState, TokenKind};

use crate::duration;

const EXIT_CODES: &str = "\
Exit codes:
  0  ok
  1  unexpected error
  2  bad usage or invalid argument (the server's field name is shown)
  3  authentication or permission refused (check --token / FRCTL_TOKEN)
  4  not found (unknown node, job or token)
  5  control plane unreachable or timed out
  6  conflict (e.g. retrying a running job, draining a disabled node)
  7  confirmation declined or needed (frames requeue over --confirm-over without --yes)
  8  jobs watch: the job ended failed or cancelled

Token lookup, first found wins: --token, FRCTL_TOKEN, --token-file / FRCTL_TOKEN_FILE, the config
file's `token` then `token_file`, then ./data/admin.token (written by scripts/run.sh).
Config file: --config / FRCTL_CONFIG, default $XDG_CONFIG_HOME/flatrender/frctl.toml or
~/.config/flatrender/frctl.toml, keys `endpoint`, `token`, `token_file`, `ca_cert`.
Reference: docs/frctl.md";

/// `frctl`: drive a FlatRender render farm (nodes, jobs, frames, crashes, cache, partitions, tokens).
#[derive(Debug, Parser)]
#[command(name = "frctl", version, after_long_help = EXIT_CODES, after_help = EXIT_CODES)]
pub struct Cli {
    /// Global connection and output flags.
    #[command(flatten)]
    pub global: GlobalArgs,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The help heading of the flags every command accepts, apart from each command's own.
pub const GLOBAL_HEADING: &str = "Connection and output options";

/// Flags every command accepts.
#[derive(Debug, Args)]
#[command(next_help_heading = GLOBAL_HEADING)]
pub struct GlobalArgs {
    /// Control-plane gRPC endpoint [default: http://127.0.0.1:50051, or `endpoint` in the config file].
    #[arg(long, global = true, env = "FRCTL_ENDPOINT", value_name = "URL")]
    pub endpoint: Option<String>,
    /// Admin token secret.
    #[arg(
        long,
        global = true,
        env = "FRCTL_TOKEN",
        hide_env_values = true,
        value_name = "SECRET"
    )]
    pub token: Option<String>,
    /// File holding the admin token secret.
    #[arg(long, global = true, env = "FRCTL_TOKEN_FILE", value_name = "PATH")]
    pub token_file: Option<PathBuf>,
    /// PEM of the CA that signed the control plane's certificate, for https:// endpoints.
    #[arg(long, global = true, env = "FRCTL_CA_CERT", value_name = "PATH")]
    pub ca_cert: Option<PathBuf>,
    /// Config file (TOML: endpoint, token, token_file, ca_cert).
    #[arg(long, global = true, env = "FRCTL_CONFIG", value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Output format: human tables or the stable JSON contract.
    #[arg(long, global = true, value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,
    /// Seconds to wait for the control plane per request.
    #[arg(long, global = true, default_value_t = 10, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub timeout: u64,
}

/// How results are printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Aligned tables for people.
    Table,
    /// JSON documents (NDJSON for `jobs watch`) for scripts.
    Json,
}

/// The areas.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Render nodes: list, inspect, drain, disable.
    #[command(subcommand)]
    Nodes(NodesCommand),
    /// Render jobs: list, inspect, watch, cancel, retry.
    #[command(subcommand)]
    Jobs(JobsCommand),
    /// Frame chunks: move them back to the queue.
    #[command(subcommand)]
    Frames(FramesCommand),
    /// Render failures recorded by the nodes.
    #[command(subcommand)]
    Crashes(CrashesCommand),
    /// A node's template cache.
    #[command(subcommand)]
    Cache(CacheCommand),
    /// Monthly partitions of the health log.
    #[command(subcommand)]
    Partitions(PartitionsCommand),
    /// Farm overview: nodes, chunks and jobs by state, tenant queues, recent crashes.
    Stats,
    /// Bearer tokens: create and revoke.
    #[command(subcommand)]
    Tokens(TokensCommand),
}

/// `frctl nodes ...`
#[derive(Debug, Subcommand)]
pub enum NodesCommand {
    /// List nodes.
    List {
        /// Only nodes in these states (repeatable).
        #[arg(long = "state", value_parser = parse_node_state, value_name = "STATE")]
        states: Vec<NodeState>,
    },
    /// One node with its running chunks and cache.
    Show(NodeArg),
    /// Let running chunks finish and give the node no more work.
    Drain {
        #[command(flatten)]
        node: NodeArg,
        /// Requeue whatever still runs after this long (e.g. 30m, 1h30m, 90s).
        #[arg(long, value_parser = duration::parse, value_name = "DURATION")]
        deadline: Option<Duration>,
    },
    /// Put a draining or drained node back online.
    Undrain(NodeArg),
    /// Take the node out at once; its running chunks are requeued.
    Disable {
        #[command(flatten)]
        node: NodeArg,
        /// Why (shown in `nodes list`).
        #[arg(long)]
        reason: Option<String>,
    },
    /// Bring a disabled or quarantined node back online.
    Enable(NodeArg),
}

/// A node named by id or name.
#[derive(Debug, Args)]
pub struct NodeArg {
    /// Node id (UUID) or name.
    #[arg(value_name = "NODE")]
    pub node: String,
}

/// `frctl jobs ...`
#[derive(Debug, Subcommand)]
pub enum JobsCommand {
    /// List jobs, newest first.
    List {
        /// Only this tenant's jobs.
        #[arg(long, value_name = "TENANT_ID")]
        tenant: Option<String>,
        /// Only jobs in these statuses (repeatable).
        #[arg(long = "status", value_parser = parse_job_status, value_name = "STATUS")]
        statuses: Vec<JobStatus>,
        /// At most this many jobs.
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=10000))]
        limit: u32,
    },
    /// One job with its progress and its leased and failed chunks.
    Show(JobArg),
    /// Follow a job until it ends (exit 0 completed, 8 failed or cancelled).
    Watch(JobArg),
    /// Cancel a job; running chunks are stopped.
    Cancel {
        #[command(flatten)]
        job: JobArg,
        /// Why.
        #[arg(long)]
        reason: Option<String>,
    },
    /// Requeue a failed or cancelled job's unfinished chunks with fresh attempts.
    Retry(JobArg),
}

/// A job id.
#[derive(Debug, Args)]
pub struct JobArg {
    /// Job id (UUID).
    #[arg(value_name = "JOB_ID")]
    pub job_id: String,
}

/// `frctl frames ...`
#[derive(Debug, Subcommand)]
pub enum FramesCommand {
    /// Move matching chunks back to the queue (selectors combine with AND).
    Requeue(RequeueArgs),
}

/// Selector and safety flags of `frames requeue`. At least one selector is required (`--state`
/// only narrows them); clap checks it before any token or connection is needed.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("selector").required(true).multiple(true).args(["job", "node", "tenant", "error_class"])))]
pub struct RequeueArgs {
    /// Chunks of this job.
    #[arg(long, value_name = "JOB_ID")]
    pub job: Option<String>,
    /// Chunks leased by this node (id or name).
    #[arg(long, value_name = "NODE")]
    pub node: Option<String>,
    /// Chunks of this tenant.
    #[arg(long, value_name = "TENANT_ID")]
    pub tenant: Option<String>,
    /// Chunks in these states: leased, failed (repeatable; default both).
    #[arg(long = "state", value_parser = parse_requeue_state, value_name = "STATE")]
    pub states: Vec<FrameJobState>,
    /// Chunks whose last error has this class (e.g. crash, hang).
    #[arg(long, value_name = "CLASS")]
    pub error_class: Option<String>,
    /// List exactly what would move and move nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Do not ask for confirmation.
    #[arg(long)]
    pub yes: bool,
    /// Ask for confirmation when more than this many chunks would move.
    #[arg(long, default_value_t = 10, value_name = "N")]
    pub confirm_over: u32,
    /// Refuse (exit 6) when more than this many chunks match.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=100000), value_name = "N")]
    pub limit: u32,
}

/// `frctl crashes ...`
#[derive(Debug, Subcommand)]
pub enum CrashesCommand {
    /// Recorded failures, newest first.
    List {
        /// Only this node's (id or name).
        #[arg(long, value_name = "NODE")]
        node: Option<String>,
        /// Only this class (crash, hang, template_error, license, ...).
        #[arg(long, value_parser = parse_crash_class, value_name = "CLASS")]
        class: Option<CrashClass>,
        /// Only since then: a duration ago (24h, 7d) or an RFC 3339 time.
        #[arg(long, value_parser = duration::parse_since, value_name = "WHEN")]
        since: Option<chrono::DateTime<chrono::Utc>>,
        /// At most this many.
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=10000))]
        limit: u32,
    },
}

/// `frctl cache ...`
#[derive(Debug, Subcommand)]
pub enum CacheCommand {
    /// The templates a node holds.
    Show(NodeArg),
}

/// `frctl partitions ...`
#[derive(Debug, Subcommand)]
pub enum PartitionsCommand {
    /// Create the coming months' partitions and apply retention.
    Ensure {
        /// Months after the current one (1..24; default: the control plane's setting).
        #[arg(long, value_name = "N")]
        months_ahead: Option<i32>,
    },
    /// List the health-log partitions.
    List,
}

/// `frctl tokens ...`
#[derive(Debug, Subcommand)]
pub enum TokensCommand {
    /// Create a token; the secret is printed once.
    Create {
        /// join (agents), service (backends) or admin (ops).
        #[arg(long, value_parser = parse_token_kind)]
        kind: TokenKind,
        /// Label shown in audits.
        #[arg(long, default_value = "")]
        label: String,
        /// Service tokens only: a tenant it may act for (repeatable; none = all tenants).
        #[arg(long = "tenant", value_name = "TENANT_ID")]
        tenants: Vec<String>,
        /// Expire after this long (e.g. 30d); default never.
        #[arg(long, value_parser = duration::parse, value_name = "DURATION")]
        ttl: Option<Duration>,
    },
    /// Revoke a token by id.
    Revoke {
        /// Token id (UUID) as printed by `tokens create`.
        #[arg(value_name = "TOKEN_ID")]
        token_id: String,
    },
}

/// Parses one of `allowed` by its lower snake name; the error lists the choices.
fn parse_text_enum<T: Copy + PartialEq>(
    text: &str,
    parse: fn(&str) -> Option<T>,
    allowed: &[T],
    show: fn(&T) -> &str,
) -> Result<T, String> {
    parse(&text.to_ascii_lowercase())
        .filter(|value| allowed.contains(value))
        .ok_or_else(|| {
            let known: Vec<&str> = allowed.iter().map(show).collect();
            format!("expected one of {}", known.join(", "))
        })
}

fn parse_node_state(text: &str) -> Result<NodeState, String> {
    parse_text_enum(text, NodeState::parse, NodeState::ALL, NodeState::as_str)
}

fn parse_job_status(text: &str) -> Result<JobStatus, String> {
    parse_text_enum(text, JobStatus::parse, JobStatus::ALL, JobStatus::as_str)
}

fn parse_crash_class(text: &str) -> Result<CrashClass, String> {
    parse_text_enum(text, CrashClass::parse, CrashClass::ALL, CrashClass::as_str)
}

fn parse_requeue_state(text: &str) -> Result<FrameJobState, String> {
    parse_text_enum(
        text,
        FrameJobState::parse,
        &[FrameJobState::Leased, FrameJobState::Failed],
        FrameJobState::as_str,
    )
}

fn parse_token_kind(text: &str) -> Result<TokenKind, String> {
    // Node tokens come from registration (RegisterNode), not from ops.
    parse_text_enum(
        text,
        TokenKind::parse,
        &[TokenKind::Join, TokenKind::Service, TokenKind::Admin],
        TokenKind::as_str,
    )
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    /// The clap definition is consistent (no duplicate flags, valid defaults).
    #[test]
    fn cli_definition_is_valid() {
        Cli::command().debug_assert();
    }

    /// The help of every command, down to each leaf, lists the global flags together under one
    /// heading and the command's own flags apart from them.
    #[test]
    fn every_help_groups_the_global_flags() {
        const GLOBAL_FLAGS: [&str; 7] = [
            "--endpoint",
            "--token",
            "--token-file",
            "--ca-cert",
            "--config",
            "--output",
            "--timeout",
        ];
        let mut paths = vec![Vec::new()];
        let mut leaves = Vec::new();
        while let Some(path) = paths.pop() {
            let mut command = Cli::command();
            for name in &path {
                command = command.find_subcommand(name).unwrap().clone();
            }
            let children: Vec<String> = command
                .get_subcommands()
                .map(|child| child.get_name().to_owned())
                .filter(|name| name != "help")
                .collect();
            for child in &children {
                paths.push([path.clone(), vec![child.clone()]].concat());
            }
            leaves.push(path);
        }
        assert!(leaves.len() > 20, "{leaves:?}");
        for path in leaves {
            let args = ["frctl"]
                .into_iter()
                .chain(path.iter().map(String::as_str))
                .chain(["--help"]);
            let help = Cli::try_parse_from(args).unwrap_err().to_string();
            // Sections start at a line in column 0 ending with ':' ("Options:", "Arguments:", ...).
            let mut section = "";
            let mut global_section = Vec::new();
            for line in help.lines() {
                if !line.starts_with(' ') && line.ends_with(':') {
                    section = line;
                    continue;
                }
                // A flag's own line starts with it (`--token <SECRET>`, `-h, --help`).
                if !line.trim_start().starts_with('-') {
                    continue;
                }
                let Some(flag) = line.split_whitespace().find(|word| word.starts_with("--")) else {
                    continue;
                };
                let flag = flag.trim_end_matches(',');
                if section == format!("{GLOBAL_HEADING}:") {
                    global_section.push(flag.to_owned());
                } else {
                    assert!(
                        !GLOBAL_FLAGS.contains(&flag),
                        "frctl {path:?}: {flag} under {section}\n{help}"
                    );
                }
            }
            assert_eq!(global_section, GLOBAL_FLAGS, "frctl {path:?}\n{help}");
        }
    }

    /// Enum flags accept known lower-case names and list the choices otherwise.
    #[test]
    fn enum_flags_parse_and_explain() {
        assert_eq!(parse_node_state("Draining").unwrap(), NodeState::Draining);
        assert!(parse_node_state("sleeping").unwrap_err().contains("online"));
        assert!(parse_requeue_state("pending").is_err());
        assert!(parse_token_kind("node").is_err());
        assert_eq!(parse_crash_class("template_error").unwrap(), CrashClass::TemplateError);
    }
}
