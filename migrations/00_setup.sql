-- 00_setup.sql: schemas, per-service roles and the monthly partition machinery.
--
-- FlatRender V2 is ONE PostgreSQL 15 database with one schema per microservice:
--
--   schema         owner service                 login role
--   identity       Identity Service (.NET)       flatrender_identity
--   content        Content Service (.NET)        flatrender_content
--   studio         Studio Service (.NET)         flatrender_studio
--   render         Render Orchestrator           flatrender_render
--   file_mgr       File Service (Go)             flatrender_file_mgr
--   notification   Notification Service (Go)     flatrender_notification
--
-- Per-service role recipe
-- -----------------------
-- * Migrations (00 .. 14, in name order) are applied by ONE migrating role: a superuser, or the
--   database owner with CREATEROLE. That role owns every schema, table and function, so the
--   ALTER DEFAULT PRIVILEGES below cover every table it creates later (new migrations, and the
--   monthly partitions made by public.ensure_monthly_partitions, which runs as that owner).
-- * Each service connects as its own LOGIN role (table above). A service role has:
--     USAGE on its own schema only;
--     SELECT, INSERT, UPDATE, DELETE on that schema's tables (no TRUNCATE, no DDL);
--     USAGE, SELECT, UPDATE on that schema's sequences; EXECUTE on that schema's functions;
--     EXECUTE on public.ensure_monthly_partitions / public.drop_monthly_partitions_before,
--     which in turn only act on tables the caller may INSERT into.
--   It has nothing on the other five schemas: touching them fails with SQLSTATE 42501
--   (permission denied). Cross-service data flows through service APIs and events.
-- * Roles are created WITHOUT a password and no password appears in any migration. Ops set
--   one per role, outside version control, e.g. in psql:
--       \password flatrender_render
--   or
--       ALTER ROLE flatrender_render PASSWORD '...';   -- value from the secret store
--   and the service then connects with
--       postgres://flatrender_render:<password>@<host>:5432/flatrender
-- * Roles are cluster-wide while GRANTs are per database: creating the roles is idempotent
--   (skipped when they exist), so the whole set of files applies to a second database of the
--   same cluster (per-test databases, staging next to dev) without error.
-- * Optionally, to keep a service role out of other databases of the cluster:
--       REVOKE CONNECT ON DATABASE <other> FROM PUBLIC;
--
-- Extensions: none. uuid defaults use gen_random_uuid(), built into PostgreSQL 13+; case-
-- insensitive uniqueness uses lower() indexes instead of citext.
--
-- Conventions used by every later file:
-- * uuid primary keys DEFAULT gen_random_uuid(); timestamptz for every instant.
-- * Statuses and other vocabularies are text + CHECK (easy to extend in a later migration).
-- * Audio volumes are linear gains numeric(4,3) in 0..1 (1 = source level unchanged, no boost).
-- * Sizes, counters and durations are CHECKed non-negative.
-- * Every user, project, render job, file and notification row carries NOT NULL tenant_id.
-- * Foreign keys are used within a schema. Across schemas a column is a SOFT reference: no FK,
--   documented with COMMENT ON COLUMN ('Soft reference to <schema>.<table>.<column> ...').
--   The single intentional exception is identity.earned_gifts.notification_id ->
--   notification.notifications.id, added in 14_notification.sql.

CREATE SCHEMA IF NOT EXISTS identity;
CREATE SCHEMA IF NOT EXISTS content;
CREATE SCHEMA IF NOT EXISTS studio;
CREATE SCHEMA IF NOT EXISTS render;
CREATE SCHEMA IF NOT EXISTS file_mgr;
CREATE SCHEMA IF NOT EXISTS notification;

COMMENT ON SCHEMA identity IS 'Identity Service: tenants, users, auth, plans, payments, gamification.';
COMMENT ON SCHEMA content IS 'Content Service: templates, scenes, characters, presets, blogs, CMS.';
COMMENT ON SCHEMA studio IS 'Studio Service: saved projects and their audio (music, sfx, voiceover).';
COMMENT ON SCHEMA render IS 'Render Orchestrator: jobs, nodes, frame jobs, snapshots, exports.';
COMMENT ON SCHEMA file_mgr IS 'File Service: files, folders, quotas, multipart uploads, cleanup.';
COMMENT ON SCHEMA notification IS 'Notification Service: in-app, push, email, SMS, telegram.';

-- One LOGIN role per service, confined to its schema. Role names are flatrender_<schema>.
DO $roles$
DECLARE
    service text;
    role_name text;
