//! The FlatRender V2 database as the migrations build it: the seed's psql run order, every table,
//! monthly partitions, the single cross-schema foreign key, tenancy, per-service roles, CHECK
//! constraints, and the migration runner's guarantees (idempotent, edit-refusing, concurrency-safe).
//!
//! Needs `DATABASE_URL` (a superuser URL of a disposable cluster), as every `TestDb` test does.
//! The tests use the multi-threaded runtime because `TestDb`'s `Drop` closes the pool from a
//! thread of its own while the test's thread blocks on it: on a current-thread runtime nothing
//! would drive the pool's sockets and the drop would hang.

use std::path::PathBuf;

use sqlx::{Connection, Executor, PgConnection, PgPool};
use uuid::Uuid;

use flatrender_control_plane::{
    db::migrate::{self, MigrateError},
    testing::{TestDb, with_database},
};

const DEFAULT_TENANT: &str = "00000000-0000-0000-0000-000000000001";

const SERVICE_SCHEMAS: [&str; 6] = ["identity", "content", "studio", "render", "file_mgr", "notification"];

/// Every table the seed and issue 2 name, schema-qualified.
const SEED_TABLES: &[&str] = &[
    "identity.tenants",
    "identity.tenant_branding",
    "identity.tenant_api_keys",
    "identity.tenant_webhooks",
    "identity.tenant_usage_daily",
    "identity.tenant_api_request_logs",
    "identity.users",
    "identity.auth_sessions",
    "identity.refresh_tokens",
    "identity.mfa_factors",
    "identity.push_subscriptions",
    "identity.plans",
    "identity.subscriptions",
    "identity.payments",
    "identity.earned_gifts",
    "content.categories",
    "content.tags",
    "content.templates",
    "content.template_versions",
    "content.scenes",
    "content.characters",
    "content.presets",
    "content.template_svg_previews",
    "content.blog_posts",
    "content.cms_pages",
    "studio.saved_projects",
    "render.nodes",
    "render.render_jobs",
    "render.frame_jobs",
    "render.snapshots",
    "render.exports",
    "render.node_crashes",
    "render.frame_repair_jobs",
    "render.node_template_cache",
    "render.node_health_logs",
    "file_mgr.files",
    "file_mgr.folders",
    "file_mgr.quotas",
    "file_mgr.upload_sessions",
    "file_mgr.upload_parts",
    "file_mgr.cleanup_schedules",
    "notification.notifications",
    "notification.notification_preferences",
    "notification.deliveries",
];

/// The monthly partitioned time-series tables.
const PARTITIONED_TABLES: &[&str] = &["identity.tenant_api_request_logs", "render.node_health_logs"];

/// Tables whose rows must each carry a tenant (users, projects, render jobs, files, notifications).
const TENANT_OWNED_TABLES: &[&str] = &[
    "identity.users",
    "content.templates",
    "content.template_versions",
    "studio.saved_projects",
    "render.render_jobs",
    "file_mgr.files",
    "file_mgr.folders",
    "file_mgr.upload_sessions",
    "notification.notifications",
    "notification.deliveries",
];

fn migrations_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../migrations")
}

fn admin_url() -> String {
    std::env::var("DATABASE_URL").expect("DATABASE_URL must point at a superuser connection of a disposable cluster")
}

/// The SQLSTATE of a failed statement, or a panic naming what unexpectedly succeeded.
fn sqlstate<T: std::fmt::Debug>(result: Result<T, sqlx::Error>, what: &str) -> String {
    match result {
        Ok(value) => panic!("{what}: expected an error, got {value:?}"),
        Err(error) => error
            .as_database_error()
            .and_then(|database_error| database_error.code())
            .map(|code| code.into_owned())
            .unwrap_or_else(|| panic!("{what}: not a database error: {error}")),
    }
}

/// Runs `sql` as `role` in a transaction that is rolled back, returning its outcome.
async fn run_as(pool: &PgPool, role: &str, sql: &str) -> Result<(), sqlx::Error> {
    let mut transaction = pool.begin().await.expect("begin");
    transaction
        .execute(format!("SET LOCAL ROLE {role}").as_str())
        .await
        .expect("SET ROLE");
    let result = sqlx::raw_sql(sql).execute(&mut *transaction).await.map(|_| ());
    transaction.rollback().await.expect("rollback");
    result
}

/// A fresh, empty database in the cluster; dropped by `drop_database`.
async fn create_empty_database() -> (String, String) {
    let name = format!("t_empty_{}", Uuid::new_v4().simple());
    let mut admin = PgConnection::connect(&admin_url())
        .await
        .expect("connect to DATABASE_URL");
    admin
        .execute(format!("CREATE DATABASE {name}").as_str())
        .await
        .expect("create database");
    admin.close().await.expect("close admin connection");
    let url = with_database(&admin_url(), &name);
    (name, url)
}

/// Drops a database made by `create_empty_database`.
async fn drop_database(name: &str) {
    let mut admin = PgConnection::connect(&admin_url())
        .await
        .expect("connect to DATABASE_URL");
    admin
        .execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
        .await
        .expect("drop database");
    admin.close().await.expect("close admin connection");
}

/// A user of the default tenant.
async fn insert_user(pool: &PgPool) -> Uuid {
    sqlx::query_scalar("INSERT INTO identity.users (tenant_id, email) VALUES ($1::uuid, $2) RETURNING id")
        .bind(DEFAULT_TENANT)
        .bind(format!("{}@example.com", Uuid::new_v4().simple()))
        .fetch_one(pool)
        .await
        .expect("insert a user")
}

