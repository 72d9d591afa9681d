import * as z from 'zod';
import { permissions, type Permission } from '../../core/roles.ts';
import type { RouteDef } from './route.ts';

const errorSchema = {
  type: 'object',
  required: ['error'],
  properties: {
    error: {
      type: 'object',
      required: ['code', 'message'],
      properties: { code: { type: 'string' }, message: { type: 'string' }, details: {} },
    },
  },
};

const jsonSchema = (schema: z.ZodType) => {
  const { $schema: _ignored, ...rest } = z.toJSONSchema(schema, {
    io: 'input',
    unrepresentable: 'any',
  }) as Record<string, unknown>;
  return rest;
};

/** The OpenAPI 3.1 document, written from the same route records that serve the API. */
export function openApiDocument(routes: RouteDef[], version: string) {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const r of routes) {
    const parameters: unknown[] = [...r.path.matchAll(/\{(\w+)\}/g)].map((m) => ({
      name: m[1],
      in: 'path',
      required: true,
      schema: { type: 'string' },
    }));
    if (r.query) {
      const q = jsonSchema(r.query) as {
        properties?: Record<string, unknown>;
        required?: string[];
      };
      for (const [name, schema] of Object.entries(q.properties ?? {})) {
        parameters.push({
          name,
          in: 'query',
          required: q.required?.includes(name) ?? false,
          schema,
        });
      }
    }
    const responses: Record<string, unknown> = {
      [r.status]: { description: r.status === 204 ? 'No content' : 'Success' },
      '400': {
        description: 'Invalid input; the message names the field',
        content: { 'application/json': { schema: errorSchema } },
      },
      '404': {
        description: 'Unknown id, or an id of another org',
        content: { 'application/json': { schema: errorSchema } },
      },
    };
    if (r.auth) responses['401'] = { description: 'Missing or invalid credentials' };
    if (r.permission in permissions)
      responses['403'] = { description: "The caller's role does not allow this" };
    if (r.permission === 'operator')
      responses['403'] = { description: 'The caller is not an operator of this installation' };
    if (r.method !== 'get')
      responses['409'] = { description: 'Conflict (duplicate name, release in flight)' };
    paths[r.path] ??= {};
    paths[r.path]![r.method] = {
      summary: r.summary,
      tags: [r.tag],
      'x-permission': r.permission,
      ...(r.permission in permissions
        ? {
            description: `Needs a role of at least ${permissions[r.permission as Permission]} (${r.permission}).`,
          }
        : {}),
      operationId: `${r.method}${r.path.replace(/\{(\w+)\}/g, 'By_$1').replace(/[^A-Za-z0-9]+(.)?/g, (_, ch: string | undefined) => (ch ? ch.toUpperCase() : ''))}`,
      ...(r.auth ? { security: [{ bearer: [] }] } : { security: [] }),
      ...(parameters.length ? { parameters } : {}),
      ...(r.body
        ? {
            requestBody: {
              required: true,
              content: { 'application/json': { schema: jsonSchema(r.body) } },
            },
          }
        : r.streamsBody
          ? {
              requestBody: {
                required: true,
                content: {
                  'application/octet-stream': { schema: { type: 'string', format: 'binary' } },
                },
              },
            }
          : {}),
      responses,
    };
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'selfdevop API',
      version,
      description:
        'Deploy app containers with health-gated blue/green releases, route them through Caddy. ' +
        'Authenticate with `Authorization: Bearer <session token or API key>`; pick an org with `X-Org-Id` when in several.',
    },
    components: {
      securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } },
      schemas: { Error: errorSchema },
    },
    security: [{ bearer: [] }],
    paths,
  };
}

/** A self-contained docs page (no CDN: self-hosted installs may be offline). */
export const docsPage = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>selfdevop API</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font:15px/1.5 system-ui,sans-serif;max-width:960px;margin:2rem auto;padding:0 1rem;color:#1a1a1a}
h1{font-size:1.6rem} h2{margin-top:2rem;border-bottom:1px solid #ddd;text-transform:capitalize}
details{border:1px solid #ddd;border-radius:6px;margin:.5rem 0;padding:.5rem .8rem}
summary{cursor:pointer} code,pre{font-family:ui-monospace,monospace;font-size:13px}
pre{background:#f5f5f5;padding:.6rem;overflow:auto;border-radius:4px}
.m{display:inline-block;min-width:4.5rem;font-weight:700;text-transform:uppercase}
.get{color:#0b6e2e}.post{color:#0645ad}.delete{color:#a00}.put,.patch{color:#8a5300}
</style></head><body>
<h1>selfdevop API</h1>
<p>The machine-readable document is at <a href="/openapi.json">/openapi.json</a>.</p>
<main id="ops">Loading…</main>
<script>
fetch('/openapi.json').then(r => r.json()).then(doc => {
  const byTag = {};
  for (const [path, ops] of Object.entries(doc.paths))
    for (const [method, op] of Object.entries(ops)) (byTag[op.tags[0]] ??= []).push({ path, method, op });
  const esc = s => String(s).replace(/[&<>"]/g, c => ({'&':'&amp;','<':'&lt;','>':'&gt;','"':'&quot;'}[c]));
  document.getElementById('ops').innerHTML = Object.entries(byTag).map(([tag, ops]) =>
    '<h2>' + esc(tag) + '</h2>' + ops.map(({ path, method, op }) =>
      '<details><summary><span class="m ' + method + '">' + method + '</span> <code>' + esc(path) + '</code> — ' + esc(op.summary) + '</summary>' +
      (op.parameters ? '<p>Parameters</p><pre>' + esc(JSON.stringify(op.parameters, null, 2)) + '</pre>' : '') +
      (op.requestBody ? '<p>Body</p><pre>' + esc(JSON.stringify(Object.values(op.requestBody.content)[0].schema, null, 2)) + '</pre>' : '') +
      '<p>Responses: ' + Object.keys(op.responses).map(esc).join(', ') + '</p></details>').join('')).join('');
});
</script></body></html>`;
