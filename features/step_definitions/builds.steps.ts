/**
 * Builds from git in the installed stack: a real `git daemon` on this host, bound to the
 * Docker bridge's gateway so the worker's container clones from it, and the worker building
 * on this host's engine. Pushes are signed as GitHub signs them.
 */
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { Given, Then, When } from '@cucumber/cucumber';
import {
  makeRepo,
  startGitDaemon,
  type TestGitServer,
  type TestRepo,
} from '../../test/support/git-server.ts';
import { bridgeGateway, request, run } from '../support/stack.ts';
import { suite, type AcceptanceWorld } from '../support/world.ts';
import { projectId } from './deploy.steps.ts';

let daemon: TestGitServer | null = null;
const repos = new Map<string, { repo: TestRepo; head: string }>();

/** A web app busybox httpd serves (an offline test image): `/version` answers `answer`. */
const appFiles = (answer: string): Record<string, string> => ({
  Dockerfile: [
    'FROM selfdevop-test/busybox:base',
    'COPY www /www',
    `RUN echo "built for the acceptance run ${suite.runId}"`,
    'CMD ["httpd", "-f", "-p", "8080", "-h", "/www"]',
    '',
  ].join('\n'),
  'www/version': `${answer}\n`,
  'www/health': 'ok\n',
});

function repoNamed(name: string) {
  const r = repos.get(name);
  if (!r) throw new Error(`no git repository "${name}" was made in this run`);
  return r;
}

Given(
  'a git repository {string} whose app answers {string}',
  async function (this: AcceptanceWorld, name: string, answer: string) {
    if (!daemon) {
      daemon = await startGitDaemon(await bridgeGateway());
      const d = daemon;
      suite.cleanups.push(() => d.stop());
    }
    const repo = await makeRepo(daemon.root, name);
    repos.set(name, { repo, head: await repo.commit(appFiles(answer)) });
  },
);

Given(
  'a service {string} built from the {string} branch of {string}',
  async function (this: AcceptanceWorld, name: string, branch: string, repoName: string) {
    repoNamed(repoName);
    const res = await this.stack.api('POST', '/api/services', {
      token: this.token ?? undefined,
      body: {
        projectId: await projectId(this),
        name,
        git: { url: daemon!.url(repoName), ref: branch },
        containerPort: 8080,
        healthcheckPath: '/health',
        health: { intervalMs: 200, successes: 2, deadlineMs: 8_000, timeoutMs: 1_000 },
        drainSeconds: 1,
      },
    });
    assert.equal(res.status, 201, res.text);
    const body = res.json as { id: string; hosts: { host: string }[] };
    suite.services.set(name, { id: body.id, host: body.hosts[0]!.host });
    // The images the worker built for this org go with the run.
    const orgId = suite.owner!.orgId;
    suite.cleanups.push(async () => {
      const ids = await run('docker', ['images', '-q', '--filter', `label=selfdevop.org=${orgId}`]);
      const list = [...new Set(ids.stdout.split('\n').filter(Boolean))];
      if (list.length > 0) await run('docker', ['rmi', '-f', ...list]);
    });
  },
);

When(
  'I deploy the head of {string} to {string}',
  async function (this: AcceptanceWorld, repoName: string, name: string) {
    const { head } = repoNamed(repoName);
    const res = await this.stack.api('POST', '/api/releases', {
      token: this.token ?? undefined,
      body: { serviceId: suite.services.get(name)!.id, gitRef: 'main' },
    });
    assert.equal(res.status, 202, res.text);
    this.lastReleaseId = (res.json as { id: string }).id;
    this.values.set('expectedSha', head);
  },
);

Then(
  'the release records the head of {string} and its build log',
  async function (this: AcceptanceWorld, repoName: string) {
    const { head } = repoNamed(repoName);
    const r = await this.stack.api('GET', `/api/releases/${this.lastReleaseId}`, {
      token: this.token ?? undefined,
    });
    assert.equal((r.json as { gitSha: string }).gitSha, head, r.text);
    const logs = await this.stack.api(
      'GET',
      `/api/releases/${this.lastReleaseId}/logs?limit=5000`,
      { token: this.token ?? undefined },
    );
    const lines = (logs.json as { items: { line: string }[] }).items.map((l) => l.line);
    // The Dockerfile's own RUN step, as the engine ran it: the build happened, and was streamed.
    assert.ok(
      lines.some((l) => l.includes(`built for the acceptance run ${suite.runId}`)),
      `the release log shows no build output:\n${lines.slice(-40).join('\n')}`,
    );
  },
);

When(
  'a commit to {string} makes its app answer {string}',
  async function (this: AcceptanceWorld, repoName: string, answer: string) {
    const r = repoNamed(repoName);
    r.head = await r.repo.commit(appFiles(answer));
    this.values.set('expectedSha', r.head);
  },
);

When(
  'a signed GitHub push of that commit reaches the push hook of {string}',
  async function (this: AcceptanceWorld, name: string) {
    const made = await this.stack.api(
      'POST',
      `/api/services/${suite.services.get(name)!.id}/push-hook`,
      { token: this.token ?? undefined },
    );
    assert.equal(made.status, 201, made.text);
    const hook = made.json as { path: string; secret: string };
    const head = this.values.get('expectedSha')!;
    const body = JSON.stringify({ ref: 'refs/heads/main', before: '0'.repeat(40), after: head });
    const signature = createHmac('sha256', hook.secret).update(body).digest('hex');
    // An unsigned copy first: refused, and nothing deploys.
    const forged = await request(this.stack.httpPort, 'POST', hook.path, {
      body,
      headers: {
        'content-type': 'application/json',
        'x-github-event': 'push',
        'x-github-delivery': `acceptance-${suite.runId}-forged`,
        'x-hub-signature-256': `sha256=${'0'.repeat(64)}`,
      },
    });
    assert.equal(forged.status, 401, forged.text);
    this.response = await request(this.stack.httpPort, 'POST', hook.path, {
      body,
      headers: {
        'content-type': 'application/json',
        'x-github-event': 'push',
        'x-github-delivery': `acceptance-${suite.runId}-push`,
        'x-hub-signature-256': `sha256=${signature}`,
      },
    });
  },
);

Then('the push deploys that commit', async function (this: AcceptanceWorld) {
  const res = this.lastResponse();
  assert.equal(res.status, 202, res.text);
  const { releaseId, gitSha } = res.json as { releaseId: string; gitSha: string };
  assert.equal(gitSha, this.values.get('expectedSha'));
  const end = Date.now() + 120_000;
  for (;;) {
    const r = await this.stack.api('GET', `/api/releases/${releaseId}`, {
      token: this.token ?? undefined,
    });
    const body = r.json as { status: string; error: string | null; gitSha: string };
    if (['completed', 'failed', 'rolled_back'].includes(body.status)) {
      assert.equal(body.status, 'completed', body.error ?? r.text);
      assert.equal(body.gitSha, this.values.get('expectedSha'));
      return;
    }
    assert.ok(Date.now() < end, `release ${releaseId} still ${body.status} after 120 s`);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
});
