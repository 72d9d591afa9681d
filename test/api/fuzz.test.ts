/**
 * Thousands of generated bodies at every write endpoint: whatever arrives, the API answers
 * with a 2xx or a JSON 4xx that has a code and a message, never a 5xx, never a crash.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSelfhostApi } from '../support/api.ts';
import type { ApiHarness } from './api.case.ts';

const runs = 5_000;

describe('write endpoints under generated bodies', () => {
  let api: ApiHarness;
  let token: string;
  let orgId: string;
  let projectId: string;

  beforeAll(async () => {
    // Generous login limits: this suite is about bodies, the rate limit has its own test.
    api = await startSelfhostApi({ loginLimits: { perAccount: 1_000_000, perIp: 1_000_000 } });
    const s = await api.request('POST', '/api/auth/local/signup', {
      body: { email: 'fuzz@example.com', password: 'correct horse battery' },
    });
    token = s.body.token;
    orgId = s.body.org.id;
    projectId = (await api.request('POST', '/api/projects', { token, body: { name: 'fuzz' } })).body
      .id;
  });
  afterAll(async () => api?.close());

  it(`answers ${runs} generated bodies without a 5xx`, async () => {
    const endpoints = [
      '/api/auth/local/signup',
      '/api/auth/local/login',
      '/api/orgs',
      `/api/orgs/${orgId}/api-keys`,
      '/api/projects',
      '/api/environments',
      '/api/services',
      '/api/nodes',
    ];
    const nasty = fc.oneof(
      fc.string({ unit: 'binary' }),
      fc.string({ unit: 'grapheme' }),
      fc.constantFrom(
        "'; drop table projects; --",
        '" or 1=1 --',
        '\u0000',
        '\ud800',
        '\u202e',
        '../../etc/passwd',
        '${jndi:ldap://x}',
        'a'.repeat(10_000),
        projectId,
        'prj_' + '0'.repeat(26),
      ),
      fc.integer(),
      fc.double(),
      fc.boolean(),
      fc.constant(null),
    );
    // PEM-shaped strings with hostile labels and bodies, so the PEM checks themselves are fuzzed.
    const pem = fc
      .tuple(
        fc.constantFrom(
          'CERTIFICATE',
          'PRIVATE KEY',
          'OPENSSH PRIVATE KEY',
          'ENCRYPTED PRIVATE KEY',
          'X',
        ),
        fc.oneof(fc.base64String(), nasty),
      )
      .map(([label, body]) => `-----BEGIN ${label}-----\n${body}\n-----END ${label}-----\n`);
    // Bodies shaped like the real ones, with hostile values, reach deeper than random JSON.
    const shaped = fc.record(
      {
        email: fc.oneof(fc.emailAddress(), nasty),
        password: fc.oneof(fc.string({ minLength: 8, maxLength: 80 }), nasty),
        name: fc.oneof(fc.stringMatching(/^[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?$/), nasty),
        role: fc.oneof(fc.constantFrom('owner', 'admin', 'deployer', 'viewer'), nasty),
        projectId: fc.oneof(fc.constant(projectId), nasty),
        image: fc.oneof(
          fc.constantFrom('nginx:1.27', 'ghcr.io/acme/app@sha256:' + 'a'.repeat(64)),
          nasty,
        ),
        containerPort: fc.oneof(fc.integer({ min: -10, max: 70_000 }), nasty),
        healthcheckPath: fc.oneof(fc.constantFrom('/health', '/'), nasty),
        env: fc.oneof(fc.dictionary(fc.string(), fc.string()), nasty),
        dockerHost: fc.oneof(
          fc.constantFrom('unix:///var/run/docker.sock', 'tcp://10.0.0.1:2376', 'ssh://u@10.0.0.1'),
          nasty,
        ),
        tls: fc.oneof(
          fc.record(
            { ca: fc.oneof(pem, nasty), cert: fc.oneof(pem, nasty), key: fc.oneof(pem, nasty) },
            { requiredKeys: [] },
          ),
          nasty,
        ),
        ssh: fc.oneof(
          fc.record(
            {
              privateKey: fc.oneof(pem, nasty),
              hostKey: nasty,
              insecureIgnoreHostKey: fc.oneof(fc.boolean(), nasty),
            },
            { requiredKeys: [] },
          ),
          nasty,
        ),
        address: fc.oneof(fc.ipV4(), nasty),
        labels: fc.oneof(fc.dictionary(fc.string(), fc.string()), nasty),
        health: fc.oneof(fc.record({ successes: fc.integer() }), nasty),
      },
      { requiredKeys: [] },
    );
    const body = fc.oneof(
      { weight: 3, arbitrary: shaped.map((b) => JSON.stringify(b)) },
      { weight: 1, arbitrary: fc.jsonValue().map((v) => JSON.stringify(v)) },
      { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 200 }) },
    );
    const failures: string[] = [];
    let count = 0;
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...endpoints), body, async (path, rawBody) => {
        count++;
        const res = await api.request('POST', path, { token, rawBody });
        if (res.status >= 500 || (typeof res.body?.error?.code !== 'string' && res.status >= 400)) {
          failures.push(
            `${path} ${res.status} ${rawBody.slice(0, 200)} → ${res.text.slice(0, 200)}`,
          );
        }
        return res.status < 500;
      }),
      { numRuns: runs, endOnFailure: true },
    );
    expect(failures).toEqual([]);
    expect(count).toBe(runs);
    expect((await api.request('GET', '/health/ready')).status).toBe(200);
  }, 300_000);
});
