-- Services that are not web servers (issue 14): workers, and cron jobs with their runs.
--
-- A worker has no port and no route: its container port becomes optional, and `kind` says
-- which a service is (every existing service stays `web`). `worker_health` is the worker's
-- gate: how long it must run without a restart, and an optional command run inside it.
alter table services add column if not exists kind text not null default 'web'
  check (kind in ('web', 'worker'));
alter table services add column if not exists worker_health jsonb;
alter table services alter column container_port drop not null;
alter table services drop constraint if exists services_web_has_port;
alter table services add constraint services_web_has_port
  check (kind = 'worker' or container_port is not null);

-- A job runs a command in a one-off container of its service environment's current
-- release image, on a schedule (five-field cron read in `time_zone`) or on demand.
create table if not exists jobs (
  id text collate "C" primary key,
  org_id text not null references orgs (id),
  service_id text not null,
  environment_id text not null,
  name text not null,
  schedule text not null,
  time_zone text not null,
  command text not null,
  overlap text not null check (overlap in ('skip', 'allow')),
  timeout_seconds integer not null check (timeout_seconds between 1 and 86400),
  retries integer not null check (retries between 0 and 10),
  created_at timestamptz not null,
  updated_at timestamptz not null,
  constraint jobs_org_id_key unique (org_id, id),
  constraint jobs_name_key unique (service_id, environment_id, name),
  constraint jobs_service_fkey foreign key (org_id, service_id)
    references services (org_id, id) on delete cascade,
  constraint jobs_environment_fkey foreign key (org_id, environment_id)
    references environments (org_id, id) on delete cascade
);
create index if not exists jobs_service_idx on jobs (org_id, service_id);

-- One row per attempt. `exclusive` runs (overlap = skip) are at most one running per job:
-- the partial unique index decides two firings racing, as releases_one_in_flight does.
create table if not exists job_runs (
  id text collate "C" primary key,
  org_id text not null references orgs (id),
  job_id text not null,
  trigger text not null check (trigger in ('schedule', 'manual', 'retry')),
  attempt integer not null check (attempt >= 1),
  exclusive boolean not null,
  status text not null check (status in ('running', 'succeeded', 'failed', 'timed_out', 'skipped')),
  exit_code integer,
  release_id text,
  started_at timestamptz not null,
  finished_at timestamptz,
  duration_ms integer,
  log_tail text not null default '',
  error text,
  constraint job_runs_job_fkey foreign key (org_id, job_id)
    references jobs (org_id, id) on delete cascade
);
create index if not exists job_runs_job_idx on job_runs (org_id, job_id, id);
create unique index if not exists job_runs_one_running on job_runs (job_id)
  where status = 'running' and exclusive;

alter table jobs enable row level security;
alter table jobs force row level security;
drop policy if exists org_isolation on jobs;
create policy org_isolation on jobs
  using (org_id = current_setting('app.org_id', true))
  with check (org_id = current_setting('app.org_id', true));

alter table job_runs enable row level security;
alter table job_runs force row level security;
drop policy if exists org_isolation on job_runs;
create policy org_isolation on job_runs
  using (org_id = current_setting('app.org_id', true))
  with check (org_id = current_setting('app.org_id', true));

grant select, insert, update, delete on jobs, job_runs to selfdevop_app;
