/**
 * Reading a push webhook: each host's own signature scheme on the raw body, and what a
 * verified delivery asks for (a deploy of `after`, or nothing and why).
 */
import { createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { readPush, signGitea, signGithub } from '../../../core/builds/push.ts';

const secret = 'whsec_test_secret';
const sha = 'a'.repeat(40);
const bodyOf = (o: unknown) => new TextEncoder().encode(JSON.stringify(o));
const pushBody = (ref = 'refs/heads/main', after = sha) =>
  bodyOf({ ref, after, before: '0'.repeat(40) });
const reader = (h: Record<string, string>) => (name: string) =>
  Object.entries(h).find(([k]) => k.toLowerCase() === name)?.[1];

const github = (body: Uint8Array, extra: Record<string, string> = {}) =>
  reader({
    'X-GitHub-Event': 'push',
    'X-GitHub-Delivery': 'gh-1',
    'X-Hub-Signature-256': signGithub(secret, body),
    ...extra,
  });
const gitea = (body: Uint8Array, extra: Record<string, string> = {}) =>
  reader({
    'X-Gitea-Event': 'push',
    // Gitea also sends GitHub's event header: it must still be verified as Gitea.
    'X-GitHub-Event': 'push',
    'X-Gitea-Delivery': 'gt-1',
    'X-Gitea-Signature': signGitea(secret, body),
    ...extra,
  });
const gitlab = (extra: Record<string, string> = {}) =>
  reader({
    'X-Gitlab-Event': 'Push Hook',
    'X-Gitlab-Event-UUID': 'gl-1',
    'X-Gitlab-Token': secret,
    ...extra,
  });

describe('readPush', () => {
  it('signs like GitHub does (node:crypto agrees)', () => {
    const body = pushBody();
    const expected = createHmac('sha256', secret).update(body).digest('hex');
    expect(signGithub(secret, body)).toBe(`sha256=${expected}`);
    expect(signGitea(secret, body)).toBe(expected);
  });

  it('deploys the followed branch’s new sha, for each host', () => {
    const body = pushBody();
    for (const [headers, provider, deliveryId] of [
      [github(body), 'github', 'gh-1'],
      [gitea(body), 'gitea', 'gt-1'],
      [gitlab(), 'gitlab', 'gl-1'],
    ] as const) {
      expect(readPush(headers, body, secret, 'main')).toEqual({
        kind: 'deploy',
        provider,
        deliveryId,
        branch: 'main',
        sha,
      });
    }
  });

  it('refuses a forged signature or token', () => {
    const body = pushBody();
    const forged = signGithub('another secret', body);
    expect(readPush(github(body, { 'X-Hub-Signature-256': forged }), body, secret, 'main')).toEqual(
      { kind: 'refused', reason: 'X-Hub-Signature-256 does not match the body' },
    );
    expect(
      readPush(gitea(body, { 'X-Gitea-Signature': forged.slice(7) }), body, secret, 'main').kind,
    ).toBe('refused');
    expect(readPush(gitlab({ 'X-Gitlab-Token': 'guess' }), body, secret, 'main')).toEqual({
      kind: 'refused',
      reason: 'X-Gitlab-Token is not this hook’s secret',
    });
  });

  it('refuses a body changed after signing', () => {
    const signed = pushBody();
    const tampered = pushBody('refs/heads/main', 'b'.repeat(40));
    expect(readPush(github(signed), tampered, secret, 'main').kind).toBe('refused');
    expect(readPush(gitea(signed), tampered, secret, 'main').kind).toBe('refused');
  });

  it('refuses a missing signature, and a signature of another host’s scheme', () => {
    const body = pushBody();
    const noSig = reader({ 'X-GitHub-Event': 'push' });
    expect(readPush(noSig, body, secret, 'main')).toEqual({
      kind: 'refused',
      reason: 'missing X-Hub-Signature-256',
    });
    // A Gitea delivery carrying only GitHub's header is not verified by GitHub's scheme.
    const giteaWithGithubSig = reader({
      'X-Gitea-Event': 'push',
      'X-Hub-Signature-256': signGithub(secret, body),
    });
    expect(readPush(giteaWithGithubSig, body, secret, 'main')).toEqual({
      kind: 'refused',
      reason: 'missing X-Gitea-Signature',
    });
    expect(readPush(reader({ 'X-Gitlab-Event': 'Push Hook' }), body, secret, 'main')).toEqual({
      kind: 'refused',
      reason: 'missing X-Gitlab-Token',
    });
    expect(readPush(reader({}), body, secret, 'main').kind).toBe('refused');
    expect(
      readPush(github(body, { 'X-Hub-Signature-256': 'sha1=abc' }), body, secret, 'main').kind,
    ).toBe('refused');
  });

  it('does nothing, and says why, for another branch, a tag, a deletion or a ping', () => {
    const other = pushBody('refs/heads/feature');
    expect(readPush(github(other), other, secret, 'main')).toMatchObject({
      kind: 'ignored',
      reason: 'branch feature is not the followed branch main; nothing to deploy',
    });
    const tag = pushBody('refs/tags/v1');
    expect(readPush(gitea(tag), tag, secret, 'main')).toMatchObject({
      kind: 'ignored',
      reason: 'refs/tags/v1 is not a branch; nothing to deploy',
    });
    const deleted = pushBody('refs/heads/main', '0'.repeat(40));
    expect(readPush(gitlab(), deleted, secret, 'main')).toMatchObject({
      kind: 'ignored',
      reason: 'branch main was deleted; nothing to deploy',
    });
    const ping = bodyOf({ zen: 'hi' });
    expect(readPush(github(ping, { 'X-GitHub-Event': 'ping' }), ping, secret, 'main')).toEqual({
      kind: 'ignored',
      provider: 'github',
      deliveryId: 'gh-1',
      reason: '"ping" is not a push; nothing to deploy',
    });
    const notJson = new TextEncoder().encode('ref=main');
    expect(readPush(github(notJson), notJson, secret, 'main')).toMatchObject({
      kind: 'ignored',
      reason: 'the body is not JSON; nothing to deploy',
    });
  });
});
