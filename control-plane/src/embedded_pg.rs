//! A private PostgreSQL cluster under a data folder: the embedded default when no database URL
//! is configured, and the server the test suite runs against.
//!
//! The cluster listens on loopback TCP only (no Unix socket, so two clusters never collide on a
//! socket path), authenticates with a generated superuser password kept in the data folder, and
//! is started and stopped with the machine's own `initdb`/`pg_ctl`. PostgreSQL refuses to run as
//! root, so when we are root every PostgreSQL command runs as an unprivileged OS user (`postgres`
//! by default) that owns the cluster's files.

use crate::auth::random_hex_secret;
use std::{
    fs,
    io::Write,
    net::TcpListener,
    os::unix::fs::{OpenOptionsExt, PermissionsExt},
    path::{Path, PathBuf},
    process::Output,
};

use thiserror::Error;
use tracing::{info, warn};

/// The superuser `initdb` creates in a private cluster.
pub const SUPERUSER: &str = "flatrender_admin";
const MIN_MAJOR_VERSION: u32 = 15;
const SETUP_HINT: &str = "run scripts/setup.sh (installs the PostgreSQL 15 server), or set FLATRENDER_PG_BIN_DIR to the folder holding initdb and pg_ctl";

/// Why the private cluster could not be used.
#[derive(Debug, Error)]
pub enum EmbeddedPgError {
    /// `initdb`/`pg_ctl` were not found anywhere we looked.
    #[error("PostgreSQL server binaries (initdb, pg_ctl) not found in {searched}: {SETUP_HINT}")]
    BinariesNotFound {
        /// Where we looked.
        searched: String,
    },
    /// The binaries found are older than PostgreSQL 15.
    #[error("{path} is PostgreSQL {found}, FlatRender needs {MIN_MAJOR_VERSION} or newer: {SETUP_HINT}")]
    TooOld {
        /// The `initdb` that was found.
        path: String,
        /// Its version line.
        found: String,
    },
    /// Running as root and the unprivileged OS user does not exist.
    #[error(
        "running as root, and PostgreSQL refuses root, but OS user {user:?} does not exist: create it (useradd --system {user}) or run as a normal user"
    )]
    NoUnprivilegedUser {
        /// The user we wanted to run PostgreSQL as.
        user: String,
    },
    /// A PostgreSQL command failed.
    #[error("{command} failed ({status}): {stderr}")]
    CommandFailed {
        /// What ran.
        command: String,
        /// Its exit status.
        status: String,
        /// What it printed (stderr, then stdout).
        stderr: String,
    },
    /// Filesystem trouble in the data folder.
    #[error("{context}: {source}")]
    Io {
        /// What we were doing.
        context: String,
        /// The underlying error.
        source: std::io::Error,
    },
}

type Result<T, E = EmbeddedPgError> = std::result::Result<T, E>;

fn io_error(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> EmbeddedPgError {
    let context = context.into();
    move |source| EmbeddedPgError::Io { context, source }
}

/// How to start a private cluster.
#[derive(Clone, Debug)]
pub struct PgClusterOptions {
    /// Folder holding the cluster (`pgdata/`), its log and its password file.
    pub data_dir: PathBuf,
    /// Loopback port; `None` picks a free one.
    pub port: Option<u16>,
    /// Trade durability for speed (`fsync=off`): for throwaway test clusters only.
    pub ephemeral: bool,
    /// OS user that runs PostgreSQL when we are root.
    pub os_user_when_root: String,
}

impl PgClusterOptions {
    /// Options for a durable cluster in `data_dir` on a free port.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            port: None,
            ephemeral: false,
            os_user_when_root: "postgres".into(),
        }
    }
}

/// The OS identity PostgreSQL commands run under when we are root.
#[derive(Clone, Copy, Debug)]
struct RunAs {
    uid: u32,
    gid: u32,
}

/// A running private cluster. Stops on drop unless it was already running when adopted.
#[derive(Debug)]
pub struct PgCluster {
    pgdata: PathBuf,
    bin_dir: PathBuf,
    run_as: Option<RunAs>,
    port: u16,
    password: String,
    stop_on_drop: bool,
}

