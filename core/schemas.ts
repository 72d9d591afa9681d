/**
 * Input schemas of the public API. Objects are strict: an unknown field is a 400 that
 * names it, so a typo in a CI script fails loudly instead of being ignored.
 */
import * as z from 'zod';
import {
  dataEngines,
  drillSchedules,
  loadBalancingPolicies,
  maxReplicas,
  nodeKinds,
  redisEvictionPolicies,
  redisPersistenceModes,
  roles,
  serviceKinds,
  strategies,
} from './models.ts';
import { webhookEventTypes } from './webhooks/events.ts';
import { gitSourceInput } from './builds/git-source.ts';

// Control characters break logs, headers and PostgreSQL text (NUL); names never need them.
const noControlChars = (s: string) =>
  ![...s].some((ch) => ch.charCodeAt(0) < 0x20 || ch.charCodeAt(0) === 0x7f);

/** Names that end up in hostnames and container names: a DNS label. */
export const slugName = z
  .string()
  .min(1)
  .max(40)
  .regex(
    /^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/,
    'must be lowercase letters, digits and inner hyphens (a DNS label)',
  );

export const displayName = z
  .string()
  .trim()
  .min(1)
  .max(100)
  .refine(noControlChars, 'must not contain control characters');

export const email = z
  .string()
  .trim()
  .max(254)
  .pipe(z.email('must be an email address'))
  .transform((s) => s.toLowerCase());

/** bcrypt reads only 72 bytes; longer passwords would be silently truncated, so refuse them. */
export const password = z
  .string()
  .min(8, 'must be at least 8 characters')
  .refine((s) => new TextEncoder().encode(s).length <= 72, 'must be at most 72 bytes');

export const id = z
  .string()
  .min(1)
  .max(64)
  .regex(/^[a-z]+_[0-9a-z]+$/, 'is not a valid id');

export const role = z.enum(roles);

/** A Docker image reference: [registry[:port]/]name[:tag][@sha256:digest]. */
export const imageRef = z
  .string()
  .min(1)
  .max(255)
  .regex(
    /^(?:[a-z0-9]+(?:[.-][a-z0-9]+)*(?::[0-9]{1,5})?\/)?[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@sha256:[a-f0-9]{64})?$/,
    'is not a valid image reference (name[:tag][@sha256:digest])',
  );

export const envVarName = z
  .string()
  .regex(/^[A-Za-z_][A-Za-z0-9_]{0,127}$/, 'must be a valid environment variable name');

export const envMap = z
  .record(
    envVarName,
    z
      .string()
      .max(32 * 1024)
      .refine((s) => !s.includes('\u0000'), 'must not contain NUL'),
  )
  .refine((m) => Object.keys(m).length <= 200, 'at most 200 variables');

