import { hmac } from '@noble/hashes/hmac.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { bytesToHex, utf8ToBytes } from '@noble/hashes/utils.js';

/**
 * Push-to-deploy (issue 13, step 2): reading a git host's push webhook. Pure: the route
 * hands over the headers and the raw body, this says whether the delivery is authentic and
 * what it asks for. Each host signs its own way, and each is verified by its own scheme
 * only, so a GitHub-style signature never passes for a Gitea delivery's or the reverse.
 */

export type PushProvider = 'github' | 'gitlab' | 'gitea';

/** The push a verified delivery asks to deploy. */
export interface PushToDeploy {
  kind: 'deploy';
  provider: PushProvider;
  deliveryId: string | null;
  branch: string;
  /** The commit the branch now points at (the payload's `after`). */
  sha: string;
}

/** A verified delivery that deploys nothing, and why (answered 202 so the host does not retry). */
export interface PushIgnored {
  kind: 'ignored';
  provider: PushProvider;
  deliveryId: string | null;
  reason: string;
}

/** Not verified: a missing, malformed or wrong signature or token (answered 401). */
export interface PushRefused {
  kind: 'refused';
  reason: string;
}

export type PushVerdict = PushToDeploy | PushIgnored | PushRefused;

/** Header look-up, case-insensitive as HTTP headers are. */
export type HeaderReader = (name: string) => string | undefined;

const zeroSha = /^0{40}$/;
const fullSha = /^[0-9a-f]{40}$/;

/**
 * Which host sent the delivery. Gitea also sends GitHub's and Gogs' headers for
 * compatibility, so it is recognised first by its own.
 */
export function pushProviderOf(header: HeaderReader): PushProvider | null {
  if (header('x-gitea-event') !== undefined) return 'gitea';
  if (header('x-gitlab-event') !== undefined) return 'gitlab';
  if (header('x-github-event') !== undefined) return 'github';
  return null;
}

/** Equal-length byte comparison whose time does not depend on where the bytes differ. */
function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i]! ^ b[i]!;
  return diff === 0;
}

/**
 * Compares through SHA-256 digests so neither the secret's length nor its prefix shows in
 * the time taken (GitLab sends the secret itself, not a signature).
 */
/** Whether two secrets are equal, comparing their digests in constant time whatever their lengths. */
export function sameSecret(given: string, secret: string): boolean {
  return sameBytes(sha256(utf8ToBytes(given)), sha256(utf8ToBytes(secret)));
}

function sameHexMac(givenHex: string, secret: string, body: Uint8Array): boolean {
  const expected = bytesToHex(hmac(sha256, utf8ToBytes(secret), body));
  // Lower-case both sides: hex is case-insensitive, and comparing digests keeps it constant time.
  return sameSecret(givenHex.trim().toLowerCase(), expected);
}

/** Signs a body as GitHub does (`X-Hub-Signature-256: sha256=<hex>`); for tests and the bench. */
export function signGithub(secret: string, body: Uint8Array | string): string {
  const bytes = typeof body === 'string' ? utf8ToBytes(body) : body;
  return `sha256=${bytesToHex(hmac(sha256, utf8ToBytes(secret), bytes))}`;
}

/** Signs a body as Gitea does (`X-Gitea-Signature: <hex>`). */
export function signGitea(secret: string, body: Uint8Array | string): string {
  return signGithub(secret, body).slice('sha256='.length);
}

function verify(
  provider: PushProvider,
  header: HeaderReader,
  body: Uint8Array,
  secret: string,
): string | null {
  switch (provider) {
    case 'github': {
      const sig = header('x-hub-signature-256');
      if (!sig) return 'missing X-Hub-Signature-256';
      if (!sig.startsWith('sha256=')) return 'X-Hub-Signature-256 is not sha256=<hex>';
      return sameHexMac(sig.slice('sha256='.length), secret, body)
        ? null
        : 'X-Hub-Signature-256 does not match the body';
    }
    case 'gitea': {
      const sig = header('x-gitea-signature');
      if (!sig) return 'missing X-Gitea-Signature';
      return sameHexMac(sig, secret, body) ? null : 'X-Gitea-Signature does not match the body';
    }
    case 'gitlab': {
      const token = header('x-gitlab-token');
      if (!token) return 'missing X-Gitlab-Token';
      return sameSecret(token, secret) ? null : 'X-Gitlab-Token is not this hook’s secret';
    }
  }
}

function deliveryIdOf(provider: PushProvider, header: HeaderReader): string | null {
  const id =
    provider === 'github'
      ? header('x-github-delivery')
      : provider === 'gitea'
        ? header('x-gitea-delivery')
        : (header('x-gitlab-event-uuid') ?? header('idempotency-key'));
  // Bounded: the id is stored, and a sender controls it.
  return id && id.length <= 200 ? id : null;
}

/** The event name when it is a push (of a branch or a tag); anything else is not a push. */
function isPushEvent(provider: PushProvider, header: HeaderReader): string | true {
  const event =
    provider === 'github'
      ? header('x-github-event')
      : provider === 'gitea'
        ? header('x-gitea-event')
        : header('x-gitlab-event');
  if (provider === 'gitlab') return event === 'Push Hook' ? true : `"${event}" is not a push`;
  return event === 'push' ? true : `"${event}" is not a push`;
}

/**
 * Verifies a push delivery for a hook with `secret` on a service following `branch`, and
 * says what to do. The body is the raw request bytes: signatures are over those, and a
 * re-serialised JSON would not match.
 */
export function readPush(
  header: HeaderReader,
  body: Uint8Array,
  secret: string,
  branch: string,
): PushVerdict {
  const provider = pushProviderOf(header);
  if (!provider)
    return {
      kind: 'refused',
      reason:
        'not a GitHub, GitLab or Gitea webhook (no X-GitHub-Event, X-Gitlab-Event or X-Gitea-Event)',
    };
  const bad = verify(provider, header, body, secret);
  if (bad) return { kind: 'refused', reason: bad };
  const deliveryId = deliveryIdOf(provider, header);
  const ignored = (reason: string): PushIgnored => ({
    kind: 'ignored',
    provider,
    deliveryId,
    reason,
  });
  const push = isPushEvent(provider, header);
  if (push !== true) return ignored(`${push}; nothing to deploy`);
  let payload: unknown;
  try {
    payload = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(body));
  } catch {
    return ignored('the body is not JSON; nothing to deploy');
  }
  const { ref, after } = (payload ?? {}) as { ref?: unknown; after?: unknown };
  if (typeof ref !== 'string' || typeof after !== 'string')
    return ignored('the push has no ref or after; nothing to deploy');
  if (!ref.startsWith('refs/heads/')) return ignored(`${ref} is not a branch; nothing to deploy`);
  const pushed = ref.slice('refs/heads/'.length);
  if (pushed !== branch)
    return ignored(`branch ${pushed} is not the followed branch ${branch}; nothing to deploy`);
  if (zeroSha.test(after)) return ignored(`branch ${pushed} was deleted; nothing to deploy`);
  if (!fullSha.test(after)) return ignored('after is not a commit sha; nothing to deploy');
  return { kind: 'deploy', provider, deliveryId, branch: pushed, sha: after };
}
