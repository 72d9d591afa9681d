-- Backups of the control plane's own database (issue 15): pg_dump of this very database,
-- encoded like data services' backups and stored in the same ObjectStore, then drilled into
-- a scratch database. The install's, not a tenant's: no org_id, no row-level security (like
-- `operators` and `edge_rebuilds`); only operators reach them through the API.
create table if not exists control_backups (
  id text collate "C" primary key,
  trigger text not null check (trigger in ('schedule', 'manual')),
  status text not null check (status in ('running', 'completed', 'failed')),
  error text,
  object_key text not null,
  manifest_key text not null,
  sealed_data_key text not null,
  raw_bytes bigint,
  stored_bytes bigint,
  sha256 text,
  manifest jsonb,
  started_at timestamptz not null,
  finished_at timestamptz,
  drill_status text check (drill_status in ('running', 'passed', 'failed')),
  drill_error text,
  drill_rto_ms integer,
  drill_rpo_ms integer,
  drilled_at timestamptz
);
grant select, insert, update, delete on control_backups to selfdevop_app;

-- When the control plane is backed up and how many backups retention keeps: one row.
create table if not exists control_backup_settings (
  id integer primary key check (id = 1),
  schedule text not null,
  retention jsonb not null,
  updated_at timestamptz not null
);
grant select, insert, update on control_backup_settings to selfdevop_app;

-- Retention per data service ({daily, weekly, monthly}); null keeps the default 14/8/6.
alter table data_services add column if not exists backup_retention jsonb;
