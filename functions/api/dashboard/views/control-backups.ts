import type { Hono } from 'hono';
import { html } from 'hono/html';
import type { ApiFetch } from '../api.ts';
import { action, view } from '../handler.ts';
import { badge, when } from '../layout.ts';
import { field, flash, param, render } from '../session.ts';

interface ControlBackup {
  id: string;
  trigger: string;
  status: string;
  error: string | null;
  storedBytes: number | null;
  tables: Record<string, number> | null;
  startedAt: string;
  drillStatus: string | null;
  drillError: string | null;
  drillRtoMs: number | null;
  drillRpoMs: number | null;
}

interface Listing {
  available: boolean;
  unavailableReason: string | null;
  settings: {
    schedule: string;
    retention: { daily: number; weekly: number; monthly: number };
  } | null;
  items: ControlBackup[];
}

const mib = (n: number | null) => (n === null ? '–' : `${(n / 1048576).toFixed(2)} MiB`);
const secs = (ms: number | null) => (ms === null ? '–' : `${(ms / 1000).toFixed(1)} s`);

/** A whole number typed in a form, or undefined when left empty (the API judges the rest). */
const countOf = (v: string | undefined) => (v === undefined || v === '' ? undefined : Number(v));

/** The control plane's own backups: operators only (the API answers 403 to anyone else). */
export function registerControlBackups(app: Hono, fetchApi: ApiFetch): void {
  app.get(
    '/dashboard/control-backups',
    view(fetchApi, async (c, s) => {
      const l = await s.api.get<Listing>('/api/control-backups');
      const body = html`<h1>Control-plane backups</h1>
        <p>
          The control plane's own database, every org's data: dumped in one snapshot with every
          table's row count, compressed, encrypted with its own key and stored with its manifest
          last, then restored into a scratch database that must hold the same counts.
        </p>
        ${
          l.available
            ? ''
            : html`<div class="error" id="control-backups-unavailable">
                Control-plane backups do not run here: ${l.unavailableReason}
              </div>`
        }
        ${
          l.settings
            ? html`<form method="post" action="/dashboard/control-backups/settings" class="stack">
                <label for="cb-schedule"
                  >Schedule <span class="hint">five-field cron, UTC, at most hourly</span></label
                >
                <input id="cb-schedule" name="schedule" value="${l.settings.schedule}" required />
                <fieldset>
                  <legend>Retention: the newest backup of each of the last…</legend>
                  <label for="cb-daily">days</label>
                  <input
                    id="cb-daily"
                    name="daily"
                    type="number"
                    min="0"
                    value="${l.settings.retention.daily}"
                  />
                  <label for="cb-weekly">weeks</label>
                  <input
                    id="cb-weekly"
                    name="weekly"
                    type="number"
                    min="0"
                    value="${l.settings.retention.weekly}"
                  />
                  <label for="cb-monthly">months</label>
                  <input
                    id="cb-monthly"
                    name="monthly"
                    type="number"
                    min="0"
                    value="${l.settings.retention.monthly}"
                  />
                </fieldset>
                <p class="hint">The newest backup whose drill passed is always kept.</p>
                <div><button type="submit">Save</button></div>
              </form>`
            : ''
        }
        ${
          l.available
            ? html`<form method="post" action="/dashboard/control-backups/backup" class="inline">
                <button type="submit">Back up now</button>
              </form>`
            : ''
        }
        ${
          l.items.length === 0
            ? html`<div class="empty">No control-plane backups yet.</div>`
            : html`<table>
                <caption class="visually-hidden">
                  Control-plane backups
                </caption>
                <thead>
                  <tr>
                    <th scope="col">Started</th>
                    <th scope="col">Trigger</th>
                    <th scope="col">Status</th>
                    <th scope="col">Size</th>
                    <th scope="col">Tables</th>
                    <th scope="col">Drill</th>
                    <th scope="col">RTO</th>
                    <th scope="col">RPO</th>
                    <th scope="col"><span class="visually-hidden">Actions</span></th>
                  </tr>
                </thead>
                <tbody>
                  ${l.items.map(
                    (b) =>
                      html`<tr id="control-backup-${b.id}">
                        <td>${when(b.startedAt)} <span class="hint mono">${b.id}</span></td>
                        <td>${b.trigger}</td>
                        <td>
                          ${badge(b.status === 'completed' ? 'active' : b.status)}
                          ${b.error ? html`<div class="error">${b.error}</div>` : ''}
                        </td>
                        <td>${mib(b.storedBytes)}</td>
                        <td>${b.tables ? Object.keys(b.tables).length : '–'}</td>
                        <td>
                          ${b.drillStatus ? badge(b.drillStatus === 'passed' ? 'active' : b.drillStatus) : '–'}
                          ${b.drillError ? html`<div class="error">${b.drillError}</div>` : ''}
                        </td>
                        <td>${secs(b.drillRtoMs)}</td>
                        <td>${secs(b.drillRpoMs)}</td>
                        <td>
                          ${
                            b.status === 'completed' && l.available
                              ? html`<form
                                  method="post"
                                  action="/dashboard/control-backups/${b.id}/drill"
                                  class="inline"
                                >
                                  <button type="submit" class="secondary">Drill again</button>
                                </form>`
                              : ''
                          }
                        </td>
                      </tr>`,
                  )}
                </tbody>
              </table>`
        }
        <p class="hint">
          Restore one into a new database with
          <code>selfdevop control-backups restore --backup ID --database NAME</code>, then point
          <code>DATABASE_URL</code> at it.
        </p>`;
      return render(c, s, { title: 'Control-plane backups', section: 'control-backups' }, body);
    }),
  );

  app.post(
    '/dashboard/control-backups/backup',
    action(fetchApi, '/dashboard/control-backups', async (c, s) => {
      await s.api.post('/api/control-backups', {});
      flash(c, 'notice', 'Backing up the control plane: a drill follows once it is stored.');
      return '/dashboard/control-backups';
    }),
  );

  app.post(
    '/dashboard/control-backups/:id/drill',
    action(fetchApi, '/dashboard/control-backups', async (c, s) => {
      await s.api.post(`/api/control-backups/${encodeURIComponent(param(c, 'id'))}/drill`, {});
      flash(c, 'notice', 'Drilling: restored into a scratch database and compared.');
      return '/dashboard/control-backups';
    }),
  );

  app.post(
    '/dashboard/control-backups/settings',
    action(fetchApi, '/dashboard/control-backups', async (c, s, form) => {
      const retention = {
        daily: countOf(field(form, 'daily')),
        weekly: countOf(field(form, 'weekly')),
        monthly: countOf(field(form, 'monthly')),
      };
      await s.api.call('PATCH', '/api/control-backups/settings', {
        schedule: field(form, 'schedule'),
        retention: Object.fromEntries(Object.entries(retention).filter(([, v]) => v !== undefined)),
      });
      flash(c, 'notice', 'Saved: the schedule and retention apply from now on.');
      return '/dashboard/control-backups';
    }),
  );
}
