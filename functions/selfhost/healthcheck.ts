/**
 * The container HEALTHCHECK of the selfdevop image. The API (default): GET /health on its
 * own port answers 200. The worker (SELFDEVOP_ROLE=worker): its heartbeat file, written
 * only while the database answers, is fresh. Exit 0 = healthy, 1 = not, with the reason.
 */
import { stat } from 'node:fs/promises';
import http from 'node:http';
import { fromEnv } from '../../adapters/modes/config.ts';

const staleAfterMs = 30_000;

function fail(reason: string): never {
  process.stderr.write(`unhealthy: ${reason}\n`);
  process.exit(1);
}

let config;
try {
  config = fromEnv();
} catch (e) {
  fail(e instanceof Error ? e.message : String(e));
}

if (config.SELFDEVOP_ROLE === 'worker') {
  const file = config.WORKER_HEARTBEAT_FILE;
  const info = await stat(file).catch(() => fail(`no heartbeat at ${file} yet`));
  const age = Date.now() - info.mtimeMs;
  if (age > staleAfterMs) fail(`the last heartbeat is ${Math.round(age / 1000)} s old`);
  process.exit(0);
}

const port = config.PORT;
const status = await new Promise<number>((resolve) => {
  const req = http.get(
    { host: '127.0.0.1', port, path: '/health', timeout: 2_000, agent: false },
    (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    },
  );
  req.on('timeout', () => req.destroy(new Error('timeout')));
  req.on('error', () => resolve(0));
});
if (status !== 200)
  fail(status === 0 ? `nothing answers on 127.0.0.1:${port}` : `GET /health answered ${status}`);
process.exit(0);