BEGIN
    FOREACH service IN ARRAY ARRAY['identity', 'content', 'studio', 'render', 'file_mgr', 'notification'] LOOP
        role_name := 'flatrender_' || service;
        IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = role_name) THEN
            BEGIN
                -- No PASSWORD clause: ops set it (see the recipe above).
                EXECUTE format(
                    'CREATE ROLE %I LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS INHERIT',
                    role_name);
            EXCEPTION WHEN duplicate_object OR unique_violation THEN
                NULL; -- another database of this cluster created it at the same moment
            END;
        END IF;

        -- Per-database privileges: this database's copy of the schema only.
        EXECUTE format('GRANT USAGE ON SCHEMA %I TO %I', service, role_name);
        EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA %I TO %I', service, role_name);
        EXECUTE format('GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA %I TO %I', service, role_name);
        EXECUTE format('GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA %I TO %I', service, role_name);
        -- Objects the migrating role (current_user) creates later in the schema follow.
        EXECUTE format(
            'ALTER DEFAULT PRIVILEGES IN SCHEMA %I GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO %I',
            service, role_name);
        EXECUTE format(
            'ALTER DEFAULT PRIVILEGES IN SCHEMA %I GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO %I',
            service, role_name);
        EXECUTE format('ALTER DEFAULT PRIVILEGES IN SCHEMA %I GRANT EXECUTE ON FUNCTIONS TO %I', service, role_name);
    END LOOP;
END
$roles$;

-- ---------------------------------------------------------------------------------------------
-- Monthly partitions
--
-- Time-series tables (identity.tenant_api_request_logs, render.node_health_logs) are declared
-- PARTITION BY RANGE (<timestamptz column>) and get one partition per UTC calendar month,
-- named <table>_yYYYYmMM in the parent's schema (e.g. render.node_health_logs_y2026m11),
-- bounds [YYYY-MM-01 00:00 UTC, next month 00:00 UTC).
--
-- Rows for a month without a partition are never lost: every parent also has a DEFAULT
-- partition <table>_default, so an insert never fails because ops' cron (or the control plane)
-- was late. When the month's partition is created afterwards, ensure_monthly_partitions moves
-- that month's rows out of the default partition into the new one in the same transaction
-- (PostgreSQL would otherwise refuse to attach a partition whose rows sit in the default).
-- The default partition should therefore stay empty in steady state; a non-empty default is a
-- signal that partition upkeep is behind. Retention (drop_monthly_partitions_before) never
-- touches the default partition.
--
-- Both functions are SECURITY DEFINER (they run as the migrating role, which owns the tables)
-- with a fixed search_path, callable only by the six service roles (and the owner), and they
-- refuse unless the calling role may INSERT into the parent (and, for dropping, DELETE from
-- it). The calling role is the one set with SET ROLE if any, else session_user.
-- ---------------------------------------------------------------------------------------------

-- Validates `parent` and the caller's rights; returns the parent's partition key column.
-- Internal: only the owner (i.e. the two SECURITY DEFINER functions below) may call it.
CREATE OR REPLACE FUNCTION public.monthly_partition_key(parent regclass, privileges text[])
RETURNS name
LANGUAGE plpgsql
STABLE
SET search_path = pg_catalog, pg_temp
AS $function$
DECLARE
    caller name := CASE WHEN current_setting('role') = 'none' THEN session_user
                        ELSE current_setting('role')::name END;
    target record;
    privilege text;
BEGIN
    IF parent IS NULL THEN
        RAISE EXCEPTION 'parent table must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    SELECT c.relkind, c.relnamespace, pt.partstrat, pt.partnatts, pt.partattrs[0] AS key_attnum,
           a.attname AS key_name, a.atttypid AS key_type
      INTO target
      FROM pg_class c
      LEFT JOIN pg_partitioned_table pt ON pt.partrelid = c.oid
      LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = pt.partattrs[0]
     WHERE c.oid = parent;
    IF NOT FOUND OR target.relkind <> 'p' OR target.partstrat <> 'r' OR target.partnatts <> 1
       OR target.key_attnum = 0 THEN
        RAISE EXCEPTION '% is not a table partitioned by range on one column', parent
            USING ERRCODE = 'wrong_object_type';
    END IF;
    IF target.key_type <> 'timestamptz'::regtype THEN
        RAISE EXCEPTION 'partition key %.% is %, monthly partitions need timestamptz',
            parent, target.key_name, format_type(target.key_type, NULL)
            USING ERRCODE = 'wrong_object_type';
    END IF;
    IF NOT has_schema_privilege(caller, target.relnamespace, 'USAGE') THEN
        RAISE EXCEPTION 'role % may not manage partitions of %: no USAGE on its schema', caller, parent
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    FOREACH privilege IN ARRAY privileges LOOP
        IF NOT has_table_privilege(caller, parent, privilege) THEN
            RAISE EXCEPTION 'role % may not manage partitions of %: it lacks % on it', caller, parent, privilege
                USING ERRCODE = 'insufficient_privilege';
        END IF;
    END LOOP;
    RETURN target.key_name;
