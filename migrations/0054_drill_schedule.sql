-- Which backups of a data service are restore-drilled (issue 15): every one (what every data
-- service did before, so existing rows keep it), or `weekly`: a scheduled backup is drilled
-- only when no backup started in the last 7 days has a drill that passed or is running, or
-- when the newest drill failed (core/data-services/backups.ts, drillDecision). The worker
-- decides when a backup completes, so no schedule is registered for it in either mode.
alter table data_services add column if not exists drill_schedule text not null default 'every_backup'
  check (drill_schedule in ('every_backup', 'weekly'));