/// Which partition holds how many rows of identity.tenant_api_request_logs.
async fn placement(pool: &PgPool) -> Vec<(String, i64)> {
    sqlx::query_as(
        "SELECT tableoid::regclass::text, count(*) FROM identity.tenant_api_request_logs GROUP BY 1 ORDER BY 1",
    )
    .fetch_all(pool)
    .await
    .expect("count rows per partition")
}

/// The partitions of `parent`, by name.
async fn partitions_of(pool: &PgPool, parent: &str) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
          WHERE i.inhparent = $1::regclass ORDER BY 1",
    )
    .bind(parent)
    .fetch_all(pool)
    .await
    .expect("list partitions")
}

/// The seed's psql run order applies with ON_ERROR_STOP=1 to an empty database and again to a second one of the same cluster.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psql_applies_the_seed_run_order_to_two_databases() {
    // Make sure the cluster's roles exist already, as they would after any earlier deployment.
    drop(TestDb::new().await);
    let mut files: Vec<PathBuf> = std::fs::read_dir(migrations_dir())
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|extension| extension == "sql"))
        .collect();
    files.sort();
    assert!(files.len() >= 15, "expected the seed's 15 migrations, found {files:?}");

    for _ in 0..2 {
        let (name, url) = create_empty_database().await;
        for file in &files {
            let output = tokio::process::Command::new("psql")
                .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", &url, "-f"])
                .arg(file)
                .output()
                .await
                .expect("psql is installed (PostgreSQL 15 client)");
            assert!(
                output.status.success(),
                "psql -f {} failed on {name}: {}",
                file.display(),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        let mut connection = PgConnection::connect(&url).await.unwrap();
        let tenants: i64 = sqlx::query_scalar("SELECT count(*) FROM identity.tenants")
            .fetch_one(&mut connection)
            .await
            .unwrap();
        assert_eq!(tenants, 1, "the default tenant is seeded once");
        connection.close().await.unwrap();
        drop_database(&name).await;
    }
}

/// Every table the seed names exists, in its service's schema, and nothing lives in an unexpected schema.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_seed_table_exists() {
    let db = TestDb::new().await;
    let existing: Vec<String> = sqlx::query_scalar(
        "SELECT n.nspname || '.' || c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE c.relkind IN ('r', 'p') AND n.nspname = ANY($1)",
    )
    .bind(&SERVICE_SCHEMAS[..])
    .fetch_all(db.pool())
    .await
    .unwrap();
    let missing: Vec<&&str> = SEED_TABLES
        .iter()
        .filter(|table| !existing.iter().any(|name| name.as_str() == **table))
        .collect();
    assert!(missing.is_empty(), "missing tables: {missing:?}");
    // Outside the service schemas there is only the migration runner's bookkeeping.
    let elsewhere: Vec<String> = sqlx::query_scalar(
        "SELECT n.nspname || '.' || c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE c.relkind IN ('r', 'p') AND n.nspname <> ALL($1)
            AND n.nspname NOT IN ('pg_catalog', 'information_schema')
          ORDER BY 1",
    )
    .bind(&SERVICE_SCHEMAS[..])
    .fetch_all(db.pool())
    .await
    .unwrap();
    assert_eq!(elsewhere, vec!["public.schema_migrations".to_owned()]);
}

/// The time-series tables are range-partitioned on a timestamptz column with a 2026-01 partition and a default one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn time_series_tables_are_monthly_partitioned_with_a_default() {
    let db = TestDb::new().await;
    for parent in PARTITIONED_TABLES {
        let (strategy, key_type, default_name): (String, String, Option<String>) = sqlx::query_as(
            "SELECT pt.partstrat::text, format_type(a.atttypid, NULL), d.relname::text
               FROM pg_partitioned_table pt
               JOIN pg_attribute a ON a.attrelid = pt.partrelid AND a.attnum = pt.partattrs[0]
               LEFT JOIN pg_class d ON d.oid = pt.partdefid
              WHERE pt.partrelid = $1::regclass",
        )
        .bind(parent)
        .fetch_one(db.pool())
        .await
        .unwrap();
        let table = parent.split_once('.').unwrap().1;
        assert_eq!(strategy, "r", "{parent} is range-partitioned");
        assert_eq!(key_type, "timestamp with time zone", "{parent} key");
        assert_eq!(default_name.as_deref(), Some(format!("{table}_default").as_str()));
        let (bound, covers_january): (String, bool) = sqlx::query_as(
            "SELECT pg_get_expr(c.relpartbound, c.oid),
                    substring(pg_get_expr(c.relpartbound, c.oid) FROM 'FROM \\(''([^'']+)''\\)')::timestamptz
                        = timestamptz '2026-01-01 00:00:00+00'
                    AND substring(pg_get_expr(c.relpartbound, c.oid) FROM 'TO \\(''([^'']+)''\\)')::timestamptz
                        = timestamptz '2026-02-01 00:00:00+00'
               FROM pg_class c
              WHERE c.oid = to_regclass($1 || '_y2026m01')",
        )
        .bind(parent)
        .fetch_one(db.pool())
        .await
        .unwrap();
        assert!(covers_january, "{parent}_y2026m01 covers January 2026 UTC: {bound}");
    }
}

