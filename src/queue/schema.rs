//! The queue's tables, in PostgreSQL schema `salve`, applied by `salve queue init` as numbered
//! migrations (each in one transaction, under an advisory lock, recorded in
//! `salve.schema_version`; applying them again changes nothing).
//!
//! - `tenants`: `name`, `max_concurrency` (work items of the tenant claimed or running at once,
//!   across all runners).
//! - `tenant_roles`: which database role runs for which tenant; row-level security reads it.
//! - `runs`: one row per `salve run --queue`: the playbook's *text* and digest (runners load the
//!   playbook from here, so every runner runs exactly the approved bytes) and the run options
//!   (check mode, tags, extra variables; extra variables that look like secrets are refused at
//!   enqueue). The inventory is *not* stored: each runner reads its own.
//! - `work`: one row per run and host: `tenant`, `site`, `dag`, `plays` (indices of the plays
//!   the host is in), `state` (`queued`, `claimed`, `running`, `done`, `failed`, `abandoned`),
//!   `owner` (runner id), `lease_until` (database clock), `fence` (incremented on every claim),
//!   `attempts`, `needs_recheck`, `outcome`, `message`, and timestamps.
//!   A partial unique index allows one claimed or running member per (tenant, DAG).
//! - `host_steps` and `intents`: the journal, shaped like the local SQLite journal's tables
//!   (see [`crate::journal::schema`]) plus `work_id` and `fence`. A trigger rejects every
//!   write whose fence is not the work item's current one (SQLSTATE `SQ001`), holding a share
//!   lock on the item so a takeover cannot slip in between check and commit.
//!
//! Version 2 adds what `salve apply --queue` needs and runners serving several tenants:
//! - `work.windows` (`tstzmultirange`, the host's maintenance-window openings, `NULL`: any
//!   time) and `work.estimate` (the planned work's estimated length): an item is claimed only
//!   when `[now, now + estimate)` lies inside one opening, by the database's clock; an item
//!   none of whose remaining openings is long enough is ended as `missed`;
//! - `work.plan` (the approved plan's steps and facts for the host) and `runs.plan_digest`:
//!   the runner applies exactly those steps and leaves a host whose facts drifted alone;
//! - `tenant_roles` keyed by (role, tenant): one runner role may serve several tenants.
//!
//! Version 3 wakes runners: when a work item is enqueued, given back, or ends (freeing a DAG
//! or concurrency slot), a trigger sends `NOTIFY` on the channel `salve.work_channel(tenant)`
//! (`salve_work_` and the MD5 of the tenant's name, so a channel name says nothing about a
//! customer); runners `LISTEN` on their tenants' channels and poll only as a fallback. The
//! notification carries no payload. An index on each step's latest change lets the controller
//! read only what changed since its last look.
//!
//! Row-level security: every table is filtered to the tenants that `tenant_roles` maps to
//! `current_user`. The role that ran `queue init` owns the tables and is not filtered (the
//! controller uses it); runner roles are members of `salve_runner`, which gets only the grants
//! a runner needs. See `deploy/roles.sql`.

/// Error code raised by the fence trigger.
pub const STALE_FENCE: &str = "SQ001";

/// The migrations, in order; index + 1 is the version.
pub const MIGRATIONS: &[&str] = &[V1, V2, V3];

/// The newest version this salve knows.
pub fn version() -> i32 {
    MIGRATIONS.len() as i32
}

/// Run before the migrations, outside their transaction (idempotent).
pub const BOOTSTRAP: &str = "
CREATE SCHEMA IF NOT EXISTS salve;
CREATE TABLE IF NOT EXISTS salve.schema_version (
    version integer PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT now()
);
";

const V1: &str = r#"
DO $$ BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'salve_runner') THEN
        CREATE ROLE salve_runner NOLOGIN;
    END IF;
END $$;

CREATE TABLE salve.tenants (
    name text PRIMARY KEY,
    max_concurrency integer NOT NULL DEFAULT 50 CHECK (max_concurrency > 0)
);

CREATE TABLE salve.tenant_roles (
    role name PRIMARY KEY,
    tenant text NOT NULL REFERENCES salve.tenants (name)
);

CREATE TABLE salve.runs (
    id text PRIMARY KEY,
    playbook_name text NOT NULL,
    playbook_digest text NOT NULL,
    playbook text NOT NULL,
    options jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    created_by name NOT NULL DEFAULT current_user
);

CREATE TABLE salve.work (
    id bigserial PRIMARY KEY,
    run_id text NOT NULL REFERENCES salve.runs (id),
    tenant text NOT NULL REFERENCES salve.tenants (name),
    site text,
    host text NOT NULL,
    dag text,
    plays integer[] NOT NULL,
    state text NOT NULL DEFAULT 'queued'
        CHECK (state IN ('queued', 'claimed', 'running', 'done', 'failed', 'abandoned')),
    needs_recheck boolean NOT NULL DEFAULT false,
    owner text,
    lease_until timestamptz,
    fence bigint NOT NULL DEFAULT 0,
    attempts integer NOT NULL DEFAULT 0,
    outcome text,
    message text,
    created_at timestamptz NOT NULL DEFAULT now(),
    claimed_at timestamptz,
    started_at timestamptz,
    finished_at timestamptz,
    UNIQUE (run_id, host)
);
CREATE INDEX work_by_state ON salve.work (tenant, state, id);
CREATE UNIQUE INDEX work_one_member_per_dag ON salve.work (tenant, dag)
    WHERE dag IS NOT NULL AND state IN ('claimed', 'running');

