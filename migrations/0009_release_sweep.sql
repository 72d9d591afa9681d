-- Releases whose first step message was lost: the API commits a release, then sends its
-- first step; a process that dies between the two leaves it `queued` with no message, and
-- the one-in-flight rule then refuses every later deploy of the service environment. The
-- workers' sweep finds them here (before any org is known, so through a narrow SECURITY
-- DEFINER function, like the other cross-org lookups) and sends the step again.

create index if not exists releases_queued_created_idx on releases (created_at, id)
  where status = 'queued';

-- Releases still queued since before p_before with no step recorded; the oldest first, at
-- most p_limit (capped at 1000).
create or replace function selfdevop_jobless_releases(p_before timestamptz, p_limit integer)
returns table (id text, org_id text, service_id text, environment_id text, created_at timestamptz)
language sql stable security definer
set search_path = public, pg_temp
as $$
  select r.id, r.org_id, r.service_id, r.environment_id, r.created_at
  from public.releases r
  where r.status = 'queued'
    and r.created_at < p_before
    and not exists (
      select 1 from public.release_steps s where s.org_id = r.org_id and s.release_id = r.id)
  order by r.created_at, r.id
  limit least(greatest(p_limit, 0), 1000)
$$;

revoke all on function selfdevop_jobless_releases(timestamptz, integer) from public;
grant execute on function selfdevop_jobless_releases(timestamptz, integer) to selfdevop_app;
