-- Idempotency keys of queue sends, kept beyond SQS FIFO's 5-minute deduplication window so
-- a step retried hours later still sends its follow-up once. Infrastructure state, not a
-- tenant's (keys carry no org), so no org_id and no RLS; the scheduled maintenance job
-- deletes keys older than the retention period.
create table if not exists queue_idempotency (
  queue text collate "C" not null,
  key text collate "C" not null,
  claimed_at timestamptz not null default now(),
  primary key (queue, key)
);

-- Retention deletes by age: without this index every run scans the whole ledger.
create index if not exists queue_idempotency_claimed_at on queue_idempotency (claimed_at);

grant select, insert, delete on queue_idempotency to selfdevop_app;