/// ensure_monthly_partitions creates future months, returns how many, and a second call creates none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ensure_monthly_partitions_creates_future_months_idempotently() {
    let db = TestDb::new().await;
    for parent in PARTITIONED_TABLES {
        let created: i32 = sqlx::query_scalar("SELECT public.ensure_monthly_partitions($1::regclass, $2::date, 3)")
            .bind(parent)
            .bind("2026-11-17")
            .fetch_one(db.pool())
            .await
            .unwrap();
        assert_eq!(created, 3, "{parent}: Nov 2026, Dec 2026, Jan 2027");
        let again: i32 = sqlx::query_scalar("SELECT public.ensure_monthly_partitions($1::regclass, $2::date, 3)")
            .bind(parent)
            .bind("2026-11-01")
            .fetch_one(db.pool())
            .await
            .unwrap();
        assert_eq!(again, 0, "{parent}: nothing left to create");
        let table = parent.split_once('.').unwrap().1;
        let partitions = partitions_of(db.pool(), parent).await;
        for suffix in ["y2026m01", "y2026m11", "y2026m12", "y2027m01", "default"] {
            assert!(
                partitions.contains(&format!("{table}_{suffix}")),
                "{parent} lacks {suffix}: {partitions:?}"
            );
        }
        assert_eq!(partitions.len(), 5, "{partitions:?}");
    }
}

/// A row inserted for a month without a partition lands in the default partition and moves to the month's partition when it is created.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ensure_monthly_partitions_moves_default_rows_into_the_new_month() {
    let db = TestDb::new().await;
    let insert = "INSERT INTO identity.tenant_api_request_logs
                      (tenant_id, requested_at, method, path, status_code, duration_ms)
                  VALUES ($1::uuid, $2::timestamptz, 'GET', '/v1/renders', 200, 12)";
    for at in [
        "2027-05-01 00:00:00+00",
        "2027-05-31 23:59:59.999+00",
        "2027-06-01 00:00:00+00",
    ] {
        sqlx::query(insert)
            .bind(DEFAULT_TENANT)
            .bind(at)
            .execute(db.pool())
            .await
            .unwrap();
    }
    assert_eq!(
        placement(db.pool()).await,
        vec![("identity.tenant_api_request_logs_default".to_owned(), 3)]
    );

    let created: i32 = sqlx::query_scalar(
        "SELECT public.ensure_monthly_partitions('identity.tenant_api_request_logs', DATE '2027-05-01', 1)",
    )
    .fetch_one(db.pool())
    .await
    .unwrap();
    assert_eq!(created, 1);
    assert_eq!(
        placement(db.pool()).await,
        vec![
            ("identity.tenant_api_request_logs_default".to_owned(), 1),
            ("identity.tenant_api_request_logs_y2027m05".to_owned(), 2),
        ]
    );
    // The new partition takes new rows of its month directly and keeps the parent's CHECKs.
    sqlx::query(insert)
        .bind(DEFAULT_TENANT)
        .bind("2027-05-10 00:00:00+00")
        .execute(db.pool())
        .await
        .unwrap();
    let in_may: i64 = sqlx::query_scalar("SELECT count(*) FROM identity.tenant_api_request_logs_y2027m05")
        .fetch_one(db.pool())
        .await
        .unwrap();
    assert_eq!(in_may, 3);
    let state = sqlstate(
        sqlx::query(
            "INSERT INTO identity.tenant_api_request_logs_y2027m05
                 (tenant_id, requested_at, method, path, status_code, duration_ms)
             VALUES ($1::uuid, '2027-05-02', 'GET', '/', 200, -1)",
        )
        .bind(DEFAULT_TENANT)
        .execute(db.pool())
        .await,
        "negative duration in a created partition",
    );
    assert_eq!(state, "23514");
}

/// drop_monthly_partitions_before drops the months entirely before the cut-off, never the default partition or its rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_monthly_partitions_before_drops_only_older_months() {
    let db = TestDb::new().await;
    let parent = "identity.tenant_api_request_logs";
    let created: i32 =
        sqlx::query_scalar("SELECT public.ensure_monthly_partitions($1::regclass, DATE '2025-10-01', 6)")
            .bind(parent)
            .fetch_one(db.pool())
            .await
            .unwrap();
    assert_eq!(created, 5, "2025-10 .. 2026-03 minus the existing 2026-01");
    sqlx::query(
        "INSERT INTO identity.tenant_api_request_logs (tenant_id, requested_at, method, path, status_code, duration_ms)
         VALUES ($1::uuid, '2020-01-15 00:00:00+00', 'GET', '/old', 200, 1)",
    )
    .bind(DEFAULT_TENANT)
    .execute(db.pool())
    .await
    .unwrap();

    let dropped: i32 =
        sqlx::query_scalar("SELECT public.drop_monthly_partitions_before($1::regclass, DATE '2026-01-01')")
            .bind(parent)
            .fetch_one(db.pool())
            .await
            .unwrap();
    assert_eq!(dropped, 3, "2025-10, 2025-11, 2025-12");
    assert_eq!(
        partitions_of(db.pool(), parent).await,
        vec![
            "tenant_api_request_logs_default",
            "tenant_api_request_logs_y2026m01",
            "tenant_api_request_logs_y2026m02",
            "tenant_api_request_logs_y2026m03",
        ]
    );
    let kept: i64 = sqlx::query_scalar("SELECT count(*) FROM identity.tenant_api_request_logs_default")
        .fetch_one(db.pool())
        .await
        .unwrap();
    assert_eq!(kept, 1, "rows in the default partition are not retention's business");
    let dropped_mid_month: i32 =
        sqlx::query_scalar("SELECT public.drop_monthly_partitions_before($1::regclass, DATE '2026-02-15')")
            .bind(parent)
            .fetch_one(db.pool())
            .await
            .unwrap();
    assert_eq!(dropped_mid_month, 1, "only January lies entirely before Feb 15");
}