export const httpPath = z
  .string()
  .max(200)
  .regex(/^\/[A-Za-z0-9\-._~!$&'()*+,;=:@/%?]*$/, 'must be an absolute path such as /health');

export const gitSha = z.string().regex(/^[0-9a-f]{7,64}$/, 'must be a hex commit sha');

export const dockerHost = z
  .string()
  .max(300)
  .regex(
    /^(unix:\/\/\/[^\s]+|tcp:\/\/[A-Za-z0-9.-]+:[0-9]{1,5}|ssh:\/\/[A-Za-z0-9._-]+@[A-Za-z0-9.-]+(:[0-9]{1,5})?)$/,
    'must be unix:///path, tcp://host:port or ssh://user@host',
  );

export const hostAddress = z
  .string()
  .max(253)
  .regex(
    /^([0-9]{1,3}(\.[0-9]{1,3}){3}|[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*)$/,
    'must be an IPv4 address or a hostname',
  );

export const labels = z
  .record(
    z.string().regex(/^[a-z0-9][a-z0-9._/-]{0,62}$/, 'label keys are lowercase'),
    z.string().max(200),
  )
  .refine((m) => Object.keys(m).length <= 50, 'at most 50 labels');

/** The token of an emailed invite: `sdi_` and 43 URL-safe characters (32 random bytes). */
export const inviteToken = z
  .string()
  .max(100)
  .regex(/^sdi_[A-Za-z0-9_-]{20,90}$/, 'is not an invite token (sdi_…, from the invite email)');

export const signupInput = z.strictObject({ email, password, inviteToken: inviteToken.optional() });
export const loginInput = z.strictObject({ email, password: z.string().min(1).max(1024) });
export const createOrgInput = z.strictObject({ name: displayName });
export const createApiKeyInput = z.strictObject({ name: displayName, role });
export const createInviteInput = z.strictObject({ email, role });
export const acceptInviteInput = z.strictObject({ token: inviteToken });
export const changeMemberRoleInput = z.strictObject({ role });
export const createProjectInput = z.strictObject({ name: slugName });
export const createEnvironmentInput = z.strictObject({ projectId: id, name: slugName });

export const healthPolicyInput = z.strictObject({
  intervalMs: z.number().int().min(50).max(60_000).optional(),
  timeoutMs: z.number().int().min(50).max(60_000).optional(),
  successes: z.number().int().min(1).max(20).optional(),
  deadlineMs: z
    .number()
    .int()
    .min(1_000)
    .max(30 * 60_000)
    .optional(),
});

/** A worker's health gate: seconds running without a restart, and an optional command that must exit 0. */
export const workerHealthInput = z.strictObject({
  stableSeconds: z.number().int().min(1).max(600).optional(),
  command: z.string().min(1).max(2000).refine(noControlChars, 'must be one line').nullish(),
});

const serviceFields = {
  image: imageRef,
  containerPort: z.number().int().min(1).max(65535),
  healthcheckPath: httpPath,
  migrateCommand: z.string().min(1).max(2000).refine(noControlChars, 'must be one line').nullish(),
  strategy: z.enum(strategies).optional(),
  replicas: z.number().int().min(0).max(maxReplicas).optional(),
  placement: z
    .strictObject({
      labels: z.record(
        z.string().regex(/^[a-z0-9][a-z0-9._/-]{0,62}$/, 'label names: a-z 0-9 . _ / -'),
        z.string().min(1).max(63).refine(noControlChars, 'must be one line'),
      ),
    })
    .optional(),
  loadBalancing: z.enum(loadBalancingPolicies).optional(),
  maxSurge: z.number().int().min(1).max(maxReplicas).optional(),
  env: envMap.optional(),
  memoryMb: z.number().int().min(16).max(262_144).nullish(),
  cpus: z.number().min(0.01).max(256).nullish(),
  health: healthPolicyInput.optional(),
  warmSeconds: z
    .number()
    .int()
    .min(0)
    .max(7 * 24 * 3600)
    .optional(),
  drainSeconds: z.number().int().min(0).max(3600).optional(),
  sticky: z.boolean().optional(),
};

/** A service runs an image, or images built from its git source, or both (a ref or an image per deploy). */
export const createServiceInput = z
  .strictObject({
    projectId: id,
    name: slugName,
    ...serviceFields,
    /** `worker`: no port, no route, no default host; health by staying up (and workerHealth.command). */
    kind: z.enum(serviceKinds).optional(),
    containerPort: serviceFields.containerPort.optional(),
    healthcheckPath: httpPath.optional(),
    workerHealth: workerHealthInput.optional(),
    image: imageRef.optional(),
    git: gitSourceInput.optional(),
  })
  .superRefine((v, ctx) => {
    const worker = v.kind === 'worker';
    for (const field of ['containerPort', 'healthcheckPath'] as const) {
      if (worker && v[field] !== undefined)
        ctx.addIssue({
          code: 'custom',
          path: [field],
          message: 'a worker has no port and no HTTP health check (use workerHealth)',
        });
      if (!worker && v[field] === undefined)
        ctx.addIssue({ code: 'custom', path: [field], message: 'is required for a web service' });
    }
    for (const field of ['sticky', 'drainSeconds'] as const)
      if (worker && v[field] !== undefined)
        ctx.addIssue({ code: 'custom', path: [field], message: 'a worker has no route' });
    if (!worker && v.workerHealth !== undefined)
      ctx.addIssue({
        code: 'custom',
        path: ['workerHealth'],
        message: 'is for workers only (kind: worker); a web service is probed at healthcheckPath',
      });
    if (v.image === undefined && v.git === undefined)
      ctx.addIssue({
        code: 'custom',
        path: ['image'],
        message: 'is required unless the service has a git source (git.url)',
      });
  });

/**
 * `PATCH /api/services/{id}`: each field given replaces the service's, under the same rules
 * as at creation; `git: null` removes the source. `replicas` is not here: scaling has its
 * own verbs.
 */
export const updateServiceInput = z
  .strictObject({
    name: slugName.optional(),
    image: imageRef.optional(),
    containerPort: serviceFields.containerPort.optional(),
    healthcheckPath: httpPath.optional(),
    migrateCommand: serviceFields.migrateCommand,
    env: envMap.optional(),
    memoryMb: serviceFields.memoryMb,
    cpus: serviceFields.cpus,
    health: serviceFields.health,
    strategy: serviceFields.strategy,
    warmSeconds: serviceFields.warmSeconds,
    drainSeconds: serviceFields.drainSeconds,
    sticky: serviceFields.sticky,
    git: gitSourceInput.nullable().optional(),
    workerHealth: workerHealthInput.optional(),
  })
  .refine((v) => Object.keys(v).length > 0, 'give at least one field to change');

export const updateProjectInput = z.strictObject({ name: slugName });
export const updateEnvironmentInput = z.strictObject({ name: slugName });

/** `POST /api/services/{id}/redeploy`: the environment whose current release is deployed again. */
export const redeployInput = z.strictObject({ environment: slugName.optional() });

/** `POST /api/environments/{id}/promote`: the environment to deploy this one's releases to. */
export const promoteInput = z.strictObject({
  to: slugName,
  serviceIds: z.array(id).min(1).max(200).optional(),
});

/** `DELETE` of a service, environment or project: its name, typed again. */
export const confirmQuery = z.object({ confirm: z.string().max(100).optional() });

/**
 * The labels of the PEM blocks that make up `text`, or null when it is anything else (a
 * stray line, a block without end or body). Line by line, so 64 KiB of hostile input
 * costs one pass, not the quadratic scan a backtracking regex would make.
 */
function pemLabels(text: string): string[] | null {
  const labels: string[] = [];
  let open: string | null = null;
  let bodyLines = 0;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (open === null) {
      if (line === '') continue;
      const begin = /^-----BEGIN ([A-Z0-9 ]{1,40})-----$/.exec(line);
      if (!begin) return null;
      open = begin[1]!;
      bodyLines = 0;
    } else if (line === `-----END ${open}-----`) {
      if (bodyLines === 0) return null;
      labels.push(open);
      open = null;
    } else if (/^[A-Za-z0-9+/]+={0,2}$/.test(line)) {
      bodyLines++;
    } else {
      return null;
    }
  }
  return open === null ? labels : null;
}

/** One or more PEM certificates (a CA bundle or a certificate with its chain). */
export const pemCertificates = z
  .string()
  .max(64 * 1024, 'must be at most 64 KiB')
  .refine((v) => {
    const labels = pemLabels(v);
    return labels !== null && labels.length > 0 && labels.every((label) => label === 'CERTIFICATE');
  }, 'must be PEM certificates (-----BEGIN CERTIFICATE----- … -----END CERTIFICATE-----)');

const privateKeyLabels = [
  'PRIVATE KEY',
  'RSA PRIVATE KEY',
  'EC PRIVATE KEY',
  'OPENSSH PRIVATE KEY',
];

/**
 * One unencrypted PEM private key (PKCS#8, PKCS#1, SEC1 or OpenSSH): the worker has no one
 * to ask for a passphrase.
 */
export const pemPrivateKey = z
  .string()
  .max(64 * 1024, 'must be at most 64 KiB')
  .refine((v) => !/ENCRYPTED/.test(v), {
    message: 'must not be encrypted with a passphrase (the worker cannot enter one)',
    abort: true,
  })
  .refine((v) => {
    const labels = pemLabels(v);
    return labels?.length === 1 && privateKeyLabels.includes(labels[0]!);
  }, 'must be one PEM private key (-----BEGIN PRIVATE KEY----- … -----END PRIVATE KEY-----)');

const sshKeyTypes =
  /^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)|sk-ssh-ed25519@openssh\.com|sk-ecdsa-sha2-nistp256@openssh\.com)$/;

