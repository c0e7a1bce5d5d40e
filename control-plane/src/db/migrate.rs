//! The migration runner: applies `migrations/NN_*.sql` in name order, once each.
//!
//! Why not sqlx's migrator: the seed's first file is `00_setup.sql`, and sqlx treats version 0
//! specially. This runner is small: every applied file is recorded in
//! `public.schema_migrations` with a BLAKE3 checksum (an edited applied file is refused), each
//! file runs in one transaction (a failing file leaves nothing half-applied), and a session
//! advisory lock serialises concurrent runners (several control planes starting at once).
//!
//! The files are plain SQL with no psql meta-commands, so `psql -f` applies them identically.

use std::time::Duration;

use sqlx::{Connection, PgConnection};
use thiserror::Error;
use tracing::{info, warn};

include!(concat!(env!("OUT_DIR"), "/migrations.rs"));

/// Arbitrary constant key for `pg_advisory_lock`, shared by every FlatRender migrator.
const MIGRATION_LOCK_KEY: i64 = 0x466c_6174_5265_6e64; // "FlatRend"

/// One migration file.
#[derive(Clone, Debug)]
pub struct Migration {
    /// The numeric prefix (`00` → 0).
    pub version: i32,
    /// The file name, e.g. `00_setup.sql`.
    pub name: String,
    /// The file's SQL.
    pub sql: String,
}

impl Migration {
    /// BLAKE3 of the file's bytes, as stored in `schema_migrations.checksum`.
    pub fn checksum(&self) -> Vec<u8> {
        blake3::hash(self.sql.as_bytes()).as_bytes().to_vec()
    }
}

/// Why migrating failed.
#[derive(Debug, Error)]
pub enum MigrateError {
    /// A file name does not start with a number and an underscore.
    #[error("migration file {name:?} must be named NN_description.sql")]
    BadName {
        /// The offending file name.
        name: String,
    },
    /// Two files share a version number.
    #[error("migrations {first:?} and {second:?} share version {version}")]
    DuplicateVersion {
        /// The shared version.
        version: i32,
        /// The first file.
        first: String,
        /// The second file.
        second: String,
    },
    /// An applied migration's file changed since it was applied.
    #[error("migration {name} was edited after it was applied (checksum differs); add a new migration instead")]
    Edited {
        /// The edited file.
        name: String,
    },
    /// A migration's SQL failed; its transaction was rolled back.
    #[error("migration {name} failed: {source}")]
    Failed {
        /// The failing file.
        name: String,
        /// The database error.
        source: sqlx::Error,
    },
    /// Bookkeeping around the migrations failed.
    #[error("migration bookkeeping failed: {0}")]
    Database(#[from] sqlx::Error),
}

/// What a run did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MigrationReport {
    /// Files applied by this run, in order.
    pub applied: Vec<String>,
    /// Files that were already applied.
    pub already_applied: Vec<String>,
}

/// The migrations compiled into this binary, validated and sorted.
pub fn embedded_migrations() -> Result<Vec<Migration>, MigrateError> {
    parse_migrations(
        MIGRATION_FILES
            .iter()
            .map(|(name, sql)| (name.to_string(), sql.to_string())),
    )
}

/// Turns `(file name, sql)` pairs into sorted migrations, rejecting bad names and duplicates.
pub fn parse_migrations(files: impl IntoIterator<Item = (String, String)>) -> Result<Vec<Migration>, MigrateError> {
    let mut migrations = Vec::new();
    for (name, sql) in files {
        let version = name
            .split_once('_')
            .and_then(|(prefix, _)| prefix.parse::<i32>().ok())
            .ok_or_else(|| MigrateError::BadName { name: name.clone() })?;
        migrations.push(Migration { version, name, sql });
    }
    migrations.sort_by_key(|migration| migration.version);
    for pair in migrations.windows(2) {
        if pair[0].version == pair[1].version {
            return Err(MigrateError::DuplicateVersion {
                version: pair[0].version,
                first: pair[0].name.clone(),
                second: pair[1].name.clone(),
            });
        }
    }
    Ok(migrations)
}

/// Applies every embedded migration not yet applied to the database behind `url`.
pub async fn run_embedded(url: &str) -> Result<MigrationReport, MigrateError> {
    let migrations = embedded_migrations()?;
    let mut connection = PgConnection::connect(url).await?;
    let report = run(&mut connection, &migrations).await;
    connection.close().await?;
    report
}

/// Applies `migrations` in order on `connection`, which must belong to a role allowed to run
/// them (the database owner or a superuser). Holds an advisory lock for the whole run.
pub async fn run(connection: &mut PgConnection, migrations: &[Migration]) -> Result<MigrationReport, MigrateError> {
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(MIGRATION_LOCK_KEY)
        .execute(&mut *connection)
        .await?;
    let result = run_locked(connection, migrations).await;
    // The lock is per session: release it even when a migration failed.
    let unlock = sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(MIGRATION_LOCK_KEY)
        .execute(&mut *connection)
        .await;
    let report = result?;
    unlock?;
    Ok(report)
}

