-- selfdevop control plane, first schema.
--
-- Ids are text made by the application (time-sortable, so `order by id` is creation order
-- and a page cursor is the last id seen); they use collation "C" so that order is byte
-- order whatever the cluster's locale, the same order JavaScript sorts them in. Every
-- tenant table carries org_id and a row-level-security policy on the transaction setting
-- app.org_id; the application connects as selfdevop_app, which is not the owner and cannot
-- bypass RLS.
-- Every statement is safe to run twice (if not exists / or replace / drop-then-create).

-- ---------------------------------------------------------------- application role

-- Roles are cluster-wide: migrations of other databases in the same cluster may create it
-- at the same moment, so losing that race is fine.
do $$
begin
  if not exists (select 1 from pg_catalog.pg_roles where rolname = 'selfdevop_app') then
    begin
      create role selfdevop_app nologin nobypassrls;
    exception when duplicate_object or unique_violation then
      null;
    end;
  end if;
end
$$;

-- A non-superuser migrating role (RDS) needs a grant to `SET ROLE selfdevop_app`. Granted
-- whenever not superuser: on PostgreSQL 16+ a role's creator already counts as a member
-- (with ADMIN) but without the SET option, so a membership test would skip the grant.
do $$
begin
  if not (select rolsuper from pg_catalog.pg_roles where rolname = current_user) then
    begin
      execute format('grant selfdevop_app to %I', current_user);
    exception when duplicate_object or unique_violation then
      null;
    end;
  end if;
end
$$;

-- ---------------------------------------------------------------- identities and orgs

create table if not exists orgs (
  id text collate "C" primary key,
  name text not null,
  created_at timestamptz not null
);

-- Global identities: one person may belong to several orgs, so users have no org_id.
create table if not exists users (
  id text collate "C" primary key,
  email text not null,
  password_hash text not null,
  created_at timestamptz not null,
  constraint users_email_key unique (email),
  constraint users_email_lowercase check (email = lower(email))
);

create table if not exists memberships (
  org_id text not null references orgs (id),
  user_id text not null references users (id),
  role text not null check (role in ('owner', 'admin', 'deployer', 'viewer')),
  created_at timestamptz not null,
  constraint memberships_pkey primary key (org_id, user_id)
);
create index if not exists memberships_user_idx on memberships (user_id);

create table if not exists api_keys (
  id text collate "C" primary key,
  org_id text not null references orgs (id),
  name text not null,
  role text not null check (role in ('owner', 'admin', 'deployer', 'viewer')),
  prefix text not null,
  key_hash text not null,
  created_at timestamptz not null,
  revoked_at timestamptz,
  constraint api_keys_org_id_key unique (org_id, id),
  constraint api_keys_org_name_key unique (org_id, name),
  constraint api_keys_key_hash_key unique (key_hash)
);

-- ---------------------------------------------------------------- projects and services

-- Child tables reference (org_id, id) rather than id alone: foreign-key checks ignore RLS,
-- so a composite key is what stops a row of one org pointing at another org's row.

create table if not exists projects (
  id text collate "C" primary key,
  org_id text not null references orgs (id),
  name text not null,
  created_at timestamptz not null,
  constraint projects_org_id_key unique (org_id, id),
  constraint projects_org_name_key unique (org_id, name)
);

create table if not exists environments (
  id text collate "C" primary key,
  org_id text not null references orgs (id),
  project_id text not null,
  name text not null,
  created_at timestamptz not null,
  constraint environments_org_id_key unique (org_id, id),
  constraint environments_project_name_key unique (project_id, name),
  constraint environments_project_fkey foreign key (org_id, project_id) references projects (org_id, id)
);
create index if not exists environments_org_project_idx on environments (org_id, project_id, id);

create table if not exists services (
  id text collate "C" primary key,
  org_id text not null references orgs (id),
  project_id text not null,
  name text not null,
  image text not null,
  container_port integer not null check (container_port between 1 and 65535),
  healthcheck_path text not null,
  migrate_command text,
  strategy text not null check (strategy in ('blue_green', 'replace')),
  replicas integer not null check (replicas >= 0),
  env jsonb not null default '{}'::jsonb,
  memory_mb integer,
  cpus double precision,
  -- {intervalMs, timeoutMs, successes, deadlineMs}: read and written as one value.
  health jsonb not null,
  warm_seconds integer not null,
  drain_seconds integer not null,
  sticky boolean not null default false,
  created_at timestamptz not null,
  constraint services_org_id_key unique (org_id, id),
  constraint services_project_name_key unique (project_id, name),
  constraint services_project_fkey foreign key (org_id, project_id) references projects (org_id, id)
);
create index if not exists services_org_project_idx on services (org_id, project_id, id);

