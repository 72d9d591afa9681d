-- Node loss (issue 14): the workers check every node's engine and record what they saw on
-- the node, so the API, the CLI and the dashboard show it and placement skips a lost node.
-- `unknown` until the first check (a node registered before this migration, or just now);
-- `missed_checks` lives in the row, not in a process, because the cloud's checks run in
-- short-lived worker invocations that must add up their misses. No new table, so the
-- nodes table keeps its RLS policies.
alter table nodes
  add column reachability text not null default 'unknown'
    check (reachability in ('unknown', 'reachable', 'lost')),
  add column reachability_since timestamptz,
  add column last_seen_at timestamptz,
  add column missed_checks integer not null default 0 check (missed_checks >= 0);

-- The orgs that have nodes, for the checker, which knows no org before it starts (a narrow
-- SECURITY DEFINER function like the other cross-org lookups; it returns ids only, the
-- nodes themselves are read inside each org's transaction).
create or replace function selfdevop_node_orgs()
returns table (org_id text)
language sql stable security definer
set search_path = public, pg_temp
as $$
  select distinct n.org_id from public.nodes n order by n.org_id limit 10000
$$;

revoke all on function selfdevop_node_orgs() from public;
grant execute on function selfdevop_node_orgs() to selfdevop_app;
