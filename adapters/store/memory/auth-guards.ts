import type { AuthGuardRepo } from '../../../core/ports.ts';

/** One process's counters and revoked sessions: enough where one process is the whole API. */
export function memoryAuthGuardRepo(): AuthGuardRepo {
  const attempts = new Map<string, { windowStart: Date; count: number }>();
  const revoked = new Map<string, Date>();
  return {
    countAttempt: async (key, windowMs, now) => {
      let w = attempts.get(key);
      if (!w || now.getTime() - w.windowStart.getTime() >= windowMs) {
        w = { windowStart: now, count: 0 };
        attempts.set(key, w);
        if (attempts.size > 100_000) {
          for (const [k, v] of attempts)
            if (now.getTime() - v.windowStart.getTime() >= windowMs) attempts.delete(k);
        }
      }
      w.count++;
      return { count: w.count, windowStart: w.windowStart };
    },
    clearAttempts: async (key) => {
      attempts.delete(key);
    },
    revokeSession: async (sessionId, expiresAt) => {
      revoked.set(sessionId, expiresAt);
    },
    isSessionRevoked: async (sessionId) => revoked.has(sessionId),
  };
}
