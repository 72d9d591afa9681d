/**
 * Accounts, nodes, services and releases, through the public API of the installed stack.
 * The worker deploys onto this host's Docker Engine; apps publish on the Docker bridge's
 * gateway, which Caddy (on the compose network) and the worker's health probe both reach.
 */
import assert from 'node:assert/strict';
import { Given, Then, When } from '@cucumber/cucumber';
import { bridgeGateway, sleep } from '../support/stack.ts';
import { suite, type AcceptanceWorld } from '../support/world.ts';

const password = 'correct horse battery staple';

Then('the signed-up user is the owner of the install', function (this: AcceptanceWorld) {
  const body = this.lastResponse().json as {
    token: string;
    user: { email: string };
    org: { id: string };
  };
  suite.owner = { email: body.user.email, password, token: body.token, orgId: body.org.id };
  suite.orgIds.add(body.org.id);
});

Given('I am signed in as the owner', async function (this: AcceptanceWorld) {
  if (!suite.owner) {
    const email = `owner-${suite.runId}@example.com`;
    const res = await this.stack.api('POST', '/api/auth/local/signup', {
      body: { email, password },
    });
    assert.equal(res.status, 201, res.text);
    const body = res.json as { token: string; org: { id: string } };
    suite.owner = { email, password, token: body.token, orgId: body.org.id };
    suite.orgIds.add(body.org.id);
  }
  const login = await this.stack.api('POST', '/api/auth/local/login', {
    body: { email: suite.owner.email, password },
  });
  assert.equal(login.status, 200, login.text);
  this.token = (login.json as { token: string }).token;
  this.values.set('token', this.token);
  this.values.set('orgId', suite.owner.orgId);
});

Given('this host is registered as a node', async function (this: AcceptanceWorld) {
  if (suite.nodeRegistered) return;
  const res = await this.stack.api('POST', '/api/nodes', {
    token: this.token ?? undefined,
    body: {
      name: 'this-host',
      dockerHost: 'unix:///var/run/docker.sock',
      address: await bridgeGateway(),
    },
  });
  assert.equal(res.status, 201, res.text);
  suite.nodeRegistered = true;
});

export async function projectId(world: AcceptanceWorld): Promise<string> {
  const existing = world.values.get('projectId');
  if (existing) return existing;
  const list = await world.stack.api('GET', '/api/projects', { token: world.token ?? undefined });
  const items = (list.json as { items: { id: string; name: string }[] }).items;
  const found = items.find((p) => p.name === 'acceptance');
  if (found) return found.id;
  const res = await world.stack.api('POST', '/api/projects', {
    token: world.token ?? undefined,
    body: { name: 'acceptance' },
  });
  assert.equal(res.status, 201, res.text);
  return (res.json as { id: string }).id;
}

Given(
  'a service {string} running {string}',
  async function (this: AcceptanceWorld, name: string, image: string) {
    if (suite.services.has(name)) return;
    const res = await this.stack.api('POST', '/api/services', {
      token: this.token ?? undefined,
      body: {
        projectId: await projectId(this),
        name,
        image,
        containerPort: 8080,
        healthcheckPath: '/health',
        health: { intervalMs: 200, successes: 2, deadlineMs: 8_000, timeoutMs: 1_000 },
        warmSeconds: 600,
        drainSeconds: 2,
      },
    });
    assert.equal(res.status, 201, res.text);
    const body = res.json as { id: string; hosts: { host: string }[] };
    suite.services.set(name, { id: body.id, host: body.hosts[0]!.host });
  },
);

function service(name: string) {
  const s = suite.services.get(name);
  if (!s) throw new Error(`no service "${name}" was created in this run`);
  return s;
}

async function deploy(world: AcceptanceWorld, image: string, name: string): Promise<string> {
  const res = await world.stack.api('POST', '/api/releases', {
    token: world.token ?? undefined,
    body: { serviceId: service(name).id, image },
  });
  assert.equal(res.status, 202, res.text);
  world.lastReleaseId = (res.json as { id: string }).id;
  return world.lastReleaseId;
}

async function settle(world: AcceptanceWorld, releaseId: string, deadlineMs = 90_000) {
  const end = Date.now() + deadlineMs;
  for (;;) {
    const r = await world.stack.api('GET', `/api/releases/${releaseId}`, {
      token: world.token ?? undefined,
    });
    const body = r.json as { status: string; error: string | null };
    if (['completed', 'failed', 'rolled_back'].includes(body.status)) return body;
    if (Date.now() > end)
      throw new Error(`release ${releaseId} still ${body.status} after ${deadlineMs} ms`);
    await sleep(250);
  }
}

When(
  'I deploy {string} to {string}',
  async function (this: AcceptanceWorld, image: string, name: string) {
    await deploy(this, image, name);
  },
);

Given(
  '{string} is deployed to {string}',
  async function (this: AcceptanceWorld, image: string, name: string) {
    const released = await settle(this, await deploy(this, image, name));
    assert.equal(released.status, 'completed', released.error ?? '');
  },
);

Then('the release ends {string}', async function (this: AcceptanceWorld, status: string) {
  assert.ok(this.lastReleaseId, 'no release was started');
  const released = await settle(this, this.lastReleaseId);
  this.noted.releaseError = released.error;
  assert.equal(released.status, status, released.error ?? '');
});

Then('the release error mentions {string}', function (this: AcceptanceWorld, text: string) {
  assert.match(String(this.noted.releaseError), new RegExp(text, 'i'));
});

Then(
  '{string} answers {string} through Caddy',
  async function (this: AcceptanceWorld, name: string, body: string) {
    const res = await this.stack.viaEdge(service(name).host);
    assert.deepEqual({ status: res.status, body: res.text.trim() }, { status: 200, body });
  },
);

Given(
  'I remember the id of service {string} as {string}',
  function (this: AcceptanceWorld, name: string, as: string) {
    this.values.set(as, service(name).id);
  },
);
