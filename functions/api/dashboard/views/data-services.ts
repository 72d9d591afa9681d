import type { Context, Hono } from 'hono';
import { html } from 'hono/html';
import { ApiFailure, DashboardApi, type ApiFetch } from '../api.ts';
import { action, view } from '../handler.ts';
import { badge, when } from '../layout.ts';
import { flash, param, render } from '../session.ts';

interface DataService {
  id: string;
  projectId: string;
  name: string;
  engine: 'redis' | 'mariadb' | 'postgres';
  version: string;
  nodeId: string;
  status: string;
  error: string | null;
  settings: { maxmemoryMb?: number; evictionPolicy?: string; persistence?: string };
  host: string;
  port: number;
  volume: string;
  network: string;
  createdAt: string;
  rotating?: boolean;
  passwordRotatedAt?: string | null;
  mode?: 'dedicated' | 'shared';
  shareable?: boolean;
  sharedServerId?: string | null;
  database?: string | null;
  links?: Link[];
  upgrade?: {
    status: 'upgrading' | 'upgraded' | 'failed';
    from: string;
    to: string;
    step: string | null;
    error: string | null;
    rolledBack: boolean;
  } | null;
  move?: {
    status: 'moving' | 'moved' | 'failed';
    targetId: string | null;
    step: string | null;
    error: string | null;
  } | null;
}

interface Link {
  id: string;
  serviceId: string;
  envName: string;
  createdAt: string;
}

interface Backup {
  id: string;
  trigger: string;
  status: string;
  error: string | null;
  storedBytes: number | null;
  tables: Record<string, number> | null;
  keys: number | null;
  startedAt: string;
  drillStatus: string | null;
  drillError: string | null;
  drillRtoMs: number | null;
  drillRpoMs: number | null;
  drilledAt: string | null;
}

/** A minor upgrade in place: its state, and the form asking for one. */
const upgradeSection = (d: DataService) =>
  html`<h2>Upgrade</h2>
    ${
      d.upgrade
        ? html`<p role="status">
            ${d.upgrade.from} → ${d.upgrade.to}:
            ${badge(d.upgrade.status === 'upgraded' ? 'active' : d.upgrade.status)}
            ${d.upgrade.step && d.upgrade.status !== 'upgraded' ? html`(step ${d.upgrade.step})` : ''}
            ${d.upgrade.error ? html`<span class="error">${d.upgrade.error}</span>` : ''}
            ${d.upgrade.rolledBack ? html`rolled back: ${d.upgrade.from} serves the same data` : ''}
          </p>`
        : ''
    }
    <form method="post" action="/dashboard/data-services/${d.id}/upgrade" class="inline">
      <label for="upgrade-version">Newer minor of ${d.engine} ${d.version}</label>
      <input id="upgrade-version" name="version" required pattern="[0-9]+(.[0-9]+){0,2}" />
      <button
        type="submit"
        ${d.status !== 'ready' || d.upgrade?.status === 'upgrading' ? 'disabled' : ''}
      >
        Upgrade
      </button>
      <span class="hint">
        A backup first, then the new image on the same volume, checked; a failure rolls back to the
        old image. Another release line needs a restore into a new data service.
      </span>
    </form>`;

const mib = (n: number | null) => (n === null ? '–' : `${(n / 1048576).toFixed(2)} MiB`);
const secs = (ms: number | null) => (ms === null ? '–' : `${(ms / 1000).toFixed(1)} s`);
const contents = (b: Backup) =>
  b.keys !== null
    ? `${b.keys} keys`
    : b.tables
      ? Object.entries(b.tables)
          .map(([t, n]) => `${t}: ${n}`)
          .join(', ') || 'no tables'
      : '–';

interface Named {
  id: string;
  name: string;
}

const field = (form: Record<string, unknown>, name: string): string | undefined => {
  const v = form[name];
  return typeof v === 'string' && v.trim() !== '' ? v.trim() : undefined;
};

/**
 * A database on a shared server: one button moves it to a server of its own; once moved, the
 * shared copy (unlinked) waits for a confirmation before it is dropped.
 */
