/**
 * Cloud HostedSignIn: Cognito's hosted UI as an OAuth 2.0 authorization server, for a
 * public app client (no secret, so PKCE is what binds a code to the browser that asked).
 * The token endpoint is called with fetch; the tokens it returns are not trusted here: the
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
}

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

  constructor(options: CognitoHostedUiOptions) {
    this.base = new URL(options.baseUrl);
    this.clientId = options.clientId;
    this.callbackUrl = options.callbackUrl;
    this.signedOutUrl = options.signedOutUrl;
    this.scopes = options.scopes ?? ['openid', 'email'];
    this.timeoutMs = options.timeoutMs ?? 10_000;
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
    url.search = new URLSearchParams({ client_id: this.clientId, logout_uri: this.signedOutUrl }).toString();
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
    return this.token('refresh token', { grant_type: 'refresh_token', client_id: this.clientId, refresh_token: refreshToken });
  }

  private async token(what: string, form: Record<string, string>): Promise<SignInTokens> {
    const endpoint = new URL('/oauth2/token', this.base);
    let res: Response;
    let reply: TokenReply | null;
    try {
      res = await fetch(endpoint, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
        body: new URLSearchParams(form).toString(),
        redirect: 'error',
        signal: AbortSignal.timeout(this.timeoutMs),
      });
      reply = (await res.json().catch(() => null)) as TokenReply | null;
    } catch (e) {
      const reason = (e as Error).name === 'TimeoutError' ? `no answer within ${this.timeoutMs / 1000} s` : (e as Error).message;
      throw new Unavailable('sign-in', `the Cognito token endpoint ${endpoint.host} cannot be reached: ${reason}`);
    }
    // OAuth 2.0 reports a refused grant as 400 (invalid_grant, invalid_request…) or 401.
    if (res.status === 400 || res.status === 401) {
      const error = typeof reply?.error === 'string' ? reply.error : `HTTP ${res.status}`;
      const detail = typeof reply?.error_description === 'string' ? ` (${reply.error_description.slice(0, 200)})` : '';
      throw new Unauthenticated(`Cognito refused the ${what}: ${error}${detail}`);
    }
    if (!res.ok) throw new Unavailable('sign-in', `the Cognito token endpoint answered HTTP ${res.status}`);
    if (typeof reply?.access_token !== 'string' || reply.access_token === '')
      throw new Unavailable('sign-in', 'the Cognito token endpoint answered without an access token');
    return {
      accessToken: reply.access_token,
      ...(typeof reply.refresh_token === 'string' && reply.refresh_token !== '' ? { refreshToken: reply.refresh_token } : {}),
      expiresIn: typeof reply.expires_in === 'number' && reply.expires_in > 0 ? reply.expires_in : 3600,
    };
  }
}
