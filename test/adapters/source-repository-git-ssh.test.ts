/**
 * GitCliSource over SSH against the test sshd (a real OpenSSH server on loopback serving a
 * bare repository to a deploy key): the server's host key is taken on first contact and
 * handed back to be pinned, a pinned key is required, and a server presenting another key
 * is refused before anything is fetched, naming the host and both fingerprints.
 */
import { execFile } from 'node:child_process';
import os from 'node:os';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GitCliSource } from '../../adapters/source/git-cli.ts';
import { hostKeyFingerprint } from '../../core/builds/host-keys.ts';
import type { GitRemote } from '../../core/ports.ts';
import { makeRepo, startGitDaemon, type TestGitServer } from '../support/git-server.ts';
import { isCi } from '../support/services.ts';
import { sshdBin, startSshd, type TestSshd } from '../support/sshd.ts';

const run = promisify(execFile);
const haveSshd = await run(sshdBin, ['-V']).then(
  () => true,
  (e: { stderr?: string }) => /OpenSSH/.test(e.stderr ?? ''),
);
if (!haveSshd) {
  console.warn(
    `SKIPPED: no sshd at ${sshdBin}: the SSH host-key tests need Debian's openssh-server`,
  );
  if (isCi) throw new Error(`CI must run the SSH host-key tests: no sshd at ${sshdBin}`);
}

describe.skipIf(!haveSshd)('GitCliSource over ssh: host keys', () => {
  let sshd: TestSshd;
  let daemon: TestGitServer;
  let url: string;
  let main: string;
  const source = new GitCliSource();
  const fingerprintOf = (line: string) => hostKeyFingerprint(line.split(' ')[1]!);
  const remote = (knownHosts: string | null): GitRemote => ({
    url,
    credential: { privateKey: sshd.clientKey },
    knownHosts,
  });

  beforeAll(async () => {
    [sshd, daemon] = await Promise.all([startSshd(), startGitDaemon()]);
    const repo = await makeRepo(daemon.root, 'pinned');
    main = await repo.commit({ Dockerfile: 'FROM scratch\n' });
    const port = new URL(sshd.dockerHost).port;
    url = `ssh://${os.userInfo().username}@127.0.0.1:${port}${repo.bare}`;
  });
  afterAll(async () => {
    await Promise.all([sshd?.stop(), daemon?.stop()]);
  });

  it('takes the key on first contact and hands back its known_hosts line to pin', async () => {
    const r = remote(null);
    expect(await source.resolveRef(r, 'main')).toBe(main);
    const port = new URL(sshd.dockerHost).port;
    expect(r.learnedHostKeys).toBe(`[127.0.0.1]:${port} ${sshd.hostKey}`);
    // A fetch learns it too (the build step's first contact when the API could not resolve).
    const f = remote(null);
    const tree = await source.fetch(f, main, '');
    await tree.close();
    expect(f.learnedHostKeys).toBe(`[127.0.0.1]:${port} ${sshd.hostKey}`);
  });

  it('requires a pinned key, and learns nothing more', async () => {
    const port = new URL(sshd.dockerHost).port;
    const r = remote(`[127.0.0.1]:${port} ${sshd.hostKey}`);
    expect(await source.resolveRef(r, 'main')).toBe(main);
    const tree = await source.fetch(r, main, '');
    expect(await tree.read('Dockerfile')).toBe('FROM scratch\n');
    await tree.close();
    expect(r.learnedHostKeys).toBeUndefined();
  });

  it('refuses a server presenting another key than the pinned one, naming the host and both fingerprints', async () => {
    const port = new URL(sshd.dockerHost).port;
    // Pinned: the key the server had; presented now: another (a rotation, or someone in the middle).
    const r = remote(`[127.0.0.1]:${port} ${sshd.otherHostKey}`);
    const expected = {
      code: 'git_host_key_changed',
      kind: 'invalid',
      message: `the SSH host key of 127.0.0.1:${port} changed: pinned ssh-ed25519 ${fingerprintOf(sshd.otherHostKey)}, the server presented ${fingerprintOf(sshd.hostKey)}; nothing was fetched. If the server's key was rotated, set the service's git.knownHosts to its new key (or null to pin the next one seen)`,
      details: expect.objectContaining({ host: `127.0.0.1:${port}` }),
    };
    await expect(source.resolveRef(r, 'main')).rejects.toMatchObject(expected);
    await expect(source.fetch(r, main, '')).rejects.toMatchObject(expected);
    expect(r.learnedHostKeys).toBeUndefined();
  });

  it('refuses a pin for another host: the server is not known at all under strict checking', async () => {
    const r = remote(`[127.0.0.1]:1 ${sshd.hostKey}`);
    await expect(source.resolveRef(r, 'main')).rejects.toMatchObject({
      code: 'git_host_key_changed',
    });
  });
});