function moveSection(d: DataService) {
  const m = d.move;
  return html`<h2>Move to a dedicated server</h2>
    ${
      m?.status === 'moving'
        ? html`<p>Moving: step ${m.step}…</p>`
        : m?.status === 'moved'
          ? html`<p>
                Moved to
                <a href="/dashboard/data-services/${m.targetId}">${m.targetId}</a>; its links now
                point there. This shared copy is kept, unlinked, until you confirm.
              </p>
              <form
                method="post"
                action="/dashboard/data-services/${d.id}/confirm-move"
                class="inline"
              >
                <button type="submit">Confirm move</button>
                <span class="hint">Drops this shared copy (its database and user).</span>
              </form>`
          : html`${
                m?.status === 'failed'
                  ? html`<p role="alert">
                      ${m.error} The shared copy is still linked and serving.
                    </p>`
                  : ''
              }
              <form
                method="post"
                action="/dashboard/data-services/${d.id}/move-to-dedicated"
                class="inline"
              >
                <button type="submit" ${d.status !== 'ready' ? 'disabled' : ''}>
                  Move to dedicated server
                </button>
                <span class="hint">
                  A fresh backup is restored into a new server of its own, the links move to it
                  under the same names and linked services are redeployed; this copy stays until you
                  confirm.
                </span>
              </form>`
    }`;
}

function createForm(projects: Named[], servers: DataService[]) {
  return html`<form
    method="post"
    action="/dashboard/data-services"
    class="card"
    aria-labelledby="new-ds-h"
  >
    <h2 id="new-ds-h">Create a data service</h2>
    <div>
      <label for="ds-project">Project</label>
      <select id="ds-project" name="projectId" required>
        ${projects.map((p) => html`<option value="${p.id}">${p.name}</option>`)}
      </select>
    </div>
    <div>
      <label for="ds-name">Name <span class="hint">lowercase letters, digits, dashes</span></label>
      <input id="ds-name" name="name" required placeholder="cache" />
    </div>
    <div>
      <label for="ds-engine">Engine</label>
      <select id="ds-engine" name="engine">
        <option value="redis">Redis 7</option>
        <option value="mariadb">MariaDB 10.11</option>
        <option value="postgres">PostgreSQL 15</option>
      </select>
    </div>
    <fieldset>
      <legend>Shared or dedicated (MariaDB, PostgreSQL)</legend>
      <label
        ><input type="checkbox" name="shareable" value="1" /> Shareable server: holds other data
        services' databases (never linked itself)</label
      >
      <label for="ds-server">Or a database on a shared server</label>
      <select id="ds-server" name="sharedServerId">
        <option value="">no: a server of its own</option>
        ${servers.map(
          (s) => html`<option value="${s.id}">${s.name} (${s.engine} ${s.version})</option>`,
        )}
      </select>
      <p class="hint">
        A database on a shared server gets its own user and password, links, backups and drills, in
        the same project, for no extra container. Redis is never shared.
      </p>
    </fieldset>
    <fieldset>
      <legend>Redis only</legend>
      <label for="ds-maxmemory">Memory limit (MB)</label>
      <input id="ds-maxmemory" name="maxmemoryMb" type="number" min="16" placeholder="256" />
      <label for="ds-policy">Eviction policy</label>
      <select id="ds-policy" name="evictionPolicy">
        <option value="">noeviction (default)</option>
        <option value="allkeys-lru">allkeys-lru</option>
        <option value="allkeys-lfu">allkeys-lfu</option>
        <option value="volatile-lru">volatile-lru</option>
      </select>
      <label for="ds-persistence">Persistence</label>
      <select id="ds-persistence" name="persistence">
        <option value="">RDB snapshots (default)</option>
        <option value="aof">AOF (append-only file)</option>
        <option value="none">none</option>
      </select>
    </fieldset>
    <p class="hint">
      It runs on a node (one labelled <code>role=data</code> when there is one), its data on a named
      volume, reachable only from the project's app containers; the password is generated and
      sealed.
    </p>
    <div><button type="submit">Create</button></div>
  </form>`;
}

