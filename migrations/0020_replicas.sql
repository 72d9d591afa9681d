-- Replicas across nodes (issue 14): a service's placement (required node labels), how the
-- edge balances over its replicas, how many candidates start at once; and each release's
-- replicas (node, container, upstream, health). No new table, so no new RLS policy: both
-- tables keep theirs. Null is the default (any node, round_robin, 1): the core fills it in,
-- so rows written by code that predates these columns stay valid.
alter table services
  add column placement jsonb,
  add column load_balancing text check (load_balancing in ('round_robin', 'least_conn')),
  add column max_surge integer check (max_surge between 1 and 50),
  add constraint services_replicas_max check (replicas <= 50);

-- An object ({"replicas": [...]}) rather than an array: the driver sends JS arrays as
-- PostgreSQL arrays. Releases from before keep null and are served by their one container.
alter table releases add column replica_set jsonb;