impl PgCluster {
    /// Initialises the cluster if the folder is new, then starts it (or adopts it if it runs).
    pub async fn start(options: &PgClusterOptions) -> Result<Self> {
        let bin_dir = find_bin_dir()?;
        let run_as = run_as_for(&options.os_user_when_root)?;
        let data_dir = cluster_dir(&options.data_dir, run_as)?;
        let pgdata = data_dir.join("pgdata");
        let password_file = data_dir.join("superuser.password");

        if !pgdata.join("PG_VERSION").exists() {
            init_cluster(&bin_dir, run_as, &pgdata, &password_file, options.ephemeral).await?;
        }
        let password = fs::read_to_string(&password_file)
            .map_err(io_error(format!("read {}", password_file.display())))?
            .trim()
            .to_owned();

        if let Some(port) = running_port(&bin_dir, run_as, &pgdata).await? {
            info!(port, pgdata = %pgdata.display(), "adopted running private postgresql");
            return Ok(Self {
                pgdata,
                bin_dir,
                run_as,
                port,
                password,
                stop_on_drop: false,
            });
        }

        let port = match options.port {
            Some(port) => port,
            None => free_loopback_port()?,
        };
        let log_file = pgdata.join("server.log");
        run_pg(
            &bin_dir,
            run_as,
            "pg_ctl",
            &[
                "start".as_ref(),
                "--wait".as_ref(),
                "--timeout=120".as_ref(),
                "-D".as_ref(),
                pgdata.as_os_str(),
                "-l".as_ref(),
                log_file.as_os_str(),
                "-o".as_ref(),
                format!("-p {port}").as_ref(),
            ],
        )
        .await
        .map_err(|error| with_log_tail(error, &log_file))?;
        info!(port, pgdata = %pgdata.display(), "started private postgresql");
        Ok(Self {
            pgdata,
            bin_dir,
            run_as,
            port,
            password,
            stop_on_drop: true,
        })
    }

    /// The loopback port the cluster listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A superuser connection URL for `database`.
    pub fn superuser_url(&self, database: &str) -> String {
        format!(
            "postgres://{SUPERUSER}:{}@127.0.0.1:{}/{database}",
            self.password, self.port
        )
    }

    /// A connection URL for `user`/`password` on `database` in this cluster.
    pub fn url_for(&self, user: &str, password: &str, database: &str) -> String {
        format!("postgres://{user}:{password}@127.0.0.1:{}/{database}", self.port)
    }

    /// Leaves the cluster running after this value is dropped (for `control-plane pg start`).
    pub fn detach(mut self) {
        self.stop_on_drop = false;
    }

    /// Stops the cluster (fast shutdown: open sessions are disconnected).
    pub async fn stop(mut self) -> Result<()> {
        self.stop_on_drop = false;
        stop_cluster(&self.bin_dir, self.run_as, &self.pgdata).await
    }

    /// Stops whatever cluster runs in `data_dir`, if any.
    pub async fn stop_in(data_dir: &Path, os_user_when_root: &str) -> Result<bool> {
        let bin_dir = find_bin_dir()?;
        let run_as = run_as_for(os_user_when_root)?;
        let pgdata = cluster_dir(data_dir, run_as)?.join("pgdata");
        if running_port(&bin_dir, run_as, &pgdata).await?.is_none() {
            return Ok(false);
        }
        stop_cluster(&bin_dir, run_as, &pgdata).await?;
        Ok(true)
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        if !self.stop_on_drop {
            return;
        }
        // Drop cannot await; a blocking pg_ctl is acceptable at shutdown.
        let mut command = std::process::Command::new(self.bin_dir.join("pg_ctl"));
        command.args(["stop", "--wait", "-m", "fast", "-D"]).arg(&self.pgdata);
        apply_run_as(&mut command, self.run_as);
        match command.output() {
            Ok(output) if output.status.success() => {
                info!(pgdata = %self.pgdata.display(), "stopped private postgresql")
            }
            Ok(output) => warn!(stderr = %String::from_utf8_lossy(&output.stderr), "pg_ctl stop failed"),
            Err(error) => warn!(%error, "could not run pg_ctl stop"),
        }
    }
}

