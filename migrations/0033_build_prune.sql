-- Build image pruning (issue 13): the workers' hourly `build-prune` job visits every node a
-- release built from git ran on, before any org is known, so it reads them through a narrow
-- SECURITY DEFINER function like the other cross-org lookups. It answers ids only; the job
-- then reads each node (and its sealed credentials) inside that node's org.

create or replace function selfdevop_build_nodes(p_limit integer)
returns table (org_id text, node_id text)
language sql stable security definer
set search_path = public, pg_temp
as $$
  select distinct r.org_id, x.node_id
  from public.releases r
  cross join lateral (
    select r.node_id
    union
    select e->>'nodeId'
    from jsonb_array_elements(coalesce(r.replica_set->'replicas', '[]'::jsonb)) e
  ) x(node_id)
  where r.git_sha is not null and x.node_id is not null
  order by 1, 2
  limit least(greatest(p_limit, 0), 5000)
$$;

revoke all on function selfdevop_build_nodes(integer) from public;
grant execute on function selfdevop_build_nodes(integer) to selfdevop_app;
