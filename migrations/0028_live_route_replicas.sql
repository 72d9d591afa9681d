-- The edge rebuilt from the database restores every serving replica of a service
-- environment, not only the release's first one (issue 14): the live route carries the
-- upstreams of the replicas that passed their gate (`replica_set`, 0020), and how the edge
-- balances over them. A release from before 0020 (no replica_set) serves at its one
-- upstream. The return type changes, so the function is dropped and made again.
drop function if exists selfdevop_live_routes(text[], text[]);

create function selfdevop_live_routes(p_release_statuses text[], p_domain_statuses text[])
returns table (service_id text, service_name text, environment_id text, environment_name text,
  sticky boolean, drain_seconds integer, load_balancing text, upstreams text[],
  custom_hosts text[])
language sql stable security definer
set search_path = public, pg_temp
as $$
  select s.id, s.name, e.id, e.name, s.sticky, s.drain_seconds, s.load_balancing, r.upstreams,
    coalesce((
      select array_agg(d.hostname order by d.created_at, d.id)
      from public.domains d
      where d.service_id = r.service_id and d.environment_id = r.environment_id
        and d.status = any(p_domain_statuses)
    ), '{}')
  from (
    select l.service_id, l.environment_id,
      case when l.replica_set is null then
        case when l.upstream is null then '{}'::text[] else array[l.upstream] end
      else coalesce((
        -- In replica order, as the switch wrote them; a replica not (or no longer) healthy
        -- is not served.
        select array_agg(x.replica->>'upstream' order by x.ordinality)
        from jsonb_array_elements(l.replica_set->'replicas') with ordinality as x(replica, ordinality)
        where x.replica->>'health' = 'healthy' and x.replica->>'upstream' is not null
      ), '{}') end as upstreams
    from (
      -- The newest live release of each service environment serves (ids sort by creation).
      select distinct on (l.service_id, l.environment_id)
        l.service_id, l.environment_id, l.upstream, l.replica_set
      from public.releases l
      where l.status = any(p_release_statuses)
      order by l.service_id, l.environment_id, l.id desc
    ) l
  ) r
  join public.services s on s.id = r.service_id
  join public.environments e on e.id = r.environment_id
  where cardinality(r.upstreams) > 0
  order by s.id, e.id
$$;

revoke all on function selfdevop_live_routes(text[], text[]) from public;
grant execute on function selfdevop_live_routes(text[], text[]) to selfdevop_app;
