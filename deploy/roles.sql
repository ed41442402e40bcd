-- Roles for salve's queue database. Run `salve queue init --queue postgres://salve_owner@db/salve`
-- first, as the role that will own the queue's tables (it needs CREATEROLE once, to create the
-- NOLOGIN group role `salve_runner`). That owner role is also the controller's: table owners are
-- not filtered by row-level security, so `salve run --queue` and `salve queue status` see all.
--
-- Then, per tenant (customer), as the owner role or a superuser:
--   1. a login role for that customer's runners, member of salve_runner (which holds the grants),
--   2. the mapping that row-level security reads: this role works for this tenant.
-- A runner role sees, claims and writes only its tenant's rows: other tenants' work, runs,
-- steps and intents are invisible to it. Runners cannot create work, change a run's playbook
-- or options, or remap roles.

CREATE ROLE runner_contoso LOGIN PASSWORD 'change-me' IN ROLE salve_runner;
INSERT INTO salve.tenants (name, max_concurrency) VALUES ('contoso', 4)
    ON CONFLICT (name) DO UPDATE SET max_concurrency = excluded.max_concurrency;
INSERT INTO salve.tenant_roles (role, tenant) VALUES ('runner_contoso', 'contoso');

-- A runner that reaches several customers' networks (`salve runner --tenant contoso,fabrikam`)
-- logs in with one role mapped to each of them:
--   INSERT INTO salve.tenant_roles (role, tenant) VALUES ('runner_dc1', 'contoso'), ('runner_dc1', 'fabrikam');
--
-- Cap how many of a tenant's hosts are claimed or running at once, across all its runners:
--   salve queue tenant contoso --max-concurrency 2
-- Take a runner role away (its claims expire and other runners take them over):
--   DELETE FROM salve.tenant_roles WHERE role = 'runner_contoso';   -- every tenant it served
--   ALTER ROLE runner_contoso NOLOGIN;
--
-- Recommended in pg_hba.conf: runners only over TLS with SCRAM, e.g.
--   hostssl salve +salve_runner 0.0.0.0/0 scram-sha-256
-- and in the runner's URL `?sslmode=verify-full` (salve checks the server's certificate against
-- the public web PKI roots) or, for a private CA,
-- `?sslmode=verify-full&sslrootcert=/etc/salve/queue-ca.pem`.
