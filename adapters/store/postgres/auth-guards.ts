import type { AuthGuardRepo } from '../../../core/ports.ts';
import type { SqlClient } from '../../db/postgres.ts';

/**
 * One statement per attempt: the upsert either starts a new window (the old one ended) or
 * adds one to it, so concurrent processes never lose a count.
 */
const countAttemptSql = `
insert into auth_attempts as a (key, window_start, count) values ($1, $2, 1)
on conflict (key) do update set
  window_start = case when a.window_start <= $2::timestamptz - $3::interval then $2 else a.window_start end,
  count = case when a.window_start <= $2::timestamptz - $3::interval then 1 else a.count + 1 end
returning count, window_start`;

/** Counters and revoked sessions in tables no org owns (migration 0007). */
export const pgAuthGuardRepo = (db: SqlClient): AuthGuardRepo => {
  let lastSweep = 0;
  // Expired rows are dead weight only; sweep them now and then, not on every call.
  const sweep = async (now: Date) => {
    if (now.getTime() - lastSweep < 60_000) return;
    lastSweep = now.getTime();
    await db.query(
      `delete from auth_attempts where window_start < $1::timestamptz - interval '1 day'`,
      [now],
    );
    await db.query('delete from revoked_sessions where expires_at < $1', [now]);
  };
  return {
    countAttempt: async (key, windowMs, now) => {
      await sweep(now);
      const r = await db.query<{ count: number; window_start: Date }>(countAttemptSql, [
        key,
        now,
        `${windowMs} milliseconds`,
      ]);
      const row = r.rows[0]!;
      return { count: Number(row.count), windowStart: new Date(row.window_start) };
    },
    clearAttempts: async (key) => {
      await db.query('delete from auth_attempts where key = $1', [key]);
    },
    revokeSession: async (sessionId, expiresAt) => {
      await db.query(
        'insert into revoked_sessions (id, expires_at) values ($1, $2) on conflict (id) do nothing',
        [sessionId, expiresAt],
      );
    },
    isSessionRevoked: async (sessionId) => {
      const r = await db.query('select 1 from revoked_sessions where id = $1', [sessionId]);
      return r.rows.length > 0;
    },
  };
};
