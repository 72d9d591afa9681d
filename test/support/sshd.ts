import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { appendFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { freePort } from './ports.ts';
import { canConnect } from './services.ts';

const run = promisify(execFile);

/** Where Debian's openssh-server puts the daemon; SSHD_BIN overrides it. */
export const sshdBin = process.env.SSHD_BIN ?? '/usr/sbin/sshd';

export interface TestSshd {
  /** `ssh://<user>@127.0.0.1:<port>`, for a node's dockerHost. */
  dockerHost: string;
  /** An OpenSSH private key the server accepts for `user`. */
  clientKey: string;
  /** A key the server does not accept. */
  strangerKey: string;
  /** The server's host key line (`ssh-ed25519 AAAA…`), as ssh-keyscan prints it. */
  hostKey: string;
  /** Another host key line: a server presenting it would be an impostor. */
  otherHostKey: string;
  /** The client ports of the SSH connections open to this server now, read from /proc/net/tcp. */
  connections(): Promise<number[]>;
  /** Accepts one more public key (an OpenSSH line) for the user, e.g. a platform-made deploy key. */
  authorize(publicKey: string): Promise<void>;
  /** Kills the server's per-connection processes: every open connection drops, as on a network cut. */
  dropConnections(): Promise<void>;
  stop(): Promise<void>;
}

/**
 * A real sshd on a loopback port, for the current user, with keys made for this run: a
 * remote Docker host as `ssh://` nodes reach it (the worker runs `docker system
 * dial-stdio` through it, so the machine's docker CLI and socket serve the calls).
 */
export async function startSshd(): Promise<TestSshd> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'sdo-sshd-'));
  const f = (name: string) => path.join(dir, name);
  const keygen = (name: string) =>
    run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', name, '-f', f(name)], {
      timeout: 30_000,
    });
  for (const name of ['host', 'other-host', 'client', 'stranger']) await keygen(name);
  const user = os.userInfo().username;
  const port = await freePort();
  await writeFile(f('authorized_keys'), await readFile(f('client.pub'), 'utf8'), { mode: 0o600 });
  await writeFile(
    f('sshd_config'),
    [
      `ListenAddress 127.0.0.1:${port}`,
      `HostKey ${f('host')}`,
      `AuthorizedKeysFile ${f('authorized_keys')}`,
      `PidFile ${f('sshd.pid')}`,
      `AllowUsers ${user}`,
      'PermitRootLogin prohibit-password',
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'UsePAM no',
      // The keys live in a temp dir the test made; the modes sshd wants there are moot.
      'StrictModes no',
      'LogLevel ERROR',
      '',
    ].join('\n'),
  );
  // sshd refuses to start without its privilege-separation directory (the package's
  // service unit would make it; nothing does when sshd is started by hand).
  await mkdir('/run/sshd', { recursive: true, mode: 0o755 }).catch(() => undefined);
  const child: ChildProcess = spawn(sshdBin, ['-D', '-e', '-f', f('sshd_config')], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr?.setEncoding('utf8').on('data', (c: string) => (stderr += c));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const end = Date.now() + 10_000;
  while (!(await canConnect('127.0.0.1', port, 200))) {
    if (child.exitCode !== null || Date.now() > end) {
      child.kill('SIGKILL');
      await rm(dir, { recursive: true, force: true });
      throw new Error(
        `sshd did not start on 127.0.0.1:${port}: ${stderr.trim() || `exit ${child.exitCode}`}`,
      );
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  const publicLine = async (name: string) =>
    (await readFile(f(`${name}.pub`), 'utf8')).trim().split(' ').slice(0, 2).join(' ');
  return {
    dockerHost: `ssh://${user}@127.0.0.1:${port}`,
    clientKey: await readFile(f('client'), 'utf8'),
    strangerKey: await readFile(f('stranger'), 'utf8'),
    hostKey: await publicLine('host'),
    otherHostKey: await publicLine('other-host'),
    connections: () => establishedFrom(port),
    async authorize(publicKey: string) {
      await appendFile(f('authorized_keys'), `${publicKey.trim()}\n`);
    },
    async dropConnections() {
      const { stdout } = await run('pgrep', ['-P', String(child.pid)]).catch(() => ({
        stdout: '',
      }));
      for (const pid of stdout.split('\n').filter(Boolean)) {
        try {
          process.kill(Number(pid), 'SIGKILL');
        } catch {
          // Gone already: its connection ended on its own.
        }
      }
    },
    async stop() {
      child.kill('SIGTERM');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
      if (child.exitCode === null) child.kill('SIGKILL');
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** Client ports of established TCP connections to 127.0.0.1:port (the server's side of each). */
async function establishedFrom(port: number): Promise<number[]> {
  const table = await readFile('/proc/net/tcp', 'utf8');
  const local = `0100007F:${port.toString(16).toUpperCase().padStart(4, '0')}`;
  const ESTABLISHED = '01';
  return table
    .split('\n')
    .slice(1)
    .map((line) => line.trim().split(/\s+/))
    .filter(([, localAddress, , state]) => localAddress === local && state === ESTABLISHED)
    .map(([, , remoteAddress]) => parseInt(remoteAddress!.split(':')[1]!, 16))
    .sort((a, b) => a - b);
}
