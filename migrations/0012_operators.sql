-- The installation's operators (issue 12, hole 1): the platform's admins, which no org role
-- grants. Only an operator registers a local Docker socket or an engine on loopback, since
-- either is the control plane's own host. A self-hosted install's first account becomes one;
-- OPERATOR_EMAILS names others (configuration, not this table).
create table if not exists operators (
  user_id text collate "C" primary key references users (id) on delete cascade,
  granted_at timestamptz not null
);
grant select, insert on operators to selfdevop_app;

-- Whether the operator vouched for a node (a local socket, a loopback or private address).
-- Nodes from before this migration were registered without that check: they stay tenants'
-- until an operator registers them again, so none is trusted by default.
alter table nodes add column if not exists operator_registered boolean not null default false;

-- Upgrades: a self-hosted install made before operators existed adopts its first account as
-- its operator (the rule for new installs), and the nodes of the orgs that account owns as
-- vouched for; other orgs' nodes stay tenants' (they may be the very registrations this
-- closes). Called by the self-hosted processes at start, never by the cloud's, whose first
-- account is a tenant like any other. Does nothing once any operator exists.
create or replace function selfdevop_adopt_first_operator()
returns text
language plpgsql volatile security definer
set search_path = public, pg_temp
as $$
declare
  adopted text;
  org text;
begin
  -- The first-user signup's lock (0x5d00001): a signup racing this start waits for it.
  perform pg_advisory_xact_lock(97517569);
  if exists (select 1 from public.operators) then
    return null;
  end if;
  select u.id into adopted from public.users u order by u.created_at, u.id limit 1;
  if adopted is null then
    return null;
  end if;
  insert into public.operators (user_id, granted_at) values (adopted, now())
    on conflict (user_id) do nothing;
  -- Nodes are read and written one org at a time, under the tables' own org policy.
  for org in
    select m.org_id from public.memberships m where m.user_id = adopted and m.role = 'owner'
  loop
    perform set_config('app.org_id', org, true);
    update public.nodes set operator_registered = true where org_id = org;
  end loop;
  perform set_config('app.org_id', '', true);
  return adopted;
end
$$;
revoke all on function selfdevop_adopt_first_operator() from public;
grant execute on function selfdevop_adopt_first_operator() to selfdevop_app;

-- Owned by selfdevop_definer like every cross-org function (the migrator hands it over
-- after each run); allowed exactly what it does.
grant select, insert on operators to selfdevop_definer;
grant select, update (operator_registered) on nodes to selfdevop_definer;
