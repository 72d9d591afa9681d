-- Issue 16, step 1: notification channels (with their held events and deliveries) and the
-- edge-rebuild log for the edge status page.

-- Where an org hears about its releases and domains besides signed webhooks: a Slack
-- incoming webhook (its URL is a secret, sealed by the KeyVault) or an e-mail address.
-- Events wait in notification_held until their channel's grouping window closes, so a storm
-- of failures is one message per channel; notification_deliveries is each attempt to send
-- a grouped message, the newest 100 per channel kept (the store prunes on write).
create table if not exists notification_channels (
  id text collate "C" primary key,
  org_id text not null references orgs (id),
  kind text not null check (kind in ('slack', 'email')),
  name text not null,
  address text,
  sealed_url text,
  target text not null,
  events text[] not null,
  group_window_seconds integer not null check (group_window_seconds between 0 and 3600),
  created_at timestamptz not null,
  constraint notification_channels_org_id_key unique (org_id, id),
  constraint notification_channels_target_check check (
    (kind = 'slack' and sealed_url is not null and address is null)
    or (kind = 'email' and address is not null and sealed_url is null))
);

create table if not exists notification_held (
  id text collate "C" primary key,
  org_id text not null references orgs (id),
  channel_id text not null,
  event_id text not null,
  event_type text not null,
  data jsonb not null default '{}'::jsonb,
  held_at timestamptz not null,
  constraint notification_held_event_key unique (org_id, channel_id, event_id),
  constraint notification_held_channel_fkey foreign key (org_id, channel_id)
    references notification_channels (org_id, id) on delete cascade
);

create table if not exists notification_deliveries (
  id text collate "C" primary key,
  org_id text not null references orgs (id),
  channel_id text not null,
  event_type text not null,
  events integer not null check (events >= 1),
  first_event_id text not null,
  attempt integer not null check (attempt >= 1),
  delivered boolean not null,
  error text,
  created_at timestamptz not null,
  constraint notification_deliveries_channel_fkey foreign key (org_id, channel_id)
    references notification_channels (org_id, id) on delete cascade
);
create index if not exists notification_deliveries_org_channel_idx
  on notification_deliveries (org_id, channel_id, id);

alter table notification_channels enable row level security;
alter table notification_held enable row level security;
alter table notification_deliveries enable row level security;
drop policy if exists org_isolation on notification_channels;
create policy org_isolation on notification_channels
  using (org_id = current_setting('app.org_id', true))
  with check (org_id = current_setting('app.org_id', true));
drop policy if exists org_isolation on notification_held;
create policy org_isolation on notification_held
  using (org_id = current_setting('app.org_id', true))
  with check (org_id = current_setting('app.org_id', true));
drop policy if exists org_isolation on notification_deliveries;
create policy org_isolation on notification_deliveries
  using (org_id = current_setting('app.org_id', true))
  with check (org_id = current_setting('app.org_id', true));

grant select, insert, update, delete on notification_channels to selfdevop_app;
grant select, insert, update, delete on notification_held to selfdevop_app;
grant select, insert, update, delete on notification_deliveries to selfdevop_app;

-- When the edge was last compared with the database and what it had lost (the edge-rebuild
-- job, every minute), for the edge status page. One row for the whole install: it holds no
-- tenant's data (counts and a time), so it has no org and no row-level security.
create table if not exists edge_rebuilds (
  id integer primary key check (id = 1),
  at timestamptz not null,
  restored_routes integer not null,
  restored_hosts integer not null
);
grant select, insert, update on edge_rebuilds to selfdevop_app;
