/**
 * The embedded PostgreSQL after a killed run (adapters/db/embedded-postgres.ts): a start that
 * finds the old postmaster dead but not yet reaped (a zombie, which PostgreSQL counts as
 * alive and so refuses its lock file) starts anyway; a lock held by a live process is left to
 * PostgreSQL, which names it. Linux only: the zombie is read from /proc.
 */
import { execFileSync, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEmbeddedPostgres } from '../../adapters/db/embedded-postgres.ts';
import { freePort } from '../support/ports.ts';

const stateOf = async (pid: number) => {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
};

/**
 * The lock's holder must be the server's own user: PostgreSQL (run as `postgres`, as the
 * embedded one is under root) takes a process it may not signal for another user's, not a
 * postmaster. So the zombie and the live holder here run as `postgres` too.
 */
const postgresUser = (() => {
  try {
    const id = (flag: string) =>
      Number(execFileSync('id', [flag, 'postgres'], { encoding: 'utf8' }));
    return process.getuid?.() === 0 ? { uid: id('-u'), gid: id('-g') } : null;
  } catch {
    return null;
  }
})();

describe.skipIf(!existsSync('/proc/self/stat'))(
  'the embedded PostgreSQL after a killed run',
  () => {
    let dir: string;
    let port: number;
    const start = () =>
      startEmbeddedPostgres({ dataDir: dir, port, password: 'lock-test', database: 'selfdevop' });

    beforeAll(async () => {
      dir = await mkdtemp(path.join(os.tmpdir(), 'sdo-pg-lock-'));
      await chmod(dir, 0o711);
      port = await freePort();
      await (await start()).stop();
    }, 120_000);
    afterAll(async () => {
      if (dir) await rm(dir, { recursive: true, force: true });
    });

    it('starts over a lock file whose postmaster is a zombie', async () => {
      // A child that exits at once, of a parent that never waits for it: a zombie. (Perl, not a
      // shell: a shell may reap its background job before it execs.)
      const parent = spawn(
        'perl',
        ['-e', '$| = 1; my $p = fork(); exit 0 unless $p; print "$p\\n"; sleep 60;'],
        { stdio: 'pipe', ...postgresUser },
      );
      try {
        const zombie = await new Promise<number>((resolve) =>
          parent.stdout.once('data', (d: Buffer) => resolve(Number(String(d).trim()))),
        );
        for (let i = 0; i < 50 && (await stateOf(zombie)) !== 'Z'; i++)
          await new Promise((r) => setTimeout(r, 20));
        expect(await stateOf(zombie)).toBe('Z');
        const lock = path.join(dir, 'postgres', 'postmaster.pid');
        await writeFile(lock, `${zombie}\n${path.join(dir, 'postgres')}\n`);
        const pg = await start();
        try {
          expect(pg.url).toContain(`:${port}/selfdevop`);
          expect(Number((await readFile(lock, 'utf8')).split('\n')[0])).not.toBe(zombie);
        } finally {
          await pg.stop();
        }
      } finally {
        parent.kill('SIGKILL');
      }
    }, 60_000);

    it('leaves a lock held by a live process to PostgreSQL, which names it', async () => {
      const holder = spawn('sleep', ['60'], { ...postgresUser });
      try {
        const lock = path.join(dir, 'postgres', 'postmaster.pid');
        await writeFile(lock, `${holder.pid}\n${path.join(dir, 'postgres')}\n`);
        await expect(start()).rejects.toThrow(
          `is in use by another PostgreSQL (pid ${holder.pid})`,
        );
        expect(existsSync(lock)).toBe(true);
      } finally {
        holder.kill('SIGKILL');
        await rm(path.join(dir, 'postgres', 'postmaster.pid'), { force: true });
      }
    }, 60_000);
  },
);
