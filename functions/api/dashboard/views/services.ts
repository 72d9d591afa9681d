import type { Hono } from 'hono';
import { html } from 'hono/html';
import { ApiFailure, type ApiFetch } from '../api.ts';
import { action, view } from '../handler.ts';
import { badge, seconds, when, type Html } from '../layout.ts';
import { field, render, param } from '../session.ts';
import type { Domain, Project, Release, Service } from '../types.ts';
import { health, recentReleases } from './projects.ts';
import { secretsSection } from './secrets.ts';

/** GET /api/services/{id}/health: the app now, apart from how its last deploy ended. */
interface AppHealth {
  app: {
    status: string;
    releaseId: string | null;
    container: {
      state: string;
      restarts: number | null;
      check: string;
      checkError: string | null;
    } | null;
    reason: string | null;
  };
  lastDeploy: { releaseId: string; status: string; error: string | null } | null;
}

/**
 * The app's health and the last deploy as two facts: an app still serving its previous
 * release after a failed deploy is healthy, and its last deploy failed.
 */
function appHealth(live: AppHealth | null, deployLabel: string): Html {
  if (!live)
    return html`<p>
      Health:
      ${badge(deployLabel === 'healthy' ? 'healthy' : deployLabel.includes('failed') ? 'failed' : deployLabel)}
    </p>`;
  const c = live.app.container;
  const d = live.lastDeploy;
  return html`<p id="app-health">
      App health: ${badge(live.app.status)}
      ${c ? html`<span class="hint">container ${c.state} · restarts ${c.restarts ?? '?'} · health check ${c.check}</span>` : ''}
      ${live.app.reason ? html`<span class="hint">— ${live.app.reason}</span>` : ''}
    </p>
    <p id="last-deploy">
      Last deploy:
      ${d ? html`${badge(d.status)} <a href="/dashboard/releases/${d.releaseId}">${d.releaseId}</a> ${d.error ? html`<span class="hint">${d.error}</span>` : ''}` : 'none yet'}
    </p>`;
}

function facts(svc: Service, project: Project): Html {
  return html`<dl class="facts">
      <dt>Project</dt>
      <dd><a href="/dashboard/projects/${project.id}">${project.name}</a></dd>
      <dt>Image</dt>
      <dd><code>${svc.image}</code></dd>
      <dt>Container port</dt>
      <dd>${svc.containerPort}</dd>
      <dt>Healthcheck</dt>
      <dd><code>GET ${svc.healthcheckPath}</code></dd>
      <dt>Strategy</dt>
      <dd>${svc.strategy === 'replace' ? 'replace in place' : 'blue/green'}</dd>
      <dt>Migrate command</dt>
      <dd>${svc.migrateCommand ? html`<code>${svc.migrateCommand}</code>` : '–'}</dd>
      <dt>Environment variables</dt>
      <dd>
        ${Object.keys(svc.env).length ? Object.keys(svc.env).map((k) => html`<code>${k}</code> `) : '–'}
      </dd>
      <dt>Hosts</dt>
      <dd>
        ${(svc.hosts ?? []).map((h) => html`<div>${h.environment}: <a href="http://${h.host}">${h.host}</a></div>`)}
      </dd>
    </dl>
    <p class="hint">
      Settings are fixed when a service is created: the API has no update endpoint yet. Deploy a new
      image above; set secrets per environment.
    </p>`;
}

