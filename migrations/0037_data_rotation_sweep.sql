-- Data services (issue 15, gaps): password rotation and the sweep of stuck backups.
--
-- Rotation: the new password is sealed into `pending_sealed_password` before the engine is
-- touched, so a worker that dies between setting it in the engine and recording it can tell,
-- on the message's next delivery, which of the two the server takes. `password_rotated_at`
-- says when the current one became current (null: never rotated).
alter table data_services add column if not exists pending_sealed_password text;
alter table data_services add column if not exists password_rotated_at timestamptz;

-- Stuck backups: a backup (or its drill) left `running` by a worker that died mid-dump would
-- stay `running` for ever and never count as failed. The workers' `backup-sweep` job finds
-- them before any org is known, so it reads them through a narrow SECURITY DEFINER function
-- like the other cross-org lookups. It answers ids only; the job then reads and fails each
-- row inside its org (compare-and-set on its status).
create or replace function selfdevop_stuck_backups(p_before timestamptz, p_limit integer)
returns table (org_id text, data_service_id text, backup_id text, kind text)
language sql stable security definer
set search_path = public, pg_temp
as $$
  select * from (
    select b.org_id, b.data_service_id, b.id, 'backup'::text
    from public.data_service_backups b
    where b.status = 'running' and b.started_at < p_before
    union all
    select b.org_id, b.data_service_id, b.id, 'drill'::text
    from public.data_service_backups b
    where b.status = 'completed' and b.drill_status = 'running' and b.drilled_at < p_before
  ) s
  order by 1, 3
  limit least(greatest(p_limit, 0), 1000)
$$;

revoke all on function selfdevop_stuck_backups(timestamptz, integer) from public;
grant execute on function selfdevop_stuck_backups(timestamptz, integer) to selfdevop_app;