async fn init_cluster(
    bin_dir: &Path,
    run_as: Option<RunAs>,
    pgdata: &Path,
    password_file: &Path,
    ephemeral: bool,
) -> Result<()> {
    let password = random_hex_secret();
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(password_file)
        .map_err(io_error(format!("write {}", password_file.display())))?;
    file.write_all(password.as_bytes())
        .map_err(io_error("write password file"))?;
    drop(file);
    // A half-initialised pgdata from an interrupted run would make initdb refuse: start clean.
    if pgdata.exists() {
        fs::remove_dir_all(pgdata).map_err(io_error(format!("remove partial {}", pgdata.display())))?;
    }
    fs::create_dir_all(pgdata).map_err(io_error(format!("create {}", pgdata.display())))?;
    fs::set_permissions(pgdata, fs::Permissions::from_mode(0o700)).map_err(io_error("chmod pgdata"))?;
    if let Some(RunAs { uid, gid }) = run_as {
        for path in [pgdata, password_file] {
            nix::unistd::chown(path, Some(uid.into()), Some(gid.into())).map_err(|errno| EmbeddedPgError::Io {
                context: format!("chown {}", path.display()),
                source: errno.into(),
            })?;
        }
    }
    run_pg(
        bin_dir,
        run_as,
        "initdb",
        &[
            "-D".as_ref(),
            pgdata.as_os_str(),
            "--username".as_ref(),
            SUPERUSER.as_ref(),
            "--pwfile".as_ref(),
            password_file.as_os_str(),
            "--auth-host=scram-sha-256".as_ref(),
            "--auth-local=scram-sha-256".as_ref(),
            "--encoding=UTF8".as_ref(),
            "--no-locale".as_ref(),
            "--no-instructions".as_ref(),
        ],
    )
    .await?;
    let mut settings = String::from(
        "\n# FlatRender private cluster\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = ''\nmax_connections = 300\ntimezone = 'UTC'\n",
    );
    // render.frame_jobs churns like a queue: its own thresholds (migration 18) only help if the
    // launcher looks often (docs/dispatch.md, "The queue table").
    settings.push_str("autovacuum_naptime = '5s'\n");
    if ephemeral {
        settings.push_str("fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n");
        // A test that ends while one of its pools is mid-handshake leaves a backend in
        // authentication, and DROP DATABASE's ProcSignalBarrier waits for it until this timeout
        // (default 60 s) ends it. Loopback SCRAM takes milliseconds; 10 s is ample under load.
        settings.push_str("authentication_timeout = '10s'\n");
    }
    let mut conf = fs::OpenOptions::new()
        .append(true)
        .open(pgdata.join("postgresql.conf"))
        .map_err(io_error("open postgresql.conf"))?;
    conf.write_all(settings.as_bytes())
        .map_err(io_error("write postgresql.conf"))?;
    info!(pgdata = %pgdata.display(), "initialised private postgresql cluster");
    Ok(())
}

async fn stop_cluster(bin_dir: &Path, run_as: Option<RunAs>, pgdata: &Path) -> Result<()> {
    run_pg(
        bin_dir,
        run_as,
        "pg_ctl",
        &[
            "stop".as_ref(),
            "--wait".as_ref(),
            "-m".as_ref(),
            "fast".as_ref(),
            "-D".as_ref(),
            pgdata.as_os_str(),
        ],
    )
    .await?;
    info!(pgdata = %pgdata.display(), "stopped private postgresql");
    Ok(())
}

/// The port of the postmaster running in `pgdata`, or `None` if none runs.
async fn running_port(bin_dir: &Path, run_as: Option<RunAs>, pgdata: &Path) -> Result<Option<u16>> {
    if !pgdata.join("postmaster.pid").exists() {
        return Ok(None);
    }
    let output = pg_command(
        bin_dir,
        run_as,
        "pg_ctl",
        &["status".as_ref(), "-D".as_ref(), pgdata.as_os_str()],
    )
    .await?;
    if !output.status.success() {
        return Ok(None);
    }
    // postmaster.pid: line 4 is the port (documented in PostgreSQL's pidfile.h).
    let pid_file = fs::read_to_string(pgdata.join("postmaster.pid")).map_err(io_error("read postmaster.pid"))?;
    Ok(pid_file.lines().nth(3).and_then(|line| line.trim().parse().ok()))
}

async fn run_pg(bin_dir: &Path, run_as: Option<RunAs>, program: &str, args: &[&std::ffi::OsStr]) -> Result<()> {
    let output = pg_command(bin_dir, run_as, program, args).await?;
    if output.status.success() {
        return Ok(());
    }
    Err(EmbeddedPgError::CommandFailed {
        command: program.to_owned(),
        status: output.status.to_string(),
        stderr: format!(
            "{}{}",
            String::from_utf8_lossy(&output.stderr).trim(),
            String::from_utf8_lossy(&output.stdout).trim()
        ),
    })
}

