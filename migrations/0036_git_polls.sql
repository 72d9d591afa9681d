-- Polling a service's followed branch (issue 13), for git hosts that cannot send push
-- webhooks. The interval is part of the git source (`services.git->'pollIntervalSeconds'`,
-- absent = off); this table holds what the polls saw: when a poll last ran, the head it
-- found, its error, the release it started, and the commit it wants deployed while a
-- release is in flight (the push hooks' coalescing, for services without a push hook).
create table if not exists git_polls (
  org_id text not null references orgs (id),
  service_id text not null,
  polled_at timestamptz,
  sha text,
  error text,
  release_id text,
  wanted_sha text,
  primary key (org_id, service_id),
  constraint git_polls_service_fkey foreign key (service_id)
    references services (id) on delete cascade
);

alter table git_polls enable row level security;
alter table git_polls force row level security;
drop policy if exists org_isolation on git_polls;
create policy org_isolation on git_polls
  using (org_id = current_setting('app.org_id', true))
  with check (org_id = current_setting('app.org_id', true));
grant select, insert, update, delete on git_polls to selfdevop_app;

-- The `git-poll` job runs before any org is known: the services whose poll is due (never
-- polled, or polled at least their interval ago), ids only, the longest-waiting first. The
-- job then reads each service inside its org.
create or replace function selfdevop_git_polls_due(p_now timestamptz, p_limit integer)
returns table (org_id text, service_id text)
language sql stable security definer
set search_path = public, pg_temp
as $$
  select s.org_id, s.id
  from public.services s
  left join public.git_polls g on g.org_id = s.org_id and g.service_id = s.id
  where s.git is not null
    and jsonb_typeof(s.git->'pollIntervalSeconds') = 'number'
    and (g.polled_at is null
      or g.polled_at + make_interval(secs => (s.git->>'pollIntervalSeconds')::numeric) <= p_now)
  order by g.polled_at nulls first, s.org_id, s.id
  limit least(greatest(p_limit, 0), 1000)
$$;
revoke all on function selfdevop_git_polls_due(timestamptz, integer) from public;
grant execute on function selfdevop_git_polls_due(timestamptz, integer) to selfdevop_app;
