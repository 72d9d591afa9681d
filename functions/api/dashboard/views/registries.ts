import type { Hono } from 'hono';
import { html } from 'hono/html';
import { ApiFailure, type ApiFetch } from '../api.ts';
import { action, view } from '../handler.ts';
import { when } from '../layout.ts';
import { flash, param, render } from '../session.ts';

interface Registry {
  id: string;
  server: string;
  username: string;
  createdAt: string;
}

const base = '/api/registries';

/** What was typed, shown again after a refusal; never the password. */
interface Tried {
  server?: string;
  username?: string;
}

function addForm(values: Tried) {
  return html`<form
    method="post"
    action="/dashboard/registries"
    class="card"
    aria-labelledby="new-registry-h"
  >
    <h2 id="new-registry-h">Add a registry credential</h2>
    <div>
      <label for="registry-server"
        >Server <span class="hint">host[:port], e.g. registry.example.com or docker.io</span></label
      ><input
        id="registry-server"
        name="server"
        required
        maxlength="255"
        placeholder="registry.example.com"
        value="${values.server ?? ''}"
      />
    </div>
    <div>
      <label for="registry-username">Username</label
      ><input
        id="registry-username"
        name="username"
        required
        maxlength="255"
        autocomplete="off"
        value="${values.username ?? ''}"
      />
    </div>
    <div>
      <label for="registry-password">Password or access token</label
      ><input
        id="registry-password"
        name="password"
        type="password"
        required
        autocomplete="new-password"
      />
    </div>
    <p class="hint">The password is stored sealed and never shown again.</p>
    <div><button type="submit">Add credential</button></div>
  </form>`;
}

export function registerRegistries(app: Hono, fetchApi: ApiFetch): void {
  const registriesPage = view(fetchApi, async (c, s) => {
    let tried: Tried = {};
    let created = false;
    if (c.req.method === 'POST') {
      const form = (await c.req.parseBody()) as Record<string, unknown>;
      const str = (v: unknown) => (typeof v === 'string' ? v.trim() : '');
      tried = { server: str(form.server), username: str(form.username) };
      try {
        await s.api.post<Registry>(base, {
          server: tried.server,
          username: tried.username,
          // Not trimmed: a token's characters are its own.
          password: typeof form.password === 'string' ? form.password : '',
        });
        created = true;
        tried = {};
        s.shell.flash = {
          kind: 'notice',
          text: 'Credential added. Deploys of images from that registry now pull with it.',
        };
      } catch (e) {
        if (!(e instanceof ApiFailure)) throw e;
        s.shell.flash = { kind: 'error', text: e.message };
      }
    }
    const registries = await s.api.all<Registry>(base);
    const body = html`<h1>Registries</h1>
      <p>
        Credentials for private image registries. A deploy of an image from one of these servers
        pulls it with the credential. A <code>:latest</code> image (or one with no tag) is pulled
        again on every deploy, since that tag moves; any other tag only when the node lacks it; a
        digest never moves.
      </p>
      ${
        registries.length === 0
          ? html`<div class="empty">No credentials yet: public images need none.</div>`
          : html`<table>
              <caption class="visually-hidden">
                Registry credentials of this organization
              </caption>
              <thead>
                <tr>
                  <th scope="col">Server</th>
                  <th scope="col">Username</th>
                  <th scope="col">Added</th>
                  <th scope="col"><span class="visually-hidden">Actions</span></th>
                </tr>
              </thead>
              <tbody>
                ${registries.map(
                  (r) =>
                    html`<tr>
                      <td class="mono">${r.server}</td>
                      <td>${r.username}</td>
                      <td>${when(r.createdAt)}</td>
                      <td>
                        <form
                          method="post"
                          action="/dashboard/registries/${r.id}/delete"
                          class="inline"
                          data-confirm="Remove the credential for ${r.server}? Pulls from it then go without one."
                        >
                          <button
                            type="submit"
                            class="secondary"
                            aria-label="Remove the credential for ${r.server}"
                          >
                            Remove
                          </button>
                        </form>
                      </td>
                    </tr>`,
                )}
              </tbody>
            </table>`
      }
      ${addForm(tried)}`;
    return render(
      c,
      s,
      { title: 'Registries', section: 'registries' },
      body,
      created ? 201 : s.shell.flash?.kind === 'error' && c.req.method === 'POST' ? 400 : 200,
    );
  });
  app.get('/dashboard/registries', registriesPage);
  app.post('/dashboard/registries', registriesPage);

  app.post(
    '/dashboard/registries/:id/delete',
    action(fetchApi, '/dashboard/registries', async (c, s) => {
      await s.api.call('DELETE', `${base}/${encodeURIComponent(param(c, 'id'))}`);
      flash(c, 'notice', 'Credential removed.');
      return '/dashboard/registries';
    }),
  );
}
