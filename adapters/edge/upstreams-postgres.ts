import type { UpstreamFeed, UpstreamRegistry } from '../../core/ports.ts';
import type { Database, SqlClient } from '../db/postgres.ts';

/** The channel migrations/0042's trigger notifies with a route's label after each write. */
const channel = 'edge_upstreams';

/**
 * Upstreams in PostgreSQL, so every process sees the same answer: the API writes one when
 * it rolls back, the worker when it deploys, and the DNS server (in the worker) reads a
 * mirror of them it keeps fresh through `watch`.
 */
export class PostgresUpstreamRegistry implements UpstreamRegistry, UpstreamFeed {
  private readonly db: SqlClient & Partial<Pick<Database, 'listen'>>;

  constructor(db: SqlClient & Partial<Pick<Database, 'listen'>>) {
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

  async all(): Promise<Map<string, string[]>> {
    const r = await this.db.query<{ label: string; upstreams: string[] }>(
      'select label, upstreams from edge_upstreams',
    );
    return new Map(r.rows.map((row) => [row.label, row.upstreams]));
  }

  async watch(onChange: (label: string | null) => void): Promise<{ close(): Promise<void> }> {
    if (!this.db.listen) throw new Error('this database client cannot LISTEN (a pool can)');
    return this.db.listen(
      channel,
      (label) => onChange(label),
      () => onChange(null),
    );
  }
}
