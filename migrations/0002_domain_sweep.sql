-- Custom domains: the domain worker re-arms checks that stopped (a lost or dead-lettered
-- message) from a periodic sweep. The sweep runs before any org is known, so it reads
-- through a narrow SECURITY DEFINER function, like the other cross-org lookups.

create index if not exists domains_checked_at_idx on domains (checked_at nulls first, id)
  where status <> 'failed';

-- Domains whose checks look stopped: active ones not checked since p_active_before, the
-- others still in play (not failed) not checked since p_other_before or never; the
-- stalest first, at most p_limit (capped at 1000).
create or replace function selfdevop_domains_to_check(
  p_active_before timestamptz, p_other_before timestamptz, p_limit integer)
returns table (id text, org_id text, status text, checked_at timestamptz)
language sql stable security definer
set search_path = public, pg_temp
as $$
  select d.id, d.org_id, d.status, d.checked_at
  from public.domains d
  where d.status <> 'failed'
    and (d.checked_at is null
      or (d.status = 'active' and d.checked_at < p_active_before)
      or (d.status <> 'active' and d.checked_at < p_other_before))
  order by d.checked_at nulls first, d.id
  limit least(greatest(p_limit, 0), 1000)
$$;

revoke all on function selfdevop_domains_to_check(timestamptz, timestamptz, integer) from public;
grant execute on function selfdevop_domains_to_check(timestamptz, timestamptz, integer) to selfdevop_app;
