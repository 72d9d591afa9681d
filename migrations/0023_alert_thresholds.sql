-- Alerts (issue 16, metrics and alerts): a service's own threshold for an alert rule
-- (core/alerts/rules.ts names the rules and their ranges), replacing the rule's default.
create table if not exists alert_thresholds (
  org_id text not null references orgs (id),
  service_id text not null,
  rule text not null,
  value double precision not null,
  updated_at timestamptz not null,
  primary key (service_id, rule),
  constraint alert_thresholds_service_fkey foreign key (service_id)
    references services (id) on delete cascade
);

alter table alert_thresholds enable row level security;
alter table alert_thresholds force row level security;
drop policy if exists org_isolation on alert_thresholds;
create policy org_isolation on alert_thresholds
  using (org_id = current_setting('app.org_id', true))
  with check (org_id = current_setting('app.org_id', true));
grant select, insert, update, delete on alert_thresholds to selfdevop_app;

-- What the alert rules watch, across orgs: every live service environment (as
-- selfdevop_live_routes selects them) with its org, routed custom hosts and thresholds.
-- Exported by the metrics endpoint as bounded gauges (host → service, thresholds).
create or replace function selfdevop_alert_targets(p_release_statuses text[], p_domain_statuses text[])
returns table (org_id text, service_id text, service_name text, environment_id text,
  environment_name text, custom_hosts text[], thresholds jsonb)
language sql stable security definer
set search_path = public, pg_temp
as $$
  select s.org_id, s.id, s.name, e.id, e.name,
    coalesce((
      select array_agg(d.hostname order by d.created_at, d.id)
      from public.domains d
      where d.service_id = r.service_id and d.environment_id = r.environment_id
        and d.status = any(p_domain_statuses)
    ), '{}'),
    coalesce((
      select jsonb_object_agg(t.rule, t.value)
      from public.alert_thresholds t where t.service_id = s.id
    ), '{}'::jsonb)
  from (
    select distinct on (l.service_id, l.environment_id) l.service_id, l.environment_id, l.upstream
    from public.releases l
    where l.status = any(p_release_statuses)
    order by l.service_id, l.environment_id, l.id desc
  ) r
  join public.services s on s.id = r.service_id
  join public.environments e on e.id = r.environment_id
  where r.upstream is not null
  order by s.id, e.id
$$;
revoke all on function selfdevop_alert_targets(text[], text[]) from public;
grant execute on function selfdevop_alert_targets(text[], text[]) to selfdevop_app;
