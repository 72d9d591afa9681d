-- Node credentials: a remote Docker Engine is reached over TCP with a TLS client
-- certificate or over SSH with a private key. The material is sealed by the KeyVault
-- (AES-256-GCM self-hosted, KMS envelope in the cloud) under the context
-- `<org_id>:node:<node_id>:tls` or `…:ssh`, so a sealed value copied to another node, org or
-- column does not open. The API never returns it. `nodes` already carries org_id with its
-- row-level-security policy and the app role's grants (0001), which cover new columns.

alter table nodes add column if not exists sealed_tls text;
alter table nodes add column if not exists sealed_ssh text;
alter table nodes add column if not exists credentials_updated_at timestamptz;