/// The partition functions are SECURITY DEFINER with a fixed search_path, not executable by PUBLIC, and act only for roles that may insert into the parent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partition_functions_act_only_for_roles_allowed_to_write_the_parent() {
    let db = TestDb::new().await;
    let definitions: Vec<(String, bool, Vec<String>, bool)> = sqlx::query_as(
        "SELECT p.proname::text, p.prosecdef, coalesce(p.proconfig, '{}'),
                EXISTS (SELECT FROM aclexplode(coalesce(p.proacl, acldefault('f', p.proowner)))
                         WHERE grantee = 0 AND privilege_type = 'EXECUTE')
           FROM pg_proc p
          WHERE p.oid IN ('public.ensure_monthly_partitions(regclass, date, integer)'::regprocedure,
                          'public.drop_monthly_partitions_before(regclass, date)'::regprocedure)",
    )
    .fetch_all(db.pool())
    .await
    .unwrap();
    assert_eq!(definitions.len(), 2);
    for (name, security_definer, config, public_execute) in definitions {
        assert!(security_definer, "{name} is SECURITY DEFINER");
        assert_eq!(config, vec!["search_path=pg_catalog, pg_temp".to_owned()], "{name}");
        assert!(!public_execute, "{name} is not executable by PUBLIC");
    }

    // Each service role may manage its own partitioned table.
    run_as(
        db.pool(),
        "flatrender_identity",
        "SELECT public.ensure_monthly_partitions('identity.tenant_api_request_logs', DATE '2027-01-01', 2);
         SELECT public.drop_monthly_partitions_before('identity.tenant_api_request_logs', DATE '2025-01-01');",
    )
    .await
    .unwrap();
    run_as(
        db.pool(),
        "flatrender_render",
        "SELECT public.ensure_monthly_partitions('render.node_health_logs', DATE '2027-01-01', 2)",
    )
    .await
    .unwrap();

    // ... but not another service's, even when handed the table's oid directly.
    let identity_logs: i64 = sqlx::query_scalar("SELECT 'identity.tenant_api_request_logs'::regclass::oid::bigint")
        .fetch_one(db.pool())
        .await
        .unwrap();
    for call in [
        format!("SELECT public.ensure_monthly_partitions({identity_logs}::oid::regclass, DATE '2027-01-01', 1)"),
        format!("SELECT public.drop_monthly_partitions_before({identity_logs}::oid::regclass, DATE '2030-01-01')"),
    ] {
        let error = run_as(db.pool(), "flatrender_render", &call).await.unwrap_err();
        assert_eq!(sqlstate::<()>(Err(error), &call), "42501");
    }
    let named = run_as(
        db.pool(),
        "flatrender_render",
        "SELECT public.ensure_monthly_partitions('identity.tenant_api_request_logs', DATE '2027-01-01', 1)",
    )
    .await;
    assert_eq!(sqlstate(named, "render role naming an identity table"), "42501");
    let after: Vec<String> = partitions_of(db.pool(), "identity.tenant_api_request_logs").await;
    assert_eq!(after.len(), 2, "nothing was created or dropped: {after:?}");

    // Only range-partitioned tables are accepted.
    let plain = run_as(
        db.pool(),
        "flatrender_identity",
        "SELECT public.ensure_monthly_partitions('identity.users', DATE '2027-01-01', 1)",
    )
    .await;
    assert_eq!(sqlstate(plain, "a plain table"), "42809");
}

/// Exactly one foreign key crosses a schema boundary: identity.earned_gifts.notification_id -> notification.notifications.id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactly_one_foreign_key_crosses_schemas() {
    let db = TestDb::new().await;
    let crossing: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT fn.nspname || '.' || f.relname,
                (SELECT string_agg(a.attname, ',' ORDER BY a.attnum) FROM pg_attribute a
                  WHERE a.attrelid = con.conrelid AND a.attnum = ANY(con.conkey)),
                tn.nspname || '.' || t.relname
           FROM pg_constraint con
           JOIN pg_class f ON f.oid = con.conrelid
           JOIN pg_namespace fn ON fn.oid = f.relnamespace
           JOIN pg_class t ON t.oid = con.confrelid
           JOIN pg_namespace tn ON tn.oid = t.relnamespace
          WHERE con.contype = 'f' AND fn.oid <> tn.oid
            AND con.conparentid = 0",
    )
    .fetch_all(db.pool())
    .await
    .unwrap();
    assert_eq!(
        crossing,
        vec![(
            "identity.earned_gifts".to_owned(),
            "notification_id".to_owned(),
            "notification.notifications".to_owned()
        )]
    );
}

