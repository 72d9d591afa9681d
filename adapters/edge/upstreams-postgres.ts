import type { UpstreamRegistry } from '../../core/ports.ts';
import type { SqlClient } from '../db/postgres.ts';

/**
 * Upstreams in PostgreSQL, so every process sees the same answer: the API writes one when
 * it rolls back, the worker when it deploys, and the DNS server (in the worker) reads.
 */
export class PostgresUpstreamRegistry implements UpstreamRegistry {
  private readonly db: SqlClient;

  constructor(db: SqlClient) {
    this.db = db;
  }

  async set(label: string, upstreams: string[]): Promise<void> {
    await this.db.query(
      `insert into edge_upstreams (label, upstreams, updated_at) values ($1, $2, now())
       on conflict (label) do update set upstreams = excluded.upstreams, updated_at = now()`,
      [label, upstreams],
    );
  }

  async get(label: string): Promise<string[] | null> {
    const r = await this.db.query<{ upstreams: string[] }>(
      'select upstreams from edge_upstreams where label = $1',
      [label],
    );
    return r.rows[0]?.upstreams ?? null;
  }

  async remove(label: string): Promise<void> {
    await this.db.query('delete from edge_upstreams where label = $1', [label]);
  }
}