create table if not exists nodes (
  id text collate "C" primary key,
  org_id text not null references orgs (id),
  name text not null,
  docker_host text not null,
  address text not null,
  labels jsonb not null default '{}'::jsonb,
  drain_mode boolean not null default false,
  created_at timestamptz not null,
  constraint nodes_org_id_key unique (org_id, id),
  constraint nodes_org_name_key unique (org_id, name)
);

-- ---------------------------------------------------------------- releases

create table if not exists releases (
  id text collate "C" primary key,
  org_id text not null references orgs (id),
  service_id text not null,
  environment_id text not null,
  image text not null,
  image_digest text,
  git_sha text,
  status text not null check (status in ('queued', 'building', 'artifact_ready', 'candidate_started',
    'migrating', 'health_validating', 'traffic_shifted', 'completed', 'failed', 'rolled_back')),
  previous_release_id text,
  node_id text,
  container_id text,
  upstream text,
  error text,
  created_at timestamptz not null,
  updated_at timestamptz not null,
  finished_at timestamptz,
  -- Last release_logs.seq handed out: bumping it row-locks the release, so concurrent
  -- appends to one release get distinct, increasing numbers.
  log_seq integer not null default 0,
  constraint releases_org_id_key unique (org_id, id),
  constraint releases_service_fkey foreign key (org_id, service_id) references services (org_id, id),
  constraint releases_environment_fkey foreign key (org_id, environment_id) references environments (org_id, id),
  constraint releases_previous_fkey foreign key (org_id, previous_release_id) references releases (org_id, id),
  constraint releases_node_fkey foreign key (org_id, node_id) references nodes (org_id, id)
);
create index if not exists releases_org_service_env_idx on releases (org_id, service_id, environment_id, id);
-- At most one release per service environment is in flight; the database decides races.
create unique index if not exists releases_one_in_flight on releases (service_id, environment_id)
  where status not in ('completed', 'failed', 'rolled_back');

create table if not exists release_steps (
  release_id text not null,
  org_id text not null references orgs (id),
  name text not null,
  status text not null check (status in ('running', 'succeeded', 'failed')),
  attempt integer not null,
  started_at timestamptz not null,
  finished_at timestamptz,
  error text,
  constraint release_steps_pkey primary key (release_id, name),
  constraint release_steps_release_fkey foreign key (org_id, release_id) references releases (org_id, id)
);
create index if not exists release_steps_org_release_idx on release_steps (org_id, release_id);

create table if not exists release_logs (
  release_id text not null,
  org_id text not null references orgs (id),
  seq integer not null,
  at timestamptz not null,
  stream text not null check (stream in ('system', 'stdout', 'stderr')),
  line text not null,
  constraint release_logs_pkey primary key (release_id, seq),
  constraint release_logs_release_fkey foreign key (org_id, release_id) references releases (org_id, id)
);
create index if not exists release_logs_org_release_idx on release_logs (org_id, release_id, seq);

create table if not exists deploy_jobs (
  id text collate "C" primary key,
  org_id text not null references orgs (id),
  release_id text not null,
  kind text not null check (kind in ('deploy', 'rollback')),
  status text not null check (status in ('queued', 'running', 'succeeded', 'failed')),
  attempts integer not null default 0,
  created_at timestamptz not null,
  updated_at timestamptz not null,
  constraint deploy_jobs_org_id_key unique (org_id, id),
  constraint deploy_jobs_release_fkey foreign key (org_id, release_id) references releases (org_id, id)
);
create index if not exists deploy_jobs_org_release_idx on deploy_jobs (org_id, release_id);

-- ---------------------------------------------------------------- domains, secrets, hooks

create table if not exists domains (
  id text collate "C" primary key,
  org_id text not null references orgs (id),
  service_id text not null,
  environment_id text not null,
  hostname text not null,
  verification_token text not null,
  status text not null check (status in ('pending_dns', 'dns_verified', 'cert_pending', 'active', 'failed')),
  dns_status text not null check (dns_status in ('pending', 'verified', 'failed')),
  tls_status text not null check (tls_status in ('none', 'pending', 'active', 'failed')),
  last_error text,
  checked_at timestamptz,
  created_at timestamptz not null,
  constraint domains_org_id_key unique (org_id, id),
  constraint domains_service_fkey foreign key (org_id, service_id) references services (org_id, id),
  constraint domains_environment_fkey foreign key (org_id, environment_id) references environments (org_id, id)
);
-- A hostname is routed to one service, whoever owns it: unique across orgs, any case.
create unique index if not exists domains_hostname_key on domains (lower(hostname));
create index if not exists domains_org_service_env_idx on domains (org_id, service_id, environment_id, id);

create table if not exists secrets (
  id text collate "C" primary key,
  org_id text not null references orgs (id),
  service_id text not null,
  environment_id text not null,
  name text not null,
  sealed text not null,
  created_at timestamptz not null,
  updated_at timestamptz not null,
  constraint secrets_org_id_key unique (org_id, id),
  constraint secrets_service_env_name_key unique (service_id, environment_id, name),
  constraint secrets_service_fkey foreign key (org_id, service_id) references services (org_id, id),
  constraint secrets_environment_fkey foreign key (org_id, environment_id) references environments (org_id, id)
);
create index if not exists secrets_org_service_env_idx on secrets (org_id, service_id, environment_id);

