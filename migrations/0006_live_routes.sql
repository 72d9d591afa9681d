-- The edge rebuilt from the database: every service environment with a live release, its
-- upstream and its routed custom hosts, across orgs (the worker repairs a Caddy that lost
-- its config before any org is known). Read through a narrow SECURITY DEFINER function,
-- like the other cross-org lookups. The status sets are parameters: core/edge/live-routes.ts
-- is their one source.
create or replace function selfdevop_live_routes(p_release_statuses text[], p_domain_statuses text[])
returns table (service_id text, service_name text, environment_id text, environment_name text,
  sticky boolean, drain_seconds integer, upstream text, custom_hosts text[])
language sql stable security definer
set search_path = public, pg_temp
as $$
  select s.id, s.name, e.id, e.name, s.sticky, s.drain_seconds, r.upstream,
    coalesce((
      select array_agg(d.hostname order by d.created_at, d.id)
      from public.domains d
      where d.service_id = r.service_id and d.environment_id = r.environment_id
        and d.status = any(p_domain_statuses)
    ), '{}')
  from (
    -- The newest live release of each service environment serves (ids sort by creation).
    select distinct on (l.service_id, l.environment_id) l.service_id, l.environment_id, l.upstream
    from public.releases l
    where l.status = any(p_release_statuses)
    order by l.service_id, l.environment_id, l.id desc
  ) r
  join public.services s on s.id = r.service_id
  join public.environments e on e.id = r.environment_id
  where r.upstream is not null
  order by s.id, e.id
$$;

revoke all on function selfdevop_live_routes(text[], text[]) from public;
grant execute on function selfdevop_live_routes(text[], text[]) to selfdevop_app;
