/**
 * A service's git source: what a person may give (validated here, so every bad value is a
 * 400 naming its field), how its credential is sealed, and what a build produces.
 */
import * as z from 'zod';
import type { Release, Service } from '../models.ts';
import { hostKeys, knownHostsInput, type HostKey } from './host-keys.ts';

// Control characters and whitespace never belong in a URL, ref or path, and a leading dash
// would be read by git as an option (`--upload-pack=…`).
const plain = (s: string) =>
  ![...s].some((ch) => ch.charCodeAt(0) <= 0x20 || ch.charCodeAt(0) === 0x7f) &&
  !/\s/.test(s) &&
  !s.startsWith('-');

const scpLike = /^[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:(?!\/\/)[^\s]+$/;
const transports = new Set(['https:', 'http:', 'ssh:', 'git:']);

/** The host of a git URL (scp-like `user@host:path` included), or null. */
export function gitHost(url: string): string | null {
  const scp = /^[^@]+@([^:]+):/.exec(url);
  if (scp && scpLike.test(url)) return scp[1]!.toLowerCase();
  try {
    return new URL(url).hostname.toLowerCase().replace(/^\[|\]$/g, '');
  } catch {
    return null;
  }
}

/** True for a URL over SSH (ssh:// or scp-like): it takes a deploy key, not a token. */
export const isSshUrl = (url: string): boolean => url.startsWith('ssh://') || scpLike.test(url);

export const gitUrl = z
  .string()
  .min(1)
  .max(2000)
  .superRefine((v, ctx) => {
    const fail = (message: string) => ctx.addIssue({ code: 'custom', message });
    if (!plain(v)) return fail('must not contain spaces or control characters, nor start with -');
    if (scpLike.test(v)) return;
    let u: URL;
    try {
      u = new URL(v);
    } catch {
      return fail('must be an https://, http://, ssh:// or git:// URL, or user@host:path');
    }
    if (!transports.has(u.protocol)) {
      return fail(
        `must be an https://, http://, ssh:// or git:// URL, or user@host:path; ${u.protocol}// is refused (it would read the builder's own files or run commands)`,
      );
    }
    if (!u.hostname) return fail('must name a host');
    if (u.password || (u.username && u.protocol !== 'ssh:'))
      return fail(
        'must not carry credentials: give the token as git.token (a URL is shown and logged)',
      );
    // The cloud's instance metadata lives at link-local addresses: never a repository.
    if (/^(169\.254\.|\[?fe[89ab][0-9a-f]:)/i.test(u.hostname))
      return fail('must not point at a link-local address');
  });

/** A branch or tag name (refs/heads/… and refs/tags/… too) or a sha; as `git check-ref-format` allows. */
export const gitRefName = z
  .string()
  .min(1)
  .max(200)
  .refine(
    (v) =>
      plain(v) &&
      !v.includes('..') &&
      !v.includes('@{') &&
      !v.includes('//') &&
      !/[~^:?*[\\]/.test(v) &&
      !v.startsWith('/') &&
      !v.endsWith('/') &&
      !v.endsWith('.') &&
      !v.endsWith('.lock'),
    'must be a branch, tag or commit sha (no spaces, "..", "~^:?*[\\", leading "-" or "/")',
  );

/** A path inside the repository: relative, no `..` segment, normalised without `./` or a trailing `/`. */
export const repoPath = z
  .string()
  .max(500)
  .refine((v) => plain(v) || v === '', 'must not contain spaces or control characters')
  .refine((v) => !v.startsWith('/'), 'must be relative to the repository root')
  .refine((v) => !v.includes('\\'), 'must use / as separator')
  .refine(
    (v) => !v.split('/').includes('..'),
    'must not contain a .. segment (the build context stays inside the repository)',
  )
  .transform((v) =>
    v
      .split('/')
      .filter((part) => part !== '' && part !== '.')
      .join('/'),
  );

export const buildArgs = z
  .record(
    z.string().regex(/^[A-Za-z_][A-Za-z0-9_]{0,127}$/, 'build arg names are like variable names'),
    z
      .string()
      .max(4096)
      .refine((s) => !s.includes('\u0000'), 'must not contain NUL'),
  )
  .refine((m) => Object.keys(m).length <= 50, 'at most 50 build args');

/** The shortest poll interval: a git host is not asked for its heads more than once a minute. */
export const minPollIntervalSeconds = 60;

/** `git` in `POST /api/services` and `PATCH /api/services/{id}`. */
export const gitSourceInput = z.strictObject({
  url: gitUrl,
  ref: gitRefName.optional(),
  subdir: repoPath.optional(),
  dockerfile: repoPath.refine((v) => v !== '', 'must name a file').optional(),
  buildArgs: buildArgs.optional(),
  /**
   * An ssh repository's host keys (OpenSSH known_hosts lines, as `ssh-keyscan` prints
   * them); null forgets the pin, so the next contact pins what the server presents.
   */
  knownHosts: knownHostsInput.nullable().optional(),
  /** Poll the followed branch every N seconds (60 to 86400); null turns polling off. */
  pollIntervalSeconds: z
    .number()
    .int('must be a whole number of seconds')
    .min(minPollIntervalSeconds, `must be at least ${minPollIntervalSeconds} (a minute)`)
    .max(86_400, 'must be at most 86400 (a day)')
    .nullable()
    .optional(),
  /**
   * Write-only: an HTTPS access token (GitHub, GitLab, Gitea), sent as HTTP basic auth;
   * null removes the credential. Absent keeps the one the service has.
   */
  token: z.string().min(1).max(4096).refine(plain, 'must be one word').nullable().optional(),
  /**
   * Write-only build-time secrets (id → value; null removes one, absent ids are kept),
   * offered to `RUN --mount=type=secret,id=<id>` and never as build args.
   */
  buildSecrets: z
    .record(
      z.string(),
      z
        .string()
        .min(1)
        .max(64 * 1024)
        .nullable(),
    )
    .superRefine((m, ctx) => {
      for (const id of Object.keys(m))
        if (!/^[A-Za-z0-9_.-]{1,64}$/.test(id))
          ctx.addIssue({
            code: 'custom',
            message: `build secret ids are letters, digits, _ . - (at most 64); "${id.slice(0, 64)}" is not`,
          });
      if (Object.keys(m).length > 20)
        ctx.addIssue({ code: 'custom', message: 'at most 20 build secrets' });
    })
    .optional(),
});
export type GitSourceInput = z.infer<typeof gitSourceInput>;

export const defaultGitRef = 'main';
export const defaultDockerfile = 'Dockerfile';

/** The KeyVault context a service's git credential is sealed under. */
export const gitCredentialContext = (orgId: string, serviceId: string): string =>
  `${orgId}:git:${serviceId}`;

/** The KeyVault context of one build-time secret of a service. */
export const buildSecretContext = (orgId: string, serviceId: string, id: string): string =>
  `${orgId}:build-secret:${serviceId}:${id}`;

/** A full commit sha, which needs no resolving. */
export const isFullSha = (ref: string): boolean => /^[0-9a-f]{40}$/.test(ref);

/**
 * The image repository a service's builds are tagged in: `<service name>-<last 6 of its
 * id>`, so same-named services of two projects on one engine never share tags.
 */
export function buildRepository(service: Pick<Service, 'id' | 'name'>): string {
  const suffix = service.id
    .slice(-6)
    .toLowerCase()
    .replace(/[^a-z0-9]/g, '');
  return `${service.name}-${suffix || 'x'}`;
}

/** The tag a build of `sha` gets: `<service>:<sha>`. */
export const buildTag = (service: Pick<Service, 'id' | 'name'>, sha: string): string =>
  `${buildRepository(service)}:${sha}`;

/** Labels on a built image, so an operator (and a later prune) can tell whose it is. */
export function buildLabels(
  release: Pick<Release, 'orgId' | 'serviceId' | 'id'>,
  sha: string,
): Record<string, string> {
  return {
    'selfdevop.org': release.orgId,
    'selfdevop.service': release.serviceId,
    'selfdevop.release': release.id,
    'selfdevop.git-sha': sha,
  };
}

/**
 * A service as the API shows it: sealed values never leave the store; build secrets by id;
 * the pinned SSH host keys of its git server with their fingerprints.
 */
export type PublicService = Omit<Service, 'sealedGitCredential' | 'sealedBuildSecrets'> & {
  buildSecrets: string[];
  gitHostKeys: HostKey[];
};

export function publicService<S extends Service>(
  service: S,
): Omit<S, 'sealedGitCredential' | 'sealedBuildSecrets'> & {
  buildSecrets: string[];
  gitHostKeys: HostKey[];
} {
  const { sealedGitCredential: _sealed, sealedBuildSecrets, ...rest } = service;
  return {
    ...rest,
    buildSecrets: Object.keys(sealedBuildSecrets ?? {}).sort(),
    gitHostKeys: hostKeys(service.git?.knownHosts),
  };
}

/**
 * Where an ssh URL connects, `host:port` (scp-like URLs use 22): a pinned key belongs to
 * that, so a source moved to another server forgets it. Null for other transports.
 */
export function sshAuthority(url: string): string | null {
  if (!isSshUrl(url)) return null;
  if (url.startsWith('ssh://')) {
    try {
      const u = new URL(url);
      return `${u.hostname.toLowerCase()}:${u.port || '22'}`;
    } catch {
      return null;
    }
  }
  const host = gitHost(url);
  return host ? `${host}:22` : null;
}
