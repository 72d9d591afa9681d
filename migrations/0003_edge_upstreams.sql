-- Upstreams of each edge route, served to Caddy as DNS SRV records by the control plane,
-- so a blue/green switch changes a row instead of reloading Caddy. Infrastructure state,
-- not a tenant's: keyed by the route's DNS label, which derives from the route id.
create table if not exists edge_upstreams (
  label text collate "C" primary key,
  upstreams text[] not null,
  updated_at timestamptz not null default now()
);

grant select, insert, update, delete on edge_upstreams to selfdevop_app;
