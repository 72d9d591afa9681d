/**
 * Cloud HostedSignIn: Cognito's hosted UI as an OAuth 2.0 authorization server, for a
 * public app client (no secret, so PKCE is what binds a code to the browser that asked).
 * The token and revocation endpoints are called with fetch; the tokens it returns are not trusted here: the
 * dashboard has the API's AuthProvider verify them before it keeps any.
 */
import { Unauthenticated, Unavailable } from '../../core/errors.ts';
import type { HostedSignIn, SignInTokens } from '../../core/ports.ts';

export interface CognitoHostedUiOptions {
  /** The user pool domain as a URL, e.g. `https://selfdevop.auth.eu-west-1.amazoncognito.com`. */
  baseUrl: string;
  /** The app client id (COGNITO_CLIENT_ID); a public client, so there is no secret. */
  clientId: string;
  /** The registered callback URL, e.g. `https://console.example.com/dashboard/auth/callback`. */
  callbackUrl: string;
  /** The registered sign-out URL Cognito returns the browser to. */
  signedOutUrl: string;
  /** OAuth scopes; `openid email` unless set. */
  scopes?: string[];
  /** Bound on one token endpoint call; 10 s unless set. */
  timeoutMs?: number;
  /** Bound on the revocation call, which a user clicking "Log out" waits for; 3 s unless set. */
  revokeTimeoutMs?: number;
}

/** Cognito's OAuth 2.0 endpoints, with the name an error message gives each. */
const endpoints = {
  token: { path: '/oauth2/token', name: 'token endpoint' },
  revoke: { path: '/oauth2/revoke', name: 'revocation endpoint' },
} as const;

interface TokenReply {
  access_token?: unknown;
  refresh_token?: unknown;
  expires_in?: unknown;
  error?: unknown;
  error_description?: unknown;
}

/**
 * @example new CognitoHostedUi({ baseUrl: `https://${COGNITO_DOMAIN}`, clientId, callbackUrl, signedOutUrl })
 */
export class CognitoHostedUi implements HostedSignIn {
  readonly callbackUrl: string;
  private readonly base: URL;
  private readonly clientId: string;
  private readonly signedOutUrl: string;
  private readonly scopes: string[];
  private readonly timeoutMs: number;
  private readonly revokeTimeoutMs: number;

  constructor(options: CognitoHostedUiOptions) {
    this.base = new URL(options.baseUrl);
    this.clientId = options.clientId;
    this.callbackUrl = options.callbackUrl;
    this.signedOutUrl = options.signedOutUrl;
    this.scopes = options.scopes ?? ['openid', 'email'];
    this.timeoutMs = options.timeoutMs ?? 10_000;
    this.revokeTimeoutMs = options.revokeTimeoutMs ?? 3_000;
  }

  authorizeUrl(attempt: { state: string; codeChallenge: string }): string {
    const url = new URL('/oauth2/authorize', this.base);
    url.search = new URLSearchParams({
      response_type: 'code',
      client_id: this.clientId,
      redirect_uri: this.callbackUrl,
      scope: this.scopes.join(' '),
      state: attempt.state,
      code_challenge: attempt.codeChallenge,
      code_challenge_method: 'S256',
    }).toString();
    return url.toString();
  }

  logoutUrl(): string {
    const url = new URL('/logout', this.base);
    url.search = new URLSearchParams({
      client_id: this.clientId,
      logout_uri: this.signedOutUrl,
    }).toString();
    return url.toString();
  }

  exchangeCode(code: string, codeVerifier: string): Promise<SignInTokens> {
    return this.token('sign-in code', {
      grant_type: 'authorization_code',
      client_id: this.clientId,
      code,
      redirect_uri: this.callbackUrl,
      code_verifier: codeVerifier,
    });
  }

  refresh(refreshToken: string): Promise<SignInTokens> {
    return this.token('refresh token', {
      grant_type: 'refresh_token',
      client_id: this.clientId,
      refresh_token: refreshToken,
    });
  }

  async revoke(refreshToken: string): Promise<void> {
    const { res, reply } = await this.post(endpoints.revoke, 'sign-out', this.revokeTimeoutMs, {
      token: refreshToken,
      client_id: this.clientId,
    });
    // Cognito answers 200 with an empty body, also for a token already revoked or unknown
    // (RFC 7009); 400/401 say revocation is off for the client or the client is wrong,
    // which is no more use to a signing-out user than an outage.
    if (res.ok) return;
    throw new Unavailable(
      'sign-out',
      `the Cognito revocation endpoint answered ${oauthError(res, reply)}`,
    );
  }

  private async token(what: string, form: Record<string, string>): Promise<SignInTokens> {
    const { res, reply } = await this.post(endpoints.token, 'sign-in', this.timeoutMs, form);
    // OAuth 2.0 reports a refused grant as 400 (invalid_grant, invalid_request…) or 401.
    if (res.status === 400 || res.status === 401) {
      throw new Unauthenticated(`Cognito refused the ${what}: ${oauthError(res, reply)}`);
    }
    if (!res.ok)
      throw new Unavailable('sign-in', `the Cognito token endpoint answered HTTP ${res.status}`);
    if (typeof reply?.access_token !== 'string' || reply.access_token === '')
      throw new Unavailable(
        'sign-in',
        'the Cognito token endpoint answered without an access token',
      );
    return {
      accessToken: reply.access_token,
      ...(typeof reply.refresh_token === 'string' && reply.refresh_token !== ''
        ? { refreshToken: reply.refresh_token }
        : {}),
      expiresIn:
        typeof reply.expires_in === 'number' && reply.expires_in > 0 ? reply.expires_in : 3600,
    };
  }

  /** One form POST to an OAuth endpoint, bounded by `timeoutMs`; unreachable is Unavailable(`what`). */
  private async post(
    to: (typeof endpoints)[keyof typeof endpoints],
    what: string,
    timeoutMs: number,
    form: Record<string, string>,
  ): Promise<{ res: Response; reply: TokenReply | null }> {
    const endpoint = new URL(to.path, this.base);
    try {
      const res = await fetch(endpoint, {
        method: 'POST',
        headers: {
          'content-type': 'application/x-www-form-urlencoded',
          accept: 'application/json',
        },
        body: new URLSearchParams(form).toString(),
        redirect: 'error',
        signal: AbortSignal.timeout(timeoutMs),
      });
      const reply = (await res.json().catch(() => null)) as TokenReply | null;
      return { res, reply };
    } catch (e) {
      const reason =
        (e as Error).name === 'TimeoutError'
          ? `no answer within ${timeoutMs / 1000} s`
          : (e as Error).message;
      throw new Unavailable(
        what,
        `the Cognito ${to.name} ${endpoint.host} cannot be reached: ${reason}`,
      );
    }
  }
}

/** The OAuth error of a reply (`invalid_grant (detail)`), or its HTTP status when it has none. */
function oauthError(res: Response, reply: TokenReply | null): string {
  const error = typeof reply?.error === 'string' ? reply.error : `HTTP ${res.status}`;
  const detail =
    typeof reply?.error_description === 'string'
      ? ` (${reply.error_description.slice(0, 200)})`
      : '';
  return `${error}${detail}`;
}
