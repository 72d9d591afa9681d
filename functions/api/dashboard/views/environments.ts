import type { Hono } from 'hono';
import { html } from 'hono/html';
import type { ApiFetch } from '../api.ts';
import { action, view } from '../handler.ts';
import { when, type Html } from '../layout.ts';
import { field, flash, param } from '../session.ts';
import type { Environment, Project, Service } from '../types.ts';

/**
 * An environment's verbs: promote what it serves to another, rename (production keeps its
 * name), delete after its name is typed again.
 */
function manage(e: { id: string; name: string }, envs: { id: string; name: string }[]): Html {
  const others = envs.filter((o) => o.id !== e.id);
  return html`${
    others.length
      ? html`<form method="post" action="/dashboard/environments/${e.id}/promote" class="inline">
          <label class="visually-hidden" for="promote-${e.id}">Promote ${e.name} to</label>
          <select id="promote-${e.id}" name="to">
            ${others.map((o) => html`<option value="${o.name}">${o.name}</option>`)}
          </select>
          <button type="submit" class="secondary">Promote ${e.name}</button>
        </form>`
      : ''
  }
  ${
    e.name === 'production'
      ? ''
      : html`<form method="post" action="/dashboard/environments/${e.id}/rename" class="inline">
            <label class="visually-hidden" for="rename-${e.id}">New name of ${e.name}</label>
            <input id="rename-${e.id}" name="name" required value="${e.name}" maxlength="40" />
            <button type="submit" class="secondary">Rename</button>
          </form>
          <form method="post" action="/dashboard/environments/${e.id}/delete" class="inline">
            <label for="delete-${e.id}">Type <code>${e.name}</code> to delete it</label>
            <input id="delete-${e.id}" name="confirm" required autocomplete="off" />
            <button type="submit" class="danger">Delete ${e.name}</button>
          </form>`
  }`;
}

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
          <th scope="col">Manage</th>
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
              <td>${manage(e, envs)}</td>
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

  app.post(
    '/dashboard/environments/:id/promote',
    action(fetchApi, '/dashboard', async (c, s, form) => {
      const id = encodeURIComponent(param(c, 'id'));
      const serviceId = field(form, 'serviceId');
      const res = await s.api.post<{
        from: { name: string };
        to: { name: string };
        releases: { id: string }[];
        skipped: { name: string }[];
      }>(`/api/environments/${id}/promote`, {
        to: field(form, 'to') ?? '',
        ...(serviceId ? { serviceIds: [serviceId] } : {}),
      });
      if (res.releases.length === 1) return `/dashboard/releases/${res.releases[0]!.id}`;
      flash(
        c,
        'notice',
        `Promoting ${res.releases.length} services from ${res.from.name} to ${res.to.name}.${res.skipped.length ? ` Skipped (nothing serving): ${res.skipped.map((x) => x.name).join(', ')}.` : ''}`,
      );
      const e = await s.api.get<Environment>(`/api/environments/${id}`);
      return `/dashboard/projects/${e.projectId}#environments`;
    }),
  );

  app.post(
    '/dashboard/environments/:id/rename',
    action(fetchApi, '/dashboard', async (c, s, form) => {
      const e = await s.api.call<Environment>(
        'PATCH',
        `/api/environments/${encodeURIComponent(param(c, 'id'))}`,
        { name: field(form, 'name') ?? '' },
      );
      flash(c, 'notice', `Renamed to ${e.name}.`);
      return `/dashboard/projects/${e.projectId}#env-${e.name}`;
    }),
  );

  app.post(
    '/dashboard/environments/:id/delete',
    action(fetchApi, '/dashboard', async (c, s, form) => {
      const id = encodeURIComponent(param(c, 'id'));
      const e = await s.api.get<Environment>(`/api/environments/${id}`);
      const q = new URLSearchParams({ confirm: field(form, 'confirm') ?? '' });
      await s.api.call('DELETE', `/api/environments/${id}?${q}`);
      flash(c, 'notice', `Deleted ${e.name}; its routes and containers are being removed.`);
      return `/dashboard/projects/${e.projectId}#environments`;
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