/**
 * The SSH server's public host key: a line of `/etc/ssh/ssh_host_ed25519_key.pub` or of
 * `ssh-keyscan` output (its leading host name is dropped). Normalised to `type base64`.
 */
export const sshHostKey = z
  .string()
  .max(16 * 1024)
  .transform((v, ctx) => {
    const words = v.trim().split(/\s+/);
    const at = words.findIndex((w) => sshKeyTypes.test(w));
    const blob = at >= 0 ? words[at + 1] : undefined;
    if (at > 1 || !blob || !/^[A-Za-z0-9+/]+={0,2}$/.test(blob) || v.includes('\n')) {
      ctx.addIssue({
        code: 'custom',
        message:
          'must be one OpenSSH public key line such as "ssh-ed25519 AAAAC3…" (ssh-keyscan prints it)',
      });
      return z.NEVER;
    }
    return `${words[at]} ${blob}`;
  });

/** TLS client material for a tcp:// node, as Docker's `--tlsverify` setup makes it. */
export const nodeTlsInput = z.strictObject({
  ca: pemCertificates,
  cert: pemCertificates,
  key: pemPrivateKey,
});

/** SSH credentials for an ssh:// node: pin the host key, or opt out of pinning explicitly. */
export const nodeSshInput = z
  .strictObject({
    privateKey: pemPrivateKey,
    hostKey: sshHostKey.optional(),
    insecureIgnoreHostKey: z.literal(true).optional(),
  })
  .superRefine((v, ctx) => {
    if (v.hostKey === undefined && !v.insecureIgnoreHostKey) {
      ctx.addIssue({
        code: 'custom',
        path: ['hostKey'],
        message:
          "is required: the server's public host key (ssh-keyscan HOST), or set insecureIgnoreHostKey: true to accept any",
      });
    }
    if (v.hostKey !== undefined && v.insecureIgnoreHostKey) {
      ctx.addIssue({
        code: 'custom',
        path: ['insecureIgnoreHostKey'],
        message: 'cannot be set together with hostKey',
      });
    }
  });

