import type { SqlClient } from '../db/postgres.ts';
import type { IdempotencyLedger } from './sqs.ts';

/**
 * How long claimed keys are kept unless told otherwise: as long as the stack keeps
 * dead-lettered messages (14 days), so a message redriven from there sends nothing twice;
 * pg-boss, self-hosted, remembers a key for 7 days after its job finished.
 */
export const defaultIdempotencyRetentionDays = 14;

/**
 * The SQS queue's idempotency ledger in PostgreSQL (table `queue_idempotency`), shared by
 * every Lambda instance, so a key is claimed once however many containers send it and
 * however long after SQS's 5-minute deduplication window. The primary key decides: of
 * concurrent claims of one key, the insert that lands first wins and the others do nothing.
 * @example new SqsQueue({ ledger: new PostgresIdempotencyLedger(db) })
 */
export class PostgresIdempotencyLedger implements IdempotencyLedger {
  private readonly db: SqlClient;

  constructor(db: SqlClient) {
    this.db = db;
  }

  async claim(queue: string, key: string): Promise<boolean> {
    const r = await this.db.query(
      'insert into queue_idempotency (queue, key) values ($1, $2) on conflict (queue, key) do nothing',
      [queue, key],
    );
    return r.rowCount === 1;
  }

  async release(queue: string, key: string): Promise<void> {
    await this.db.query('delete from queue_idempotency where queue = $1 and key = $2', [
      queue,
      key,
    ]);
  }

  /** Forgets keys claimed more than `days` ago (the maintenance job); returns how many. */
  async prune(days: number = defaultIdempotencyRetentionDays): Promise<number> {
    if (!Number.isFinite(days) || days <= 0)
      throw new RangeError(`retention must be a positive number of days, got ${days}`);
    const r = await this.db.query(
      `delete from queue_idempotency where claimed_at < now() - make_interval(secs => $1::double precision * 86400)`,
      [days],
    );
    return r.rowCount;
  }
}
