-- A node is one Docker Engine (`engine`) or a Swarm cluster reached through one of its
-- managers (`swarm`, issue 17): a release placed on a swarm node runs as Swarm services,
-- whose tasks Swarm schedules onto the cluster's own members. No new table, so no new RLS
-- policy; existing rows are engines.
alter table nodes
  add column kind text not null default 'engine' check (kind in ('engine', 'swarm'));
