-- The edge's DNS server keeps every route's upstreams in memory (adapters/edge/upstream-dns.ts)
-- and hears each write here, from whichever process made it, so answering Caddy's SRV
-- questions costs no database round trip (issue 14: upstream DNS p99 within 2 ms). A NOTIFY
-- is delivered after its transaction commits, when `get` already sees the write.
create or replace function edge_upstreams_notify() returns trigger
language plpgsql as $$
begin
  if tg_op = 'DELETE' then
    perform pg_notify('edge_upstreams', old.label);
  else
    perform pg_notify('edge_upstreams', new.label);
  end if;
  return null;
end $$;

drop trigger if exists edge_upstreams_notify on edge_upstreams;
create trigger edge_upstreams_notify after insert or update or delete on edge_upstreams
  for each row execute function edge_upstreams_notify();
