-- Push-to-deploy (issue 13, step 2): one webhook per service that a git host (GitHub,
-- GitLab, Gitea) calls on every push. The URL names the hook by a random id, and the
-- caller has no credentials but the signature, so the org is not known before the hook is
-- found: the security-definer look-up below finds the one row its id names.
create table if not exists push_hooks (
  id text collate "C" primary key,
  org_id text not null references orgs (id),
  service_id text not null,
  -- The signing secret, sealed by the KeyVault under `<org>:push-hook:<service>`; shown once.
  sealed_secret text not null,
  created_at timestamptz not null,
  -- The commit the latest push wants deployed while a release is in flight; taken (and
  -- cleared) when that release ends, so quick pushes deploy the latest, not each in turn.
  wanted_sha text,
  constraint push_hooks_service_unique unique (org_id, service_id),
  constraint push_hooks_service_fkey foreign key (service_id)
    references services (id) on delete cascade
);

alter table push_hooks enable row level security;
drop policy if exists org_isolation on push_hooks;
create policy org_isolation on push_hooks
  using (org_id = current_setting('app.org_id', true))
  with check (org_id = current_setting('app.org_id', true));
grant select, insert, update, delete on push_hooks to selfdevop_app;

create or replace function selfdevop_push_hook(p_id text)
returns table (id text, org_id text, service_id text, sealed_secret text, created_at timestamptz)
language sql stable security definer
set search_path = public, pg_temp
as $$
  select h.id, h.org_id, h.service_id, h.sealed_secret, h.created_at
  from public.push_hooks h where h.id = p_id
$$;
revoke all on function selfdevop_push_hook(text) from public;
grant execute on function selfdevop_push_hook(text) to selfdevop_app;

-- Delivery ids already acted on, so a replayed delivery is not a second deploy. Not FORCE
-- on push_hooks: the look-up function runs as the owner and must see across orgs.
create table if not exists push_deliveries (
  org_id text not null references orgs (id),
  hook_id text collate "C" not null references push_hooks (id) on delete cascade,
  delivery_id text not null,
  received_at timestamptz not null,
  primary key (hook_id, delivery_id)
);
alter table push_deliveries enable row level security;
drop policy if exists org_isolation on push_deliveries;
create policy org_isolation on push_deliveries
  using (org_id = current_setting('app.org_id', true))
  with check (org_id = current_setting('app.org_id', true));
grant select, insert, update, delete on push_deliveries to selfdevop_app;
