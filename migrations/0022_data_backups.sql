-- Backups of data services and the restore drills that prove them (issue 15).
--
-- A backup row is the control plane's record of one dump; the dump itself and its manifest
-- live in the ObjectStore. The manifest is written last, so a row whose status is not
-- `completed` (no manifest) never counts: not for restores, not for retention's "newest
-- backup whose drill passed".
alter table data_services add column if not exists backup_schedule text not null default '0 3 * * *';

create table if not exists data_service_backups (
  id text collate "C" primary key,
  org_id text not null references orgs (id),
  data_service_id text not null,
  -- What made it: the schedule, a person (on demand), or a restore in place (its safety copy).
  trigger text not null check (trigger in ('schedule', 'manual', 'pre_restore')),
  status text not null check (status in ('running', 'completed', 'failed')),
  error text,
  -- Object keys of the dump and of its manifest, under backups/<org>/<data service>/<id>/.
  object_key text not null,
  manifest_key text not null,
  -- The per-backup data key, sealed by the KeyVault (also in the manifest, for restores
  -- by another install holding the same vault key).
  sealed_data_key text not null,
  raw_bytes bigint,
  stored_bytes bigint,
  sha256 text,
  manifest jsonb,
  started_at timestamptz not null,
  finished_at timestamptz,
  -- The newest drill of this backup: restored into a container with no network and checked.
  drill_status text check (drill_status in ('running', 'passed', 'failed')),
  drill_error text,
  drill_rto_ms integer,
  drill_rpo_ms integer,
  drilled_at timestamptz,
  constraint data_service_backups_org_id_key unique (org_id, id),
  constraint data_service_backups_data_service_fkey foreign key (org_id, data_service_id)
    references data_services (org_id, id) on delete cascade
);
create index if not exists data_service_backups_service_idx
  on data_service_backups (org_id, data_service_id, id);

alter table data_service_backups enable row level security;
alter table data_service_backups force row level security;
drop policy if exists org_isolation on data_service_backups;
create policy org_isolation on data_service_backups
  using (org_id = current_setting('app.org_id', true))
  with check (org_id = current_setting('app.org_id', true));
drop policy if exists migrations on data_service_backups;
create policy migrations on data_service_backups to selfdevop_migrator
  using (current_setting('selfdevop.migrating', true) = 'on')
  with check (current_setting('selfdevop.migrating', true) = 'on');

grant select, insert, update, delete on data_service_backups to selfdevop_app;
