import type { Hono } from 'hono';
import { html } from 'hono/html';
import { ApiFailure, type ApiFetch, type DashboardApi } from '../api.ts';
import { chartsSection, projectCharts, type MetricsAnswer } from '../charts.ts';
import { action, view, viewWithoutOrg } from '../handler.ts';
import { badge, when, type Html } from '../layout.ts';
import { field, flash, render, param, safeNext } from '../session.ts';
import type { NodeRecord, Project, Release, Service } from '../types.ts';
import { environmentsSection } from './environments.ts';

/** KEY=value lines into an env map; the API validates the names. */
export function parseEnv(text: string | undefined): Record<string, string> | undefined {
  if (!text) return undefined;
  const env: Record<string, string> = {};
  for (const line of text.split(/\r?\n/)) {
    const t = line.trim();
    if (!t || t.startsWith('#')) continue;
    const i = t.indexOf('=');
    env[i < 0 ? t : t.slice(0, i).trim()] = i < 0 ? '' : t.slice(i + 1);
  }
  return env;
}

/** The newest releases of a service (the API lists oldest first). */
export async function recentReleases(
  api: DashboardApi,
  serviceId: string,
  environmentId?: string,
): Promise<Release[]> {
  const all = await api.all<Release>(
    `/api/releases?serviceId=${serviceId}${environmentId ? `&environmentId=${environmentId}` : ''}`,
  );
  return all.reverse();
}

/** What a glance needs: the serving release and the newest one, which may be in flight or failed. */
export function health(releases: Release[]): {
  serving: Release | null;
  latest: Release | null;
  label: string;
} {
  const serving = releases.find((r) => r.status === 'completed') ?? null;
  const latest = releases[0] ?? null;
  let label = 'never deployed';
  if (serving)
    label =
      latest && latest.id !== serving.id && latest.status === 'failed'
        ? 'serving; last deploy failed'
        : 'healthy';
  else if (latest)
    label = latest.status === 'failed' || latest.status === 'rolled_back' ? 'failed' : 'deploying';
  return { serving, latest, label };
}

function healthBadge(label: string): Html {
  return badge(
    label === 'healthy'
      ? 'healthy'
      : label === 'never deployed'
        ? 'never deployed'
        : label.includes('failed')
          ? 'failed'
          : label,
  );
}

function serviceForm(projectId: string): Html {
  return html`<form
    method="post"
    action="/dashboard/projects/${projectId}/services"
    class="card"
    aria-labelledby="new-service"
  >
    <h2 id="new-service">Add a service</h2>
    <div class="row">
      <div>
        <label for="svc-name">Name <span class="hint">lowercase, e.g. web</span></label>
        <input
          id="svc-name"
          name="name"
          required
          pattern="[a-z0-9]([a-z0-9\\-]*[a-z0-9])?"
          maxlength="40"
        />
      </div>
      <div>
        <label for="svc-image">Image <span class="hint">or a git repository</span></label>
        <input id="svc-image" name="image" placeholder="registry.example.com/shop/web:1.0" />
      </div>
      <div>
        <label for="svc-git"
          >Git repository <span class="hint">built on the node from its Dockerfile</span></label
        >
        <input id="svc-git" name="gitUrl" placeholder="https://git.example.com/shop/web.git" />
      </div>
    </div>
    <div class="row">
      <div>
        <label for="svc-port">Container port</label
        ><input
          id="svc-port"
          name="containerPort"
          type="number"
          min="1"
          max="65535"
          value="8080"
          required
        />
      </div>
      <div>
        <label for="svc-health">Healthcheck path</label
        ><input id="svc-health" name="healthcheckPath" value="/health" required />
      </div>
      <div>
        <label for="svc-strategy">Strategy</label>
        <select id="svc-strategy" name="strategy">
          <option value="blue_green">blue/green (zero downtime)</option>
          <option value="replace">replace in place</option>
        </select>
      </div>
    </div>
    <label for="svc-migrate"
      >Migrate command <span class="hint">optional; runs before traffic moves</span></label
    >
    <input id="svc-migrate" name="migrateCommand" placeholder="bin/migrate" />
    <label for="svc-env"
      >Environment variables
      <span class="hint">one KEY=value per line; use Secrets for secret values</span></label
    >
    <textarea id="svc-env" name="env" placeholder="LOG_LEVEL=info"></textarea>
    <p><button type="submit">Create service</button></p>
  </form>`;
}

