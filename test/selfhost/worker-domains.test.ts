/**
 * The compose `worker` process checks custom domains with the edge settings it is given:
 * DNS through DNS_SERVERS against EDGE_IPV4, and the certificate read back from Caddy's
 * HTTPS listener at EDGE_TLS_ADDRESS (in Compose, `caddy:443`, not its own 127.0.0.1:443).
 * The worker runs as a real process configured by its environment alone; the DNS server
 * (pebble-challtestsrv) and the TLS listener belong to the test, which sees what reaches them.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { promisify } from 'node:util';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CaddyEdgeRouter } from '../../adapters/edge/caddy.ts';
import { ensureKeyFile } from '../../adapters/vault/aes-file.ts';
import { routeId } from '../../core/releases/plan.ts';
import { startSelfhostApi } from '../support/api.ts';
import { startCaddy, type TestCaddy } from '../support/caddy.ts';
import { freePort } from '../support/ports.ts';
import { createTestDatabase } from '../support/db.ts';
import { pebbleAvailable, startChallTestSrv, type ChallTestSrv } from '../support/pebble.ts';
import { available } from '../support/services.ts';
import { startSelfhostWorker, type WorkerProcess } from '../support/worker-process.ts';

const ready = (await available('caddy')) && (await pebbleAvailable());
const run = promisify(execFile);

const hostname = 'shop.customer.test';
const edgeIpv4 = '203.0.113.7';
const edgeDomain = 'apps.worker.test';

describe.skipIf(!ready)('the self-hosted worker process and custom domains', () => {
  let db: Awaited<ReturnType<typeof createTestDatabase>>;
  let dns: ChallTestSrv;
  let caddy: TestCaddy;
  let api: Awaited<ReturnType<typeof startSelfhostApi>>;
  let worker: WorkerProcess;
  let edgeTls: tls.Server;
  let dir: string;
  /** The SNI of every TLS handshake that reached the test's listener. */
  const handshakes: string[] = [];

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'sdo-worker-domains-'));
    // A certificate for the hostname from an issuer that is not Caddy's local CA, so the
    // worker takes it for the edge's ACME certificate.
    await run(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:prime256v1',
        '-nodes',
        '-keyout',
        join(dir, 'edge.key'),
        '-out',
        join(dir, 'edge.pem'),
        '-days',
        '1',
        '-subj',
        '/CN=selfdevop test ACME',
        '-addext',
        `subjectAltName=DNS:${hostname}`,
      ],
      { timeout: 30_000 },
    );
    const context = tls.createSecureContext({
      key: await readFile(join(dir, 'edge.key')),
      cert: await readFile(join(dir, 'edge.pem')),
    });
    edgeTls = tls.createServer({
      SNICallback: (name, cb) => {
        handshakes.push(name);
        cb(null, context);
      },
    });
    edgeTls.on('secureConnection', (socket) => socket.end());
    edgeTls.on('tlsClientError', () => undefined);
    const tlsPort = await freePort();
    await new Promise<void>((resolve) => edgeTls.listen(tlsPort, '127.0.0.1', resolve));

    dns = await startChallTestSrv();
    caddy = await startCaddy();
    db = await createTestDatabase('worker_domains');
    api = await startSelfhostApi({ databaseUrl: db.url, edgeDomain, edgeIpv4: [edgeIpv4] });
    const keyFile = join(dir, 'encryption.key');
    await ensureKeyFile(keyFile);
    worker = await startSelfhostWorker({
      DATABASE_URL: db.url,
      JWT_SECRET: randomBytes(32).toString('base64url'),
      ENCRYPTION_KEY_FILE: keyFile,
      EDGE_DOMAIN: edgeDomain,
      CADDY_ADMIN_URL: caddy.adminUrl,
      CADDY_SERVER: caddy.serverName,
      EDGE_UPSTREAMS: 'static',
      EDGE_TLS_ADDRESS: `127.0.0.1:${tlsPort}`,
      EDGE_IPV4: edgeIpv4,
      DNS_SERVERS: dns.dnsAddress,
      WORKER_HEARTBEAT_FILE: join(dir, 'heartbeat'),
      CONTROL_UPSTREAM: '127.0.0.1:9',
      LOG_LEVEL: 'info',
    });
  }, 90_000);

  afterAll(async () => {
    await worker?.stop(5_000);
    await api?.close();
    await caddy?.stop();
    await dns?.stop();
    await new Promise((resolve) => (edgeTls ? edgeTls.close(resolve) : resolve(undefined)));
    await db?.drop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('verifies DNS with DNS_SERVERS and EDGE_IPV4, and reads the certificate at EDGE_TLS_ADDRESS with SNI', async () => {
    const req = api.request;
    const s = await req('POST', '/api/auth/local/signup', {
      body: { email: 'worker-domains@example.com', password: 'correct horse battery' },
    });
    const token = s.body.token as string;
    const project = await req('POST', '/api/projects', { token, body: { name: 'shop' } });
    const svc = await req('POST', '/api/services', {
      token,
      body: {
        projectId: project.body.id,
        name: 'web',
        image: 'selfdevop-test/app:v1',
        containerPort: 8080,
        healthcheckPath: '/health',
      },
    });
    expect(svc.status, svc.text).toBe(201);
    const created = await req('POST', '/api/domains', {
      token,
      body: { serviceId: svc.body.id, hostname },
    });
    expect(created.status, created.text).toBe(201);
    const domain = created.body as {
      id: string;
      environmentId: string;
      records: { type: string; name: string; value: string }[];
    };

    // The service environment serves already (as after a release): its route is on the edge.
    const edge = new CaddyEdgeRouter({ adminUrl: caddy.adminUrl, server: caddy.serverName });
    await edge.put({
      id: routeId(svc.body.id, domain.environmentId),
      hosts: [`web-production.${edgeDomain}`],
      upstreams: ['127.0.0.1:9'],
      sticky: false,
      drainSeconds: 0,
    });
    // Only the test's DNS server knows these records, and the A record names the edge's
    // configured address (not the 127.0.0.1 challtestsrv answers by default).
    const txt = domain.records.find((r) => r.type === 'TXT')!;
    await dns.setTxt(txt.name, txt.value);
    await dns.addA(hostname, [edgeIpv4]);
    const verify = await req('POST', `/api/domains/${domain.id}/verify`, { token });
    expect(verify.status, verify.text).toBeLessThan(300);

    const end = Date.now() + 30_000;
    let d = (await req('GET', `/api/domains/${domain.id}`, { token })).body;
    while (d.status !== 'active' && Date.now() < end) {
      await new Promise((r) => setTimeout(r, 200));
      d = (await req('GET', `/api/domains/${domain.id}`, { token })).body;
    }
    expect(d, `worker output:\n${worker.output().slice(-4000)}`).toMatchObject({
      status: 'active',
      dnsStatus: 'verified',
      tlsStatus: 'active',
      lastError: null,
    });
    expect(handshakes).toContain(hostname);
  }, 60_000);
});
