//! `TestDb`: an isolated, fully migrated database per test, copied from a template.
//!
//! `scripts/test.sh` starts one private PostgreSQL and exports `DATABASE_URL` (a superuser URL).
//! The first test to need it migrates a template database named after the migrations' checksum
//! (under an advisory lock, because nextest runs tests as parallel processes); every test then
//! gets `CREATE DATABASE t_<uuid> TEMPLATE <template>`, which takes milliseconds.

use sqlx::{Connection, Executor, PgConnection, PgPool, postgres::PgPoolOptions};

use crate::db::migrate;

const TEMPLATE_LOCK_KEY: i64 = 0x5465_6d70_6c61_7465; // "Template"
const DROP_LOCK_KEY: i64 = 0x4472_6f70_4462_7321; // "DropDbs!"

/// A database of its own for one test; dropped when the test passes, kept for inspection when
/// it fails.
pub struct TestDb {
    pool: PgPool,
    name: String,
    admin_url: String,
}

impl TestDb {
    /// Creates a fresh migrated database. Panics with the fix when `DATABASE_URL` is missing.
    pub async fn new() -> Self {
        let admin_url = std::env::var("DATABASE_URL").expect(
            "DATABASE_URL is not set: run the tests with scripts/test.sh, which starts a private PostgreSQL 15 \
             and exports it (or point DATABASE_URL at a superuser connection of a disposable cluster)",
        );
        let template = ensure_template(&admin_url).await;
        let name = format!("t_{}", uuid::Uuid::new_v4().simple());
        let mut admin = PgConnection::connect(&admin_url)
            .await
            .expect("connect to DATABASE_URL");
        admin
            .execute(format!("CREATE DATABASE {name} TEMPLATE {template}").as_str())
            .await
            .expect("create test database from template");
        admin.close().await.expect("close admin connection");
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .connect(&with_database(&admin_url, &name))
            .await
            .expect("connect to test database");
        Self { pool, name, admin_url }
    }

    /// A superuser pool on this test's database.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A superuser URL for this test's database.
    pub fn url(&self) -> String {
        with_database(&self.admin_url, &self.name)
    }

    /// A URL for this test's database as `user` with `password`, same host and port.
    pub fn url_as(&self, user: &str, password: &str) -> String {
        let url = self.url();
        let (scheme, rest) = url.split_once("://").expect("DATABASE_URL has a scheme");
        let host_part = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
        format!("{scheme}://{user}:{password}@{host_part}")
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("test failed: database {} kept for inspection", self.name);
            return;
        }
        let admin_url = self.admin_url.clone();
        let name = self.name.clone();
        // Drop cannot await and may run inside a runtime: do the clean-up on a thread of its own.
        let cleanup = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            // The pool's connections belong to the test's runtime, which is blocked here:
            // FORCE closes them from the server side instead of awaiting them.
            runtime.block_on(async move {
                if let Ok(mut admin) = PgConnection::connect(&admin_url).await {
                    // Two concurrent DROP DATABASE statements can wait on each other's
                    // ProcSignalBarrier for a minute: test processes take turns.
                    let lock = sqlx::query("SELECT pg_advisory_lock($1)").bind(DROP_LOCK_KEY);
                    let _ = lock.execute(&mut admin).await;
                    let _ = admin
                        .execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
                        .await;
                    let _ = admin.close().await;
                }
            });
        });
        let _ = cleanup.join();
    }
}

/// Creates the template database for the current migrations once per cluster.
async fn ensure_template(admin_url: &str) -> String {
    let migrations = migrate::embedded_migrations().expect("embedded migrations are well-formed");
    let mut hasher = blake3::Hasher::new();
    for migration in &migrations {
        hasher.update(migration.name.as_bytes());
        hasher.update(&migration.checksum());
    }
    let template = format!("fr_template_{}", &hasher.finalize().to_hex()[..16]);

    let mut admin = PgConnection::connect(admin_url).await.expect("connect to DATABASE_URL");
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(TEMPLATE_LOCK_KEY)
        .execute(&mut admin)
        .await
        .expect("lock");
    let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT FROM pg_database WHERE datname = $1)")
        .bind(&template)
        .fetch_one(&mut admin)
        .await
        .expect("look up template");
    if !exists {
        // Build under a temporary name and rename when complete, so a crash never leaves a
        // half-migrated template behind under the real name.
        let building = format!("{template}_building");
        admin
            .execute(format!("DROP DATABASE IF EXISTS {building} WITH (FORCE)").as_str())
            .await
            .expect("drop stale");
        admin
            .execute(format!("CREATE DATABASE {building}").as_str())
            .await
            .expect("create template");
        let mut connection = PgConnection::connect(&with_database(admin_url, &building))
            .await
            .expect("connect");
        migrate::run(&mut connection, &migrations)
            .await
            .expect("migrations apply to an empty database");
        // PostgreSQL refuses to copy a template that has open connections.
        connection.close().await.expect("close template connection");
        admin
            .execute(format!("ALTER DATABASE {building} RENAME TO {template}").as_str())
            .await
            .expect("rename");
    }
    sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(TEMPLATE_LOCK_KEY)
        .execute(&mut admin)
        .await
        .expect("unlock");
    admin.close().await.expect("close admin connection");
    template
}

/// `url` with its database path replaced by `database` (query string kept).
pub fn with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map_or(0, |index| index + 3);
    let host_and_path = &base[scheme_end..];
    let host = host_and_path.split_once('/').map_or(host_and_path, |(host, _)| host);
    let mut result = format!("{}{host}/{database}", &base[..scheme_end]);
    if let Some(query) = query {
        result.push('?');
        result.push_str(query);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The database path is replaced whether or not the URL has one or a query string.
    #[test]
    fn replaces_database_in_urls() {
        assert_eq!(
            with_database("postgres://u:p@h:5/postgres", "t_1"),
            "postgres://u:p@h:5/t_1"
        );
        assert_eq!(with_database("postgres://u:p@h:5", "t_1"), "postgres://u:p@h:5/t_1");
        assert_eq!(
            with_database("postgres://h/db?sslmode=disable", "x"),
            "postgres://h/x?sslmode=disable"
        );
    }
}
