/**
 * Generic HTTP steps against the install's edge (Caddy on 127.0.0.1): the API is reached
 * the way users reach it. Strings may hold {name} for a remembered value.
 */
import assert from 'node:assert/strict';
import { Then, When } from '@cucumber/cucumber';
import { at, type AcceptanceWorld } from '../support/world.ts';

async function send(world: AcceptanceWorld, method: string, path: string, body?: string) {
  world.response = await world.stack.api(method, world.interpolate(path), {
    body: body === undefined ? undefined : JSON.parse(world.interpolate(body)),
    token: world.token ?? undefined,
  });
}

When(
  'I send a {word} request to {string}',
  async function (this: AcceptanceWorld, method: string, path: string) {
    await send(this, method, path);
  },
);

When(
  'I send a {word} request to {string} with:',
  async function (this: AcceptanceWorld, method: string, path: string, body: string) {
    await send(this, method, path, body);
  },
);

When('I authenticate with {string}', function (this: AcceptanceWorld, token: string) {
  this.token = this.interpolate(token);
});

When('I send no credentials', function (this: AcceptanceWorld) {
  this.token = null;
});

Then('the response status is {int}', function (this: AcceptanceWorld, status: number) {
  const res = this.lastResponse();
  assert.equal(
    res.status,
    status,
    `expected ${status}, got ${res.status}: ${res.text.slice(0, 500)}`,
  );
});

Then(
  'the response body at {string} is {string}',
  function (this: AcceptanceWorld, path: string, expected: string) {
    const res = this.lastResponse();
    assert.equal(
      String(at(res.json, path)),
      this.interpolate(expected),
      `body: ${res.text.slice(0, 500)}`,
    );
  },
);

Then(
  'the response body at {string} matches {string}',
  function (this: AcceptanceWorld, path: string, pattern: string) {
    const res = this.lastResponse();
    assert.match(
      String(at(res.json, path)),
      new RegExp(pattern),
      `body: ${res.text.slice(0, 500)}`,
    );
  },
);

Then(
  'I remember the response body at {string} as {string}',
  function (this: AcceptanceWorld, path: string, name: string) {
    const value = at(this.lastResponse().json, path);
    assert.ok(
      typeof value === 'string' && value.length > 0,
      `no string at ${path}: ${this.lastResponse().text.slice(0, 500)}`,
    );
    this.values.set(name, value);
  },
);