/// The cross-schema foreign key rejects a notification id that does not exist, and is cleared when the notification is deleted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn earned_gift_notification_must_exist() {
    let db = TestDb::new().await;
    let user = insert_user(db.pool()).await;
    let gift: Uuid = sqlx::query_scalar(
        "INSERT INTO identity.gifts (code, name, kind) VALUES ('welcome', 'Welcome', 'render_minutes') RETURNING id",
    )
    .fetch_one(db.pool())
    .await
    .unwrap();
    let insert_gift = "INSERT INTO identity.earned_gifts (tenant_id, user_id, gift_id, source, notification_id)
                       VALUES ($1::uuid, $2, $3, 'promotion', $4) RETURNING id";
    let dangling = sqlx::query_scalar::<_, Uuid>(insert_gift)
        .bind(DEFAULT_TENANT)
        .bind(user)
        .bind(gift)
        .bind(Uuid::new_v4())
        .fetch_one(db.pool())
        .await;
    assert_eq!(sqlstate(dangling, "dangling notification id"), "23503");

    let notification: Uuid = sqlx::query_scalar(
        "INSERT INTO notification.notifications (tenant_id, user_id, kind, category, title)
         VALUES ($1::uuid, $2, 'gift.earned', 'gamification', 'You earned a gift') RETURNING id",
    )
    .bind(DEFAULT_TENANT)
    .bind(user)
    .fetch_one(db.pool())
    .await
    .unwrap();
    let earned: Uuid = sqlx::query_scalar(insert_gift)
        .bind(DEFAULT_TENANT)
        .bind(user)
        .bind(gift)
        .bind(notification)
        .fetch_one(db.pool())
        .await
        .unwrap();
    sqlx::query("DELETE FROM notification.notifications WHERE id = $1")
        .bind(notification)
        .execute(db.pool())
        .await
        .unwrap();
    let cleared: Option<Uuid> = sqlx::query_scalar("SELECT notification_id FROM identity.earned_gifts WHERE id = $1")
        .bind(earned)
        .fetch_one(db.pool())
        .await
        .unwrap();
    assert_eq!(cleared, None);
}

/// The default FlatRender tenant exists with its fixed id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_tenant_exists() {
    let db = TestDb::new().await;
    let (slug, kind, status): (String, String, String) =
        sqlx::query_as("SELECT slug, kind, status FROM identity.tenants WHERE id = $1::uuid")
            .bind(DEFAULT_TENANT)
            .fetch_one(db.pool())
            .await
            .unwrap();
    assert_eq!(
        (slug.as_str(), kind.as_str(), status.as_str()),
        ("flatrender", "platform", "active")
    );
}

/// Users, projects, render jobs, files and notifications cannot exist without a tenant.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenant_owned_rows_require_a_tenant_id() {
    let db = TestDb::new().await;
    for table in TENANT_OWNED_TABLES {
        let (schema, name) = table.split_once('.').unwrap();
        let nullable: Option<String> = sqlx::query_scalar(
            "SELECT is_nullable::text FROM information_schema.columns
              WHERE table_schema = $1 AND table_name = $2 AND column_name = 'tenant_id'",
        )
        .bind(schema)
        .bind(name)
        .fetch_optional(db.pool())
        .await
        .unwrap();
        assert_eq!(nullable.as_deref(), Some("NO"), "{table}.tenant_id must be NOT NULL");
    }
    let missing = sqlx::query("INSERT INTO identity.users (email) VALUES ('nobody@example.com')")
        .execute(db.pool())
        .await;
    assert_eq!(sqlstate(missing, "user without tenant"), "23502");
    let unknown = sqlx::query("INSERT INTO identity.users (tenant_id, email) VALUES ($1, 'x@example.com')")
        .bind(Uuid::new_v4())
        .execute(db.pool())
        .await;
    assert_eq!(sqlstate(unknown, "user of an unknown tenant"), "23503");
}

/// Every uuid column in the non-render schemas that names another row without a foreign key is documented as a soft reference.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soft_references_are_documented() {
    let db = TestDb::new().await;
    let undocumented: Vec<String> = sqlx::query_scalar(
        "SELECT n.nspname || '.' || c.relname || '.' || a.attname
           FROM pg_attribute a
           JOIN pg_class c ON c.oid = a.attrelid
           JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE n.nspname IN ('identity', 'content', 'studio', 'file_mgr', 'notification')
            AND c.relkind IN ('r', 'p') AND NOT c.relispartition
            AND a.attnum > 0 AND NOT a.attisdropped
            AND a.atttypid IN ('uuid'::regtype, 'uuid[]'::regtype)
            AND a.attname <> 'id'
            AND NOT EXISTS (SELECT FROM pg_constraint con
                             WHERE con.conrelid = c.oid AND con.contype IN ('f', 'p')
                               AND a.attnum = ANY(con.conkey))
            AND coalesce(col_description(c.oid, a.attnum), '') !~ 'Soft reference'
          ORDER BY 1",
    )
    .fetch_all(db.pool())
    .await
    .unwrap();
    assert!(
        undocumented.is_empty(),
        "undocumented soft references: {undocumented:?}"
    );
}

