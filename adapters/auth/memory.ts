import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { Unauthenticated } from '../../core/errors.ts';
import type { AuthProvider, Clock, SessionClaims } from '../../core/ports.ts';
import { assertHashablePassword, assertUserId, isVerifiablePassword } from './password-rules.ts';

const defaultTtlSeconds = 12 * 60 * 60;

function digest(salt: string, password: string): string {
  return createHash('sha256').update(`${salt}:${password}`).digest('base64url');
}

/**
 * Auth for tests: opaque random session tokens kept in a Map, expiring on the injected
 * clock, and fast salted SHA-256 "hashes" (`plain:<salt>:<digest>`) instead of bcrypt.
 */
export class MemoryAuth implements AuthProvider {
  readonly ttlSeconds: number;
  private readonly clock: Pick<Clock, 'now'>;
  private readonly sessions = new Map<string, SessionClaims>();

  constructor(options: { clock: Pick<Clock, 'now'>; ttlSeconds?: number }) {
    this.clock = options.clock;
    this.ttlSeconds = options.ttlSeconds ?? defaultTtlSeconds;
  }

  async issueSession(userId: string): Promise<string> {
    assertUserId(userId);
    const token = `mem_${randomBytes(24).toString('base64url')}`;
    this.sessions.set(token, {
      userId,
      expiresAt: new Date(this.clock.now().getTime() + this.ttlSeconds * 1000),
    });
    return token;
  }

  async verifySession(token: string): Promise<SessionClaims> {
    if (typeof token !== 'string' || token.trim() === '')
      throw new Unauthenticated('session token is missing');
    const session = this.sessions.get(token);
    if (!session) throw new Unauthenticated('session token is malformed or unknown');
    // Expired sessions stay in the map so a retry keeps saying "expired", as a JWT would.
    if (this.clock.now().getTime() >= session.expiresAt.getTime()) {
      throw new Unauthenticated('session token has expired');
    }
    return { userId: session.userId, expiresAt: new Date(session.expiresAt) };
  }

  async hashPassword(password: string): Promise<string> {
    assertHashablePassword(password);
    const salt = randomBytes(9).toString('base64url');
    return `plain:${salt}:${digest(salt, password)}`;
  }

  async verifyPassword(password: string, hash: string): Promise<boolean> {
    if (!isVerifiablePassword(password) || typeof hash !== 'string') return false;
    const [scheme, salt, expected, ...rest] = hash.split(':');
    if (scheme !== 'plain' || salt === undefined || expected === undefined || rest.length > 0)
      return false;
    const actual = Buffer.from(digest(salt, password));
    const wanted = Buffer.from(expected);
    return actual.length === wanted.length && timingSafeEqual(actual, wanted);
  }
}