async fn run_locked(connection: &mut PgConnection, migrations: &[Migration]) -> Result<MigrationReport, MigrateError> {
    sqlx::raw_sql(
        "CREATE TABLE IF NOT EXISTS public.schema_migrations (
             version     integer PRIMARY KEY,
             name        text NOT NULL,
             checksum    bytea NOT NULL,
             applied_at  timestamptz NOT NULL DEFAULT now(),
             duration_ms bigint NOT NULL
         )",
    )
    .execute(&mut *connection)
    .await?;
    let applied: Vec<(i32, String, Vec<u8>)> =
        sqlx::query_as("SELECT version, name, checksum FROM public.schema_migrations ORDER BY version")
            .fetch_all(&mut *connection)
            .await?;

    let mut report = MigrationReport::default();
    for migration in migrations {
        if let Some((_, _, checksum)) = applied.iter().find(|(version, _, _)| *version == migration.version) {
            if *checksum != migration.checksum() {
                return Err(MigrateError::Edited {
                    name: migration.name.clone(),
                });
            }
            report.already_applied.push(migration.name.clone());
            continue;
        }
        apply_one(connection, migration).await?;
        report.applied.push(migration.name.clone());
    }
    for (version, name, _) in &applied {
        if !migrations.iter().any(|migration| migration.version == *version) {
            warn!(
                version,
                name, "database has a migration this binary does not know (newer release?)"
            );
        }
    }
    Ok(report)
}

async fn apply_one(connection: &mut PgConnection, migration: &Migration) -> Result<(), MigrateError> {
    let started = tokio::time::Instant::now();
    let failed = |source| MigrateError::Failed {
        name: migration.name.clone(),
        source,
    };
    let mut transaction = connection.begin().await?;
    sqlx::raw_sql(&migration.sql)
        .execute(&mut *transaction)
        .await
        .map_err(failed)?;
    let duration_ms = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
    sqlx::query("INSERT INTO public.schema_migrations (version, name, checksum, duration_ms) VALUES ($1, $2, $3, $4)")
        .bind(migration.version)
        .bind(&migration.name)
        .bind(migration.checksum())
        .bind(duration_ms)
        .execute(&mut *transaction)
        .await?;
    transaction.commit().await?;
    info!(migration = %migration.name, elapsed = ?Duration::from_millis(duration_ms as u64), "applied migration");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(names: &[&str]) -> Vec<(String, String)> {
        names
            .iter()
            .map(|name| (name.to_string(), format!("-- {name}")))
            .collect()
    }

    /// Files are ordered by their numeric prefix, and `00_` is an ordinary version 0.
    #[test]
    fn orders_by_numeric_prefix_including_zero() {
        let migrations = parse_migrations(files(&["10_b.sql", "00_setup.sql", "2_a.sql"])).unwrap();
        let versions: Vec<i32> = migrations.iter().map(|migration| migration.version).collect();
        assert_eq!(versions, vec![0, 2, 10]);
    }

    /// A file without a numeric prefix is refused, naming the file.
    #[test]
    fn rejects_unnumbered_file() {
        let error = parse_migrations(files(&["setup.sql"])).unwrap_err();
        assert!(error.to_string().contains("setup.sql"), "{error}");
    }

    /// Two files with one version would apply in an undefined order: refused.
    #[test]
    fn rejects_duplicate_versions() {
        let error = parse_migrations(files(&["01_a.sql", "01_b.sql"])).unwrap_err();
        assert!(
            matches!(error, MigrateError::DuplicateVersion { version: 1, .. }),
            "{error}"
        );
    }

    /// The embedded set is exactly the seed's fifteen files, in its run order, first.
    #[test]
    fn embeds_the_seed_run_order() {
        let names: Vec<String> = embedded_migrations().unwrap().into_iter().map(|m| m.name).collect();
        let seed = [
            "00_setup.sql",
            "01_identity_tenants.sql",
            "02_identity_users.sql",
            "03_identity_billing.sql",
            "04_identity_gamification.sql",
            "05_content_taxonomy.sql",
            "06_content_projects.sql",
            "07_content_scenes.sql",
            "08_content_characters_presets.sql",
            "09_content_cms.sql",
            "10_studio_saved_projects.sql",
            "11_render_nodes.sql",
            "12_render_jobs.sql",
            "13_file_manager.sql",
            "14_notification.sql",
        ];
        assert_eq!(&names[..seed.len()], &seed[..]);
    }
}
