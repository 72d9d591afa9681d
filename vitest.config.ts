import { globSync } from 'node:fs';
import { defineConfig } from 'vitest/config';

/**
 * The fast suites: they need nothing outside the test process (no PostgreSQL, Docker,
 * Caddy, pebble, sshd, browser or listening socket), so `npm run test:unit` runs them
 * anywhere in seconds. A file that starts needing one of those moves to `integration`.
 */
const unit = [
  'test/core/**/*.test.ts',
  'test/adapters/*-memory.test.ts',
  'test/adapters/auth-provider-local-jwt.test.ts',
  'test/adapters/event-queue-sqs.test.ts',
  'test/adapters/key-hasher-node-crypto.test.ts',
  'test/adapters/backup-codec-node.test.ts',
  'test/adapters/key-vault-aes-file.test.ts',
  'test/adapters/key-vault-kms.test.ts',
  'test/adapters/mailer-ses.test.ts',
  'test/adapters/metrics-cloudwatch-emf.test.ts',
  'test/adapters/object-store-local-fs.test.ts',
  'test/adapters/scheduler-eventbridge.test.ts',
  'test/adapters/swarm-service-spec.test.ts',
  'test/adapters/swarm-pinned.test.ts',
  'test/cli/manifest.test.ts',
  'test/cloud/lambda-worker.test.ts',
  'test/selfhost/config.test.ts',
  'test/selfhost/install-runtime.test.ts',
];
/** Core suites that drive the engine against a real PostgreSQL, or Docker and Caddy. */
const coreIntegration = [
  'test/core/releases/postgres-store.test.ts',
  'test/core/releases/real-deploy.test.ts',
  'test/core/jobs/real-docker.test.ts',
];
// Listed file by file so that `integration` can exclude exactly these (an exclude glob
// would also drop the core integration suites, and exclusion wins over inclusion).
const unitFiles = globSync(unit, { cwd: import.meta.dirname }).filter(
  (file) => !coreIntegration.includes(file),
);

/**
 * Forks for the integration files. They mostly wait (on PostgreSQL, Docker, Caddy, builds,
 * health checks), so they run better with more forks than cores: vitest's default is one
 * fork fewer than the cores, which on CI's two cores ran every file one after another.
 * Three, not more: on two cores, more made load-sensitive files fail beside the others
 * (those now run alone, test/support/exclusive.ts). `vitest run --maxWorkers N` overrides it.
 */
const integrationWorkers = 3;

// Integration suites talk to real PostgreSQL, Docker and Caddy; each test file gets its
// own database, so files run in parallel but a file's tests stay in order. The few files
// that change shared state others read, or that must not share the machine, hold a lock
// for their whole file (test/support/exclusive.ts).
export default defineConfig({
  test: {
    testTimeout: 30_000,
    hookTimeout: 120_000,
    pool: 'forks',
    projects: [
      // vitest runs projects of different maxWorkers in separate groups: the quick unit
      // files first, then the integration files.
      { extends: true, test: { name: 'unit', include: unitFiles, sequence: { groupOrder: 0 } } },
      {
        extends: true,
        test: {
          name: 'integration',
          include: ['test/**/*.test.ts'],
          exclude: ['**/node_modules/**', ...unitFiles],
          globalSetup: ['test/support/global-setup.ts'],
          setupFiles: ['test/support/exclusive.ts'],
          maxWorkers: integrationWorkers,
          sequence: { groupOrder: 1 },
        },
      },
    ],
  },
});
