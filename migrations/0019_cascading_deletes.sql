-- A service, environment or project can be deleted (issue 14, "a service you can change").
-- Their history goes with them: releases (with their steps, logs and deploy jobs),
-- secrets and domains cascade from the service or environment they belong to, and
-- environments and services from their project. Data services do not cascade: a project
-- holding one is refused (409) until it is deleted on its own, since its volume is data.
-- The use cases refuse while a release is in flight, before anything is deleted.
alter table releases drop constraint if exists releases_service_fkey,
  add constraint releases_service_fkey foreign key (org_id, service_id)
    references services (org_id, id) on delete cascade;
alter table releases drop constraint if exists releases_environment_fkey,
  add constraint releases_environment_fkey foreign key (org_id, environment_id)
    references environments (org_id, id) on delete cascade;
-- The previous release is of the same service environment, so it is deleted in the same
-- statement; cascading keeps the self-reference from blocking that statement's order.
alter table releases drop constraint if exists releases_previous_fkey,
  add constraint releases_previous_fkey foreign key (org_id, previous_release_id)
    references releases (org_id, id) on delete cascade;
alter table release_steps drop constraint if exists release_steps_release_fkey,
  add constraint release_steps_release_fkey foreign key (org_id, release_id)
    references releases (org_id, id) on delete cascade;
alter table release_logs drop constraint if exists release_logs_release_fkey,
  add constraint release_logs_release_fkey foreign key (org_id, release_id)
    references releases (org_id, id) on delete cascade;
alter table deploy_jobs drop constraint if exists deploy_jobs_release_fkey,
  add constraint deploy_jobs_release_fkey foreign key (org_id, release_id)
    references releases (org_id, id) on delete cascade;
alter table domains drop constraint if exists domains_service_fkey,
  add constraint domains_service_fkey foreign key (org_id, service_id)
    references services (org_id, id) on delete cascade;
alter table domains drop constraint if exists domains_environment_fkey,
  add constraint domains_environment_fkey foreign key (org_id, environment_id)
    references environments (org_id, id) on delete cascade;
alter table secrets drop constraint if exists secrets_service_fkey,
  add constraint secrets_service_fkey foreign key (org_id, service_id)
    references services (org_id, id) on delete cascade;
alter table secrets drop constraint if exists secrets_environment_fkey,
  add constraint secrets_environment_fkey foreign key (org_id, environment_id)
    references environments (org_id, id) on delete cascade;
alter table environments drop constraint if exists environments_project_fkey,
  add constraint environments_project_fkey foreign key (org_id, project_id)
    references projects (org_id, id) on delete cascade;
alter table services drop constraint if exists services_project_fkey,
  add constraint services_project_fkey foreign key (org_id, project_id)
    references projects (org_id, id) on delete cascade;
