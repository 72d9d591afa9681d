/**
 * Build-time secrets through the engine's BuildKit session, on the real Docker Engine: the
 * secret is readable in its RUN step and appears in no layer, no history entry and no
 * output line; a required secret the build was not given fails the step naming its id.
 */
import { execFile, spawn } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { DockerRuntime } from '../../adapters/runtime/docker.ts';
import { dockerTarget, ensureTestImages, removeImagesByLabel } from '../support/docker.ts';
import { available } from '../support/services.ts';
import { tarOf } from '../support/tar.ts';

const run = promisify(execFile);
const hasDocker = await available('docker');
if (!hasDocker && process.env.CI === 'true')
  throw new Error('docker-build-secrets needs the Docker Engine under CI=true');
if (!hasDocker) console.warn('SKIPPED docker-build-secrets: no Docker Engine here');

const runId = `${process.pid}-${Date.now()}`;
const label = { 'selfdevop.test': `build-secrets-${runId}` };
const secret = `npm-secret-${runId}-${Math.random().toString(36).slice(2)}`;

/** How many times `needle` occurs in `docker save` of the image (every layer, config and history). */
async function occurrencesInSavedImage(tag: string, needle: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const save = spawn('docker', ['save', tag], { stdio: ['ignore', 'pipe', 'inherit'] });
    const target = Buffer.from(needle);
    let found = 0;
    let tail = Buffer.alloc(0);
    save.stdout.on('data', (chunk: Buffer) => {
      const window = Buffer.concat([tail, chunk]);
      for (let at = window.indexOf(target); at !== -1; at = window.indexOf(target, at + 1)) found++;
      tail = window.subarray(Math.max(0, window.length - target.length + 1));
    });
    save.once('error', reject);
    save.once('close', (code) =>
      code === 0 ? resolve(found) : reject(new Error(`docker save: ${code}`)),
    );
  });
}

describe.skipIf(!hasDocker)('build-time secrets as BuildKit secret mounts', () => {
  const runtime = new DockerRuntime();
  afterAll(async () => {
    await removeImagesByLabel(label);
  });

  const build = async (dockerfile: string, tag: string, secrets?: Record<string, string>) => {
    const lines: string[] = [];
    const result = await runtime.build(
      dockerTarget,
      {
        tag,
        context: (async function* () {
          yield tarOf({ Dockerfile: dockerfile });
        })(),
        dockerfile: 'Dockerfile',
        buildArgs: {},
        labels: label,
        memoryMb: null,
        cpus: null,
        timeoutMs: 120_000,
        ...(secrets ? { secrets } : {}),
      },
      (l) => void lines.push(l),
    );
    return { result, lines };
  };

  it('serves the secret to its RUN step only; no layer, history entry or log line holds it', async () => {
    await ensureTestImages();
    const tag = `sdo-secret-test:${runId}`;
    const { result, lines } = await build(
      [
        'FROM selfdevop-test/busybox:base',
        `ENV RUN_ID=${runId}`,
        // Longer than BuildKit's 1 s session health check: the session must answer it.
        'RUN sleep 2',
        // Used, compared, and its length shown: proof the step read it, without printing it.
        'RUN --mount=type=secret,id=npm_token,required=true test -s /run/secrets/npm_token && echo "token has $(wc -c < /run/secrets/npm_token) bytes" && cp /run/secrets/npm_token /tmp/seen && md5sum /tmp/seen | cut -c1-32 > /md5 && rm /tmp/seen',
        'RUN test ! -e /run/secrets/npm_token && echo "gone after its step"',
        '',
      ].join('\n'),
      tag,
      { npm_token: secret },
    );
    expect(result, lines.join('\n')).toMatchObject({ error: null, timedOut: false });
    expect(lines).toContain(`token has ${secret.length} bytes`);
    expect(lines).toContain('gone after its step');
    expect(lines.filter((l) => l.includes(secret))).toEqual([]);
    // The step saw the real value: the digest it wrote is the value's.
    const { stdout: md5 } = await run('docker', [
      'run',
      '--rm',
      '--network',
      'none',
      tag,
      'cat',
      '/md5',
    ]);
    const { createHash } = await import('node:crypto');
    expect(md5.trim()).toBe(createHash('md5').update(secret).digest('hex'));
    const { stdout: history } = await run('docker', ['history', '--no-trunc', tag]);
    expect(history).toContain('test -s /run/secrets/npm_token');
    expect(history).not.toContain(secret);
    const { stdout: inspect } = await run('docker', ['image', 'inspect', tag]);
    expect(inspect).not.toContain(secret);
    expect(await occurrencesInSavedImage(tag, secret)).toBe(0);
    // The same check finds a value that is in a layer: it can fail.
    expect(await occurrencesInSavedImage(tag, runId)).toBeGreaterThan(0);
  }, 180_000);

  it('fails a step whose required secret was not given, naming the id', async () => {
    const { result, lines } = await build(
      [
        'FROM selfdevop-test/busybox:base',
        `RUN --mount=type=secret,id=missing_token,required=true echo ${runId}`,
        '',
      ].join('\n'),
      `sdo-secret-test:missing-${runId}`,
      { other: 'x' },
    );
    expect(result.imageId, lines.join('\n')).toBeNull();
    expect(result.error).toMatch(/missing_token/);
  }, 120_000);
});