/// Each service role reads and writes its own schema and gets permission denied (42501) on every other one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_roles_are_confined_to_their_own_schema() {
    let db = TestDb::new().await;
    let user = insert_user(db.pool()).await;
    let tenant = DEFAULT_TENANT;
    let node = Uuid::new_v4();
    // Per schema: (a table to probe, statements that insert, read back, update and delete).
    let own_work: [(&str, &str, String); 6] = [
        (
            "identity",
            "identity.users",
            format!(
                "INSERT INTO identity.users (id, tenant_id, email) VALUES ('{node}', '{tenant}', 'role@example.com');
                 UPDATE identity.users SET display_name = 'Role' WHERE id = '{node}';
                 SELECT 1 / count(*)::int FROM identity.users WHERE id = '{node}' AND display_name = 'Role';
                 DELETE FROM identity.users WHERE id = '{node}';"
            ),
        ),
        (
            "content",
            "content.templates",
            format!(
                "INSERT INTO content.tags (tenant_id, slug, name) VALUES ('{tenant}', 'role-tag', 'Role');
                 UPDATE content.tags SET name = 'Renamed' WHERE slug = 'role-tag';
                 SELECT 1 / count(*)::int FROM content.tags WHERE name = 'Renamed';
                 DELETE FROM content.tags WHERE slug = 'role-tag';"
            ),
        ),
        (
            "studio",
            "studio.saved_projects",
            format!(
                "INSERT INTO studio.saved_projects (id, tenant_id, user_id, template_id, title)
                     VALUES ('{node}', '{tenant}', '{user}', gen_random_uuid(), 'Mine');
                 UPDATE studio.saved_projects SET music_volume = 0.5 WHERE id = '{node}';
                 SELECT 1 / count(*)::int FROM studio.saved_projects WHERE music_volume = 0.5;
                 DELETE FROM studio.saved_projects WHERE id = '{node}';"
            ),
        ),
        (
            "render",
            "render.render_jobs",
            format!(
                "INSERT INTO render.node_health_logs (node_id, recorded_at) VALUES ('{node}', '2026-01-15 00:00:00+00');
                 UPDATE render.node_health_logs SET aerender_running = true WHERE node_id = '{node}';
                 SELECT 1 / count(*)::int FROM render.node_health_logs WHERE node_id = '{node}' AND aerender_running;
                 DELETE FROM render.node_health_logs WHERE node_id = '{node}';"
            ),
        ),
        (
            "file_mgr",
            "file_mgr.files",
            format!(
                "INSERT INTO file_mgr.folders (id, tenant_id, user_id, name) VALUES ('{node}', '{tenant}', '{user}', 'Clips');
                 UPDATE file_mgr.folders SET name = 'Renamed' WHERE id = '{node}';
                 SELECT 1 / count(*)::int FROM file_mgr.folders WHERE name = 'Renamed';
                 DELETE FROM file_mgr.folders WHERE id = '{node}';"
            ),
        ),
        (
            "notification",
            "notification.notifications",
            format!(
                "INSERT INTO notification.notifications (id, tenant_id, user_id, kind, category, title)
                     VALUES ('{node}', '{tenant}', '{user}', 'render.completed', 'render', 'Done');
                 UPDATE notification.notifications SET read_at = now() WHERE id = '{node}';
                 SELECT 1 / count(*)::int FROM notification.notifications WHERE read_at IS NOT NULL;
                 DELETE FROM notification.notifications WHERE id = '{node}';"
            ),
        ),
    ];
    for (schema, _, work) in &own_work {
        let role = format!("flatrender_{schema}");
        run_as(db.pool(), &role, work)
            .await
            .unwrap_or_else(|error| panic!("{role} works in {schema}: {error}"));
        for (other_schema, probe, _) in &own_work {
            let outcome = run_as(db.pool(), &role, &format!("SELECT 1 FROM {probe} LIMIT 1")).await;
            if other_schema == schema {
                outcome.unwrap_or_else(|error| panic!("{role} reads {probe}: {error}"));
            } else {
                assert_eq!(sqlstate(outcome, &format!("{role} reading {probe}")), "42501");
            }
        }
    }
    // No DDL, even in its own schema.
    let ddl = run_as(db.pool(), "flatrender_render", "CREATE TABLE render.rogue (id int)").await;
    assert_eq!(sqlstate(ddl, "render role creating a table"), "42501");
}

/// A service role has no password until ops set one; then it logs in and acts as itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_role_logs_in_once_ops_set_a_password() {
    let db = TestDb::new().await;
    let roles: Vec<(String, bool, bool, bool)> = sqlx::query_as(
        "SELECT rolname::text, rolcanlogin, rolsuper, rolcreaterole FROM pg_roles
          WHERE rolname LIKE 'flatrender\\_%' AND rolname <> 'flatrender_admin' ORDER BY 1",
    )
    .fetch_all(db.pool())
    .await
    .unwrap();
    let expected: Vec<String> = SERVICE_SCHEMAS
        .iter()
        .map(|schema| format!("flatrender_{schema}"))
        .collect();
    for role in &expected {
        let found = roles.iter().find(|(name, ..)| name == role);
        assert!(
            matches!(found, Some((_, true, false, false))),
            "{role} is a plain LOGIN role: {found:?}"
        );
    }

    // pg_authid: the role's stored password (unlike pg_roles, which masks it).
    let has_password = || async {
        sqlx::query_scalar::<_, bool>(
            "SELECT rolpassword IS NOT NULL FROM pg_authid WHERE rolname = 'flatrender_identity'",
        )
        .fetch_one(db.pool())
        .await
        .unwrap()
    };
    assert!(!has_password().await, "no password until ops set one");
    let password = Uuid::new_v4().simple().to_string();
    db.pool()
        .execute(format!("ALTER ROLE flatrender_identity PASSWORD '{password}'").as_str())
        .await
        .unwrap();
    let mut connection = PgConnection::connect(&db.url_as("flatrender_identity", &password))
        .await
        .unwrap();
    let current: String = sqlx::query_scalar("SELECT current_user::text")
        .fetch_one(&mut connection)
        .await
        .unwrap();
    assert_eq!(current, "flatrender_identity");
    let tenants: i64 = sqlx::query_scalar("SELECT count(*) FROM identity.tenants")
        .fetch_one(&mut connection)
        .await
        .unwrap();
    assert!(tenants >= 1);
    let denied = sqlx::query("SELECT 1 FROM render.render_jobs LIMIT 1")
        .execute(&mut connection)
        .await;
    assert_eq!(sqlstate(denied, "identity login reading render.render_jobs"), "42501");
    connection.close().await.unwrap();
    db.pool()
        .execute("ALTER ROLE flatrender_identity PASSWORD NULL")
        .await
        .unwrap();
    assert!(!has_password().await, "the password is cleared again for the next run");
}

