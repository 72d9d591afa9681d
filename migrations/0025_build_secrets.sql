-- Builds from git, step 3 (issue 13): build-time secrets of a service, offered to its builds
-- as BuildKit secret mounts (`RUN --mount=type=secret,id=<id>`). One jsonb map of secret id
-- to its value sealed by the KeyVault under `<org>:build-secret:<service>:<id>`; write-only
-- (the API shows the ids only). A column of services, which already has forced RLS.
alter table services add column if not exists sealed_build_secrets jsonb not null default '{}'::jsonb;