create table if not exists webhooks (
  id text collate "C" primary key,
  org_id text not null references orgs (id),
  url text not null,
  sealed_secret text not null,
  events text[] not null,
  created_at timestamptz not null,
  constraint webhooks_org_id_key unique (org_id, id)
);

create table if not exists audit_events (
  id text collate "C" primary key,
  org_id text not null references orgs (id),
  actor_type text not null check (actor_type in ('user', 'api_key', 'system')),
  actor_id text not null,
  action text not null,
  target_type text not null,
  target_id text,
  data jsonb not null default '{}'::jsonb,
  request_id text,
  created_at timestamptz not null,
  constraint audit_events_org_id_key unique (org_id, id)
);
create index if not exists audit_events_org_action_idx on audit_events (org_id, action, id);
create index if not exists audit_events_org_target_idx on audit_events (org_id, target_id, id);

-- ---------------------------------------------------------------- row-level security

-- Not FORCE: the owner (the migrating role, and the SECURITY DEFINER functions below)
-- must see across orgs; the application role is not the owner, so RLS applies to it.
-- current_setting(..., true) is NULL or '' when no org is set, which matches no row.
alter table orgs enable row level security;
drop policy if exists org_isolation on orgs;
create policy org_isolation on orgs
  using (id = current_setting('app.org_id', true))
  with check (id = current_setting('app.org_id', true));

do $$
declare
  t text;
begin
  foreach t in array array['memberships', 'api_keys', 'projects', 'environments', 'services',
    'nodes', 'releases', 'release_steps', 'release_logs', 'deploy_jobs', 'domains', 'secrets',
    'webhooks', 'audit_events']
  loop
    execute format('alter table %I enable row level security', t);
    execute format('drop policy if exists org_isolation on %I', t);
    execute format(
      'create policy org_isolation on %I using (org_id = current_setting(''app.org_id'', true)) '
      'with check (org_id = current_setting(''app.org_id'', true))', t);
  end loop;
end
$$;

-- ---------------------------------------------------------------- cross-org lookups

-- These run before the org is known (login, API key, on-demand TLS). Each returns only the
-- narrow columns its caller needs; search_path is fixed so a caller cannot shadow tables.

create or replace function selfdevop_memberships_of(p_user_id text)
returns table (org_id text, user_id text, role text, created_at timestamptz)
language sql stable security definer
set search_path = public, pg_temp
as $$
  select m.org_id, m.user_id, m.role, m.created_at
  from public.memberships m
  where m.user_id = p_user_id
  order by m.created_at, m.org_id
$$;

create or replace function selfdevop_api_key_by_hash(p_key_hash text)
returns table (id text, org_id text, name text, role text, prefix text,
  created_at timestamptz, revoked_at timestamptz)
language sql stable security definer
set search_path = public, pg_temp
as $$
  select k.id, k.org_id, k.name, k.role, k.prefix, k.created_at, k.revoked_at
  from public.api_keys k
  where k.key_hash = p_key_hash
$$;

create or replace function selfdevop_domain_by_hostname(p_hostname text)
returns table (id text, org_id text, status text)
language sql stable security definer
set search_path = public, pg_temp
as $$
  select d.id, d.org_id, d.status
  from public.domains d
  where lower(d.hostname) = lower(p_hostname)
$$;

create or replace function selfdevop_count_users()
returns bigint
language sql stable security definer
set search_path = public, pg_temp
as $$
  select count(*) from public.users
$$;

revoke all on function selfdevop_memberships_of(text) from public;
revoke all on function selfdevop_api_key_by_hash(text) from public;
revoke all on function selfdevop_domain_by_hostname(text) from public;
revoke all on function selfdevop_count_users() from public;
grant execute on function selfdevop_memberships_of(text) to selfdevop_app;
grant execute on function selfdevop_api_key_by_hash(text) to selfdevop_app;
grant execute on function selfdevop_domain_by_hostname(text) to selfdevop_app;
grant execute on function selfdevop_count_users() to selfdevop_app;

-- ---------------------------------------------------------------- grants

grant usage on schema public to selfdevop_app;
grant select, insert, update, delete on orgs, users, memberships, api_keys, projects,
  environments, services, nodes, releases, release_steps, release_logs, deploy_jobs, domains,
  secrets, webhooks, audit_events to selfdevop_app;
grant usage, select on all sequences in schema public to selfdevop_app;
-- The API checks at start that its code matches the schema (the migrator makes the table;
-- the guard lets this file also run by hand with psql).
do $$
begin
  if pg_catalog.to_regclass('public.schema_migrations') is not null then
    grant select on public.schema_migrations to selfdevop_app;
  end if;
end
$$;
