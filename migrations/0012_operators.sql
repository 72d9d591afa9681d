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
