/**
 * The database credentials of the cloud mode: RDS keeps them in a Secrets Manager secret,
 * read through the Parameters and Secrets Lambda extension. Kept apart from the rest of the
 * cloud root so the migrate function's bundle carries nothing else.
 */

/** A secret could not be read or used; names the variable that pointed at it. */
export class SecretUnreadable extends Error {}

/** The PostgreSQL URL from an RDS-managed secret's JSON (username, password, host, port, dbname). */
export function databaseUrlFromSecret(secretString: string): string {
  let s: Record<string, unknown>;
  try {
    s = JSON.parse(secretString) as Record<string, unknown>;
  } catch {
    throw new SecretUnreadable('DATABASE_SECRET_ARN: the secret is not JSON');
  }
  for (const field of ['username', 'password', 'host']) {
    if (typeof s[field] !== 'string' || s[field] === '')
      throw new SecretUnreadable(`DATABASE_SECRET_ARN: the secret has no ${field}`);
  }
  const u = new URL('postgres://placeholder');
  u.username = encodeURIComponent(String(s.username));
  u.password = encodeURIComponent(String(s.password));
  u.hostname = String(s.host);
  u.port = String(s.port ?? 5432);
  u.pathname = `/${encodeURIComponent(String(s.dbname ?? 'selfdevop'))}`;
  // RDS requires TLS; pg verifies it against the system CAs (the RDS bundle is in Lambda's).
  u.searchParams.set('sslmode', 'require');
  return u.toString();
}

/**
 * The login a secret holds (`username`, `password`): the migrate function sets the API
 * login's password from the API's own secret. `variable` names the setting that pointed at
 * it, for the error.
 */
export function loginFromSecret(
  secretString: string,
  variable: string,
): { username: string; password: string } {
  let s: Record<string, unknown>;
  try {
    s = JSON.parse(secretString) as Record<string, unknown>;
  } catch {
    throw new SecretUnreadable(`${variable}: the secret is not JSON`);
  }
  for (const field of ['username', 'password']) {
    if (typeof s[field] !== 'string' || s[field] === '')
      throw new SecretUnreadable(`${variable}: the secret has no ${field}`);
  }
  return { username: String(s.username), password: String(s.password) };
}

/**
 * Reads a secret through the AWS Parameters and Secrets Lambda extension, which listens on
 * localhost inside the function's sandbox and caches secrets, so no SDK is loaded for it.
 * `extension` is the validated configuration (cloud-config.ts), which holds both variables.
 */
export async function readSecretFromExtension(
  arn: string,
  extension: { PARAMETERS_SECRETS_EXTENSION_HTTP_PORT?: string; AWS_SESSION_TOKEN?: string },
): Promise<string> {
  const port = extension.PARAMETERS_SECRETS_EXTENSION_HTTP_PORT ?? '2773';
  const res = await fetch(
    `http://localhost:${port}/secretsmanager/get?secretId=${encodeURIComponent(arn)}`,
    {
      headers: { 'X-Aws-Parameters-Secrets-Token': extension.AWS_SESSION_TOKEN ?? '' },
    },
  );
  if (!res.ok)
    throw new SecretUnreadable(
      `DATABASE_SECRET_ARN: the secrets extension answered ${res.status} for ${arn}`,
    );
  const body = (await res.json()) as { SecretString?: string };
  if (typeof body.SecretString !== 'string')
    throw new SecretUnreadable(`DATABASE_SECRET_ARN: secret ${arn} holds no string`);
  return body.SecretString;
}
