import type { Hono } from 'hono';
import { html } from 'hono/html';
import { ApiFailure, type ApiFetch } from '../api.ts';
import { action, view } from '../handler.ts';
import { badge, when } from '../layout.ts';
import { field, flash, render, param } from '../session.ts';

interface ApiKey {
  id: string;
  name: string;
  role: string;
  prefix: string;
  createdAt: string;
  revokedAt: string | null;
}

const roles = ['viewer', 'deployer', 'admin', 'owner'];

function requireOrgId(orgId: string | null): string {
  if (!orgId) throw new ApiFailure(400, 'org_required', 'pick or create an organization first');
  return orgId;
}

export function registerApiKeys(app: Hono, fetchApi: ApiFetch): void {
  const keysPage = view(fetchApi, async (c, s) => {
    const orgId = requireOrgId(s.orgId);
    let created: { name: string; key: string } | null = null;
    if (c.req.method === 'POST') {
      // The key is shown once, in the reply to the POST that made it, and never stored here.
      const form = (await c.req.parseBody()) as Record<string, unknown>;
      const name = field(form, 'name') ?? '';
      try {
        const k = await s.api.post<{ key: string }>(`/api/orgs/${orgId}/api-keys`, {
          name,
          role: field(form, 'role') ?? '',
        });
        created = { name, key: k.key };
      } catch (e) {
        if (!(e instanceof ApiFailure)) throw e;
        s.shell.flash = { kind: 'error', text: e.message };
      }
    }
    const keys = await s.api.all<ApiKey>(`/api/orgs/${orgId}/api-keys`);
    const body = html`<h1>API keys</h1>
      <p>
        API keys let the <code>selfdevop</code> CLI and CI pipelines call the API for this
        organization.
      </p>
      ${
        created
          ? html`<div class="card" role="status">
              <h2>Key ${created.name} created</h2>
              <p><strong>Copy it now: it is shown only once.</strong></p>
              <p>
                <code class="secret-once" id="new-key">${created.key}</code>
                <button type="button" class="secondary" data-copy="${created.key}">Copy</button>
              </p>
              <p class="hint">
                Then: <code>echo "$KEY" | selfdevop login --url ${new URL(c.req.url).origin}</code>
              </p>
            </div>`
          : ''
      }
      ${
        keys.length === 0
          ? html`<div class="empty">No API keys yet. Create one for the CLI or your CI below.</div>`
          : html`<table>
              <thead>
                <tr>
                  <th scope="col">Name</th>
                  <th scope="col">Role</th>
                  <th scope="col">Key starts with</th>
                  <th scope="col">Created</th>
                  <th scope="col">State</th>
                  <th scope="col"><span class="visually-hidden">Actions</span></th>
                </tr>
              </thead>
              <tbody>
                ${keys.map(
                  (k) =>
                    html`<tr>
                      <td>${k.name}</td>
                      <td>${k.role}</td>
                      <td><code>${k.prefix}…</code></td>
                      <td>${when(k.createdAt)}</td>
                      <td>${k.revokedAt ? badge('revoked') : badge('active')}</td>
                      <td>
                        ${
                          k.revokedAt
                            ? ''
                            : html`<form
                                method="post"
                                action="/dashboard/api-keys/${k.id}/revoke"
                                class="inline"
                                data-confirm="Revoke ${k.name}? Anything using it stops working."
                              >
                                <button
                                  type="submit"
                                  class="secondary"
                                  aria-label="Revoke ${k.name}"
                                >
                                  Revoke
                                </button>
                              </form>`
                        }
                      </td>
                    </tr>`,
                )}
              </tbody>
            </table>`
      }
      <form method="post" action="/dashboard/api-keys" class="card row" aria-labelledby="new-key-h">
        <h2 id="new-key-h" class="visually-hidden">Create an API key</h2>
        <div>
          <label for="key-name">Name</label
          ><input id="key-name" name="name" required placeholder="github-actions" />
        </div>
        <div>
          <label for="key-role">Role</label
          ><select id="key-role" name="role">
            ${roles.map((r) => html`<option value="${r}" ${r === 'deployer' ? 'selected' : ''}>${r}</option>`)}
          </select>
        </div>
        <div><button type="submit">Create API key</button></div>
      </form>`;
    return render(c, s, { title: 'API keys', section: 'keys' }, body, created ? 201 : 200);
  });
  app.get('/dashboard/api-keys', keysPage);
  app.post('/dashboard/api-keys', keysPage);

  app.post(
    '/dashboard/api-keys/:keyId/revoke',
    action(fetchApi, '/dashboard/api-keys', async (c, s) => {
      await s.api.call(
        'DELETE',
        `/api/orgs/${requireOrgId(s.orgId)}/api-keys/${param(c, 'keyId')}`,
      );
      flash(c, 'notice', 'API key revoked.');
      return '/dashboard/api-keys';
    }),
  );
}
