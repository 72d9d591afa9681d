-- Each attempt to deliver an event (or a test event) to a webhook, so its owner can see in
-- the API, the CLI and the dashboard whether their receiver gets them, and what it
-- answered. Only the newest attempts of each webhook are kept (the store prunes on write),
-- so the table stays small however chatty an org is. A webhook's deliveries go with it.
create table if not exists webhook_deliveries (
  id text collate "C" primary key,
  org_id text not null references orgs (id),
  webhook_id text not null,
  event_id text not null,
  event_type text not null,
  attempt integer not null check (attempt >= 1),
  delivered boolean not null,
  response_status integer,
  error text,
  created_at timestamptz not null,
  constraint webhook_deliveries_webhook_fkey foreign key (org_id, webhook_id)
    references webhooks (org_id, id) on delete cascade
);
create index if not exists webhook_deliveries_org_webhook_idx
  on webhook_deliveries (org_id, webhook_id, id);

alter table webhook_deliveries enable row level security;
drop policy if exists org_isolation on webhook_deliveries;
create policy org_isolation on webhook_deliveries
  using (org_id = current_setting('app.org_id', true))
  with check (org_id = current_setting('app.org_id', true));

grant select, insert, update, delete on webhook_deliveries to selfdevop_app;