export function registerDataServices(app: Hono, fetchApi: ApiFetch): void {
  const listPage = view(fetchApi, async (c, s) => {
    let status = 200;
    if (c.req.method === 'POST') {
      const form = (await c.req.parseBody()) as Record<string, unknown>;
      const sharedServerId = field(form, 'sharedServerId');
      const maxmemory = field(form, 'maxmemoryMb');
      // A database on a shared server is of the server's engine, whatever the engine field says.
      const engine = sharedServerId
        ? (await s.api.get<DataService>(`/api/data-services/${encodeURIComponent(sharedServerId)}`))
            .engine
        : field(form, 'engine');
      const body = {
        projectId: field(form, 'projectId'),
        name: field(form, 'name'),
        engine,
        ...(field(form, 'shareable') ? { shareable: true } : {}),
        ...(sharedServerId ? { sharedServerId } : {}),
        ...(engine === 'redis' && maxmemory ? { maxmemoryMb: Number(maxmemory) } : {}),
        ...(engine === 'redis' && field(form, 'evictionPolicy')
          ? { evictionPolicy: field(form, 'evictionPolicy') }
          : {}),
        ...(engine === 'redis' && field(form, 'persistence')
          ? { persistence: field(form, 'persistence') }
          : {}),
      };
      try {
        const ds = await s.api.post<DataService>('/api/data-services', body);
        flash(c, 'notice', `Data service ${ds.name} is being created.`);
        return c.redirect(`/dashboard/data-services/${ds.id}`, 303);
      } catch (e) {
        if (!(e instanceof ApiFailure)) throw e;
        s.shell.flash = { kind: 'error', text: e.message };
        status = 400;
      }
    }
    const [items, projects] = await Promise.all([
      s.api.all<DataService>('/api/data-services'),
      s.api.all<Named>('/api/projects'),
    ]);
    const byId = new Map(projects.map((p) => [p.id, p.name]));
    const body = html`<h1>Data services</h1>
      ${
        items.length === 0
          ? html`<div class="empty">No data services yet.</div>`
          : html`<table>
              <caption class="visually-hidden">
                Data services of this organization
              </caption>
              <thead>
                <tr>
                  <th scope="col">Name</th>
                  <th scope="col">Project</th>
                  <th scope="col">Engine</th>
                  <th scope="col">Status</th>
                  <th scope="col">Created</th>
                </tr>
              </thead>
              <tbody>
                ${items.map(
                  (d) =>
                    html`<tr>
                      <td><a href="/dashboard/data-services/${d.id}">${d.name}</a></td>
                      <td>${byId.get(d.projectId) ?? d.projectId}</td>
                      <td>${d.engine} ${d.version}</td>
                      <td>${badge(d.status === 'ready' ? 'active' : d.status)}</td>
                      <td>${when(d.createdAt)}</td>
                    </tr>`,
                )}
              </tbody>
            </table>`
      }
      ${
        projects.length
          ? createForm(
              projects,
              items.filter((d) => d.shareable && d.status === 'ready'),
            )
          : html`<p>Create a project first.</p>`
      }`;
    return render(c, s, { title: 'Data services', section: 'data' }, body, status);
  });
  app.get('/dashboard/data-services', listPage);
  app.post('/dashboard/data-services', listPage);

  app.get(
    '/dashboard/data-services/:id',
    view(fetchApi, async (c, s) => {
      const d = await s.api.get<DataService>(
        `/api/data-services/${encodeURIComponent(param(c, 'id'))}`,
      );
      const services = await s.api.all<Named>(
        `/api/services?projectId=${encodeURIComponent(d.projectId)}`,
      );
      const names = new Map(services.map((x) => [x.id, x.name]));
      const links = d.links ?? [];
      const backups = await s.api.get<{
        items: Backup[];
        backupSchedule: string;
        backupRetention: { daily: number; weekly: number; monthly: number };
        drillSchedule: 'every_backup' | 'weekly';
      }>(`/api/data-services/${encodeURIComponent(d.id)}/backups`);
      const keep = backups.backupRetention;
      const drilled = backups.items.filter((b) => b.drillStatus !== null);
      const weekly = backups.drillSchedule === 'weekly';
      // The newest backup proven restorable: its age is what a weekly schedule is judged by.
      const proven = backups.items.find((b) => b.drillStatus === 'passed');
      const body = html`<p><a href="/dashboard/data-services">Data services</a> ›</p>
        <h1>${d.name} ${badge(d.status === 'ready' ? 'active' : d.status)}</h1>
        ${d.error ? html`<p class="error" role="alert">${d.error}</p>` : ''}
        <dl class="facts">
          <dt>Engine</dt>
          <dd>${d.engine} ${d.version}</dd>
          <dt>Host on the project network</dt>
          <dd class="mono">${d.host}:${d.port}</dd>
          <dt>Node</dt>
          <dd class="mono">${d.nodeId}</dd>
          <dt>Hosting</dt>
          <dd>
            ${
              d.mode === 'shared'
                ? html`database <span class="mono">${d.database}</span> on shared server
                    <a href="/dashboard/data-services/${d.sharedServerId}">${d.sharedServerId}</a>`
                : d.shareable
                  ? "shareable server: holds other data services' databases"
                  : 'dedicated: a server of its own'
            }
          </dd>
          <dt>Data volume</dt>
          <dd class="mono">${d.volume}</dd>
          ${
            d.engine === 'redis'
              ? html`<dt>Memory limit, eviction, persistence</dt>
                  <dd>
                    ${d.settings.maxmemoryMb} MB, ${d.settings.evictionPolicy},
                    ${d.settings.persistence}
                  </dd>`
              : ''
          }
          <dt>Password</dt>
          <dd>
            ${
              d.rotating
                ? 'rotating…'
                : d.passwordRotatedAt
                  ? html`rotated
                      <time datetime="${d.passwordRotatedAt}">${d.passwordRotatedAt}</time>`
                  : 'generated at creation, never rotated'
            }
          </dd>
          <dt>Id</dt>
          <dd class="mono">${d.id}</dd>
        </dl>
        <form
          method="post"
          action="/dashboard/data-services/${d.id}/rotate-password"
          class="inline"
        >
          <button type="submit" ${d.rotating || d.status !== 'ready' ? 'disabled' : ''}>
            Rotate password
          </button>
          <span class="hint">
            Set in the engine and checked first (a failure keeps the old one); linked services are
            then redeployed with the new URL and the old password stops working.
          </span>
        </form>
        ${d.mode === 'shared' ? moveSection(d) : upgradeSection(d)}
        <h2>Linked services</h2>
        <p class="hint">
          The connection URL arrives in a linked service's containers from its next release on.
        </p>
        ${
          links.length === 0
            ? html`<div class="empty">Not linked to any service.</div>`
            : html`<table>
                <caption class="visually-hidden">
                  Services linked to ${d.name}
                </caption>
                <thead>
                  <tr>
                    <th scope="col">Service</th>
                    <th scope="col">Env var</th>
                    <th scope="col"><span class="visually-hidden">Actions</span></th>
                  </tr>
                </thead>
                <tbody>
                  ${links.map(
                    (l) =>
                      html`<tr>
                        <td>${names.get(l.serviceId) ?? l.serviceId}</td>
                        <td><code>${l.envName}</code></td>
                        <td>
                          <form
                            method="post"
                            action="/dashboard/data-services/${d.id}/links/${l.id}/delete"
                            class="inline"
                          >
                            <button type="submit" class="secondary">Unlink</button>
                          </form>
                        </td>
                      </tr>`,
                  )}
                </tbody>
              </table>`
        }
        <form method="post" action="/dashboard/data-services/${d.id}/links" class="card">
          <h2>Link a service</h2>
          <label for="link-service">Service</label>
          <select id="link-service" name="serviceId" required>
            ${services.map((x) => html`<option value="${x.id}">${x.name}</option>`)}
          </select>
          <label for="link-env"
            >Env var
            <span class="hint"
              >default ${d.engine === 'redis' ? 'REDIS_URL' : 'DATABASE_URL'}</span
            ></label
          >
          <input
            id="link-env"
            name="envName"
            placeholder="${d.engine === 'redis' ? 'REDIS_URL' : 'DATABASE_URL'}"
          />
          <div><button type="submit">Link</button></div>
        </form>
        <h2>Backups</h2>
        <p class="hint">
          Scheduled at <code>${backups.backupSchedule}</code> (UTC); each is compressed, encrypted
          with its own key, checksummed, and counts only once its manifest is written.
        </p>
        <form
          method="post"
          action="/dashboard/data-services/${d.id}/backup-retention"
          class="inline"
          aria-label="Retention"
        >
          Keep the newest backup of each of the last
          <label for="keep-daily" class="visually-hidden">days</label>
          <input id="keep-daily" name="daily" type="number" min="0" value="${keep.daily}" /> days,
          <label for="keep-weekly" class="visually-hidden">weeks</label>
          <input id="keep-weekly" name="weekly" type="number" min="0" value="${keep.weekly}" />
          weeks and
          <label for="keep-monthly" class="visually-hidden">months</label>
          <input id="keep-monthly" name="monthly" type="number" min="0" value="${keep.monthly}" />
          months, and always the newest whose drill passed.
          <button type="submit" class="secondary">Save retention</button>
        </form>
        <form
          method="post"
          action="/dashboard/data-services/${d.id}/drill-schedule"
          class="inline"
          aria-label="Drill schedule"
        >
          <label for="drill-schedule">Restore drills</label>
          <select id="drill-schedule" name="drillSchedule">
            <option value="every_backup" ${weekly ? '' : 'selected'}>after every backup</option>
            <option value="weekly" ${weekly ? 'selected' : ''}>weekly</option>
          </select>
          <button type="submit" class="secondary">Save drills</button>
        </form>
        ${
          backups.items.length === 0
            ? html`<div class="empty">No backups yet.</div>`
            : html`<table>
                <caption class="visually-hidden">
                  Backups of ${d.name}
                </caption>
                <thead>
                  <tr>
                    <th scope="col">Started</th>
                    <th scope="col">Trigger</th>
                    <th scope="col">Status</th>
                    <th scope="col">Size</th>
                    <th scope="col">Contents</th>
                    <th scope="col">Drill</th>
                    <th scope="col"><span class="visually-hidden">Actions</span></th>
                  </tr>
                </thead>
                <tbody>
                  ${backups.items.map(
                    (b) =>
                      html`<tr>
                        <td>${when(b.startedAt)}</td>
                        <td>${b.trigger}</td>
                        <td>
                          ${badge(b.status === 'completed' ? 'active' : b.status)}
                          ${b.error ? html`<div class="error">${b.error}</div>` : ''}
                        </td>
                        <td>${mib(b.storedBytes)}</td>
                        <td>${contents(b)}</td>
                        <td>
                          ${
                            b.drillStatus
                              ? badge(b.drillStatus === 'passed' ? 'active' : b.drillStatus)
                              : '–'
                          }
                        </td>
                        <td>
                          ${
                            b.status === 'completed'
                              ? html`<a
                                    href="/dashboard/data-services/${d.id}/backups/${b.id}/download"
                                    download
                                    data-direct-download
                                    >Download</a
                                  >
                                  <a
                                    href="/dashboard/data-services/${d.id}/backups/${b.id}/object"
                                    download
                                    >Encrypted object</a
                                  >
                                  <form
                                    method="post"
                                    action="/dashboard/data-services/${d.id}/backups/${b.id}/export"
                                    class="inline"
                                  >
                                    <label for="export-${b.id}" class="visually-hidden"
                                      >Passphrase for the export of ${b.id}</label
                                    >
                                    <input
                                      id="export-${b.id}"
                                      name="passphrase"
                                      type="password"
                                      minlength="12"
                                      required
                                      placeholder="passphrase (12+)"
                                      autocomplete="new-password"
                                    />
                                    <button type="submit" class="secondary">Export</button>
                                  </form>
                                  <form
                                    method="post"
                                    action="/dashboard/data-services/${d.id}/restore"
                                    class="inline"
                                  >
                                    <input type="hidden" name="backupId" value="${b.id}" />
                                    <input type="hidden" name="target" value="new" />
                                    <button type="submit" class="secondary">
                                      Restore to a new service
                                    </button>
                                  </form>
                                  ${
                                    d.mode === 'shared'
                                      ? html`<form
                                          method="post"
                                          action="/dashboard/data-services/${d.id}/restore"
                                          class="inline"
                                        >
                                          <input type="hidden" name="backupId" value="${b.id}" />
                                          <input type="hidden" name="target" value="new" />
                                          <input type="hidden" name="dedicated" value="1" />
                                          <button type="submit" class="secondary">
                                            Restore to a dedicated server
                                          </button>
                                        </form>`
                                      : ''
                                  }`
                              : b.trigger === 'import' && b.status === 'running'
                                ? html`<form
                                    method="post"
                                    action="/dashboard/data-services/${d.id}/backups/${b.id}/object"
                                    class="inline"
                                    data-stream-upload
                                  >
                                    <label for="object-${b.id}">Encrypted object</label>
                                    <input id="object-${b.id}" name="object" type="file" required />
                                    <button type="submit">Upload</button>
                                  </form>`
                                : ''
                          }
                        </td>
                      </tr>`,
                  )}
                </tbody>
              </table>`
        }
        <form method="post" action="/dashboard/data-services/${d.id}/backups" class="inline">
          <button type="submit">Back up now</button>
        </form>
        <form
          method="post"
          action="/dashboard/data-services/${d.id}/backups/import"
          enctype="multipart/form-data"
          class="card"
        >
          <h3>Import a backup from another install</h3>
          <p class="hint">
            The export's <code>.json</code> and its passphrase; this install reseals the key with
            its own vault. Then upload the encrypted object on the backup's row; a drill follows.
          </p>
          <label for="import-bundle">Export (.json)</label>
          <input
            id="import-bundle"
            name="bundle"
            type="file"
            accept=".json,application/json"
            required
          />
          <label for="import-passphrase">Passphrase</label>
          <input
            id="import-passphrase"
            name="passphrase"
            type="password"
            minlength="12"
            required
            autocomplete="off"
          />
          <button type="submit">Import</button>
        </form>
        <h2>Restore drills</h2>
        <p class="hint" id="drill-policy">
          ${
            weekly
              ? html`<strong>Weekly:</strong> a scheduled backup is drilled when no backup of the
                  last 7 days has a drill that passed, and the next one after a failed drill; a
                  backup taken with “Back up now” is always drilled.`
              : html`<strong>After every backup:</strong> each one is drilled once it is stored.`
          }
          A drill restores the backup into a container with no network and checks it against its
          manifest. RTO: time to restored and checked; RPO: age of the data.
        </p>
        <p id="drill-proven">
          ${
            proven
              ? html`Newest passed drill: backup <span class="mono">${proven.id}</span> taken
                  ${when(proven.startedAt)}.`
              : 'No backup has passed a drill yet.'
          }
        </p>
        ${
          drilled.length === 0
            ? html`<div class="empty">No drills yet.</div>`
            : html`<table>
                <caption class="visually-hidden">
                  Restore drills of ${d.name}
                </caption>
                <thead>
                  <tr>
                    <th scope="col">When</th>
                    <th scope="col">Backup</th>
                    <th scope="col">Result</th>
                    <th scope="col">RTO</th>
                    <th scope="col">RPO</th>
                    <th scope="col">Reason</th>
                  </tr>
                </thead>
                <tbody>
                  ${drilled.map(
                    (b) =>
                      html`<tr>
                        <td>${b.drilledAt ? when(b.drilledAt) : '–'}</td>
                        <td class="mono">${b.id}</td>
                        <td>${badge(b.drillStatus === 'passed' ? 'active' : b.drillStatus!)}</td>
                        <td>${secs(b.drillRtoMs)}</td>
                        <td>${secs(b.drillRpoMs)}</td>
                        <td>${b.drillError ?? ''}</td>
                      </tr>`,
                  )}
                </tbody>
              </table>`
        }
        <form method="post" action="/dashboard/data-services/${d.id}/restore" class="card">
          <h2>Restore in place</h2>
          <p class="hint">Overwrites the data; the current state is backed up first.</p>
          <label for="restore-backup">Backup</label>
          <select id="restore-backup" name="backupId" required>
            ${backups.items
              .filter((b) => b.status === 'completed')
              .map((b) => html`<option value="${b.id}">${b.startedAt} (${b.id})</option>`)}
          </select>
          <input type="hidden" name="target" value="in_place" />
          <label for="restore-confirm">Confirm with the name <code>${d.name}</code></label>
          <input id="restore-confirm" name="confirm" required />
          <div><button type="submit" class="danger">Restore in place</button></div>
        </form>
        <form method="post" action="/dashboard/data-services/${d.id}/delete" class="card">
          <h2>Delete</h2>
          <label for="del-confirm">Type <code>${d.name}</code> to confirm</label>
          <input id="del-confirm" name="confirm" required />
          <label class="inline"
            ><input type="checkbox" name="removeVolume" value="1" /> Also delete the data volume
            (<strong>the data is lost</strong>); unchecked, the volume stays on the node.</label
          >
          <div><button type="submit" class="danger">Delete data service</button></div>
        </form>`;
      return render(c, s, { title: d.name, section: 'data' }, body);
    }),
  );

  app.post(
    '/dashboard/data-services/:id/links',
    action(fetchApi, '/dashboard/data-services', async (c, s, form) => {
      const id = param(c, 'id');
      const envName = field(form, 'envName');
      await s.api.post(`/api/data-services/${encodeURIComponent(id)}/links`, {
        serviceId: field(form, 'serviceId'),
        ...(envName ? { envName } : {}),
      });
      flash(c, 'notice', 'Linked: the URL arrives with the service’s next release.');
      return `/dashboard/data-services/${id}`;
    }),
  );

  // A link cannot send a bearer token: the cookie authenticates this proxy of the API's
  // stream — the download (decrypted), and the object as it is, for another install.
  for (const file of ['download', 'object'] as const)
    app.get(`/dashboard/data-services/:id/backups/:backupId/${file}`, async (c: Context) => {
      const api = new DashboardApi(c, fetchApi);
      const res = await api.raw(
        'GET',
        `/api/data-services/${encodeURIComponent(param(c, 'id'))}/backups/${encodeURIComponent(param(c, 'backupId'))}/${file}`,
        { headers: { accept: 'application/octet-stream' } },
      );
      // The store serves the object itself (the cloud): the browser goes there.
      const location = res.headers.get('location');
      if (res.status === 303 && location) return c.redirect(location, 303);
      const disposition = res.headers.get('content-disposition');
      return new Response(res.body, {
        status: res.status,
        headers: {
          'content-type': res.headers.get('content-type') ?? 'text/plain',
          ...(disposition ? { 'content-disposition': disposition } : {}),
          'cache-control': 'no-store',
        },
      });
    });

  // The export's JSON as a file to save beside the object.
  app.post('/dashboard/data-services/:id/backups/:backupId/export', async (c: Context) => {
    const id = param(c, 'id');
    const backupId = param(c, 'backupId');
    const form = (await c.req.parseBody()) as Record<string, unknown>;
    const api = new DashboardApi(c, fetchApi);
    try {
      const bundle = await api.call(
        'POST',
        `/api/data-services/${encodeURIComponent(id)}/backups/${encodeURIComponent(backupId)}/export`,
        { passphrase: field(form, 'passphrase') ?? '' },
      );
      return new Response(JSON.stringify(bundle, null, 2) + '\n', {
        headers: {
          'content-type': 'application/json',
          'content-disposition': `attachment; filename="${backupId}.json"`,
          'cache-control': 'no-store',
        },
      });
    } catch (e) {
      if (!(e instanceof ApiFailure)) throw e;
      flash(c, 'error', e.message);
      return c.redirect(`/dashboard/data-services/${id}`, 303);
    }
  });

  app.post(
    '/dashboard/data-services/:id/backups/import',
    action(fetchApi, '/dashboard/data-services', async (c, s, form) => {
      const id = param(c, 'id');
      const file = form.bundle;
      let bundle: unknown;
      try {
        bundle = JSON.parse(typeof file === 'string' ? file : await (file as File).text());
      } catch {
        flash(c, 'error', 'bundle: the export file is not JSON');
        return `/dashboard/data-services/${id}`;
      }
      const r = await s.api.post<{ backup: { id: string } }>(
        `/api/data-services/${encodeURIComponent(id)}/backups/import`,
        { bundle, passphrase: field(form, 'passphrase') ?? '' },
      );
      flash(c, 'notice', `Import ${r.backup.id} opened: now upload its encrypted object.`);
      return `/dashboard/data-services/${id}`;
    }),
  );

  // The object streams through (app.js posts the file as the body): never parsed or buffered.
  app.post('/dashboard/data-services/:id/backups/:backupId/object', async (c: Context) => {
    const api = new DashboardApi(c, fetchApi);
    const res = await api.raw(
      'PUT',
      `/api/data-services/${encodeURIComponent(param(c, 'id'))}/backups/${encodeURIComponent(param(c, 'backupId'))}/object`,
      { stream: c.req.raw.body },
    );
    return new Response(res.body, {
      status: res.status,
      headers: { 'content-type': res.headers.get('content-type') ?? 'application/json' },
    });
  });

  // Where the store takes the object itself (the cloud), app.js asks for its URL, PUTs the
  // file there, then completes; a 409 `no_direct_upload` sends it through the proxy above.
  for (const step of ['upload-url', 'complete'] as const)
    app.post(
      `/dashboard/data-services/:id/backups/:backupId/object/${step}`,
      async (c: Context) => {
        const api = new DashboardApi(c, fetchApi);
        const res = await api.raw(
          'POST',
          `/api/data-services/${encodeURIComponent(param(c, 'id'))}/backups/${encodeURIComponent(param(c, 'backupId'))}/object/${step}`,
        );
        return new Response(res.body, {
          status: res.status,
          headers: { 'content-type': res.headers.get('content-type') ?? 'application/json' },
        });
      },
    );

  // Where the store serves the object itself (the cloud, whose API answers 6 MB at most),
  // app.js takes the URL and the data key from here, then checks, decrypts and gunzips in
  // the browser; a 409 `no_direct_download` sends it to the streamed download instead.
  app.post('/dashboard/data-services/:id/backups/:backupId/download-url', async (c: Context) => {
    const api = new DashboardApi(c, fetchApi);
    const res = await api.raw(
      'POST',
      `/api/data-services/${encodeURIComponent(param(c, 'id'))}/backups/${encodeURIComponent(param(c, 'backupId'))}/download-url`,
    );
    return new Response(res.body, {
      status: res.status,
      headers: {
        'content-type': res.headers.get('content-type') ?? 'application/json',
        'cache-control': 'no-store',
      },
    });
  });

  app.post(
    '/dashboard/data-services/:id/backups',
    action(fetchApi, '/dashboard/data-services', async (c, s) => {
      const id = param(c, 'id');
      await s.api.post(`/api/data-services/${encodeURIComponent(id)}/backups`, {});
      flash(c, 'notice', 'Backing up: a restore drill follows once it is stored.');
      return `/dashboard/data-services/${id}`;
    }),
  );

  app.post(
    '/dashboard/data-services/:id/move-to-dedicated',
    action(fetchApi, '/dashboard/data-services', async (c, s) => {
      const id = param(c, 'id');
      await s.api.post(`/api/data-services/${encodeURIComponent(id)}/move-to-dedicated`, {});
      flash(
        c,
        'notice',
        'Moving to a dedicated server: backup, restore, re-link, redeploy. The shared copy stays until you confirm.',
      );
      return `/dashboard/data-services/${id}`;
    }),
  );

  app.post(
    '/dashboard/data-services/:id/confirm-move',
    action(fetchApi, '/dashboard/data-services', async (c, s) => {
      const id = param(c, 'id');
      await s.api.post(`/api/data-services/${encodeURIComponent(id)}/confirm-move`, {});
      flash(c, 'notice', 'Move confirmed: the shared copy is being removed.');
      return '/dashboard/data-services';
    }),
  );

  app.post(
    '/dashboard/data-services/:id/upgrade',
    action(fetchApi, '/dashboard/data-services', async (c, s, form) => {
      const id = param(c, 'id');
      await s.api.post(`/api/data-services/${encodeURIComponent(id)}/upgrade`, {
        version: field(form, 'version'),
      });
      flash(c, 'notice', 'Upgrading: a backup first, then the new image, checked.');
      return `/dashboard/data-services/${id}`;
    }),
  );

  app.post(
    '/dashboard/data-services/:id/rotate-password',
    action(fetchApi, '/dashboard/data-services', async (c, s) => {
      const id = param(c, 'id');
      await s.api.post(`/api/data-services/${encodeURIComponent(id)}/rotate-password`, {});
      flash(
        c,
        'notice',
        'Rotating the password: linked services are redeployed with the new one once it answers.',
      );
      return `/dashboard/data-services/${id}`;
    }),
  );

  app.post(
    '/dashboard/data-services/:id/restore',
    action(fetchApi, '/dashboard/data-services', async (c, s, form) => {
      const id = param(c, 'id');
      const target = field(form, 'target') === 'in_place' ? 'in_place' : 'new';
      const confirm = field(form, 'confirm');
      const r = await s.api.post<{ dataService: { id: string; name: string } }>(
        `/api/data-services/${encodeURIComponent(id)}/restore`,
        {
          backupId: field(form, 'backupId'),
          target,
          ...(confirm ? { confirm } : {}),
          ...(target === 'new' && field(form, 'dedicated') ? { dedicated: true } : {}),
        },
      );
      flash(
        c,
        'notice',
        target === 'new'
          ? `Restoring into ${r.dataService.name}: preview it before switching an app to it.`
          : 'Restoring in place after a backup of the current state.',
      );
      return `/dashboard/data-services/${r.dataService.id}`;
    }),
  );

  app.post(
    '/dashboard/data-services/:id/links/:linkId/delete',
    action(fetchApi, '/dashboard/data-services', async (c, s) => {
      const id = param(c, 'id');
      await s.api.call(
        'DELETE',
        `/api/data-services/${encodeURIComponent(id)}/links/${encodeURIComponent(param(c, 'linkId'))}`,
      );
      flash(c, 'notice', 'Unlinked: the env var leaves with the service’s next release.');
      return `/dashboard/data-services/${id}`;
    }),
  );

  app.post(
    '/dashboard/data-services/:id/backup-retention',
    action(fetchApi, '/dashboard/data-services', async (c, s, form) => {
      const id = param(c, 'id');
      const body: Record<string, number> = {};
      for (const period of ['daily', 'weekly', 'monthly'] as const) {
        const v = field(form, period);
        // Sent as typed (a number or not): the API answers a clear 400 for nonsense.
        if (v !== undefined && v !== '') body[period] = Number(v);
      }
      await s.api.call(
        'PUT',
        `/api/data-services/${encodeURIComponent(id)}/backup-retention`,
        body,
      );
      flash(c, 'notice', 'Retention saved: it applies after the next drill.');
      return `/dashboard/data-services/${id}`;
    }),
  );

  app.post(
    '/dashboard/data-services/:id/drill-schedule',
    action(fetchApi, '/dashboard/data-services', async (c, s, form) => {
      const id = param(c, 'id');
      // Sent as chosen: the API answers a clear 400 for anything but its two values.
      const r = await s.api.call<{ drillSchedule: string }>(
        'PUT',
        `/api/data-services/${encodeURIComponent(id)}/drill-schedule`,
        { drillSchedule: field(form, 'drillSchedule') ?? '' },
      );
      flash(
        c,
        'notice',
        r.drillSchedule === 'weekly'
          ? 'Drills are weekly: the next scheduled backup is drilled unless one of the last 7 days passed.'
          : 'Every backup is drilled from the next one on.',
      );
      return `/dashboard/data-services/${id}`;
    }),
  );

  app.post(
    '/dashboard/data-services/:id/delete',
    action(fetchApi, '/dashboard/data-services', async (c, s, form) => {
      const id = param(c, 'id');
      const volume = field(form, 'removeVolume') ? 'remove' : 'keep';
      const q = new URLSearchParams({ confirm: field(form, 'confirm') ?? '', volume });
      await s.api.call('DELETE', `/api/data-services/${encodeURIComponent(id)}?${q}`);
      flash(
        c,
        'notice',
        volume === 'remove'
          ? 'Deleting the data service and its data volume.'
          : 'Deleting the data service; its data volume is kept on the node.',
      );
      return '/dashboard/data-services';
    }),
  );
}