END
$function$;

REVOKE ALL ON FUNCTION public.monthly_partition_key(regclass, text[]) FROM PUBLIC;

-- Creates the monthly partitions of `parent` for `num_months` months starting with the month
-- of `from_month` (skipping those that exist), and the DEFAULT partition if it is missing.
-- Rows of a new month already sitting in the default partition are moved into the new
-- partition. Returns how many monthly partitions it created.
CREATE OR REPLACE FUNCTION public.ensure_monthly_partitions(parent regclass, from_month date, num_months integer)
RETURNS integer
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $function$
DECLARE
    key_name name;
    schema_name name;
    table_name name;
    default_oid oid;
    columns text;
    month_start date;
    lower_bound timestamptz;
    upper_bound timestamptz;
    part_name text;
    existing record;
    created integer := 0;
BEGIN
    IF from_month IS NULL OR num_months IS NULL OR num_months < 0 OR num_months > 1200 THEN
        RAISE EXCEPTION 'ensure_monthly_partitions(%, %, %): from_month must be set and num_months in 0..1200',
            parent, from_month, num_months
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    key_name := public.monthly_partition_key(parent, ARRAY['INSERT']);

    -- Serialises concurrent callers for this parent without blocking inserts.
    EXECUTE format('LOCK TABLE %s IN SHARE UPDATE EXCLUSIVE MODE', parent);

    SELECT n.nspname, c.relname, pt.partdefid
      INTO schema_name, table_name, default_oid
      FROM pg_class c
      JOIN pg_namespace n ON n.oid = c.relnamespace
      JOIN pg_partitioned_table pt ON pt.partrelid = c.oid
     WHERE c.oid = parent;

    IF default_oid = 0 THEN
        IF octet_length(table_name || '_default') > 63 THEN
            RAISE EXCEPTION 'default partition name for % would exceed 63 bytes', parent
                USING ERRCODE = 'name_too_long';
        END IF;
        EXECUTE format('CREATE TABLE %I.%I PARTITION OF %I.%I DEFAULT',
                       schema_name, table_name || '_default', schema_name, table_name);
        default_oid := format('%I.%I', schema_name, table_name || '_default')::regclass::oid;
    END IF;

    SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum)
      INTO columns
      FROM pg_attribute
     WHERE attrelid = parent AND attnum > 0 AND NOT attisdropped AND attgenerated = '';

    FOR month_index IN 0 .. num_months - 1 LOOP
        month_start := (date_trunc('month', from_month) + make_interval(months => month_index))::date;
        lower_bound := month_start::timestamp AT TIME ZONE 'UTC';
        upper_bound := (month_start + interval '1 month')::timestamp AT TIME ZONE 'UTC';
        part_name := table_name || '_y' || to_char(month_start, 'YYYY') || 'm' || to_char(month_start, 'MM');
        IF octet_length(part_name) > 63 THEN
            RAISE EXCEPTION 'partition name % would exceed 63 bytes', part_name USING ERRCODE = 'name_too_long';
        END IF;

        SELECT c.oid, inh.inhparent
          INTO existing
          FROM pg_class c
          LEFT JOIN pg_inherits inh ON inh.inhrelid = c.oid
         WHERE c.relnamespace = (SELECT relnamespace FROM pg_class WHERE oid = parent)
           AND c.relname = part_name;
        IF FOUND THEN
            IF existing.inhparent IS DISTINCT FROM parent::oid THEN
                RAISE EXCEPTION '%.% exists but is not a partition of %', schema_name, part_name, parent
                    USING ERRCODE = 'duplicate_table';
            END IF;
            CONTINUE;
        END IF;

        -- Build the partition standalone, fill it from the default partition, then attach it.
        EXECUTE format(
            'CREATE TABLE %I.%I (LIKE %I.%I INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING GENERATED '
            'INCLUDING STORAGE INCLUDING COMPRESSION)',
            schema_name, part_name, schema_name, table_name);
        EXECUTE format('LOCK TABLE %s IN ACCESS EXCLUSIVE MODE', default_oid::regclass);
        EXECUTE format(
            'WITH moved AS (DELETE FROM %s WHERE %I >= $1 AND %I < $2 RETURNING %s) '
            'INSERT INTO %I.%I (%s) SELECT %s FROM moved',
            default_oid::regclass, key_name, key_name, columns, schema_name, part_name, columns, columns)
            USING lower_bound, upper_bound;
        -- A constraint matching the bounds lets ATTACH skip scanning the new partition.
        EXECUTE format(
            'ALTER TABLE %I.%I ADD CONSTRAINT monthly_partition_bounds '
            'CHECK (%I IS NOT NULL AND %I >= %L::timestamptz AND %I < %L::timestamptz)',
            schema_name, part_name, key_name, key_name, lower_bound, key_name, upper_bound);
        EXECUTE format('ALTER TABLE %I.%I ATTACH PARTITION %I.%I FOR VALUES FROM (%L) TO (%L)',
                       schema_name, table_name, schema_name, part_name, lower_bound, upper_bound);
        EXECUTE format('ALTER TABLE %I.%I DROP CONSTRAINT monthly_partition_bounds', schema_name, part_name);
        created := created + 1;
    END LOOP;
    RETURN created;
