import type { Hono } from 'hono';
import { html } from 'hono/html';
import type { ApiFetch } from '../api.ts';
import { action } from '../handler.ts';
import { when, type Html } from '../layout.ts';
import { field, flash, param } from '../session.ts';

/** A secret as the API lists it: its name and when it changed, never its value. */
export interface SecretName {
  name: string;
  updatedAt: string;
}

/**
 * A service environment's secrets: names only, a delete button each, and a write-only
 * form. Secrets belong to a service environment, so this sits on the service's page.
 */
export function secretsSection(serviceId: string, environment: string, items: SecretName[]): Html {
  return html`<h2 id="secrets">Secrets (${environment})</h2>
    ${
      items.length === 0
        ? html`<div class="empty">
            No secrets yet. Values are write-only: stored encrypted, never shown again, passed to
            the containers as environment variables from the next release on.
          </div>`
        : html`<table>
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Value</th>
                <th scope="col">Updated</th>
                <th scope="col"><span class="visually-hidden">Actions</span></th>
              </tr>
            </thead>
            <tbody>
              ${items.map(
                (x) =>
                  html`<tr>
                    <td><code>${x.name}</code></td>
                    <td aria-label="hidden value">••••••••</td>
                    <td>${when(x.updatedAt)}</td>
                    <td>
                      <form
                        method="post"
                        action="/dashboard/services/${serviceId}/secrets/delete"
                        class="inline"
                        data-confirm="Delete secret ${x.name}? The next release runs without it."
                      >
                        <input type="hidden" name="environment" value="${environment}" /><input
                          type="hidden"
                          name="name"
                          value="${x.name}"
                        />
                        <button
                          type="submit"
                          class="secondary"
                          aria-label="Delete secret ${x.name}"
                        >
                          Delete
                        </button>
                      </form>
                    </td>
                  </tr>`,
              )}
            </tbody>
          </table>`
    }
    <form
      method="post"
      action="/dashboard/services/${serviceId}/secrets"
      class="card row"
      autocomplete="off"
    >
      <input type="hidden" name="environment" value="${environment}" />
      <div>
        <label for="secret-name">Name</label
        ><input
          id="secret-name"
          name="name"
          required
          pattern="[A-Za-z_][A-Za-z0-9_]*"
          placeholder="DATABASE_URL"
        />
      </div>
      <div>
        <label for="secret-value">Value <span class="hint">write-only</span></label
        ><input
          id="secret-value"
          name="value"
          type="password"
          autocomplete="new-password"
          required
        />
      </div>
      <div><button type="submit" class="secondary">Set secret</button></div>
    </form>`;
}

export function registerSecrets(app: Hono, fetchApi: ApiFetch): void {
  app.post(
    '/dashboard/services/:id/secrets',
    action(fetchApi, '/dashboard', async (c, s, form) => {
      const environment = field(form, 'environment');
      const name = field(form, 'name') ?? '';
      await s.api.post(`/api/services/${param(c, 'id')}/secrets`, {
        ...(environment ? { environment } : {}),
        name,
        value: typeof form.value === 'string' ? form.value : '',
      });
      flash(c, 'notice', `Secret ${name} saved; it applies from the next deploy.`);
      return `/dashboard/services/${param(c, 'id')}?environment=${environment ?? 'production'}#secrets`;
    }),
  );

  app.post(
    '/dashboard/services/:id/secrets/delete',
    action(fetchApi, '/dashboard', async (c, s, form) => {
      const environment = field(form, 'environment') ?? 'production';
      const name = field(form, 'name') ?? '';
      await s.api.call(
        'DELETE',
        `/api/services/${param(c, 'id')}/secrets/${encodeURIComponent(name)}?environment=${environment}`,
      );
      flash(c, 'notice', `Secret ${name} deleted.`);
      return `/dashboard/services/${param(c, 'id')}?environment=${environment}#secrets`;
    }),
  );
}
