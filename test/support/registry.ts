/**
 * A private image registry on loopback: Distribution's `registry` (Debian's docker-registry
 * package) with htpasswd auth, its storage in a temp dir. The Docker Engine treats
 * 127.0.0.0/8 registries as insecure by default, so it pulls from this one over plain HTTP.
 */
import bcrypt from 'bcryptjs';
import { execFile, spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort } from './ports.ts';
import { canConnect, registryBin } from './services.ts';

const exec = promisify(execFile);

export interface TestRegistry {
  /** host:port, as image references name it. */
  server: string;
  username: string;
  password: string;
  /** Tags a local image as `<server>/<name>` and pushes it (as the user, through the engine); its id. */
  push(localImage: string, name: string): Promise<string>;
  stop(): Promise<void>;
}

export async function startRegistry(): Promise<TestRegistry> {
  const dir = await mkdtemp(join(tmpdir(), 'sdo-registry-'));
  const port = await freePort();
  const server = `127.0.0.1:${port}`;
  const username = 'ci';
  const password = `pw-${Math.random().toString(36).slice(2)}`;
  await writeFile(join(dir, 'htpasswd'), `${username}:${bcrypt.hashSync(password, 5)}\n`);
  await writeFile(
    join(dir, 'config.yml'),
    [
      'version: 0.1',
      'log: {level: warn}',
      'storage:',
      `  filesystem: {rootdirectory: ${join(dir, 'data')}}`,
      '  delete: {enabled: true}',
      'http:',
      `  addr: ${server}`,
      'auth:',
      '  htpasswd:',
      '    realm: selfdevop-test',
      `    path: ${join(dir, 'htpasswd')}`,
      '',
    ].join('\n'),
  );
  const child = spawn(registryBin, ['serve', join(dir, 'config.yml')], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (c: string) => (stderr = (stderr + c).slice(-4000)));
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const deadline = Date.now() + 15_000;
  while (!(await canConnect('127.0.0.1', port, 500))) {
    if (child.exitCode !== null || Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`the registry did not listen on ${server}:\n${stderr}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  // The test's own Docker client config, so its login never touches the machine's.
  const dockerConfig = join(dir, 'docker-config');
  await new Promise<void>((resolve, reject) => {
    const login = spawn(
      'docker',
      ['--config', dockerConfig, 'login', server, '-u', username, '--password-stdin'],
      { stdio: ['pipe', 'ignore', 'pipe'] },
    );
    let err = '';
    login.stderr.on('data', (c: Buffer) => (err += c.toString()));
    login.on('exit', (code) =>
      code === 0 ? resolve() : reject(new Error(`docker login ${server}: ${err}`)),
    );
    login.stdin.end(password);
  });
  return {
    server,
    username,
    password,
    async push(localImage, name) {
      const ref = `${server}/${name}`;
      await exec('docker', ['tag', localImage, ref]);
      await exec('docker', ['--config', dockerConfig, 'push', ref], { timeout: 120_000 });
      const { stdout } = await exec('docker', ['image', 'inspect', '-f', '{{.Id}}', ref]);
      return stdout.trim();
    },
    async stop() {
      child.kill('SIGTERM');
      await exited;
      await rm(dir, { recursive: true, force: true });
    },
  };
}
