-- App data services (issue "data services", step 1): a Redis, MariaDB or PostgreSQL
-- container per project, placed on a node, its data on a named volume, its password sealed
-- by the KeyVault; and links that hand its connection URL to an app service's containers.
create table if not exists data_services (
  id text collate "C" primary key,
  org_id text not null references orgs (id),
  project_id text not null,
  name text not null,
  engine text not null check (engine in ('redis', 'mariadb', 'postgres')),
  version text not null,
  node_id text not null,
  status text not null check (status in ('provisioning', 'ready', 'failed', 'deleting')),
  error text,
  settings jsonb not null default '{}'::jsonb,
  sealed_password text not null,
  remove_volume boolean not null default false,
  created_at timestamptz not null,
  updated_at timestamptz not null,
  constraint data_services_org_id_key unique (org_id, id),
  constraint data_services_project_name_key unique (project_id, name),
  constraint data_services_project_fkey foreign key (org_id, project_id) references projects (org_id, id),
  constraint data_services_node_fkey foreign key (org_id, node_id) references nodes (org_id, id)
);

-- A link goes with its data service and with its app service; one env name per service.
create table if not exists data_service_links (
  id text collate "C" primary key,
  org_id text not null references orgs (id),
  data_service_id text not null,
  service_id text not null,
  env_name text not null,
  created_at timestamptz not null,
  constraint data_service_links_pair_key unique (data_service_id, service_id),
  constraint data_service_links_env_key unique (service_id, env_name),
  constraint data_service_links_data_service_fkey foreign key (org_id, data_service_id)
    references data_services (org_id, id) on delete cascade,
  constraint data_service_links_service_fkey foreign key (org_id, service_id)
    references services (org_id, id) on delete cascade
);
create index if not exists data_service_links_service_idx on data_service_links (org_id, service_id);

alter table data_services enable row level security;
drop policy if exists org_isolation on data_services;
create policy org_isolation on data_services
  using (org_id = current_setting('app.org_id', true))
  with check (org_id = current_setting('app.org_id', true));

alter table data_service_links enable row level security;
drop policy if exists org_isolation on data_service_links;
create policy org_isolation on data_service_links
  using (org_id = current_setting('app.org_id', true))
  with check (org_id = current_setting('app.org_id', true));

grant select, insert, update, delete on data_services, data_service_links to selfdevop_app;
