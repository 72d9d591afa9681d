import { randomUUID } from 'node:crypto';
import { SignJWT, decodeProtectedHeader, jwtVerify } from 'jose';
import { Unauthenticated } from '../../core/errors.ts';
import type { AuthProvider, Clock, SessionClaims } from '../../core/ports.ts';
import { BcryptPool } from './bcrypt-pool.ts';
import { assertHashablePassword, assertUserId, isVerifiablePassword } from './password-rules.ts';

export const defaultSessionTtlSeconds = 12 * 60 * 60;
export const defaultBcryptCost = 12;
export const sessionIssuer = 'selfdevop';
export const sessionAudience = 'selfdevop-api';

const algorithm = 'HS256';
const minSecretBytes = 32;

export interface LocalJwtAuthOptions {
  /** The value of JWT_SECRET: at least 32 bytes. */
  jwtSecret: string;
  /** Session lifetime; 12 hours unless set. */
  ttlSeconds?: number;
  /** bcrypt cost factor (4–31); 12 unless set. */
  bcryptCost?: number;
  /** Time source for iat/exp and expiry checks; the system clock unless set. */
  clock?: Pick<Clock, 'now'>;
  /** Where bcrypt runs; one pool per process is enough, made on first use unless set. */
  bcrypt?: BcryptPool;
}

let sharedPool: BcryptPool | null = null;

const systemTime: Pick<Clock, 'now'> = { now: () => new Date() };

function joseCode(e: unknown): string | undefined {
  const code = (e as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

function headerAlg(token: string): string {
  try {
    return String(decodeProtectedHeader(token).alg);
  } catch {
    return 'unknown';
  }
}

/**
 * Self-hosted auth: bcrypt password hashes and HS256 session JWTs signed with JWT_SECRET
 * (iss `selfdevop`, aud `selfdevop-api`, sub = user id).
 *
 * @example new LocalJwtAuth({ jwtSecret: config.JWT_SECRET })
 */
export class LocalJwtAuth implements AuthProvider {
  readonly ttlSeconds: number;
  readonly bcryptCost: number;
  private readonly secret: Uint8Array;
  private readonly clock: Pick<Clock, 'now'>;
  private readonly pool: BcryptPool | undefined;

  constructor(options: LocalJwtAuthOptions) {
    const secret = typeof options.jwtSecret === 'string' ? options.jwtSecret : '';
    const bytes = Buffer.byteLength(secret, 'utf8');
    if (bytes < minSecretBytes) {
      throw new Error(
        `JWT_SECRET must be at least ${minSecretBytes} bytes, got ${bytes}; generate one with: openssl rand -base64 48`,
      );
    }
    const ttl = options.ttlSeconds ?? defaultSessionTtlSeconds;
    if (!Number.isInteger(ttl) || ttl <= 0)
      throw new Error(`session ttlSeconds must be a positive integer, got ${ttl}`);
    const cost = options.bcryptCost ?? defaultBcryptCost;
    if (!Number.isInteger(cost) || cost < 4 || cost > 31)
      throw new Error(`bcryptCost must be an integer from 4 to 31, got ${cost}`);
    this.secret = new TextEncoder().encode(secret);
    this.ttlSeconds = ttl;
    this.bcryptCost = cost;
    this.clock = options.clock ?? systemTime;
    this.pool = options.bcrypt;
  }

  private bcrypt(): BcryptPool {
    return this.pool ?? (sharedPool ??= new BcryptPool());
  }

  async issueSession(userId: string): Promise<string> {
    assertUserId(userId);
    const issuedAt = Math.floor(this.clock.now().getTime() / 1000);
    return (
      new SignJWT({})
        .setProtectedHeader({ alg: algorithm, typ: 'JWT' })
        .setSubject(userId)
        // The session's id: logout revokes it by this.
        .setJti(randomUUID())
        .setIssuer(sessionIssuer)
        .setAudience(sessionAudience)
        .setIssuedAt(issuedAt)
        .setExpirationTime(issuedAt + this.ttlSeconds)
        .sign(this.secret)
    );
  }

  async verifySession(token: string): Promise<SessionClaims> {
    if (typeof token !== 'string' || token.trim() === '')
      throw new Unauthenticated('session token is missing');
    let payload;
    try {
      ({ payload } = await jwtVerify(token, this.secret, {
        // Only HS256: refuses `none`, other HMAC strengths and public-key algorithms
        // whose "public key" an attacker could pass off as our secret.
        algorithms: [algorithm],
        issuer: sessionIssuer,
        audience: sessionAudience,
        requiredClaims: ['sub', 'iat', 'exp'],
        currentDate: this.clock.now(),
      }));
    } catch (e) {
      throw this.reasonFor(e, token);
    }
    if (typeof payload.sub !== 'string' || payload.sub === '' || typeof payload.exp !== 'number') {
      throw new Unauthenticated('session token has no user');
    }
    return {
      userId: payload.sub,
      expiresAt: new Date(payload.exp * 1000),
      ...(typeof payload.jti === 'string' && payload.jti !== '' ? { sessionId: payload.jti } : {}),
    };
  }

  async hashPassword(password: string): Promise<string> {
    assertHashablePassword(password);
    return this.bcrypt().hash(password, this.bcryptCost);
  }

  async verifyPassword(password: string, hash: string): Promise<boolean> {
    if (!isVerifiablePassword(password) || typeof hash !== 'string') return false;
    return this.bcrypt().compare(password, hash);
  }

  private reasonFor(e: unknown, token: string): Unauthenticated {
    switch (joseCode(e)) {
      case 'ERR_JWT_EXPIRED':
        return new Unauthenticated('session token has expired');
      case 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED':
        return new Unauthenticated('session token signature is invalid');
      case 'ERR_JOSE_ALG_NOT_ALLOWED':
      case 'ERR_JOSE_NOT_SUPPORTED':
        return new Unauthenticated(
          `session token algorithm ${headerAlg(token)} is not accepted (only ${algorithm})`,
        );
      case 'ERR_JWT_CLAIM_VALIDATION_FAILED': {
        const claim = (e as { claim?: unknown }).claim;
        return new Unauthenticated(`session token ${String(claim)} claim is missing or invalid`);
      }
      default:
        return new Unauthenticated('session token is malformed');
    }
  }
}