export function registerProjects(app: Hono, fetchApi: ApiFetch): void {
  app.get(
    '/dashboard',
    viewWithoutOrg(fetchApi, async (c, s) => {
      if (!s.orgId) {
        return render(
          c,
          s,
          { title: 'Create an org', section: 'projects' },
          html`<h1>Create an organization</h1>
            <div class="empty">You do not belong to any organization yet. Create one to start.</div>
            <form method="post" action="/dashboard/orgs" class="card">
              <input type="hidden" name="next" value="${safeNext(c.req.query('next'))}" />
              <label for="org-name">Name</label> <input id="org-name" name="name" required />
              <p><button type="submit">Create organization</button></p>
            </form>`,
        );
      }
      const [projects, nodes] = await Promise.all([
        s.api.all<Project>('/api/projects'),
        s.api.all<NodeRecord>('/api/nodes'),
      ]);
      const body = html`<h1>Projects</h1>
        ${
          nodes.length === 0
            ? html`<div class="empty" role="note">
                <strong>Next step:</strong> register the Docker host your apps will run on, on the
                <a href="/dashboard/nodes">Nodes</a> page. Releases need at least one node.
              </div>`
            : ''
        }
        ${
          projects.length === 0
            ? html`<div class="empty">
                <strong>No projects yet.</strong> A project groups the services of one app (web,
                worker…) and their environments. Create your first one below, add a service, then
                deploy it.
              </div>`
            : html`<table>
                <caption class="visually-hidden">
                  Projects
                </caption>
                <thead>
                  <tr>
                    <th scope="col">Project</th>
                    <th scope="col">Created</th>
                  </tr>
                </thead>
                <tbody>
                  ${projects.map(
                    (p) =>
                      html`<tr>
                        <td><a href="/dashboard/projects/${p.id}">${p.name}</a></td>
                        <td>${when(p.createdAt)}</td>
                      </tr>`,
                  )}
                </tbody>
              </table>`
        }
        <form method="post" action="/dashboard/projects" class="card" aria-labelledby="new-project">
          <h2 id="new-project">Create a project</h2>
          <label for="project-name"
            >Name <span class="hint">lowercase letters, digits and hyphens, e.g. shop</span></label
          >
          <input
            id="project-name"
            name="name"
            required
            pattern="[a-z0-9]([a-z0-9\\-]*[a-z0-9])?"
            maxlength="40"
          />
          <p class="hint">It starts with a production environment.</p>
          <button type="submit">Create project</button>
        </form>
        <details class="card">
          <summary>Create another organization</summary>
          <form method="post" action="/dashboard/orgs">
            <label for="org-name">Organization name</label>
            <input id="org-name" name="name" required />
            <p><button type="submit" class="secondary">Create organization</button></p>
          </form>
        </details>`;
      return render(c, s, { title: 'Projects', section: 'projects' }, body);
    }),
  );

  app.post(
    '/dashboard/projects',
    action(fetchApi, '/dashboard', async (_c, s, form) => {
      const p = await s.api.post<Project>('/api/projects', { name: field(form, 'name') ?? '' });
      return `/dashboard/projects/${p.id}`;
    }),
  );

  app.get(
    '/dashboard/projects/:id',
    view(fetchApi, async (c, s) => {
      const id = param(c, 'id');
      const range = ['1h', '1d', '1w'].includes(c.req.query('range') ?? '')
        ? c.req.query('range')!
        : '1h';
      const [project, services, metrics] = await Promise.all([
        s.api.get<Project>(`/api/projects/${encodeURIComponent(id)}`),
        s.api.all<Service>(`/api/services?projectId=${encodeURIComponent(id)}`),
        // Never a broken chart: without a backend the answer says what to install; an older
        // control plane without the endpoint says so.
        s.api
          .get<MetricsAnswer>(`/api/projects/${encodeURIComponent(id)}/metrics?range=${range}`)
          .catch((e: unknown) => {
            if (e instanceof ApiFailure && e.code === 'route_not_found') return null;
            throw e;
          }),
      ]);
      const envs = project.environments ?? [];
      const production = envs.find((e) => e.name === 'production') ?? envs[0];
      const rows = await Promise.all(
        services.map(async (svc) => {
          const full = await s.api.get<Service>(`/api/services/${svc.id}`);
          const h = health(await recentReleases(s.api, svc.id, production?.id));
          return { svc: full, ...h };
        }),
      );
      const body = html`<p><a href="/dashboard">Projects</a> ›</p>
        <h1>${project.name}</h1>
        <h2>Services</h2>
        ${
          rows.length === 0
            ? html`<div class="empty">
                <strong>No services yet.</strong> A service is one container image serving HTTP on a
                port. Add it below; then open it and press Deploy.
              </div>`
            : html`<table>
                <caption class="visually-hidden">
                  Services of ${project.name}
                </caption>
                <thead>
                  <tr>
                    <th scope="col">Service</th>
                    <th scope="col">Image</th>
                    <th scope="col">Current release (${production?.name ?? '-'})</th>
                    <th scope="col">Health</th>
                    <th scope="col">Hosts</th>
                  </tr>
                </thead>
                <tbody>
                  ${rows.map(
                    (r) =>
                      html`<tr>
                        <td><a href="/dashboard/services/${r.svc.id}">${r.svc.name}</a></td>
                        <td><code>${r.serving?.image ?? r.svc.image}</code></td>
                        <td>
                          ${r.serving ? html`<a href="/dashboard/releases/${r.serving.id}">${r.serving.id}</a>` : '–'}
                        </td>
                        <td>${healthBadge(r.label)}</td>
                        <td>
                          ${(r.svc.hosts ?? []).map((h) => html`<div>${h.environment}: <a href="http://${h.host}">${h.host}</a></div>`)}
                        </td>
                      </tr>`,
                  )}
                </tbody>
              </table>`
        }
        ${chartsSection(
          metrics,
          projectCharts,
          (r) => `/dashboard/projects/${project.id}?range=${r}`,
        )}
        ${serviceForm(project.id)} ${environmentsSection(project, services)}
        <form
          method="post"
          action="/dashboard/projects/${project.id}/rename"
          class="card row"
          aria-label="rename project"
        >
          <div>
            <label for="project-rename">Project name</label>
            <input
              id="project-rename"
              name="name"
              required
              value="${project.name}"
              maxlength="40"
            />
          </div>
          <div><button type="submit" class="secondary">Rename</button></div>
        </form>
        <form
          method="post"
          action="/dashboard/projects/${project.id}/delete"
          class="card"
          id="delete"
          aria-labelledby="delete-project-h"
        >
          <h2 id="delete-project-h">Delete</h2>
          <p class="hint">
            Removes every environment and service of the project, then their routes and containers.
            Delete its data services first.
          </p>
          <label for="project-confirm">Type <code>${project.name}</code> to confirm</label>
          <input id="project-confirm" name="confirm" required autocomplete="off" />
          <div><button type="submit" class="danger">Delete project</button></div>
        </form>`;
      return render(c, s, { title: project.name, section: 'projects' }, body);
    }),
  );

  app.post(
    '/dashboard/projects/:id/rename',
    action(fetchApi, '/dashboard', async (c, s, form) => {
      const id = encodeURIComponent(param(c, 'id'));
      const p = await s.api.call<Project>('PATCH', `/api/projects/${id}`, {
        name: field(form, 'name') ?? '',
      });
      flash(c, 'notice', `Renamed to ${p.name}.`);
      return `/dashboard/projects/${id}`;
    }),
  );

  app.post(
    '/dashboard/projects/:id/delete',
    action(fetchApi, '/dashboard', async (c, s, form) => {
      const id = encodeURIComponent(param(c, 'id'));
      const q = new URLSearchParams({ confirm: field(form, 'confirm') ?? '' });
      await s.api.call('DELETE', `/api/projects/${id}?${q}`);
      flash(c, 'notice', 'Project deleted; its routes and containers are being removed.');
      return '/dashboard';
    }),
  );

  app.post(
    '/dashboard/projects/:id/services',
    action(fetchApi, '/dashboard', async (c, s, form) => {
      const port = Number(field(form, 'containerPort'));
      const svc = await s.api.post<Service>('/api/services', {
        projectId: param(c, 'id'),
        name: field(form, 'name') ?? '',
        ...(field(form, 'image') || !field(form, 'gitUrl')
          ? { image: field(form, 'image') ?? '' }
          : {}),
        ...(field(form, 'gitUrl') ? { git: { url: field(form, 'gitUrl') } } : {}),
        containerPort: Number.isFinite(port) ? port : 0,
        healthcheckPath: field(form, 'healthcheckPath') ?? '',
        ...(field(form, 'migrateCommand') ? { migrateCommand: field(form, 'migrateCommand') } : {}),
        ...(field(form, 'strategy') ? { strategy: field(form, 'strategy') } : {}),
        ...(parseEnv(field(form, 'env')) ? { env: parseEnv(field(form, 'env')) } : {}),
      });
      return `/dashboard/services/${svc.id}`;
    }),
  );
}
