/**
 * One request followed end to end by its X-Request-Id: a real Caddy edge with the route
 * selfdevop plans, in front of a real app container (Node, echoing the headers it got and
 * logging the id to stdout). The edge gives a request without an id a UUID, the app
 * receives it, the client gets it back, Caddy's access log and the app's own log (read
 * through the runtime's logs) both carry it; a client's own id is passed through as it is.
 */
import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CaddyEdgeRouter } from '../../adapters/edge/caddy.ts';
import { DockerRuntime } from '../../adapters/runtime/docker.ts';
import { startCaddy, type TestCaddy } from '../support/caddy.ts';
import {
  dockerTarget,
  ensureTestImages,
  removeContainersByLabel,
  testRun,
  waitForStatus,
  httpGet,
} from '../support/docker.ts';
import { available } from '../support/services.ts';

const ready = (await available('docker')) && (await available('caddy'));
if (!ready && process.env.CI === 'true')
  throw new Error('the request-id test needs Docker and Caddy, which CI must have');
if (!ready) console.warn('SKIPPED request-id: Docker or Caddy is not available here');

/** The app: answers every request with the headers it received, and logs its request id. */
const echoApp = `require('http').createServer((q, s) => {
  console.log('app got request ' + q.headers['x-request-id'] + ' ' + q.url);
  s.setHeader('content-type', 'application/json');
  s.end(JSON.stringify(q.headers));
}).listen(8080);`;

function get(port: number, host: string, headers: Record<string, string> = {}) {
  return new Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }>(
    (resolve, reject) => {
      const req = http.request(
        {
          host: '127.0.0.1',
          port,
          path: '/checkout',
          headers: { Host: host, ...headers },
          agent: false,
        },
        (res) => {
          let body = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => (body += c));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
        },
      );
      req.on('error', reject);
      req.end();
    },
  );
}

describe.skipIf(!ready)('X-Request-Id from the edge to the app and the logs', () => {
  const run = testRun(import.meta.url);
  const runtime = new DockerRuntime();
  let caddy: TestCaddy;
  let container: string;
  const host = 'echo.request-id.test';

  beforeAll(async () => {
    await ensureTestImages();
    caddy = await startCaddy();
    container = run.name('echo');
    const info = await runtime.start(dockerTarget, {
      name: container,
      image: 'selfdevop-test/node:base',
      env: {},
      labels: run.labels,
      cmd: ['/bin/node', '-e', echoApp],
      containerPort: 8080,
      publishIp: '127.0.0.1',
      restartPolicy: 'no',
    });
    await waitForStatus(() => httpGet(info.published!, '/'), 200);
    await new CaddyEdgeRouter({ adminUrl: caddy.adminUrl, server: caddy.serverName }).put({
      id: 'svc_echo',
      hosts: [host],
      upstreams: [info.published!],
      sticky: false,
      drainSeconds: 0,
    });
  }, 120_000);

  afterAll(async () => {
    await caddy?.stop();
    await removeContainersByLabel(run.labels);
  });

  const appLog = async () => {
    const lines: string[] = [];
    for await (const l of runtime.logs(dockerTarget, container, {
      follow: false,
      signal: new AbortController().signal,
    }))
      lines.push(l.text);
    return lines;
  };
  const eventually = async (check: () => Promise<boolean> | boolean, what: string) => {
    for (let k = 0; k < 100; k++) {
      if (await check()) return;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`${what} did not happen within 10 s`);
  };

  it('gives a request without one a UUID that reaches the app, the client, the access log and the app log', async () => {
    const res = await get(caddy.httpPort, host);
    expect(res.status).toBe(200);
    const id = (JSON.parse(res.body) as Record<string, string>)['x-request-id'];
    expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    expect(res.headers['x-request-id']).toBe(id);
    await eventually(() => caddy.stderr().includes(id!), 'the access log line');
    const access = caddy
      .stderr()
      .split('\n')
      .filter((l) => l.includes('http.log.access') && l.includes(id!))
      .map((l) => JSON.parse(l) as { request: { host: string; uri: string }; status: number });
    expect(access).toHaveLength(1);
    expect(access[0]).toMatchObject({ request: { host, uri: '/checkout' }, status: 200 });
    await eventually(
      async () => (await appLog()).includes(`app got request ${id} /checkout`),
      'the app log line',
    );
  });

  it("keeps the client's own id", async () => {
    const res = await get(caddy.httpPort, host, { 'X-Request-Id': 'trace-from-client-42' });
    expect((JSON.parse(res.body) as Record<string, string>)['x-request-id']).toBe(
      'trace-from-client-42',
    );
    expect(res.headers['x-request-id']).toBe('trace-from-client-42');
    await eventually(() => caddy.stderr().includes('trace-from-client-42'), 'the access log line');
    await eventually(
      async () => (await appLog()).includes('app got request trace-from-client-42 /checkout'),
      'the app log line',
    );
  });
});