END
$function$;

-- Retention: drops the monthly partitions (<table>_yYYYYmMM) of `parent` whose whole range
-- lies before `before_month` (00:00 UTC of that date). Never drops the default partition.
-- Returns how many partitions it dropped.
CREATE OR REPLACE FUNCTION public.drop_monthly_partitions_before(parent regclass, before_month date)
RETURNS integer
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $function$
DECLARE
    cutoff timestamptz;
    table_name name;
    part record;
    dropped integer := 0;
BEGIN
    IF before_month IS NULL THEN
        RAISE EXCEPTION 'drop_monthly_partitions_before(%, NULL): before_month must be set', parent
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM public.monthly_partition_key(parent, ARRAY['INSERT', 'DELETE']);
    cutoff := before_month::timestamp AT TIME ZONE 'UTC';
    -- The lock ensure_monthly_partitions takes: concurrent upkeep (replicas, an ops request
    -- during the start-up pass) runs one at a time per parent, and the partition list below is
    -- read after the lock, so a partition another caller just dropped is not dropped twice.
    EXECUTE format('LOCK TABLE %s IN SHARE UPDATE EXCLUSIVE MODE', parent);
    SELECT relname INTO table_name FROM pg_class WHERE oid = parent;

    FOR part IN
        SELECT n.nspname, c.relname,
               substring(pg_get_expr(c.relpartbound, c.oid) FROM 'TO \(''([^'']+)''\)') AS upper_text
          FROM pg_inherits i
          JOIN pg_class c ON c.oid = i.inhrelid
          JOIN pg_namespace n ON n.oid = c.relnamespace
          JOIN pg_partitioned_table pt ON pt.partrelid = i.inhparent
         WHERE i.inhparent = parent
           AND c.oid <> pt.partdefid
           AND left(c.relname, length(table_name) + 2) = table_name || '_y'
           AND substr(c.relname, length(table_name) + 3) ~ '^[0-9]{4}m[0-9]{2}$'
         ORDER BY c.relname
    LOOP
        IF part.upper_text IS NOT NULL AND part.upper_text::timestamptz <= cutoff THEN
            EXECUTE format('DROP TABLE %I.%I', part.nspname, part.relname);
            dropped := dropped + 1;
        END IF;
    END LOOP;
    RETURN dropped;
END
$function$;

REVOKE ALL ON FUNCTION public.ensure_monthly_partitions(regclass, date, integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION public.drop_monthly_partitions_before(regclass, date) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION public.ensure_monthly_partitions(regclass, date, integer),
                          public.drop_monthly_partitions_before(regclass, date)
   TO flatrender_identity, flatrender_content, flatrender_studio,
      flatrender_render, flatrender_file_mgr, flatrender_notification;

COMMENT ON FUNCTION public.ensure_monthly_partitions(regclass, date, integer) IS
    'Creates <parent>_yYYYYmMM partitions (UTC months) for num_months months from from_month, '
    'skipping existing ones, moving matching rows out of <parent>_default; returns how many it created.';
COMMENT ON FUNCTION public.drop_monthly_partitions_before(regclass, date) IS
    'Drops monthly partitions of parent entirely before before_month (never the default one); returns how many.';
