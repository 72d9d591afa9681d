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