export function registerServices(app: Hono, fetchApi: ApiFetch): void {
  app.get(
    '/dashboard/services/:id',
    view(fetchApi, async (c, s) => {
      const svc = await s.api.get<Service>(`/api/services/${encodeURIComponent(param(c, 'id'))}`);
      const project = await s.api.get<Project>(`/api/projects/${svc.projectId}`);
      const envs = project.environments ?? [];
      const env =
        envs.find((e) => e.name === c.req.query('environment')) ??
        envs.find((e) => e.name === 'production') ??
        envs[0]!;
      const [releases, secrets, domains, live] = await Promise.all([
        recentReleases(s.api, svc.id, env.id),
        s.api.get<{ items: { name: string; updatedAt: string }[] }>(
          `/api/services/${svc.id}/secrets?environment=${env.name}`,
        ),
        // Domains may be missing on an older control plane: say so instead of failing the page.
        s.api.all<Domain>(`/api/domains?serviceId=${svc.id}`).catch((e: unknown) => {
          if (e instanceof ApiFailure && e.code === 'route_not_found') return null;
          throw e;
        }),
        // Live from the node; an older control plane without the endpoint shows the deploy only.
        s.api
          .get<AppHealth>(
            `/api/services/${svc.id}/health?environment=${encodeURIComponent(env.name)}`,
          )
          .catch((e: unknown) => {
            if (e instanceof ApiFailure && e.code === 'route_not_found') return null;
            throw e;
          }),
      ]);
      const h = health(releases);
      const envDomains =
        domains?.filter((d) => d.serviceId === svc.id && d.environmentId === env.id) ?? null;
      const body = html`<p>
          <a href="/dashboard">Projects</a> ›
          <a href="/dashboard/projects/${project.id}">${project.name}</a> ›
        </p>
        <h1>${svc.name}</h1>
        ${
          envs.length > 1
            ? html`<nav aria-label="Environments">
                ${envs.map(
                  (e) =>
                    html`<a
                      href="/dashboard/services/${svc.id}?environment=${e.name}"
                      ${e.id === env.id ? html`aria-current="page"` : ''}
                      class="button ${e.id === env.id ? '' : 'secondary'}"
                      >${e.name}</a
                    > `,
                )}
              </nav>`
            : ''
        }
        <section class="card" aria-labelledby="at-a-glance">
          <h2 id="at-a-glance">${env.name} at a glance</h2>
          ${appHealth(live, h.label)}
          <p>
            Current release:
            ${
              h.serving
                ? html`<a href="/dashboard/releases/${h.serving.id}">${h.serving.id}</a> ·
                    <code>${h.serving.image}</code> · since ${when(h.serving.finishedAt)}`
                : 'none yet'
            }
          </p>
          <p>
            Served at:
            ${(svc.hosts ?? []).filter((x) => x.environment === env.name).map((x) => html`<a href="http://${x.host}">${x.host}</a> `)}
            ${(envDomains ?? []).filter((d) => d.status === 'active').map((d) => html`<a href="https://${d.hostname}">${d.hostname}</a> `)}
          </p>
        </section>
        <form
          method="post"
          action="/dashboard/services/${svc.id}/deploy"
          class="card"
          aria-labelledby="deploy-h"
        >
          <h2 id="deploy-h">Deploy to ${env.name}</h2>
          <input type="hidden" name="environment" value="${env.name}" />
          <div class="row">
            <div>
              <label for="deploy-image">Image</label
              ><input
                id="deploy-image"
                name="image"
                required
                value="${h.latest?.image ?? svc.image}"
              />
            </div>
            <div>
              <label for="deploy-sha">Git commit <span class="hint">optional</span></label
              ><input id="deploy-sha" name="gitSha" pattern="[0-9a-f]{7,40}" />
            </div>
            <div><button type="submit">Deploy</button></div>
          </div>
          <p class="hint">
            The new release starts beside the current one, must pass its healthcheck, and only then
            receives traffic.
          </p>
        </form>
        <h2>Releases</h2>
        ${
          releases.length === 0
            ? html`<div class="empty">
                <strong>Not deployed yet.</strong> Press Deploy above to ship
                <code>${svc.image}</code>; a <a href="/dashboard/nodes">node</a> must be registered
                first.
              </div>`
            : html`<table>
                <caption class="visually-hidden">
                  Releases of ${svc.name} in ${env.name}, newest first
                </caption>
                <thead>
                  <tr>
                    <th scope="col">Release</th>
                    <th scope="col">Status</th>
                    <th scope="col">Image</th>
                    <th scope="col">Started</th>
                    <th scope="col">Took</th>
                  </tr>
                </thead>
                <tbody>
                  ${releases.slice(0, 20).map(
                    (r: Release) =>
                      html`<tr class="${r.status === 'failed' ? 'failed' : ''}">
                        <td><a href="/dashboard/releases/${r.id}">${r.id}</a></td>
                        <td>${badge(r.status)}</td>
                        <td><code>${r.image}</code></td>
                        <td>${when(r.createdAt)}</td>
                        <td>${r.finishedAt ? seconds(r.createdAt, r.finishedAt) : '…'}</td>
                      </tr>`,
                  )}
                </tbody>
              </table>`
        }
        <h2 id="domains">Custom domains</h2>
        ${
          envDomains === null
            ? html`<div class="empty">
                Custom domains are not available on this control plane yet.
              </div>`
            : html`${
                  envDomains.length === 0
                    ? html`<div class="empty">
                        No custom domain yet. Add one (e.g. <code>shop.example.com</code>); you will
                        get the DNS records to create.
                      </div>`
                    : html`<table>
                        <thead>
                          <tr>
                            <th scope="col">Hostname</th>
                            <th scope="col">Status</th>
                            <th scope="col">Last error</th>
                          </tr>
                        </thead>
                        <tbody>
                          ${envDomains.map(
                            (d) =>
                              html`<tr>
                                <td><a href="/dashboard/domains/${d.id}">${d.hostname}</a></td>
                                <td>${badge(d.status)}</td>
                                <td>${d.lastError ?? '–'}</td>
                              </tr>`,
                          )}
                        </tbody>
                      </table>`
                }
                <form method="post" action="/dashboard/services/${svc.id}/domains" class="card row">
                  <input type="hidden" name="environment" value="${env.name}" />
                  <div>
                    <label for="domain-host">Hostname</label
                    ><input
                      id="domain-host"
                      name="hostname"
                      required
                      placeholder="shop.example.com"
                    />
                  </div>
                  <div><button type="submit" class="secondary">Add domain</button></div>
                </form>`
        }
        ${secretsSection(svc.id, env.name, secrets.items)}
        <h2>Settings</h2>
        ${facts(svc, project)}`;
      return render(c, s, { title: svc.name, section: 'projects' }, body);
    }),
  );

  app.post(
    '/dashboard/services/:id/deploy',
    action(fetchApi, '/dashboard', async (c, s, form) => {
      const r = await s.api.post<Release>('/api/releases', {
        serviceId: param(c, 'id'),
        environment: field(form, 'environment'),
        image: field(form, 'image') ?? '',
        ...(field(form, 'gitSha') ? { gitSha: field(form, 'gitSha') } : {}),
      });
      return `/dashboard/releases/${r.id}`;
    }),
  );

  app.post(
    '/dashboard/services/:id/domains',
    action(fetchApi, '/dashboard', async (c, s, form) => {
      const d = await s.api.post<Domain>('/api/domains', {
        serviceId: param(c, 'id'),
        environment: field(form, 'environment'),
        hostname: field(form, 'hostname') ?? '',
      });
      return `/dashboard/domains/${d.id}`;
    }),
  );
}
