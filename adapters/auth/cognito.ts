/**
 * Cloud AuthProvider: verifies Cognito access tokens against the user pool's JWKS (fetched
 * with jose's createRemoteJWKSet, cached and refetched only for an unknown key id).
 * Cognito issues sessions, so this provider only verifies; the Cognito `sub` is mapped to
 * selfdevop's user id through an injected lookup, so the identity tables stay the same in
 * both modes.
 */
import { createRemoteJWKSet, decodeProtectedHeader, jwtVerify, type JWTPayload } from 'jose';
import { Unauthenticated, Unavailable } from '../../core/errors.ts';
import type { AuthProvider, Clock, SessionClaims } from '../../core/ports.ts';

/** Finds the selfdevop user for a Cognito subject (email when the token carries one); null when none. */
export type ResolveUserId = (sub: string, email?: string) => Promise<string | null>;

export interface CognitoAuthOptions {
  /** AWS region of the user pool (COGNITO_REGION), e.g. `eu-west-1`. */
  region: string;
  /** The user pool id (COGNITO_USER_POOL_ID), e.g. `eu-west-1_AbC123`. */
  userPoolId: string;
  /** The app client id (COGNITO_CLIENT_ID) access tokens must be issued to. */
  clientId: string;
  resolveUserId: ResolveUserId;
  /** Where the signing keys are published; the pool's `/.well-known/jwks.json` unless set (tests). */
  jwksUrl?: string;
  /** How long fetched keys are trusted before a refetch; 10 minutes unless set. */
  jwksCacheMaxAgeMs?: number;
  /** Bound on one JWKS fetch; 5 s unless set. */
  jwksTimeoutMs?: number;
  clock?: Pick<Clock, 'now'>;
}

const algorithm = 'RS256';
const userPoolPattern = /^[\w-]+_[0-9a-zA-Z]+$/;
const regionPattern = /^[a-z]{2}(-[a-z]+)+-\d$/;

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

/** The `iss` Cognito puts in tokens of a user pool. */
export function cognitoIssuer(region: string, userPoolId: string): string {
  return `https://cognito-idp.${region}.amazonaws.com/${userPoolId}`;
}

/**
 * @example new CognitoAuth({ region, userPoolId, clientId, resolveUserId: (sub, email) => users.bySub(sub, email) })
 */
export class CognitoAuth implements AuthProvider {
  readonly issuer: string;
  private readonly clientId: string;
  private readonly resolveUserId: ResolveUserId;
  private readonly jwks: ReturnType<typeof createRemoteJWKSet>;
  private readonly clock: Pick<Clock, 'now'>;

  constructor(options: CognitoAuthOptions) {
    if (!regionPattern.test(options.region ?? ''))
      throw new Error(
        `COGNITO_REGION must be an AWS region such as eu-west-1, got ${JSON.stringify(options.region)}`,
      );
    if (!userPoolPattern.test(options.userPoolId ?? ''))
      throw new Error(
        `COGNITO_USER_POOL_ID must look like eu-west-1_AbC123, got ${JSON.stringify(options.userPoolId)}`,
      );
    if (typeof options.clientId !== 'string' || !/^[\w+]+$/.test(options.clientId))
      throw new Error(
        `COGNITO_CLIENT_ID must be an app client id, got ${JSON.stringify(options.clientId)}`,
      );
    this.issuer = cognitoIssuer(options.region, options.userPoolId);
    this.clientId = options.clientId;
    this.resolveUserId = options.resolveUserId;
    this.clock = options.clock ?? { now: () => new Date() };
    this.jwks = createRemoteJWKSet(
      new URL(options.jwksUrl ?? `${this.issuer}/.well-known/jwks.json`),
      {
        cacheMaxAge: options.jwksCacheMaxAgeMs ?? 10 * 60_000,
        timeoutDuration: options.jwksTimeoutMs ?? 5_000,
      },
    );
  }

  async verifySession(token: string): Promise<SessionClaims> {
    if (typeof token !== 'string' || token.trim() === '')
      throw new Unauthenticated('session token is missing');
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, this.jwks, {
        // RS256 only: Cognito signs with it, and refusing the rest rules out `none` and
        // HMAC tokens keyed with a public key.
        algorithms: [algorithm],
        issuer: this.issuer,
        requiredClaims: ['sub', 'exp', 'iat', 'token_use', 'client_id'],
        currentDate: this.clock.now(),
      }));
    } catch (e) {
      throw this.reasonFor(e, token);
    }
    // Id tokens carry `aud` instead of `client_id` and are meant for the client, not the API.
    if (payload.token_use !== 'access')
      throw new Unauthenticated(
        `session token is a Cognito ${String(payload.token_use)} token, not an access token`,
      );
    if (payload.client_id !== this.clientId)
      throw new Unauthenticated('session token was issued to another app client');
    if (typeof payload.sub !== 'string' || payload.sub === '' || typeof payload.exp !== 'number')
      throw new Unauthenticated('session token has no user');
    const email = typeof payload.email === 'string' ? payload.email : undefined;
    const userId = await this.resolveUserId(payload.sub, email);
    if (!userId) throw new Unauthenticated('session token belongs to no selfdevop user');
    return {
      userId,
      expiresAt: new Date(payload.exp * 1000),
      // Cognito access tokens carry a jti: POST /api/auth/logout revokes the token by it.
      ...(typeof payload.jti === 'string' && payload.jti !== '' ? { sessionId: payload.jti } : {}),
    };
  }

  private reasonFor(e: unknown, token: string): Error {
    switch (joseCode(e)) {
      case 'ERR_JWT_EXPIRED':
        return new Unauthenticated('session token has expired');
      case 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED':
        return new Unauthenticated('session token signature is invalid');
      case 'ERR_JWKS_NO_MATCHING_KEY':
      case 'ERR_JWKS_MULTIPLE_MATCHING_KEYS':
        return new Unauthenticated(
          'session token was signed with a key the user pool does not publish',
        );
      case 'ERR_JOSE_ALG_NOT_ALLOWED':
      case 'ERR_JOSE_NOT_SUPPORTED':
        return new Unauthenticated(
          `session token algorithm ${headerAlg(token)} is not accepted (only ${algorithm})`,
        );
      case 'ERR_JWT_CLAIM_VALIDATION_FAILED': {
        const claim = (e as { claim?: unknown }).claim;
        return new Unauthenticated(`session token ${String(claim)} claim is missing or invalid`);
      }
      case 'ERR_JWKS_TIMEOUT':
        return new Unavailable('auth', 'the user pool keys did not load in time');
      case 'ERR_JWKS_INVALID':
      case 'ERR_JOSE_GENERIC':
        return new Unavailable(
          'auth',
          `the user pool keys cannot be read: ${(e as Error).message}`,
        );
      case 'ERR_JWS_INVALID':
      case 'ERR_JWT_INVALID':
        return new Unauthenticated('session token is malformed');
      default:
        // Not a jose verdict on the token: the keys could not be fetched at all.
        if (
          joseCode(e) === undefined &&
          e instanceof TypeError &&
          !/Invalid Compact JWS/.test(e.message)
        )
          return new Unavailable('auth', `the user pool keys cannot be fetched: ${e.message}`);
        return new Unauthenticated('session token is malformed');
    }
  }
}
