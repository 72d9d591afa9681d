import type { Hono } from 'hono';
import { html } from 'hono/html';
import type { ApiFetch } from '../api.ts';
import { action, view } from '../handler.ts';
import { when, type Html } from '../layout.ts';
import { field, flash, param } from '../session.ts';
import type { Environment, Project, Service } from '../types.ts';

/**
 * A project's environments: each with a link to every service's page in it (where its
 * releases, secrets and domains are), and the form that adds one.
 */
export function environmentsSection(project: Project, services: Service[]): Html {
  const envs = project.environments ?? [];
  return html`<h2 id="environments">Environments</h2>
    <table>
      <caption class="visually-hidden">
        Environments of ${project.name}
      </caption>
      <thead>
        <tr>
          <th scope="col">Environment</th>
          <th scope="col">Services</th>
          <th scope="col">Created</th>
        </tr>
      </thead>
      <tbody>
        ${envs.map(
          (e) =>
            html`<tr id="env-${e.name}">
              <td>${e.name}</td>
              <td>
                ${
                  services.length === 0
                    ? '–'
                    : services.map(
                        (svc) =>
                          html`<a href="/dashboard/services/${svc.id}?environment=${e.name}"
                            >${svc.name}</a
                          > `,
                      )
                }
              </td>
              <td>${when(e.createdAt)}</td>
            </tr>`,
        )}
      </tbody>
    </table>
    <form method="post" action="/dashboard/projects/${project.id}/environments" class="card row">
      <div>
        <label for="env-name">New environment <span class="hint">e.g. staging</span></label>
        <input
          id="env-name"
          name="name"
          required
          pattern="[a-z0-9]([a-z0-9\\-]*[a-z0-9])?"
          maxlength="40"
        />
      </div>
      <div><button type="submit" class="secondary">Add environment</button></div>
    </form>`;
}

export function registerEnvironments(app: Hono, fetchApi: ApiFetch): void {
  app.post(
    '/dashboard/projects/:id/environments',
    action(fetchApi, '/dashboard', async (c, s, form) => {
      const name = field(form, 'name') ?? '';
      await s.api.post('/api/environments', { projectId: param(c, 'id'), name });
      flash(c, 'notice', `Environment ${name} added; deploy a service to it from its page.`);
      return `/dashboard/projects/${param(c, 'id')}#env-${name}`;
    }),
  );

  // An environment's own address (ids appear in the audit log): its row on its project's page.
  app.get(
    '/dashboard/environments/:id',
    view(fetchApi, async (c, s) => {
      const e = await s.api.get<Environment>(
        `/api/environments/${encodeURIComponent(param(c, 'id'))}`,
      );
      return c.redirect(`/dashboard/projects/${e.projectId}#env-${e.name}`, 303);
    }),
  );
}
