-- Database roles that trust nothing by default (issue 12, hole 10).
--
-- Before: RLS was enabled but not forced, so the tables' owner (the migrating role, which
-- the embedded database also served the API as, relying on SET ROLE) saw every org; the
-- app role could read `users` with its password hashes; the cross-org lookups ran as the
-- owner. After:
--   selfdevop_app       NOLOGIN: the application's privileges (0001), no BYPASSRLS.
--   selfdevop_api       the API's and workers' login: a member of selfdevop_app, owns nothing.
--   selfdevop_queue     pg-boss's login: owns pg-boss's schema and nothing else.
--   selfdevop_definer   NOLOGIN: owns the SECURITY DEFINER lookups, reads what they return.
--   selfdevop_migrator  NOLOGIN: lets the migrating role see every org while it migrates.
-- The login roles get LOGIN and their passwords from the migrate job (adapters/db/roles.ts),
-- never from a migration: passwords are secrets of the install, not of the schema.

-- ---------------------------------------------------------------- roles

-- Roles are cluster-wide: migrations of other databases of the cluster may create them at
-- the same moment, so losing that race is fine.
do $$
declare
  r text;
begin
  foreach r in array array['selfdevop_api', 'selfdevop_queue', 'selfdevop_definer',
    'selfdevop_migrator']
  loop
    if not exists (select 1 from pg_catalog.pg_roles where rolname = r) then
      begin
        execute format('create role %I nologin nobypassrls', r);
      exception when duplicate_object or unique_violation then
        null;
      end;
    end if;
  end loop;
end
$$;

do $$
begin
  grant selfdevop_app to selfdevop_api;
exception when duplicate_object or unique_violation then
  null;
end
$$;

-- A non-superuser migrating role (Compose's `selfdevop`, RDS's master user) must be a
-- member of a role to give it objects (ALTER ... OWNER) and to replace its functions in
-- later migrations; superusers need nothing. Membership of selfdevop_definer does not let
-- the owner read across orgs: its policies below name current_user, which is
-- selfdevop_definer only inside its own functions.
do $$
declare
  r text;
begin
  if not (select rolsuper from pg_catalog.pg_roles where rolname = current_user) then
    foreach r in array array['selfdevop_definer', 'selfdevop_migrator', 'selfdevop_queue']
    loop
      begin
        execute format('grant %I to %I', r, current_user);
      exception when duplicate_object or unique_violation then
        null;
      end;
    end loop;
  end if;
end
$$;

-- ---------------------------------------------------------------- forced row-level security

-- FORCE: the tables' owner is subject to the policies too, so a connection that reaches
-- the data as the owner (a misconfigured DATABASE_URL, a backup tool run by hand) still
-- sees no org unless one is set. Superusers bypass RLS whatever this says; only
-- non-superuser owners (Compose, RDS) are confined, which is where it matters.
--
-- `migrations`: the migrator (adapters/db/migrator.ts) sets selfdevop.migrating for each
-- migration's transaction, so a migration that reads or rewrites tenant rows sees them
-- all. The policy is for members of selfdevop_migrator only (the migrating role); the
-- application roles are not members, so setting the variable gets them nothing.
do $$
declare
  t text;
begin
  for t in
    select c.relname from pg_catalog.pg_class c
    join pg_catalog.pg_namespace n on n.oid = c.relnamespace and n.nspname = 'public'
    where c.relkind in ('r', 'p') and (c.relname = 'orgs' or exists (
      select 1 from pg_catalog.pg_attribute a
      where a.attrelid = c.oid and a.attname = 'org_id' and not a.attisdropped))
  loop
    execute format('alter table %I enable row level security', t);
    execute format('alter table %I force row level security', t);
    execute format('drop policy if exists migrations on %I', t);
    execute format(
      'create policy migrations on %I to selfdevop_migrator '
      'using (current_setting(''selfdevop.migrating'', true) = ''on'') '
      'with check (current_setting(''selfdevop.migrating'', true) = ''on'')', t);
  end loop;
end
$$;

-- ---------------------------------------------------------------- the definer's reads

-- What the cross-org lookups read, and nothing else. Each policy holds only while
-- current_user is selfdevop_definer, i.e. inside one of its SECURITY DEFINER functions.
grant usage on schema public to selfdevop_definer;
-- ALTER FUNCTION ... OWNER needs the new owner to be allowed to create in the schema; the
-- role cannot log in and only the migrating role is a member.
grant create on schema public to selfdevop_definer;
grant select on users, memberships, api_keys, domains, releases, release_steps, services,
  environments to selfdevop_definer;
grant insert on users to selfdevop_definer;

do $$
declare
  t text;
begin
  foreach t in array array['memberships', 'api_keys', 'domains', 'releases', 'release_steps',
    'services', 'environments']
  loop
    execute format('drop policy if exists cross_org_lookups on %I', t);
    execute format(
      'create policy cross_org_lookups on %I for select to selfdevop_definer '
      'using (current_user = ''selfdevop_definer'')', t);
  end loop;
end
$$;

-- ---------------------------------------------------------------- users behind functions

-- The app role no longer reads or writes users: sign-up, log-in and the session's user
-- come through these, each returning what its caller needs. Log-in needs a hash to
-- compare, so selfdevop_user_by_email returns the hash of the one email asked for.
revoke all on users from selfdevop_app;

