import type { Context, Hono } from 'hono';
import { html } from 'hono/html';
import { ApiFailure, DashboardApi, type ApiFetch } from '../api.ts';
import { action, view } from '../handler.ts';
import { badge, seconds, when, type Html } from '../layout.ts';
import { field, flash, render, param } from '../session.ts';
import type { Domain, NodeRecord, Project, Release, Service } from '../types.ts';
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
  /** Replicas reported crash-looping in the last 15 minutes (absent from older servers). */
  crashLoops?: {
    replica: string;
    restartsInWindow: number;
    threshold: number;
    reportedAt: string;
  }[];
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
    ${
      live.crashLoops?.length
        ? html`<p id="crash-loops" role="alert">
            Crash-looping:
            ${live.crashLoops.map(
              (l) =>
                html`${badge('failed')} replica ${l.replica}
                  <span class="hint"
                    >${l.restartsInWindow} restarts in 15 min (threshold ${l.threshold}), reported
                    ${l.reportedAt} — see the logs below and docs/runbooks/app-down.md</span
                  > `,
            )}
          </p>`
        : ''
    }
    <p id="last-deploy">
      Last deploy:
      ${d ? html`${badge(d.status)} <a href="/dashboard/releases/${d.releaseId}">${d.releaseId}</a> ${d.error ? html`<span class="hint">${d.error}</span>` : ''}` : 'none yet'}
    </p>`;
}

/** The serving release's replicas (node, address, health) and the scale, stop and start forms. */
function replicasSection(
  svc: Service,
  envName: string,
  serving: Release | null,
  nodes: NodeRecord[],
): Html {
  const replicas = serving?.replicaSet?.replicas ?? [];
  const nodeName = (id: string) => nodes.find((n) => n.id === id)?.name ?? id;
  const labels = Object.entries(svc.placement?.labels ?? {});
  return html`<section class="card" id="replicas" aria-labelledby="replicas-h">
    <h2 id="replicas-h">Replicas in ${envName}</h2>
    <p>
      Wanted: <strong>${svc.replicas}</strong> · balancing
      ${svc.sticky ? 'sticky (cookie)' : (svc.loadBalancing ?? 'round_robin')}
      ${labels.length ? html`· on nodes with ${labels.map(([k, v]) => html`<code>${k}=${v}</code> `)}` : ''}
    </p>
    ${
      replicas.length
        ? html`<table>
            <thead>
              <tr>
                <th scope="col">Replica</th>
                <th scope="col">Node</th>
                <th scope="col">Address</th>
                <th scope="col">Health</th>
              </tr>
            </thead>
            <tbody>
              ${replicas.map(
                (r) =>
                  html`<tr>
                    <td>${r.index}</td>
                    <td><a href="/dashboard/nodes/${r.nodeId}">${nodeName(r.nodeId)}</a></td>
                    <td><code>${r.upstream ?? '–'}</code></td>
                    <td>${badge(r.health)}</td>
                  </tr>`,
              )}
            </tbody>
          </table>`
        : html`<p class="hint">No replica runs${serving ? ' (stopped)' : ' yet'}.</p>`
    }
    <form method="post" action="/dashboard/services/${svc.id}/scale" class="inline">
      <input type="hidden" name="environment" value="${envName}" />
      <label for="scale-replicas">Replicas <span class="hint">0 to 50</span></label>
      <input
        id="scale-replicas"
        name="replicas"
        type="number"
        min="0"
        max="50"
        value="${svc.replicas}"
      />
      <button type="submit">Scale</button>
    </form>
    <form
      method="post"
      action="/dashboard/services/${svc.id}/${svc.replicas === 0 ? 'start' : 'stop'}"
      class="inline"
      ${svc.replicas === 0 ? '' : html`data-confirm="Stop ${svc.name} in ${envName}? Its route leaves the edge."`}
    >
      <input type="hidden" name="environment" value="${envName}" />
      <button type="submit" class="secondary">${svc.replicas === 0 ? 'Start' : 'Stop'}</button>
    </form>
  </section>`;
}

function facts(svc: Service, project: Project): Html {
  return html`<dl class="facts">
      <dt>Project</dt>
      <dd><a href="/dashboard/projects/${project.id}">${project.name}</a></dd>
      <dt>Image</dt>
      <dd><code>${svc.image}</code></dd>
      ${
        svc.containerPort === null
          ? html`<dt>Kind</dt>
              <dd>worker: no port, no route</dd>
              <dt>Health</dt>
              <dd>
                up ${svc.workerHealth?.stableSeconds ?? 10} s without a
                restart${
                  svc.workerHealth?.command
                    ? html`, then <code>${svc.workerHealth.command}</code> exits 0`
                    : ''
                }
              </dd>`
          : html`<dt>Container port</dt>
              <dd>${svc.containerPort}</dd>
              <dt>Healthcheck</dt>
              <dd><code>GET ${svc.healthcheckPath}</code></dd>`
      }
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
      Deploy a new image or git ref above; set secrets per environment; change the settings and the
      git source below.
    </p>`;
}

const envLines = (env: Record<string, string>) =>
  Object.entries(env)
    .map(([k, v]) => `${k}=${v}`)
    .join('\n');

/**
 * The settings form: every field PATCH takes but git (its own form) and replicas. Only the
 * fields that differ from the service are sent, so the answer's `applies` names exactly what
 * changed. The name applies at once; the rest with the next release.
 */
function settingsForm(svc: Service): Html {
  return html`<form
    method="post"
    action="/dashboard/services/${svc.id}/settings"
    class="card"
    id="settings"
    aria-labelledby="settings-h"
  >
    <h2 id="settings-h">Change settings</h2>
    <p class="hint">
      The name applies at once; everything else with the next release (deploy or redeploy). Refused
      while a release is in flight.
    </p>
    <div class="row">
      <div>
        <label for="set-name">Service name</label
        ><input id="set-name" name="name" required value="${svc.name}" />
      </div>
      <div>
        <label for="set-image">Service image</label
        ><input id="set-image" name="image" required value="${svc.image}" />
      </div>
      <div>
        <label for="set-port">Container port</label
        ><input
          id="set-port"
          name="containerPort"
          type="number"
          min="1"
          max="65535"
          required
          value="${svc.containerPort}"
        />
      </div>
    </div>
    <div class="row">
      <div>
        <label for="set-health">Healthcheck path</label
        ><input id="set-health" name="healthcheckPath" required value="${svc.healthcheckPath}" />
      </div>
      <div>
        <label for="set-migrate">Migrate command <span class="hint">empty for none</span></label
        ><input id="set-migrate" name="migrateCommand" value="${svc.migrateCommand ?? ''}" />
      </div>
      <div>
        <label for="set-strategy">Strategy</label
        ><select id="set-strategy" name="strategy">
          <option value="blue_green" ${svc.strategy === 'blue_green' ? 'selected' : ''}>
            blue/green
          </option>
          <option value="replace" ${svc.strategy === 'replace' ? 'selected' : ''}>
            replace in place
          </option>
        </select>
      </div>
    </div>
    <div class="row">
      <div>
        <label for="set-memory">Memory (MB) <span class="hint">empty for no limit</span></label
        ><input id="set-memory" name="memoryMb" type="number" value="${svc.memoryMb ?? ''}" />
      </div>
      <div>
        <label for="set-cpus">CPUs <span class="hint">empty for no limit</span></label
        ><input id="set-cpus" name="cpus" type="number" step="0.01" value="${svc.cpus ?? ''}" />
      </div>
      <div>
        <label for="set-warm">Keep the previous release warm (s)</label
        ><input id="set-warm" name="warmSeconds" type="number" min="0" value="${svc.warmSeconds}" />
      </div>
      <div>
        <label for="set-drain">Drain (s)</label
        ><input
          id="set-drain"
          name="drainSeconds"
          type="number"
          min="0"
          value="${svc.drainSeconds}"
        />
      </div>
    </div>
    <label for="set-env"
      >Environment variables
      <span class="hint">one KEY=value per line; secrets go below</span></label
    >
    <textarea id="set-env" name="env">${envLines(svc.env)}</textarea>
    <label class="inline"
      ><input type="checkbox" name="sticky" value="1" ${svc.sticky ? 'checked' : ''} /> Sticky
      sessions (a cookie pins each client to one replica)</label
    >
    <p><button type="submit" class="secondary">Save settings</button></p>
  </form>`;
}

/** Deleting: the name typed again; releases, secrets, domains, routes and containers go. */
function deleteForm(svc: Service): Html {
  return html`<form
    method="post"
    action="/dashboard/services/${svc.id}/delete"
    class="card"
    id="delete"
    aria-labelledby="delete-h"
  >
    <h2 id="delete-h">Delete</h2>
    <p class="hint">
      Removes the service in every environment: its releases, secrets, domains and push webhook,
      then its routes and containers.
    </p>
    <label for="del-confirm">Type <code>${svc.name}</code> to confirm</label>
    <input id="del-confirm" name="confirm" required autocomplete="off" />
    <div><button type="submit" class="danger">Delete service</button></div>
  </form>`;
}

/** The fields of the settings form that differ from the service, as a PATCH body. */
function changedSettings(svc: Service, form: Record<string, unknown>): Record<string, unknown> {
  const text = (k: string) => (typeof form[k] === 'string' ? (form[k] as string).trim() : '');
  const num = (k: string) => (text(k) === '' ? null : Number(text(k)));
  const next: Record<string, unknown> = {
    name: text('name'),
    image: text('image'),
    containerPort: num('containerPort'),
    healthcheckPath: text('healthcheckPath'),
    migrateCommand: text('migrateCommand') || null,
    strategy: text('strategy'),
    memoryMb: num('memoryMb'),
    cpus: num('cpus'),
    warmSeconds: num('warmSeconds'),
    drainSeconds: num('drainSeconds'),
    env: parseArgs(typeof form.env === 'string' ? form.env : ''),
    sticky: form.sticky === '1',
  };
  const current = svc as unknown as Record<string, unknown>;
  return Object.fromEntries(
    Object.entries(next).filter(([k, v]) => JSON.stringify(v) !== JSON.stringify(current[k])),
  );
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

type GitView = Service & {
  gitHostKeys?: { hosts: string; type: string; fingerprint: string }[];
  gitPoll?: {
    polledAt: string | null;
    sha: string | null;
    error: string | null;
    releaseId: string | null;
  } | null;
};

/** The git server's pinned SSH host keys with their fingerprints (ssh repositories only). */
function hostKeyFacts(svc: GitView): Html {
  const keys = svc.gitHostKeys ?? [];
  const ssh = /^ssh:\/\/|^[^/:]+@[^/:]+:/.test(svc.git?.url ?? '');
  if (!ssh && keys.length === 0) return html``;
  return html`<dt>SSH host key</dt>
    <dd data-host-keys>
      ${
        keys.length === 0
          ? html`not pinned yet: the first contact pins the key the server presents`
          : keys.map((k) => html`<div><code>${k.hosts} ${k.type} ${k.fingerprint}</code></div>`)
      }
    </dd>`;
}

/** How the branch is polled, and what the last poll saw. */
function pollFacts(svc: GitView): Html {
  const every = svc.git?.pollIntervalSeconds;
  const poll = svc.gitPoll;
  return html`<dt>Polling</dt>
    <dd data-git-poll>
      ${every ? `every ${every} s` : 'off (push webhooks or deploys by hand)'}
      ${
        poll?.polledAt
          ? html`<div class="hint">
              last polled ${poll.polledAt}${poll.sha ? html`, head <code>${poll.sha}</code>` : ''}
              ${
                poll.releaseId
                  ? html`, release
                      <a href="/dashboard/releases/${poll.releaseId}">${poll.releaseId}</a>`
                  : ''
              }
              ${poll.error ? html`<div class="error" data-git-poll-error>${poll.error}</div>` : ''}
            </div>`
          : every
            ? html`<div class="hint">not polled yet</div>`
            : ''
      }
    </dd>`;
}

function gitSource(svc: GitView): Html {
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
  const buildSecrets = (svc as Service & { buildSecrets?: string[] }).buildSecrets ?? [];
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
            <dt>Build secrets</dt>
            <dd data-build-secrets>
              ${buildSecrets.length > 0 ? buildSecrets.join(', ') : 'none'}
            </dd>
            ${hostKeyFacts(svc)} ${pollFacts(svc)}
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
      <div class="row">
        <div>
          <label for="git-poll"
            >Poll the branch every <span class="hint">seconds, at least 60; empty: off</span></label
          ><input
            id="git-poll"
            name="pollIntervalSeconds"
            inputmode="numeric"
            value="${git?.pollIntervalSeconds ?? ''}"
          />
        </div>
      </div>
      <label for="git-known-hosts"
        >SSH host keys
        <span class="hint"
          >ssh repositories: known_hosts lines to pin (ssh-keyscan prints them); empty keeps the
          pinned ones, or pins the key seen on first contact</span
        ></label
      >
      <textarea id="git-known-hosts" name="knownHosts"></textarea>
      ${
        git?.knownHosts
          ? html`<label
              ><input type="checkbox" name="forgetHostKeys" value="1" /> Forget the pinned host key
              (the next contact pins the key the server presents then)</label
            >`
          : ''
      }
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
        ? html`<form method="post" action="/dashboard/services/${svc.id}/build-secrets">
            <h3 id="build-secrets">Build secrets</h3>
            <p class="hint">
              Offered to <code>RUN --mount=type=secret,id=ID</code> only: never a build arg, never
              in a layer or the log. Write-only; saving an ID again replaces its value.
            </p>
            <div class="row">
              <div>
                <label for="build-secret-id">ID</label
                ><input
                  id="build-secret-id"
                  name="secretId"
                  required
                  pattern="[A-Za-z0-9_.-]{1,64}"
                />
              </div>
              <div>
                <label for="build-secret-value"
                  >Value <span class="hint">empty with “remove” drops it</span></label
                ><input
                  id="build-secret-value"
                  name="value"
                  type="password"
                  autocomplete="new-password"
                />
              </div>
            </div>
            <label
              ><input type="checkbox" name="remove" value="1" /> Remove this build secret</label
            >
            <p><button type="submit" class="secondary">Save build secret</button></p>
          </form>`
        : ''
    }
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

/** The poll field: empty turns polling off; anything not a number goes to the API as typed, which names the problem. */
function pollOf(value: string | undefined): number | string | null {
  if (value === undefined || value.trim() === '') return null;
  const n = Number(value);
  return Number.isFinite(n) ? n : value;
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

/** One app log line as GET /api/services/{id}/logs answers it (NDJSON). */
interface AppLogLine {
  time: string;
  replica: string;
  node: string;
  stream: 'stdout' | 'stderr';
  text: string;
}

/** The log search of the service page: its query, from the page's own query string. */
function logSearch(c: Context, environment: string): URLSearchParams {
  const q = new URLSearchParams({ environment });
  const since = c.req.query('logs_since');
  const grep = c.req.query('grep');
  q.set('tail', /^\d{1,4}$/.test(c.req.query('tail') ?? '') ? c.req.query('tail')! : '100');
  if (since) q.set('since', since);
  if (grep) q.set('grep', grep);
  if (c.req.query('regex')) q.set('regex', 'true');
  return q;
}

/**
 * Reads the newest lines of the search (the API bounds them by `tail`) for the page; a
 * refused search or a node that cannot be read is said in the section, not a failed page.
 */
async function readAppLogs(
  c: Context,
  fetchApi: ApiFetch,
  serviceId: string,
  query: URLSearchParams,
): Promise<{ lines: AppLogLine[]; notices: string[]; error: string | null }> {
  const res = await new DashboardApi(c, fetchApi).raw(
    'GET',
    `/api/services/${serviceId}/logs?${query}`,
    { headers: { accept: 'application/x-ndjson' } },
  );
  if (!res.ok) {
    const body = (await res.json().catch(() => null)) as { error?: { message?: string } } | null;
    return {
      lines: [],
      notices: [],
      error: body?.error?.message ?? `the API answered ${res.status}`,
    };
  }
  const lines: AppLogLine[] = [];
  const notices: string[] = [];
  for (const row of (await res.text()).split('\n')) {
    if (!row) continue;
    const r = JSON.parse(row) as AppLogLine | { type: string; message?: string; since?: string };
    if ('type' in r) {
      if (r.type === 'notice' && r.message) notices.push(r.message);
      if (r.type === 'more')
        notices.push(
          `more lines than one page: search from ${r.since ?? 'the last line shown'} on, or narrow the range`,
        );
    } else lines.push(r);
  }
  return { lines, notices, error: null };
}

/** The service page's logs: a search (works without script) and a live tail (with it). */
function logsSection(
  svc: Service,
  env: string,
  query: URLSearchParams,
  read: { lines: AppLogLine[]; notices: string[]; error: string | null },
): Html {
  const live = new URLSearchParams({ environment: env });
  if (query.get('grep')) live.set('grep', query.get('grep')!);
  if (query.get('regex')) live.set('regex', 'true');
  return html`<section class="card" aria-labelledby="logs-h" id="logs">
    <h2 id="logs-h">Logs</h2>
    <p class="hint">
      Every replica's stdout and stderr, as its node keeps them (3 files of 10 MB per container),
      newest last. A search is plain text unless “regular expression” is ticked.
    </p>
    <form method="get" action="/dashboard/services/${svc.id}#logs" class="row">
      <input type="hidden" name="environment" value="${env}" />
      <div>
        <label for="logs-grep">Search</label
        ><input id="logs-grep" name="grep" value="${query.get('grep') ?? ''}" maxlength="256" />
      </div>
      <div>
        <label for="logs-since">Since <span class="hint">15m, 1h, 7d or a time</span></label
        ><input id="logs-since" name="logs_since" value="${query.get('since') ?? ''}" />
      </div>
      <div>
        <label for="logs-tail">Lines</label
        ><input id="logs-tail" name="tail" value="${query.get('tail') ?? '100'}" size="5" />
      </div>
      <div>
        <label
          ><input type="checkbox" name="regex" value="1" ${query.get('regex') ? 'checked' : ''} />
          regular expression</label
        >
      </div>
      <div><button type="submit" class="secondary">Search</button></div>
    </form>
    ${read.error ? html`<p class="error" role="alert" id="logs-error">${read.error}</p>` : ''}
    ${read.notices.map((n) => html`<p class="hint" role="status">${n}</p>`)}
    <pre
      class="log"
      id="app-log"
      data-logs-live="/dashboard/services/${svc.id}/logs/events?${live}"
      aria-live="off"
    >