async fn pg_command(bin_dir: &Path, run_as: Option<RunAs>, program: &str, args: &[&std::ffi::OsStr]) -> Result<Output> {
    let mut command = std::process::Command::new(bin_dir.join(program));
    command.args(args).stdin(std::process::Stdio::null());
    apply_run_as(&mut command, run_as);
    tokio::process::Command::from(command)
        .output()
        .await
        .map_err(io_error(format!("run {}", bin_dir.join(program).display())))
}

fn apply_run_as(command: &mut std::process::Command, run_as: Option<RunAs>) {
    use std::os::unix::process::CommandExt;
    // The unprivileged user may not be able to enter our working directory.
    command.current_dir("/");
    if let Some(RunAs { uid, gid }) = run_as {
        command.uid(uid).gid(gid);
    }
}

/// The folder that holds the cluster for `data_dir`: the folder itself, or, when we are root
/// and the unprivileged user cannot enter it (a clone under `/root`, a `mktemp -d` folder), a
/// folder under `/var/lib/flatrender/clusters/` named after it, linked from `data_dir/cluster`.
fn cluster_dir(data_dir: &Path, run_as: Option<RunAs>) -> Result<PathBuf> {
    fs::create_dir_all(data_dir).map_err(io_error(format!("create {}", data_dir.display())))?;
    let data_dir = data_dir.canonicalize().map_err(io_error("resolve data folder"))?;
    let Some(RunAs { uid, .. }) = run_as else {
        return Ok(data_dir);
    };
    if reachable_by(&data_dir, uid) {
        return Ok(data_dir);
    }
    let link = data_dir.join("cluster");
    let digest = blake3::hash(data_dir.as_os_str().as_encoded_bytes()).to_hex();
    let relocated = PathBuf::from("/var/lib/flatrender/clusters").join(&digest[..16]);
    fs::create_dir_all(&relocated).map_err(io_error(format!("create {}", relocated.display())))?;
    for dir in ["/var/lib/flatrender", "/var/lib/flatrender/clusters"] {
        fs::set_permissions(dir, fs::Permissions::from_mode(0o755)).map_err(io_error(format!("chmod {dir}")))?;
    }
    fs::set_permissions(&relocated, fs::Permissions::from_mode(0o755)).map_err(io_error("chmod cluster folder"))?;
    if !link.exists() {
        std::os::unix::fs::symlink(&relocated, &link).map_err(io_error(format!("link {}", link.display())))?;
    }
    info!(data_dir = %data_dir.display(), cluster = %relocated.display(), "data folder is not reachable by the postgres user; cluster kept under /var/lib/flatrender");
    Ok(relocated)
}

/// Whether `uid` can traverse every folder down to `path` (owner bit for its own folders,
/// the "others" bit for the rest; group membership is not consulted).
fn reachable_by(path: &Path, uid: u32) -> bool {
    use std::os::unix::fs::MetadataExt;
    path.ancestors().all(|folder| match fs::metadata(folder) {
        Ok(metadata) if metadata.uid() == uid => metadata.mode() & 0o100 != 0,
        Ok(metadata) => metadata.mode() & 0o001 != 0,
        Err(_) => false,
    })
}

fn with_log_tail(error: EmbeddedPgError, log_file: &Path) -> EmbeddedPgError {
    let EmbeddedPgError::CommandFailed {
        command,
        status,
        stderr,
    } = error
    else {
        return error;
    };
    let log = fs::read_to_string(log_file).unwrap_or_default();
    let tail: Vec<&str> = log
        .lines()
        .rev()
        .take(10)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    EmbeddedPgError::CommandFailed {
        command,
        status,
        stderr: format!("{stderr}\nserver log tail:\n{}", tail.join("\n")),
    }
}

fn run_as_for(os_user: &str) -> Result<Option<RunAs>> {
    if !nix::unistd::geteuid().is_root() {
        return Ok(None);
    }
    let user =
        nix::unistd::User::from_name(os_user)
            .ok()
            .flatten()
            .ok_or_else(|| EmbeddedPgError::NoUnprivilegedUser {
                user: os_user.to_owned(),
            })?;
    Ok(Some(RunAs {
        uid: user.uid.as_raw(),
        gid: user.gid.as_raw(),
    }))
}

