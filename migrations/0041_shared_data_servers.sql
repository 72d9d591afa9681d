-- Shared data servers (issue 15): a MariaDB or PostgreSQL data service marked `shareable`
-- holds one database and user per app; each of those is a data service of its own
-- (`shared_server_id` names the server) with its own sealed password, links, backups and
-- drills. The server cannot be deleted while one of its databases remains (no cascade: the
-- core refuses with a 409 first, the key keeps a race from orphaning one).
alter table data_services add column if not exists shareable boolean not null default false;
alter table data_services add column if not exists shared_server_id text;
alter table data_services drop constraint if exists data_services_shared_server_fkey,
  add constraint data_services_shared_server_fkey foreign key (org_id, shared_server_id)
    references data_services (org_id, id);
create index if not exists data_services_shared_server_idx
  on data_services (org_id, shared_server_id) where shared_server_id is not null;