${
        read.lines.length === 0
          ? html`<span id="app-log-empty">No lines${query.get('grep') ? ' match' : ''}.</span> `
          : read.lines.map(
              (l) =>
                html`<span class="${l.stream}"
                  >${l.time.slice(0, 23)}Z ${l.replica}@${l.node} ${l.text}
                </span>`,
            )
      }</pre>
    <p>
      <button type="button" class="secondary" data-logs-follow aria-pressed="false">
        Live tail
      </button>
      <span class="hint">new lines of every replica as they are written</span>
    </p>
  </section>`;
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
      const [releases, secrets, domains, live, pushHook, nodes, metrics] = await Promise.all([
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
        s.api.all<NodeRecord>('/api/nodes'),
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
      const logQuery = logSearch(c, env.name);
      const logs = await readAppLogs(c, fetchApi, svc.id, logQuery);
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
          ${
            h.serving
              ? html`<form
                    method="post"
                    action="/dashboard/services/${svc.id}/redeploy"
                    class="inline"
                  >
                    <input type="hidden" name="environment" value="${env.name}" />
                    <button type="submit" class="secondary">Redeploy</button>
                  </form>
                  ${envs
                    .filter((e) => e.id !== env.id)
                    .map(
                      (e) =>
                        html`<form
                          method="post"
                          action="/dashboard/environments/${env.id}/promote"
                          class="inline"
                        >
                          <input type="hidden" name="to" value="${e.name}" />
                          <input type="hidden" name="serviceId" value="${svc.id}" />
                          <button type="submit" class="secondary">Promote to ${e.name}</button>
                        </form>`,
                    )}`
              : ''
          }
          <p>
            Served at:
            ${(svc.hosts ?? []).filter((x) => x.environment === env.name).map((x) => html`<a href="http://${x.host}">${x.host}</a> `)}
            ${(envDomains ?? []).filter((d) => d.status === 'active').map((d) => html`<a href="https://${d.hostname}">${d.hostname}</a> `)}
          </p>
        </section>
        ${replicasSection(svc, env.name, h.serving, nodes)}
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
        ${logsSection(svc, env.name, logQuery, logs)}
        ${secretsSection(svc.id, env.name, secrets.items)}
        <h2>Settings</h2>
        ${facts(svc, project)} ${settingsForm(svc)} ${gitSource(svc)}
        ${pushHookSection(svc, pushHook)} ${deleteForm(svc)}`;
      return render(c, s, { title: svc.name, section: 'projects' }, body);
    }),
  );

  // EventSource cannot send a bearer token: the cookie authenticates this proxy of the API's
  // followed log (new lines only: the page already shows the newest).
  app.get('/dashboard/services/:id/logs/events', async (c: Context) => {
    const q = new URLSearchParams({ follow: 'true', tail: '0' });
    for (const k of ['environment', 'grep', 'regex']) if (c.req.query(k)) q.set(k, c.req.query(k)!);
    const res = await new DashboardApi(c, fetchApi).raw(
      'GET',
      `/api/services/${encodeURIComponent(param(c, 'id'))}/logs?${q}`,
      { headers: { accept: 'text/event-stream' } },
    );
    return new Response(res.body, {
      status: res.status,
      headers: {
        'content-type': res.headers.get('content-type') ?? 'text/plain',
        'cache-control': 'no-cache',
      },
    });
  });
  for (const verb of ['scale', 'stop', 'start'] as const) {
    app.post(
      `/dashboard/services/:id/${verb}`,
      action(fetchApi, '/dashboard', async (c, s, form) => {
        const id = param(c, 'id');
        const environment = field(form, 'environment') ?? 'production';
        const replicas = field(form, 'replicas');
        const r = await s.api.post<{ replicas: number; current: number; releaseId: string | null }>(
          `/api/services/${encodeURIComponent(id)}/${verb}`,
          {
            environment,
            // The API names a value that is not a whole number 0…50 (400 on the page).
            ...(verb !== 'stop' && replicas !== undefined && replicas !== ''
              ? { replicas: /^\d+$/.test(replicas) ? Number(replicas) : replicas }
              : {}),
          },
        );
        flash(
          c,
          'notice',
          r.releaseId
            ? `Scaling ${environment} from ${r.current} to ${r.replicas} replicas.`
            : `${environment} runs ${r.replicas} replicas from its next deploy.`,
        );
        return `/dashboard/services/${id}?environment=${encodeURIComponent(environment)}`;
      }),
    );
  }

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
    '/dashboard/services/:id/settings',
    action(fetchApi, '/dashboard', async (c, s, form) => {
      const id = param(c, 'id');
      const svc = await s.api.get<Service>(`/api/services/${encodeURIComponent(id)}`);
      const body = changedSettings(svc, form);
      if (Object.keys(body).length === 0) {
        flash(c, 'notice', 'Nothing changed.');
        return `/dashboard/services/${id}#settings`;
      }
      const res = await s.api.call<{ applies: Record<string, string> }>(
        'PATCH',
        `/api/services/${encodeURIComponent(id)}`,
        body,
      );
      const next = Object.keys(res.applies).filter((k) => res.applies[k] === 'next_release');
      const now = Object.keys(res.applies).filter((k) => res.applies[k] === 'now');
      flash(
        c,
        'notice',
        `Saved. ${now.length ? `Applied now: ${now.join(', ')}. ` : ''}${next.length ? `With the next release: ${next.join(', ')}.` : ''}`,
      );
      return `/dashboard/services/${id}#settings`;
    }),
  );

  app.post(
    '/dashboard/services/:id/redeploy',
    action(fetchApi, '/dashboard', async (c, s, form) => {
      const r = await s.api.post<Release>(
        `/api/services/${encodeURIComponent(param(c, 'id'))}/redeploy`,
        { environment: field(form, 'environment') },
      );
      return `/dashboard/releases/${r.id}`;
    }),
  );

  app.post(
    '/dashboard/services/:id/delete',
    action(fetchApi, '/dashboard', async (c, s, form) => {
      const id = param(c, 'id');
      const svc = await s.api.get<Service>(`/api/services/${encodeURIComponent(id)}`);
      const q = new URLSearchParams({ confirm: field(form, 'confirm') ?? '' });
      await s.api.call('DELETE', `/api/services/${encodeURIComponent(id)}?${q}`);
      flash(c, 'notice', `Deleted ${svc.name}; its routes and containers are being removed.`);
      return `/dashboard/projects/${svc.projectId}`;
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
          pollIntervalSeconds: pollOf(field(form, 'pollIntervalSeconds')),
          ...(field(form, 'knownHosts')
            ? { knownHosts: field(form, 'knownHosts') }
            : field(form, 'forgetHostKeys')
              ? { knownHosts: null }
              : {}),
        },
      });
      flash(c, 'notice', 'Git source saved; it applies from the next deploy.');
      return `/dashboard/services/${param(c, 'id')}#git`;
    }),
  );

  app.post(
    '/dashboard/services/:id/build-secrets',
    action(fetchApi, '/dashboard', async (c, s, form) => {
      const id = param(c, 'id');
      const svc = await s.api.get<Service>(`/api/services/${encodeURIComponent(id)}`);
      const secretId = field(form, 'secretId') ?? '';
      const value = typeof form.value === 'string' ? form.value : '';
      const remove = Boolean(field(form, 'remove'));
      await s.api.call('PATCH', `/api/services/${encodeURIComponent(id)}`, {
        git: {
          url: svc.git?.url ?? '',
          // An empty value without "remove" is sent as it is: the API names the problem.
          buildSecrets: { [secretId]: remove ? null : value },
        },
      });
      flash(
        c,
        'notice',
        remove
          ? `Build secret ${secretId} removed.`
          : `Build secret ${secretId} saved; builds from now on may mount it.`,
      );
      return `/dashboard/services/${id}#build-secrets`;
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