/// Finds the folder holding `initdb` and `pg_ctl` of PostgreSQL 15 or newer.
fn find_bin_dir() -> Result<PathBuf> {
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(dir) = std::env::var_os("FLATRENDER_PG_BIN_DIR") {
        candidates.push(dir.into());
    }
    if let Some(path) = std::env::var_os("PATH") {
        candidates.extend(std::env::split_paths(&path));
    }
    // Debian/Ubuntu keep server binaries off PATH; pick the newest installed major version.
    let mut debian: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| Some((entry.file_name().to_str()?.parse().ok()?, entry.path().join("bin"))))
        .collect();
    debian.sort_by_key(|(major, _)| std::cmp::Reverse(*major));
    candidates.extend(debian.into_iter().map(|(_, dir)| dir));
    candidates.extend(
        [
            "/opt/homebrew/opt/postgresql@15/bin",
            "/usr/local/opt/postgresql@15/bin",
        ]
        .map(PathBuf::from),
    );

    let found = candidates
        .iter()
        .find(|dir| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file());
    let Some(dir) = found else {
        let searched = candidates
            .iter()
            .map(|dir| dir.display().to_string())
            .collect::<Vec<_>>()
            .join(", ");
        return Err(EmbeddedPgError::BinariesNotFound { searched });
    };
    let initdb = dir.join("initdb");
    let version_output = std::process::Command::new(&initdb)
        .arg("--version")
        .output()
        .map_err(io_error(format!("run {} --version", initdb.display())))?;
    let version_line = String::from_utf8_lossy(&version_output.stdout).trim().to_owned();
    match parse_major_version(&version_line) {
        Some(major) if major >= MIN_MAJOR_VERSION => Ok(dir.clone()),
        _ => Err(EmbeddedPgError::TooOld {
            path: initdb.display().to_string(),
            found: version_line,
        }),
    }
}

/// `initdb (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)` → 15.
fn parse_major_version(version_line: &str) -> Option<u32> {
    let after = version_line.split(')').nth(1)?.trim_start();
    let digits: String = after.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

fn free_loopback_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(io_error("bind a loopback port"))?;
    let port = listener.local_addr().map_err(io_error("read bound port"))?.port();
    Ok(port)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Version lines of Debian and upstream builds parse to their major version.
    #[test]
    fn parses_initdb_version_lines() {
        assert_eq!(
            parse_major_version("initdb (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)"),
            Some(15)
        );
        assert_eq!(parse_major_version("initdb (PostgreSQL) 9.6.24"), Some(9));
        assert_eq!(parse_major_version("initdb (PostgreSQL) 17beta1"), Some(17));
        assert_eq!(parse_major_version("garbage"), None);
    }

    /// A cluster starts in a fresh folder, accepts the superuser, restarts on the same data, and stops.
    #[tokio::test]
    async fn starts_restarts_and_stops_a_private_cluster() {
        use sqlx::Connection;
        let folder = tempfile::tempdir().unwrap();
        // The unprivileged user must be able to reach the folder when we run as root.
        fs::set_permissions(folder.path(), fs::Permissions::from_mode(0o755)).unwrap();
        let mut options = PgClusterOptions::new(folder.path().join("db"));
        options.ephemeral = true;
        let cluster = PgCluster::start(&options).await.unwrap();
        let mut connection = sqlx::PgConnection::connect(&cluster.superuser_url("postgres"))
            .await
            .unwrap();
        let (one,): (i32,) = sqlx::query_as("SELECT 1").fetch_one(&mut connection).await.unwrap();
        assert_eq!(one, 1);
        connection.close().await.unwrap();
        cluster.stop().await.unwrap();

        let restarted = PgCluster::start(&options).await.unwrap();
        let connection = sqlx::PgConnection::connect(&restarted.superuser_url("postgres"))
            .await
            .unwrap();
        connection.close().await.unwrap();
        let data_dir = options.data_dir.canonicalize().unwrap();
        drop(restarted);
        assert!(
            !PgCluster::stop_in(&data_dir, "postgres").await.unwrap(),
            "drop must have stopped it"
        );
    }
}
