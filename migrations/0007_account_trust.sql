-- Account safeguards shared by every API process (issue 12, holes 4 and 10).

-- Failed-login and signup counters: fixed windows keyed by what is counted (an account and
-- source, a source). In the database so that several API processes count together.
create table if not exists auth_attempts (
  key text collate "C" primary key,
  window_start timestamptz not null,
  count integer not null
);
create index if not exists auth_attempts_window_start_idx on auth_attempts (window_start);

-- Sessions ended by logout before their expiry; a row outlives its token by nothing.
create table if not exists revoked_sessions (
  id text collate "C" primary key,
  expires_at timestamptz not null
);
create index if not exists revoked_sessions_expires_at_idx on revoked_sessions (expires_at);

grant select, insert, update, delete on auth_attempts, revoked_sessions to selfdevop_app;

-- Custom hostnames: only a verified domain holds a name across orgs, so an unproven claim
-- squats nothing; several orgs may claim one pending, and the first to verify wins. One
-- claim per org and name.
drop index if exists domains_hostname_key;
create unique index if not exists domains_hostname_held_key on domains (lower(hostname))
  where status in ('dns_verified', 'cert_pending', 'active');
create unique index if not exists domains_org_hostname_key on domains (org_id, lower(hostname));

-- Several rows may now share a hostname: the holder answers for it, else the oldest claim.
create or replace function selfdevop_domain_by_hostname(p_hostname text)
returns table (id text, org_id text, status text)
language sql stable security definer
set search_path = public, pg_temp
as $$
  select d.id, d.org_id, d.status
  from public.domains d
  where lower(d.hostname) = lower(p_hostname)
  order by (d.status in ('dns_verified', 'cert_pending', 'active')) desc, d.created_at, d.id
  limit 1
$$;
