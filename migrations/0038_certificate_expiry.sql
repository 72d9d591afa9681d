-- Certificate expiry (issue 16): the certificate the edge serves for an active custom domain,
-- as the domain worker last read it (on activation and on each periodic check), so the
-- `cert_expiring` rule has a series and the domain page shows when it runs out. A renewal
-- moves `cert_not_after` forward; the `domain.cert_active` audit row keeps only the first.
alter table domains add column if not exists cert_not_after timestamptz;
alter table domains add column if not exists cert_issuer text;
