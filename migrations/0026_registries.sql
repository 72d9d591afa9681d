-- Issue 13: images from private registries. An org's credentials for a registry server
-- (`registry.example.com`, `127.0.0.1:5000`, `docker.io`), used to pull its images; the
-- password or token is sealed by the KeyVault and never leaves the store but to the pull.
create table if not exists registries (
  id text collate "C" primary key,
  org_id text not null references orgs (id),
  server text not null,
  username text not null,
  sealed_password text not null,
  created_at timestamptz not null,
  constraint registries_org_id_key unique (org_id, id),
  -- One credential per server and org: a pull must never have to guess between two.
  constraint registries_org_server_key unique (org_id, server)
);

alter table registries enable row level security;
drop policy if exists org_isolation on registries;
create policy org_isolation on registries
  using (org_id = current_setting('app.org_id', true))
  with check (org_id = current_setting('app.org_id', true));

grant select, insert, update, delete on registries to selfdevop_app;
