-- Data-service backups imported from another install (issue 15), and the backup a minor
-- upgrade takes first: two more values of what made a backup.
alter table data_service_backups drop constraint if exists data_service_backups_trigger_check;
alter table data_service_backups add constraint data_service_backups_trigger_check
  check (trigger in ('schedule', 'manual', 'pre_restore', 'import', 'pre_upgrade'));

-- A data service's newest in-place minor upgrade (status, versions, the step that failed, the
-- backup taken first): a second upgrade is refused while one runs. Null: never asked.
alter table data_services add column if not exists upgrade jsonb;