CREATE TABLE salve.host_steps (
    work_id bigint NOT NULL REFERENCES salve.work (id),
    run_id text NOT NULL,
    host text NOT NULL,
    tenant text,
    play integer NOT NULL,
    task_index integer NOT NULL,
    task text NOT NULL,
    state text NOT NULL,
    started_at timestamptz,
    finished_at timestamptz,
    outcome jsonb,
    output text,
    fence bigint NOT NULL,
    PRIMARY KEY (work_id, play, task_index)
);

CREATE TABLE salve.intents (
    id bigserial PRIMARY KEY,
    work_id bigint NOT NULL REFERENCES salve.work (id),
    run_id text NOT NULL,
    host text NOT NULL,
    play integer NOT NULL,
    task_index integer NOT NULL,
    action text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    completed_at timestamptz,
    outcome jsonb,
    fence bigint NOT NULL
);
CREATE INDEX intents_open ON salve.intents (work_id) WHERE completed_at IS NULL;

CREATE FUNCTION salve.check_fence() RETURNS trigger LANGUAGE plpgsql AS $f$
BEGIN
    PERFORM 1 FROM salve.work w
        WHERE w.id = NEW.work_id AND w.fence = NEW.fence AND w.state IN ('claimed', 'running')
        FOR SHARE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'stale fencing token % for work item %', NEW.fence, NEW.work_id
            USING ERRCODE = 'SQ001';
    END IF;
    RETURN NEW;
END $f$;
CREATE TRIGGER host_steps_fence BEFORE INSERT OR UPDATE ON salve.host_steps
    FOR EACH ROW EXECUTE FUNCTION salve.check_fence();
CREATE TRIGGER intents_fence BEFORE INSERT OR UPDATE ON salve.intents
    FOR EACH ROW EXECUTE FUNCTION salve.check_fence();

CREATE FUNCTION salve.my_tenants() RETURNS text[] LANGUAGE sql STABLE AS $f$
    SELECT coalesce(array_agg(tenant), '{}') FROM salve.tenant_roles WHERE role = current_user
$f$;

ALTER TABLE salve.tenants ENABLE ROW LEVEL SECURITY;
ALTER TABLE salve.tenant_roles ENABLE ROW LEVEL SECURITY;
ALTER TABLE salve.runs ENABLE ROW LEVEL SECURITY;
ALTER TABLE salve.work ENABLE ROW LEVEL SECURITY;
ALTER TABLE salve.host_steps ENABLE ROW LEVEL SECURITY;
ALTER TABLE salve.intents ENABLE ROW LEVEL SECURITY;
CREATE POLICY own_role ON salve.tenant_roles USING (role = current_user);
CREATE POLICY own_tenant ON salve.tenants USING (name = ANY (salve.my_tenants()));
CREATE POLICY own_tenant ON salve.work USING (tenant = ANY (salve.my_tenants()));
CREATE POLICY own_tenant ON salve.runs
    USING (EXISTS (SELECT 1 FROM salve.work w WHERE w.run_id = runs.id));
CREATE POLICY own_tenant ON salve.host_steps
    USING (EXISTS (SELECT 1 FROM salve.work w WHERE w.id = host_steps.work_id));
CREATE POLICY own_tenant ON salve.intents
    USING (EXISTS (SELECT 1 FROM salve.work w WHERE w.id = intents.work_id));

GRANT USAGE ON SCHEMA salve TO salve_runner;
GRANT SELECT ON salve.schema_version, salve.tenants, salve.tenant_roles, salve.runs
    TO salve_runner;
GRANT SELECT ON salve.work TO salve_runner;
GRANT UPDATE (state, needs_recheck, owner, lease_until, fence, attempts, outcome, message,
    claimed_at, started_at, finished_at) ON salve.work TO salve_runner;
GRANT SELECT, INSERT, UPDATE ON salve.host_steps, salve.intents TO salve_runner;
GRANT USAGE ON SEQUENCE salve.intents_id_seq TO salve_runner;
"#;

const V2: &str = r#"
ALTER TABLE salve.work
    ADD COLUMN windows tstzmultirange,
    ADD COLUMN estimate interval NOT NULL DEFAULT '0 seconds',
    ADD COLUMN plan jsonb,
    DROP CONSTRAINT work_state_check,
    ADD CONSTRAINT work_state_check CHECK (state IN
        ('queued', 'claimed', 'running', 'done', 'failed', 'abandoned', 'missed'));
ALTER TABLE salve.runs ADD COLUMN plan_digest text;
ALTER TABLE salve.tenant_roles DROP CONSTRAINT tenant_roles_pkey,
    ADD PRIMARY KEY (role, tenant);
"#;

const V3: &str = r#"
CREATE FUNCTION salve.work_channel(tenant text) RETURNS text LANGUAGE sql IMMUTABLE AS $f$
    SELECT 'salve_work_' || md5(tenant)
$f$;

CREATE FUNCTION salve.notify_work() RETURNS trigger LANGUAGE plpgsql AS $f$
BEGIN
    IF TG_OP = 'INSERT' OR NEW.state IN ('queued', 'done', 'failed', 'abandoned', 'missed') THEN
        PERFORM pg_notify(salve.work_channel(NEW.tenant), '');
    END IF;
    RETURN NULL;
END $f$;
CREATE TRIGGER work_notify AFTER INSERT OR UPDATE OF state ON salve.work
    FOR EACH ROW EXECUTE FUNCTION salve.notify_work();

CREATE INDEX host_steps_changed ON salve.host_steps
    (run_id, (coalesce(finished_at, started_at)));
"#;
