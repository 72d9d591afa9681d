-- Teams (issue 12): invitations to join an org, by email, single use and expiring.

-- Only the token's SHA-256 is stored: whoever reads this table cannot accept an invite.
create table if not exists invites (
  id text collate "C" primary key,
  org_id text not null references orgs (id),
  email text not null,
  role text not null check (role in ('owner', 'admin', 'deployer', 'viewer')),
  token_hash text not null,
  invited_by text not null,
  created_at timestamptz not null,
  expires_at timestamptz not null,
  accepted_at timestamptz,
  accepted_by text references users (id),
  revoked_at timestamptz,
  constraint invites_token_hash_key unique (token_hash),
  constraint invites_email_lowercase check (email = lower(email)),
  constraint invites_used_once check (accepted_at is null or revoked_at is null)
);
create index if not exists invites_org_idx on invites (org_id, id);

-- FORCE: the table's owner is confined too, so the only way across orgs is the lookup
-- below, and only for the one row whose token hash the caller holds.
alter table invites enable row level security;
alter table invites force row level security;
drop policy if exists org_isolation on invites;
create policy org_isolation on invites
  using (org_id = current_setting('app.org_id', true))
  with check (org_id = current_setting('app.org_id', true));

-- Accepting happens before the org is known. FORCE binds the SECURITY DEFINER function
-- (run as the owner) too, so the owner alone may also see the one row whose hash the
-- function names; the application role may not use this policy directly.
do $$
begin
  execute 'drop policy if exists invite_by_token on invites';
  execute format(
    'create policy invite_by_token on invites for select to %I '
    'using (token_hash = current_setting(''app.invite_token_hash'', true))', current_user);
end
$$;

create or replace function selfdevop_invite_by_token_hash(p_token_hash text)
returns table (id text, org_id text, email text, role text, invited_by text,
  created_at timestamptz, expires_at timestamptz, accepted_at timestamptz,
  accepted_by text, revoked_at timestamptz)
language plpgsql volatile security definer
set search_path = public, pg_temp
as $$
begin
  perform set_config('app.invite_token_hash', p_token_hash, true);
  return query
    select i.id, i.org_id, i.email, i.role, i.invited_by, i.created_at, i.expires_at,
      i.accepted_at, i.accepted_by, i.revoked_at
    from public.invites i
    where i.token_hash = p_token_hash;
end
$$;

revoke all on function selfdevop_invite_by_token_hash(text) from public;
grant execute on function selfdevop_invite_by_token_hash(text) to selfdevop_app;
grant select, insert, update, delete on invites to selfdevop_app;