create or replace function selfdevop_user_by_email(p_email text)
returns table (id text, email text, password_hash text, created_at timestamptz)
language sql stable security definer
set search_path = public, pg_temp
as $$
  select u.id, u.email, u.password_hash, u.created_at
  from public.users u
  where u.email = lower(p_email)
$$;

create or replace function selfdevop_user_by_id(p_id text)
returns table (id text, email text, created_at timestamptz)
language sql stable security definer
set search_path = public, pg_temp
as $$
  select u.id, u.email, u.created_at
  from public.users u
  where u.id = p_id
$$;

-- A duplicate email fails with users_email_key, which the store maps to a conflict.
create or replace function selfdevop_create_user(p_id text, p_email text, p_password_hash text,
  p_created_at timestamptz)
returns void
language sql volatile security definer
set search_path = public, pg_temp
as $$
  insert into public.users (id, email, password_hash, created_at)
  values (p_id, lower(p_email), p_password_hash, p_created_at)
$$;

-- The members of the org the transaction is confined to (app.org_id), for member lists.
create or replace function selfdevop_org_users()
returns table (id text, email text, created_at timestamptz)
language sql stable security definer
set search_path = public, pg_temp
as $$
  select u.id, u.email, u.created_at
  from public.users u
  join public.memberships m on m.user_id = u.id
  where m.org_id = current_setting('app.org_id', true)
  order by m.created_at, u.id
$$;

-- On a fresh database this migration runs before 0009, which replaces this function with
-- the same body; made here first so that it already has its owner (below), which a
-- replace keeps.
create or replace function selfdevop_jobless_releases(p_before timestamptz, p_limit integer)
returns table (id text, org_id text, service_id text, environment_id text, created_at timestamptz)
language sql stable security definer
set search_path = public, pg_temp
as $$
  select r.id, r.org_id, r.service_id, r.environment_id, r.created_at
  from public.releases r
  where r.status = 'queued'
    and r.created_at < p_before
    and not exists (
      select 1 from public.release_steps s where s.org_id = r.org_id and s.release_id = r.id)
  order by r.created_at, r.id
  limit least(greatest(p_limit, 0), 1000)
$$;

-- Every SECURITY DEFINER lookup is owned by selfdevop_definer: with RLS forced, one the
-- owner kept would see no org at all (or every table, as a superuser).
do $$
declare
  f regprocedure;
begin
  for f in
    select p.oid::regprocedure from pg_catalog.pg_proc p
    join pg_catalog.pg_namespace n on n.oid = p.pronamespace and n.nspname = 'public'
    where p.proname like 'selfdevop\_%' and p.prosecdef
  loop
    execute format('alter function %s owner to selfdevop_definer', f);
    execute format('revoke all on function %s from public', f);
    execute format('grant execute on function %s to selfdevop_app', f);
  end loop;
end
$$;

-- ---------------------------------------------------------------- pg-boss's own schema

-- pg-boss creates its schema, tables and per-queue partitions itself, which takes owning
-- them; selfdevop_queue owns them and nothing else. A database where pg-boss already ran
-- as the owner hands its objects over (tables bring their indexes, owned sequences and
-- row types along).
do $$
begin
  execute format('grant create on database %I to selfdevop_queue', current_database());
end
$$;

do $$
declare
  o record;
begin
  if pg_catalog.to_regnamespace('pgboss') is null then
    return;
  end if;
  alter schema pgboss owner to selfdevop_queue;
  for o in
    select c.relname, c.relkind from pg_catalog.pg_class c
    where c.relnamespace = 'pgboss'::regnamespace and c.relkind in ('r', 'p', 'v', 'm', 'S', 'f')
      and not (c.relkind = 'S' and exists (
        select 1 from pg_catalog.pg_depend d
        where d.classid = 'pg_class'::regclass and d.objid = c.oid and d.deptype in ('a', 'i')))
  loop
    execute format('alter %s pgboss.%I owner to selfdevop_queue',
      case o.relkind when 'S' then 'sequence' when 'v' then 'view'
        when 'm' then 'materialized view' when 'f' then 'foreign table' else 'table' end,
      o.relname);
  end loop;
  for o in
    select p.oid::regprocedure as f, p.prokind from pg_catalog.pg_proc p
    where p.pronamespace = 'pgboss'::regnamespace
  loop
    execute format('alter %s %s owner to selfdevop_queue',
      case o.prokind when 'p' then 'procedure' when 'a' then 'aggregate' else 'function' end, o.f);
  end loop;
  for o in
    select t.oid::regtype as t, t.typtype from pg_catalog.pg_type t
    where t.typnamespace = 'pgboss'::regnamespace and t.typtype in ('e', 'd')
  loop
    execute format('alter %s %s owner to selfdevop_queue',
      case o.typtype when 'd' then 'domain' else 'type' end, o.t);
  end loop;
end
$$;

-- Only to give pg-boss's objects away; the migrating role keeps no part of the queue's.
do $$
begin
  if not (select rolsuper from pg_catalog.pg_roles where rolname = current_user) then
    execute format('revoke selfdevop_queue from %I', current_user);
  end if;
end
$$;
