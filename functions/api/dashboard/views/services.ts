import type { Hono } from 'hono';
import { html } from 'hono/html';
import { ApiFailure, type ApiFetch } from '../api.ts';
import { action, view } from '../handler.ts';
import { badge, seconds, when, type Html } from '../layout.ts';
import { field, flash, render, param } from '../session.ts';
import type { Domain, Project, Release, Service } from '../types.ts';
import { health, recentReleases } from './projects.ts';
import { chartsSection, serviceCharts, type MetricsAnswer } from '../charts.ts';
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
      Deploy a new image or git ref above; set secrets per environment; change the git source below.
      Other settings change through <code>PATCH /api/services/{id}</code>.
    </p>`;
}

/** The service's git source, its form (the token is write-only) and its deploy key. */
interface PushHookShown {
  path: string;
  url: string | null;
  secret?: string;
}

/** The push-to-deploy webhook: its URL, and a button that makes it or rotates its secret. */
function pushHookSection(svc: Service, hook: PushHookShown | null): Html {
  if (!svc.git) return html``;
  return html`<section class="card" id="push-hook" aria-labelledby="push-hook-h">
    <h2 id="push-hook-h">Push to deploy</h2>
    ${
      hook
        ? html`<p>
            Webhook URL: <code>${hook.url ?? hook.path}</code>
            <span class="hint"
              >for GitHub, GitLab or Gitea push events; a push to ${svc.git.ref} deploys it</span
            >
          </p>`
        : html`<p>No push webhook yet.</p>`
    }
    <form
      method="post"
      action="/dashboard/services/${svc.id}/push-hook"
      class="inline"
      ${hook ? html`data-confirm="Rotate the secret? The git host's webhook stops passing until it has the new one."` : ''}
    >
      <button type="submit" class="secondary">
        ${hook ? 'Rotate the secret' : 'Make a push webhook'}
      </button>
    </form>
  </section>`;
}

function gitSource(svc: Service): Html {
  const git = svc.git;
  const args = git
    ? Object.entries(git.buildArgs)
        .map(([k, v]) => `${k}=${v}`)
        .join('\n')
    : '';
  const credential =
    svc.gitCredentialKind === 'token'
      ? 'an access token (write-only)'
      : svc.gitCredentialKind === 'deploy_key'
        ? 'an SSH deploy key'
        : 'none (a public repository)';
  return html`<h2 id="git">Git source</h2>
    ${
      git
        ? html`<dl class="facts" data-git-source>
            <dt>Repository</dt>
            <dd><code>${git.url}</code></dd>
            <dt>Follows</dt>
            <dd><code>${git.ref}</code></dd>
            <dt>Dockerfile</dt>
            <dd><code>${git.subdir ? `${git.subdir}/` : ''}${git.dockerfile}</code></dd>
            <dt>Credential</dt>
            <dd>${credential}</dd>
            ${
              svc.gitPublicKey
                ? html`<dt>Deploy key</dt>
                    <dd>
                      <code data-public-key>${svc.gitPublicKey}</code>
                      <div class="hint">Add it to the repository as a read-only deploy key.</div>
                    </dd>`
                : ''
            }
          </dl>`
        : html`<p class="hint">
            Not built from git: deploys run images. Give a repository to build it on the node from
            its Dockerfile.
          </p>`
    }
    <form
      method="post"
      action="/dashboard/services/${svc.id}/git"
      class="card"
      aria-label="git source"
    >
      <div class="row">
        <div>
          <label for="git-url">Repository URL</label
          ><input
            id="git-url"
            name="url"
            required
            value="${git?.url ?? ''}"
            placeholder="https://git.example.com/shop/web.git or git@host:shop/web.git"
          />
        </div>
        <div>
          <label for="git-ref">Branch or tag</label
          ><input id="git-ref" name="ref" value="${git?.ref ?? 'main'}" />
        </div>
      </div>
      <div class="row">
        <div>
          <label for="git-subdir">Sub-directory <span class="hint">optional</span></label
          ><input id="git-subdir" name="subdir" value="${git?.subdir ?? ''}" />
        </div>
        <div>
          <label for="git-dockerfile">Dockerfile</label
          ><input
            id="git-dockerfile"
            name="dockerfile"
            value="${git?.dockerfile ?? 'Dockerfile'}"
          />
        </div>
        <div>
          <label for="git-token"
            >HTTPS token <span class="hint">write-only; empty keeps the current one</span></label
          ><input id="git-token" name="token" type="password" autocomplete="new-password" />
        </div>
      </div>
      <label for="git-args"
        >Build args
        <span class="hint"
          >one KEY=value per line; never secrets (docker history shows them)</span
        ></label
      >
      <textarea id="git-args" name="buildArgs">${args}</textarea>
      ${
        svc.gitCredentialKind
          ? html`<label
              ><input type="checkbox" name="dropCredential" value="1" /> Remove the stored
              ${svc.gitCredentialKind === 'token' ? 'token' : 'deploy key'}</label
            >`
          : ''
      }
      <p><button type="submit" class="secondary">Save git source</button></p>
    </form>
    ${
      git
        ? html`<form method="post" action="/dashboard/services/${svc.id}/deploy-key" class="inline">
            <button type="submit" class="secondary">
              ${svc.gitPublicKey ? 'Replace the deploy key' : 'Make an SSH deploy key'}
            </button>
          </form>`
        : ''
    }`;
}

/** `KEY=value` lines as a map; blank lines are skipped. */
function parseArgs(text: string | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of (text ?? '').split(/\r?\n/)) {
    const at = line.indexOf('=');
    if (line.trim() === '') continue;
    if (at <= 0) out[line.trim()] = '';
    else out[line.slice(0, at).trim()] = line.slice(at + 1);
  }
  return out;
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
      const range = ['1h', '1d', '1w'].includes(c.req.query('range') ?? '')
        ? c.req.query('range')!
        : '1h';
      const [releases, secrets, domains, live, pushHook, metrics] = await Promise.all([
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
        svc.git
          ? s.api.get<PushHookShown>(`/api/services/${svc.id}/push-hook`).catch((e: unknown) => {
              if (e instanceof ApiFailure && e.status === 404) return null;
              throw e;
            })
          : null,
        // Never a broken chart: without a backend the answer says what to install; an older
        // control plane without the endpoint says so.
        s.api
          .get<MetricsAnswer>(
            `/api/services/${svc.id}/metrics?environment=${encodeURIComponent(env.name)}&range=${range}`,
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
        ${chartsSection(
          metrics,
          serviceCharts,
          (r) =>
            `/dashboard/services/${svc.id}?environment=${encodeURIComponent(env.name)}&range=${r}`,
        )}
        <p><a href="/dashboard/alerts?serviceId=${svc.id}">Alert thresholds of ${svc.name}</a></p>
        <form
          method="post"
          action="/dashboard/services/${svc.id}/deploy"
          class="card"
          aria-labelledby="deploy-h"
        >
          <h2 id="deploy-h">Deploy to ${env.name}</h2>
          <input type="hidden" name="environment" value="${env.name}" />
          <div class="row">
            ${
              svc.git
                ? html`<div>
                      <label for="deploy-ref"
                        >Git ref <span class="hint">branch, tag or full commit sha</span></label
                      ><input id="deploy-ref" name="gitRef" value="${svc.git.ref}" />
                    </div>
                    <div>
                      <label for="deploy-image"
                        >or an image <span class="hint">instead of a build</span></label
                      ><input id="deploy-image" name="image" />
                    </div>`
                : html`<div>
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
                    </div>`
            }
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
        ${facts(svc, project)} ${gitSource(svc)} ${pushHookSection(svc, pushHook)}`;
      return render(c, s, { title: svc.name, section: 'projects' }, body);
    }),
  );

  app.post(
    '/dashboard/services/:id/deploy',
    action(fetchApi, '/dashboard', async (c, s, form) => {
      const r = await s.api.post<Release>('/api/releases', {
        serviceId: param(c, 'id'),
        environment: field(form, 'environment'),
        // A git service's form: an image given deploys it; otherwise the ref is built.
        ...(field(form, 'image') || !field(form, 'gitRef')
          ? { image: field(form, 'image') ?? '' }
          : { gitRef: field(form, 'gitRef') }),
        ...(field(form, 'gitSha') ? { gitSha: field(form, 'gitSha') } : {}),
      });
      return `/dashboard/releases/${r.id}`;
    }),
  );

  app.post(
    '/dashboard/services/:id/git',
    action(fetchApi, '/dashboard', async (c, s, form) => {
      const token = typeof form.token === 'string' && form.token !== '' ? form.token : undefined;
      await s.api.call('PATCH', `/api/services/${param(c, 'id')}`, {
        git: {
          url: field(form, 'url') ?? '',
          ref: field(form, 'ref') || 'main',
          subdir: field(form, 'subdir') ?? '',
          dockerfile: field(form, 'dockerfile') || 'Dockerfile',
          buildArgs: parseArgs(typeof form.buildArgs === 'string' ? form.buildArgs : ''),
          ...(token ? { token } : field(form, 'dropCredential') ? { token: null } : {}),
        },
      });
      flash(c, 'notice', 'Git source saved; it applies from the next deploy.');
      return `/dashboard/services/${param(c, 'id')}#git`;
    }),
  );

  app.post(
    '/dashboard/services/:id/push-hook',
    view(fetchApi, async (c, s) => {
      const id = param(c, 'id');
      // The secret is shown once, in the reply to the POST that made it, and never stored here.
      const hook = await s.api.post<PushHookShown>(`/api/services/${id}/push-hook`, {});
      const body = html`<p><a href="/dashboard/services/${id}#push-hook">Back to the service</a></p>
        <h1>Push webhook</h1>
        <section class="card" aria-labelledby="hook-made">
          <h2 id="hook-made">Copy the secret now: it is not shown again</h2>
          <p>URL: <code>${hook.url ?? hook.path}</code></p>
          <p>Secret: <code>${hook.secret}</code></p>
          <p class="hint">
            GitHub and Gitea: content type application/json, this secret. GitLab: this secret as the
            secret token.
          </p>
        </section>`;
      return render(c, s, { title: 'Push webhook' }, body, 201);
    }),
  );

  app.post(
    '/dashboard/services/:id/deploy-key',
    action(fetchApi, '/dashboard', async (c, s) => {
      await s.api.post(`/api/services/${param(c, 'id')}/deploy-key`, {});
      flash(c, 'notice', 'New deploy key made: add its public half to the repository.');
      return `/dashboard/services/${param(c, 'id')}#git`;
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
