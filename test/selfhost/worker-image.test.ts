/**
 * The Compose worker image carries the client tools control-plane backups run
 * (adapters/control-database/pg-tools.ts: pg_dump, pg_restore, psql), of the stack's
 * PostgreSQL major: built offline from Debian's packages by `selfhost/build-images.sh
 * --control` under a tag of this test's own, then asked for their versions the way the worker
 * finds them (on PATH, as its user). pg_dump refuses a server newer than itself, so the major
 * must be the one of selfdevop/postgres:15, which the Compose stack's database runs.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { available } from '../support/services.ts';

const ready = await available('docker');
const run = promisify(execFile);
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

describe.skipIf(!ready)(
  'the worker image (selfdevop/selfdevop) has the PostgreSQL client tools',
  () => {
    const version = `0.0.0-worker-image-${randomBytes(3).toString('hex')}`;
    const image = `selfdevop/selfdevop:${version}`;
    const inImage = async (...args: string[]) =>
      (
        await run('docker', ['run', '--rm', '--entrypoint', args[0]!, image, ...args.slice(1)], {
          timeout: 60_000,
        })
      ).stdout.trim();

    beforeAll(async () => {
      await run(
        'bash',
        [path.join(root, 'selfhost/build-images.sh'), '--control', '--version', version],
        {
          timeout: 900_000,
          maxBuffer: 16 * 1024 * 1024,
        },
      );
    }, 900_000);

    afterAll(async () => {
      await run('docker', ['image', 'rm', image]).catch(() => undefined);
    });

    it('runs pg_dump, pg_restore and psql of major 15, as the worker user, from PATH', async () => {
      expect(await inImage('pg_dump', '--version')).toMatch(/^pg_dump \(PostgreSQL\) 15\.\d+/);
      expect(await inImage('pg_restore', '--version')).toMatch(
        /^pg_restore \(PostgreSQL\) 15\.\d+/,
      );
      expect(await inImage('psql', '--version')).toMatch(/^psql \(PostgreSQL\) 15\.\d+/);
      // The worker runs as its own user (not root), which must be able to run them.
      expect(await inImage('id', '-u')).toBe('10001');
    });

    it("matches the major of the stack's own PostgreSQL image", async () => {
      const client = (await inImage('pg_dump', '--version')).match(/\) (\d+)\./)?.[1];
      const server = (
        await run(
          'docker',
          ['run', '--rm', '--entrypoint', 'postgres', 'selfdevop/postgres:15', '--version'],
          {
            timeout: 60_000,
          },
        )
      ).stdout.match(/\) (\d+)\./)?.[1];
      expect(server).toBeDefined();
      expect(client).toBe(server);
    });

    it('still carries Node 24 and the bundles (the worker entry point loads)', async () => {
      expect(await inImage('node', '--version')).toMatch(/^v24\./);
      const out = await run(
        'docker',
        ['run', '--rm', '-e', 'PORT=bad', '--entrypoint', 'node', image, 'dist/bundle/worker.mjs'],
        { timeout: 60_000 },
      ).catch((e: { stdout?: string; stderr?: string }) => ({
        stdout: e.stdout ?? '',
        stderr: e.stderr ?? '',
      }));
      expect(`${out.stdout}${out.stderr}`).toContain('PORT: must be a port number');
    });
  },
);
