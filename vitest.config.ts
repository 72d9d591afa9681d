import { defineConfig } from 'vitest/config';

// Integration suites talk to real PostgreSQL, Docker and Caddy; each test file gets its
// own database, so files run in parallel but a file's tests stay in order.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 120_000,
    pool: 'forks',
    globalSetup: ['test/support/global-setup.ts'],
  },
});
