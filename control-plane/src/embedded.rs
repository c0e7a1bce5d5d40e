//! The embedded default: with no database URL configured, the control plane runs its own
//! private PostgreSQL under `<data_dir>/postgres`, creates the `flatrender` database, applies the
//! migrations as the cluster's superuser, and then connects as `flatrender_render` like any
//! production deployment. First start also writes an admin token and a join token (files with
//! mode 0600 in the data folder) so a newcomer can use `frctl` and start agents at once.

use std::{
    fs,
    io::Write,
    os::unix::fs::OpenOptionsExt,
    path::{Path, PathBuf},
};

use anyhow::Context;
use flatrender_proto::types::TokenKind;
use sqlx::{Connection, Executor, PgConnection, postgres::PgPoolOptions};
use tracing::info;

use crate::{
    auth,
    auth::random_hex_secret,
    db::migrate,
    embedded_pg::{PgCluster, PgClusterOptions},
};

/// Name of the database the embedded cluster holds.
pub const DATABASE: &str = "flatrender";
/// The role the control plane connects as.
pub const RENDER_ROLE: &str = "flatrender_render";

/// A running embedded database.
pub struct EmbeddedDatabase {
    /// Keeps the cluster running; it stops when this is dropped.
    pub cluster: PgCluster,
    /// URL for the render role.
    pub render_url: String,
    /// Superuser URL (migrations, bootstrap).
    pub superuser_url: String,
    /// File holding the bootstrap admin token.
    pub admin_token_file: PathBuf,
    /// File holding the bootstrap join token.
    pub join_token_file: PathBuf,
}

impl EmbeddedDatabase {
    /// Starts (initialising on first use) and migrates the embedded database in `data_dir`.
    pub async fn start(data_dir: &Path) -> anyhow::Result<Self> {
        fs::create_dir_all(data_dir).with_context(|| format!("create data folder {}", data_dir.display()))?;
        let cluster = PgCluster::start(&PgClusterOptions::new(data_dir.join("postgres"))).await?;
        let mut admin = PgConnection::connect(&cluster.superuser_url("postgres")).await?;
        let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT FROM pg_database WHERE datname = $1)")
            .bind(DATABASE)
            .fetch_one(&mut admin)
            .await?;
        if !exists {
            admin.execute(format!("CREATE DATABASE {DATABASE}").as_str()).await?;
            info!(database = DATABASE, "created database");
        }
        admin.close().await?;
        let superuser_url = cluster.superuser_url(DATABASE);
        let report = migrate::run_embedded(&superuser_url)
            .await
            .context("migrating the embedded database")?;
        info!(applied = report.applied.len(), "embedded database migrated");

        let render_password = read_or_create_secret(&data_dir.join("render.password"), random_hex_secret)?;
        let mut connection = PgConnection::connect(&superuser_url).await?;
        // ALTER ROLE takes no bind parameters: let PostgreSQL quote the literal itself.
        let statement: String =
            sqlx::query_scalar("SELECT format('ALTER ROLE %I LOGIN PASSWORD %L', $1::text, $2::text)")
                .bind(RENDER_ROLE)
                .bind(&render_password)
                .fetch_one(&mut connection)
                .await?;
        connection.execute(statement.as_str()).await?;
        connection.close().await?;

        let superuser_pool = PgPoolOptions::new().max_connections(1).connect(&superuser_url).await?;
        let admin_token_file = data_dir.join("admin.token");
        let join_token_file = data_dir.join("join.token");
        for (path, kind) in [
            (&admin_token_file, TokenKind::Admin),
            (&join_token_file, TokenKind::Join),
        ] {
            if !path.exists() {
                let (_, token) = auth::create_token(
                    &superuser_pool,
                    kind,
                    &format!("embedded bootstrap {kind}"),
                    None,
                    None,
                    None,
                )
                .await?;
                write_secret(path, &token)?;
                info!(file = %path.display(), %kind, "wrote bootstrap token");
            }
        }
        superuser_pool.close().await;
        let render_url = cluster.url_for(RENDER_ROLE, &render_password, DATABASE);
        Ok(Self {
            cluster,
            render_url,
            superuser_url,
            admin_token_file,
            join_token_file,
        })
    }
}

fn read_or_create_secret(path: &Path, generate: impl FnOnce() -> String) -> anyhow::Result<String> {
    if let Ok(existing) = fs::read_to_string(path) {
        return Ok(existing.trim().to_owned());
    }
    let secret = generate();
    write_secret(path, &secret)?;
    Ok(secret)
}

fn write_secret(path: &Path, secret: &str) -> anyhow::Result<()> {
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("write {}", path.display()))?;
    file.write_all(secret.as_bytes())?;
    file.write_all(b"\n")?;
    Ok(())
}