/// CHECK constraints reject nonsense: out-of-range volumes, unknown statuses, end frame before start frame, negative sizes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_constraints_reject_nonsense() {
    let db = TestDb::new().await;
    let user = insert_user(db.pool()).await;
    let tenant = DEFAULT_TENANT;
    let template: Uuid = sqlx::query_scalar(
        "INSERT INTO content.templates (tenant_id, slug, title) VALUES ($1::uuid, 'intro', 'Intro') RETURNING id",
    )
    .bind(tenant)
    .fetch_one(db.pool())
    .await
    .unwrap();
    let project = format!(
        "INSERT INTO studio.saved_projects (tenant_id, user_id, template_id, title, %s) VALUES ('{tenant}', '{user}', '{template}', 'P', %v)"
    );
    let version = format!(
        "INSERT INTO content.template_versions (tenant_id, template_id, version, aep_file_id, aep_storage_key,
             aep_content_hash, aep_size_bytes, width, height, fps, start_frame, end_frame)
         VALUES ('{tenant}', '{template}', 1, gen_random_uuid(), 'aep/intro.aep', decode(repeat('ab', 32), 'hex'),
                 1024, 1920, 1080, 30, %start, %end)"
    );
    let nonsense: Vec<String> = vec![
        project.replace("%s", "music_volume").replace("%v", "-0.1"),
        project.replace("%s", "sfx_volume").replace("%v", "1.5"),
        project.replace("%s", "voiceover_volume").replace("%v", "-1"),
        project.replace("%s", "status").replace("%v", "'exploded'"),
        project.replace("%s", "voiceover_source").replace("%v", "'tts'"),
        version.replace("%start", "100").replace("%end", "99"),
        format!(
            "INSERT INTO content.scenes (tenant_id, template_id, template_version_id, position, comp_name, title, start_frame, end_frame)
             SELECT '{tenant}', '{template}', gen_random_uuid(), 0, 'S1', 'Scene', 10, 5"
        ),
        "UPDATE identity.tenants SET status = 'bogus'".to_owned(),
        format!("INSERT INTO identity.users (tenant_id, email) VALUES ('{tenant}', 'not-an-email')"),
        format!(
            "INSERT INTO identity.tenant_api_keys (tenant_id, name, key_prefix, key_hash)
             VALUES ('{tenant}', 'k', 'fr_live_ab', '\\x0102')"
        ),
        format!(
            "INSERT INTO file_mgr.files (tenant_id, name, mime_type, size_bytes, storage_key)
             VALUES ('{tenant}', 'a.mp4', 'video/mp4', -1, 'k')"
        ),
        format!(
            "INSERT INTO file_mgr.upload_sessions (tenant_id, file_name, mime_type, total_size_bytes, part_size_bytes,
                 total_parts, storage_key, expires_at)
             VALUES ('{tenant}', 'a.mp4', 'video/mp4', 100, 10, 3, 'k', now() + interval '1 day')"
        ),
        format!(
            "INSERT INTO notification.notification_preferences (tenant_id, user_id, channel)
             VALUES ('{tenant}', '{user}', 'carrier_pigeon')"
        ),
        format!(
            "INSERT INTO identity.subscriptions (tenant_id, user_id, plan_id, current_period_start, current_period_end, provider)
             SELECT '{tenant}', '{user}', gen_random_uuid(), now(), now() - interval '1 day', 'manual'"
        ),
    ];
    for statement in &nonsense {
        let outcome = sqlx::raw_sql(statement).execute(db.pool()).await;
        assert_eq!(sqlstate(outcome, statement), "23514", "{statement}");
    }
    // The same rows with sane values are accepted.
    sqlx::raw_sql(&project.replace("%s", "music_volume").replace("%v", "0.8"))
        .execute(db.pool())
        .await
        .unwrap();
    sqlx::raw_sql(&version.replace("%start", "0").replace("%end", "299"))
        .execute(db.pool())
        .await
        .unwrap();
}

/// Running the migrations again on an up-to-date database applies nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrating_an_up_to_date_database_applies_nothing() {
    let db = TestDb::new().await;
    let report = migrate::run_embedded(&db.url()).await.unwrap();
    let embedded = migrate::embedded_migrations().unwrap();
    assert!(report.applied.is_empty(), "{report:?}");
    assert_eq!(report.already_applied.len(), embedded.len());
    let recorded: i64 = sqlx::query_scalar("SELECT count(*) FROM public.schema_migrations")
        .fetch_one(db.pool())
        .await
        .unwrap();
    assert_eq!(recorded, i64::try_from(embedded.len()).unwrap());
}

