import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey } from 'jose';

export interface CognitoTokenOptions {
  sub: string;
  /** Seconds since the epoch. */
  iat: number;
  ttlSeconds: number;
  clientId: string;
  tokenUse?: 'access' | 'id';
  issuer?: string;
  email?: string;
  /** Sign with a key the server does not publish. */
  unknownKey?: boolean;
}

export interface LocalJwks {
  url: string;
  issuer: string;
  region: string;
  userPoolId: string;
  /** How many times the key set was fetched. */
  fetches(): number;
  /** Signs a token shaped as a Cognito user pool signs it (RS256, kid, token_use, client_id). */
  sign(options: CognitoTokenOptions): Promise<string>;
  stop(): Promise<void>;
}

/**
 * A stand-in for a Cognito user pool's key endpoint: node:http on a loopback port serving
 * `/.well-known/jwks.json` with one RS256 public key (with `kid`), and a signer for tokens
 * carrying the claims Cognito puts in access and id tokens.
 */
export async function startJwks(
  region = 'eu-west-1',
  userPoolId = 'eu-west-1_TestPool1',
): Promise<LocalJwks> {
  const kid = 'test-key-1';
  const { publicKey, privateKey } = await generateKeyPair('RS256', { extractable: true });
  const stranger: { privateKey: CryptoKey } = await generateKeyPair('RS256');
  const jwk = { ...(await exportJWK(publicKey)), kid, alg: 'RS256', use: 'sig' };
  let fetches = 0;
  const server: Server = createServer((req, res) => {
    if (req.url === '/.well-known/jwks.json') {
      fetches++;
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ keys: [jwk] }));
      return;
    }
    res.writeHead(404).end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const issuer = `https://cognito-idp.${region}.amazonaws.com/${userPoolId}`;
  return {
    url: `http://127.0.0.1:${port}/.well-known/jwks.json`,
    issuer,
    region,
    userPoolId,
    fetches: () => fetches,
    async sign(o) {
      const tokenUse = o.tokenUse ?? 'access';
      const claims: Record<string, unknown> = {
        token_use: tokenUse,
        auth_time: o.iat,
        'cognito:username': o.sub,
        ...(tokenUse === 'access'
          ? { client_id: o.clientId, scope: 'aws.cognito.signin.user.admin' }
          : { aud: o.clientId }),
        ...(o.email ? { email: o.email } : {}),
      };
      return new SignJWT(claims)
        .setProtectedHeader({ alg: 'RS256', kid: o.unknownKey ? 'test-key-unknown' : kid })
        .setSubject(o.sub)
        .setIssuer(o.issuer ?? issuer)
        .setIssuedAt(o.iat)
        .setExpirationTime(o.iat + o.ttlSeconds)
        .setJti(crypto.randomUUID())
        .sign(o.unknownKey ? stranger.privateKey : privateKey);
    },
    stop: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