export const createNodeInput = z.strictObject({
  name: slugName,
  /** `swarm` registers a Swarm cluster by one of its managers (its `address` is that manager's). */
  kind: z.enum(nodeKinds).optional(),
  dockerHost,
  address: hostAddress,
  labels: labels.optional(),
  tls: nodeTlsInput.optional(),
  ssh: nodeSshInput.optional(),
});

/**
 * `PATCH /api/nodes/{id}`: a new name, labels (replacing all) or address, and new
 * credentials (rotation: each one given replaces the stored one).
 */
export const updateNodeInput = z
  .strictObject({
    name: slugName.optional(),
    labels: labels.optional(),
    address: hostAddress.optional(),
    tls: nodeTlsInput.optional(),
    ssh: nodeSshInput.optional(),
  })
  .refine(
    (v) => Object.keys(v).length > 0,
    'give at least one of name, labels, address, tls or ssh',
  );

export const putSecretInput = z.strictObject({
  environment: slugName.optional(),
  name: envVarName,
  value: z.string().max(64 * 1024, 'must be at most 64 KiB'),
});

export const environmentQuery = z.object({ environment: slugName.optional() });

/**
 * A webhook target. Only http(s), no credentials in the URL (they would sit in logs and
 * the audit trail), and, unless private targets are allowed, no loopback or private IPs.
 */
export const webhookUrl = z
  .string()
  .max(2000)
  .refine((v) => {
    try {
      const u = new URL(v);
      return (u.protocol === 'https:' || u.protocol === 'http:') && !u.username && !u.password;
    } catch {
      return false;
    }
  }, 'must be an http(s) URL without credentials');

