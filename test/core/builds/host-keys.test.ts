/**
 * Pinned SSH host keys: what `git.knownHosts` takes, and the fingerprints shown beside it,
 * checked against OpenSSH's own `ssh-keygen -lf` for keys it made.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { gitSourceInput, sshAuthority } from '../../../core/builds/git-source.ts';
import {
  GitHostKeyChanged,
  hostKeyFingerprint,
  hostKeys,
  knownHostsInput,
} from '../../../core/builds/host-keys.ts';

const run = promisify(execFile);

/** A key made by ssh-keygen: its public line and the fingerprint ssh-keygen prints for it. */
async function sshKeygen(type: 'ed25519' | 'ecdsa' | 'rsa') {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'sdo-hk-'));
  try {
    const file = path.join(dir, 'k');
    await run('ssh-keygen', ['-q', '-t', type, '-N', '', '-C', 'x', '-f', file]);
    const line = (await readFile(`${file}.pub`, 'utf8')).trim();
    const printed = (await run('ssh-keygen', ['-lf', `${file}.pub`])).stdout.split(' ')[1]!;
    return { line, printed };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

describe('pinned SSH host keys', () => {
  it('fingerprints a key exactly as ssh-keygen -lf prints it, for each key type', async () => {
    for (const type of ['ed25519', 'ecdsa', 'rsa'] as const) {
      const { line, printed } = await sshKeygen(type);
      const [keyType, blob] = line.split(' ');
      expect(hostKeyFingerprint(blob!)).toBe(printed);
      expect(hostKeys(`[git.example.com]:2222 ${keyType} ${blob}`)).toEqual([
        { hosts: '[git.example.com]:2222', type: keyType, fingerprint: printed },
      ]);
    }
  });

  it('takes known_hosts lines (comments and blank lines dropped) and names each bad line', async () => {
    const { line } = await sshKeygen('ed25519');
    const [type, blob] = line.split(' ');
    expect(knownHostsInput.parse(`# from ssh-keyscan\n\ngit.example.com ${type} ${blob}\n`)).toBe(
      `git.example.com ${type} ${blob}`,
    );
    const issues = (text: string) =>
      knownHostsInput.safeParse(text).error?.issues.map((i) => i.message) ?? [];
    expect(issues('')).toEqual([
      'must hold at least one "<host> <key type> <base64 key>" line (null forgets the pin)',
    ]);
    // No host: the line is a public key, not a known_hosts line.
    expect(issues(`${type} ${blob}`)).toEqual(['line 1: must be "<host> <key type> <base64 key>"']);
    expect(issues(`h ssh-dss ${blob}`)).toEqual([
      'line 1: key type "ssh-dss" is not an SSH host key type',
    ]);
    expect(issues(`h ssh-rsa ${blob}`)).toEqual(['line 1: the key is not a ssh-rsa key']);
    expect(issues('h ssh-ed25519 not*base64')).toEqual(['line 1: the key is not base64']);
    expect(issues(`@cert-authority *.example.com ${type} ${blob}`)).toEqual([
      "line 1: @cert-authority lines are not host keys (pin the server's own key)",
    ]);
    expect(issues(`h\n`)).toEqual(['line 1: must be "<host> <key type> <base64 key>"']);
    expect(issues(Array.from({ length: 21 }, () => `h ${type} ${blob}`).join('\n'))).toEqual([
      'at most 20 host keys',
    ]);
  });

  it('are part of the git source input, with the poll interval, each bad value naming its field', () => {
    const ok = gitSourceInput.safeParse({ url: 'ssh://git@h/x.git', pollIntervalSeconds: 60 });
    expect(ok.success).toBe(true);
    const paths = (input: unknown) =>
      gitSourceInput.safeParse(input).error?.issues.map((i) => [i.path.join('.'), i.message]);
    expect(paths({ url: 'ssh://git@h/x.git', pollIntervalSeconds: 59 })).toEqual([
      ['pollIntervalSeconds', 'must be at least 60 (a minute)'],
    ]);
    expect(paths({ url: 'ssh://git@h/x.git', pollIntervalSeconds: 90.5 })).toEqual([
      ['pollIntervalSeconds', 'must be a whole number of seconds'],
    ]);
    expect(paths({ url: 'ssh://git@h/x.git', pollIntervalSeconds: 86_401 })).toEqual([
      ['pollIntervalSeconds', 'must be at most 86400 (a day)'],
    ]);
    expect(paths({ url: 'ssh://git@h/x.git', knownHosts: 'nonsense' })).toEqual([
      ['knownHosts', 'line 1: must be "<host> <key type> <base64 key>"'],
    ]);
  });

  it('belong to the server they came from: host and port of an ssh URL', () => {
    expect(sshAuthority('ssh://git@Git.Example.com:2222/x.git')).toBe('git.example.com:2222');
    expect(sshAuthority('ssh://git@git.example.com/x.git')).toBe('git.example.com:22');
    expect(sshAuthority('git@git.example.com:shop/x.git')).toBe('git.example.com:22');
    expect(sshAuthority('https://git.example.com/x.git')).toBeNull();
  });

  it('fail a contact with a changed key naming the host and both fingerprints', () => {
    const e = new GitHostKeyChanged('[127.0.0.1]:2222', ['ssh-ed25519 SHA256:old'], 'SHA256:new');
    expect(e).toMatchObject({ code: 'git_host_key_changed', kind: 'invalid' });
    expect(e.message).toMatch(
      /^the SSH host key of \[127\.0\.0\.1\]:2222 changed: pinned ssh-ed25519 SHA256:old, the server presented SHA256:new; nothing was fetched/,
    );
  });
});
