-- The ask gate and the domain worker find a domain by hostname across orgs on every TLS
-- handshake Caddy asks about. 0007 replaced the unique index on lower(hostname) with a
-- partial one (held statuses only), which that look-up cannot use for pending claims, so it
-- scanned every domain: an index on the whole column again, not unique.
create index if not exists domains_hostname_idx on domains (lower(hostname));