// A first check at creation, for a clear 400; the cloud's sender checks the resolved address
// at every delivery too (adapters/http/node.ts), since a public name can be re-pointed.
const privateHost =
  /^(localhost|127\.|10\.|192\.168\.|172\.(1[6-9]|2\d|3[01])\.|169\.254\.|100\.(6[4-9]|[7-9]\d|1[01]\d|12[0-7])\.|0\.|\[?::1?\]?$|\[?f[cde][0-9a-f]{2}:|\[::ffff:)/i;

/** True for a URL whose host is loopback, link-local or private (an SSRF target in a SaaS). */
export const isPrivateUrl = (v: string): boolean => privateHost.test(new URL(v).hostname);

// The control plane and the edge's admin API listen on loopback; link-local is the cloud's
// metadata service. Never a webhook's target, whatever the install allows.
const loopbackOrLinkLocalHost =
  /^(localhost|127\.|169\.254\.|0\.|\[::1?\]$|\[fe[89ab][0-9a-f]:|\[::ffff:(127\.|169\.254\.|0\.|7f|a9fe:|0:))/i;

/** True for a URL whose host is written as a loopback, link-local or unspecified address. */
export const isLoopbackOrLinkLocalUrl = (v: string): boolean =>
  loopbackOrLinkLocalHost.test(new URL(v).hostname);

/** True for a URL whose host is a loopback address literal (tests' receivers listen there). */
export const isLoopbackLiteralUrl = (v: string): boolean =>
  /^(127\.\d+\.\d+\.\d+|\[::1\])$/.test(new URL(v).hostname);

export const createWebhookInput = z.strictObject({
  url: webhookUrl,
  events: z.array(z.enum(webhookEventTypes)).min(1).optional(),
});

/**
 * A notification channel: Slack takes an incoming-webhook URL, e-mail one plain address.
 * Only the kind's own target is accepted, so a Slack channel cannot carry an address.
 */
export const createNotificationChannelInput = z.discriminatedUnion('kind', [
  z.strictObject({
    kind: z.literal('slack'),
    name: z.string().trim().min(1).max(100),
    url: webhookUrl,
    events: z.array(z.enum(webhookEventTypes)).min(1).optional(),
    groupWindowSeconds: z.number().int().min(0).max(3600).optional(),
  }),
  z.strictObject({
    kind: z.literal('email'),
    name: z.string().trim().min(1).max(100),
    address: z.email('must be one plain e-mail address').max(254),
    events: z.array(z.enum(webhookEventTypes)).min(1).optional(),
    groupWindowSeconds: z.number().int().min(0).max(3600).optional(),
  }),
]);
export type CreateNotificationChannelInput = z.infer<typeof createNotificationChannelInput>;

export const createRegistryInput = z.strictObject({
  /** host[:port]; a scheme or a trailing /v2/ is dropped; Docker Hub is `docker.io`. */
  server: z.string().trim().min(1).max(255),
  username: z
    .string()
    .min(1)
    .max(255)
    .refine(noControlChars, 'must not contain control characters'),
  /** The password or access token: sealed, never shown again. */
  password: z
    .string()
    .min(1)
    .max(4096)
    .refine(noControlChars, 'must not contain control characters'),
});
export type CreateRegistryInput = z.infer<typeof createRegistryInput>;

export const serviceHealthQuery = z.object({
  environment: z.string().min(1).max(100).default('production'),
});

export const serviceMetricsQuery = z.object({
  environment: z.string().min(1).max(100).default('production'),
  range: z.enum(['1h', '1d', '1w']).default('1h'),
});
export const nodeMetricsQuery = z.object({ range: z.enum(['1h', '1d', '1w']).default('1h') });
export const projectMetricsQuery = nodeMetricsQuery;

/** `DELETE /api/nodes/{id}`: `force=true` writes off a lost node's replicas (they live on elsewhere). */
export const deleteNodeQuery = z.object({
  force: z
    .enum(['true', 'false'])
    .default('false')
    .transform((v) => v === 'true'),
});

export const alertRulesQuery = z.object({ serviceId: id.optional() });
export const setAlertThresholdInput = z.strictObject({
  serviceId: id,
  rule: z.string().min(1).max(50),
  /** null: back to the rule's default. The range is the rule's (a 400 names it). */
  value: z.number().nullable(),
});
/** Alertmanager's webhook body (version 4); only what the receiver reads is checked. */
export const alertmanagerPayload = z.object({
  status: z.string().max(20),
  alerts: z
    .array(
      z.object({
        status: z.string().max(20),
        labels: z.record(z.string().max(200), z.string().max(2000)),
        annotations: z.record(z.string().max(200), z.string().max(10_000)).optional(),
        startsAt: z.string().max(64).optional(),
        endsAt: z.string().max(64).optional(),
        fingerprint: z.string().max(64).optional(),
      }),
    )
    .max(1000),
});

export const createDataServiceInput = z.strictObject({
  projectId: id,
  name: slugName,
  engine: z.enum(dataEngines),
  version: z.string().min(1).max(20).optional(),
  nodeId: id.optional(),
  /** Redis only: memory limit, eviction policy and persistence (defaults are explicit too). */
  maxmemoryMb: z.number().int().min(16).max(65_536).optional(),
  evictionPolicy: z.enum(redisEvictionPolicies).optional(),
  persistence: z.enum(redisPersistenceModes).optional(),
  /** Five-field UTC cron of scheduled backups, at most hourly; nightly (`0 3 * * *`) unless set. */
  backupSchedule: z.string().min(9).max(100).optional(),
  /** Which backups are restore-drilled: every one (default) or `weekly` (drillDecision). */
  drillSchedule: z.enum(drillSchedules).optional(),
  /** MariaDB/PostgreSQL: a server that holds other data services' databases (never linked itself). */
  shareable: z.boolean().optional(),
  /** One database and user on this shareable server (same project) instead of a container. */
  sharedServerId: id.optional(),
});
export const backupScheduleInput = z.strictObject({
  cron: z.string().min(9).max(100),
});
/** `every_backup`: each completed backup is drilled; `weekly`: one a week, and after a failure. */
export const drillScheduleInput = z.strictObject({
  drillSchedule: z.enum(drillSchedules),
});
export const restoreBackupInput = z.strictObject({
  backupId: id,
  /** `new`: into a new data service (previewed before switching); `in_place`: over this one. */
  target: z.enum(['new', 'in_place']),
  /** In place: the data service's name, typed again. */
  confirm: z.string().max(100).optional(),
  /** New: the new data service's name (default `<name>-restored-<suffix>`). */
  name: slugName.optional(),
  /** New, from a database on a shared server: into a server of its own instead of beside it. */
  dedicated: z.boolean().optional(),
});
/** A passphrase that wraps an exported backup's data key (what another install needs to open it). */
const backupPassphrase = z
  .string()
  .min(12, 'passphrase: at least 12 characters')
  .max(1024, 'passphrase: at most 1024 characters');
/** A newer minor of the data service's release line (`10.11.9`, `15.8`). */
export const upgradeDataServiceInput = z.strictObject({
  version: z.string().regex(/^\d+(\.\d+){0,2}$/, 'version: digits and dots (15.8, 10.11.9)'),
});
export const exportBackupInput = z.strictObject({ passphrase: backupPassphrase });
const sha256Hex = z.string().regex(/^[0-9a-f]{64}$/, 'a SHA-256 in hex');
/** What an export holds: the manifest (without this install's sealed key) and the wrapped key. */
export const backupExportBundle = z.strictObject({
  kind: z.literal('selfdevop-data-backup'),
  format: z.literal(1),
  wrappedKey: z.string().min(10).max(1000),
  exportedAt: z.string().max(40),
  manifest: z.strictObject({
    format: z.union([z.literal(1), z.literal(2)]),
    backupId: id,
    dataServiceId: id,
    engine: z.enum(['redis', 'mariadb', 'postgres']),
    serverVersion: z.string().max(200),
    tool: z.string().max(200),
    encoding: z.literal('gzip+aes-256-gcm'),
    rawBytes: z.number().int().min(0),
    storedBytes: z.number().int().min(28),
    sha256: sha256Hex,
    rawSha256: sha256Hex.nullable(),
    gzipSha256: sha256Hex.optional(),
    gzipBytes: z.number().int().min(0).optional(),
    tables: z.record(z.string().max(200), z.number().int().min(0)),
    keys: z.number().int().min(0).nullable(),
    takenAt: z.string().max(40),
  }),
});
export const importBackupInput = z.strictObject({
  /** The JSON an export answered (`backups export` writes it beside the object). */
  bundle: backupExportBundle,
  passphrase: backupPassphrase,
});
/** Retention: the newest backup of each of the last N days, ISO weeks and months (14/8/6 by default). */
export const backupRetentionInput = z.strictObject({
  daily: z.number().int().min(0).max(3650).optional(),
  weekly: z.number().int().min(0).max(520).optional(),
  monthly: z.number().int().min(0).max(120).optional(),
});
export const controlBackupSettingsInput = z.strictObject({
  /** Five-field UTC cron, at most hourly; nightly (`0 2 * * *`) unless set. */
  schedule: z.string().min(9).max(100).optional(),
  retention: backupRetentionInput.optional(),
});
export const controlRestoreInput = z.strictObject({
  /** One of this install's control-plane backups… */
  backupId: id.optional(),
  /** …or a control-plane manifest in this install's object store (another install's, copied in). */
  manifestKey: z.string().min(1).max(300).optional(),
  /** The vault key of the install that made the backup (its key file's 44 base64 characters). */
  vaultKey: z.string().min(1).max(100).optional(),
  /** The NEW database to restore into, on the same server. */
  database: z.string().min(1).max(63),
});
export const createDataServiceLinkInput = z.strictObject({
  serviceId: id,
  envName: envVarName.optional(),
});
export const deleteDataServiceQuery = z.object({
  /** The data service's name, typed again: deleting it stops the database of linked apps. */
  confirm: z.string().max(100).optional(),
  /** `keep` (default) leaves the data volume on the node; `remove` deletes the data for good. */
  volume: z.enum(['keep', 'remove']).default('keep'),
});

/** A job's command: one line run by `sh -c` in the service's image. */
const jobCommand = z.string().min(1).max(4000).refine(noControlChars, 'must be one line');

/** `POST /api/jobs`: a cron job of a service environment (`production` unless named). */
export const createJobInput = z.strictObject({
  serviceId: id,
  environment: slugName.optional(),
  name: slugName,
  /** Five fields (minute hour day-of-month month day-of-week) or a macro such as @daily. */
  schedule: z.string().min(1).max(200),
  /** IANA time zone the schedule is read in; UTC unless given. */
  timeZone: z.string().min(1).max(64).optional(),
  command: jobCommand,
  overlap: z.enum(['skip', 'allow']).optional(),
  timeoutSeconds: z.number().int().min(1).max(86_400).optional(),
  retries: z.number().int().min(0).max(10).optional(),
});

/** `PATCH /api/jobs/{id}`: each field given replaces the job's. */
export const updateJobInput = z
  .strictObject({
    schedule: z.string().min(1).max(200).optional(),
    timeZone: z.string().min(1).max(64).optional(),
    command: jobCommand.optional(),
    overlap: z.enum(['skip', 'allow']).optional(),
    timeoutSeconds: z.number().int().min(1).max(86_400).optional(),
    retries: z.number().int().min(0).max(10).optional(),
  })
  .refine((v) => Object.keys(v).length > 0, 'give at least one field to change');

export const pageQuery = z.object({
  limit: z.coerce.number().int().min(1).max(200).default(50),
  cursor: z.string().max(100).optional(),
});

export type SignupInput = z.infer<typeof signupInput>;
export type LoginInput = z.infer<typeof loginInput>;
export type CreateServiceInput = z.infer<typeof createServiceInput>;
export type CreateJobInput = z.infer<typeof createJobInput>;
export type UpdateJobInput = z.infer<typeof updateJobInput>;
export type UpdateServiceInput = z.infer<typeof updateServiceInput>;
export type CreateNodeInput = z.infer<typeof createNodeInput>;
export type NodeTlsInput = z.infer<typeof nodeTlsInput>;
export type NodeSshInput = z.infer<typeof nodeSshInput>;
export type UpdateNodeInput = z.infer<typeof updateNodeInput>;
