-- Builds from git (issue 13, step 1): a service may carry a git source beside or instead of
-- its image, and a release records the ref it was asked to build and the commit it built.

-- {url, ref, subdir, dockerfile, buildArgs}: read and written as one value, like health.
alter table services add column if not exists git jsonb;
alter table services add column if not exists git_credential_kind text
  check (git_credential_kind in ('token', 'deploy_key'));
-- The public half of a platform-made deploy key, shown so it can be added to the repository.
alter table services add column if not exists git_public_key text;
-- The token or private key, sealed by the KeyVault; never returned by the API.
alter table services add column if not exists sealed_git_credential text;
alter table services drop constraint if exists services_git_credential_check;
alter table services add constraint services_git_credential_check
  check ((git_credential_kind is null) = (sealed_git_credential is null));

-- The branch, tag or sha asked for; null for a release of an image.
alter table releases add column if not exists git_ref text;