/// A migration edited after it was applied is refused, naming the file, and nothing is applied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edited_applied_migration_is_refused() {
    let db = TestDb::new().await;
    let edited = migrate::parse_migrations(migrate::embedded_migrations().unwrap().into_iter().map(|migration| {
        let sql = if migration.name == "05_content_taxonomy.sql" {
            format!("{}\nCREATE TABLE content.sneaky (id int);\n", migration.sql)
        } else {
            migration.sql
        };
        (migration.name, sql)
    }))
    .unwrap();
    let mut connection = PgConnection::connect(&db.url()).await.unwrap();
    let error = migrate::run(&mut connection, &edited).await.unwrap_err();
    assert!(
        matches!(&error, MigrateError::Edited { name } if name == "05_content_taxonomy.sql"),
        "{error}"
    );
    let sneaky: Option<String> = sqlx::query_scalar("SELECT to_regclass('content.sneaky')::text")
        .fetch_one(&mut connection)
        .await
        .unwrap();
    assert_eq!(sneaky, None);
    connection.close().await.unwrap();
}

/// Two runners starting at once on an empty database both succeed and every file, 00_setup.sql (version 0) included, is applied exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_runs_apply_each_migration_once() {
    drop(TestDb::new().await); // roles exist, as on any cluster that was migrated before
    let (name, url) = create_empty_database().await;
    let migrations = migrate::embedded_migrations().unwrap();
    let mut first = PgConnection::connect(&url).await.unwrap();
    let mut second = PgConnection::connect(&url).await.unwrap();
    let (one, two) = tokio::join!(
        migrate::run(&mut first, &migrations),
        migrate::run(&mut second, &migrations)
    );
    let (one, two) = (one.unwrap(), two.unwrap());
    let mut applied = [one.applied.clone(), two.applied.clone()].concat();
    applied.sort();
    let names: Vec<String> = migrations.iter().map(|migration| migration.name.clone()).collect();
    assert_eq!(
        applied, names,
        "each file applied by exactly one runner: {one:?} {two:?}"
    );
    let versions: Vec<i32> = sqlx::query_scalar("SELECT version FROM public.schema_migrations ORDER BY version")
        .fetch_all(&mut first)
        .await
        .unwrap();
    let expected: Vec<i32> = migrations.iter().map(|migration| migration.version).collect();
    assert_eq!(versions, expected);
    assert_eq!(versions.first(), Some(&0));
    first.close().await.unwrap();
    second.close().await.unwrap();
    drop_database(&name).await;
}

/// Partition upkeep running at once on several connections (two control-plane replicas, or an
/// ops request during the start-up pass) drops each old partition once and fails nowhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_partition_upkeep_does_not_collide() {
    let db = TestDb::new().await;
    for round in 0..5 {
        let parent = PARTITIONED_TABLES[round % PARTITIONED_TABLES.len()];
        // Months to retire, then several callers retiring them at once (as replicas do).
        let from_month = format!("2025-{:02}-01", round + 1);
        sqlx::query("SELECT public.ensure_monthly_partitions($1::regclass, $2::date, 6)")
            .bind(parent)
            .bind(&from_month)
            .execute(db.pool())
            .await
            .unwrap();
        // What one pass has to do: create the two months not there yet, drop every month before June.
        let table = parent.split_once('.').unwrap().1;
        let before = partitions_of(db.pool(), parent).await;
        let expected_created = ["y2026m11", "y2026m12"]
            .iter()
            .filter(|suffix| !before.contains(&format!("{table}_{suffix}")))
            .count() as i32;
        let expected_dropped = before
            .iter()
            .filter_map(|name| name.strip_prefix(&format!("{table}_y")))
            .filter(|month| month.as_bytes() < b"2026m06".as_slice())
            .count() as i32;
        assert!(
            expected_dropped >= 6,
            "{parent}: this round retires the 6 months it created"
        );
        let callers = (0..6).map(|_| {
            let pool = db.pool().clone();
            tokio::spawn(async move {
                let mut connection = pool.acquire().await.unwrap();
                let ensured: Result<i32, _> =
                    sqlx::query_scalar("SELECT public.ensure_monthly_partitions($1::regclass, DATE '2026-11-01', 2)")
                        .bind(parent)
                        .fetch_one(&mut *connection)
                        .await;
                let dropped: Result<i32, _> =
                    sqlx::query_scalar("SELECT public.drop_monthly_partitions_before($1::regclass, DATE '2026-06-01')")
                        .bind(parent)
                        .fetch_one(&mut *connection)
                        .await;
                (ensured, dropped)
            })
        });
        let mut created = 0;
        let mut dropped = 0;
        for caller in callers.collect::<Vec<_>>() {
            let (ensured, retired) = caller.await.unwrap();
            created += ensured.unwrap_or_else(|error| panic!("{parent}: ensure failed: {error}"));
            dropped += retired.unwrap_or_else(|error| panic!("{parent}: drop failed: {error}"));
        }
        assert_eq!(created, expected_created, "{parent}: each missing month created once");
        assert_eq!(dropped, expected_dropped, "{parent}: each old month dropped once");
        let left = partitions_of(db.pool(), parent).await;
        assert!(
            !left
                .iter()
                .any(|name| name.contains("y2025") || name.ends_with("y2026m01")),
            "{left:?}"
        );
    }
}
