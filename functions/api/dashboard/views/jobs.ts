import type { Hono } from 'hono';
import { html } from 'hono/html';
import type { Page } from '../../../../core/models.ts';
import type { ApiFetch } from '../api.ts';
import { action, view } from '../handler.ts';
import { badge, when } from '../layout.ts';
import { field, flash, param, render } from '../session.ts';

interface Job {
  id: string;
  name: string;
  serviceId: string;
  environment: string;
  schedule: string;
  timeZone: string;
  command: string;
  overlap: 'skip' | 'allow';
  timeoutSeconds: number;
  retries: number;
  nextRuns: string[];
}

interface JobRun {
  id: string;
  trigger: string;
  attempt: number;
  status: string;
  exitCode: number | null;
  startedAt: string;
  durationMs: number | null;
  logTail: string;
  error: string | null;
}

interface Service {
  id: string;
  name: string;
}

const intOf = (v: string | undefined): number | undefined =>
  v === undefined || !/^\d+$/.test(v) ? undefined : Number(v);

/** Cron jobs: the org's list with a create form, and each job's page with its run history. */
export function registerJobs(app: Hono, fetchApi: ApiFetch): void {
  app.get(
    '/dashboard/jobs',
    view(fetchApi, async (c, s) => {
      const [jobs, services] = await Promise.all([
        s.api.get<Page<Job>>('/api/jobs?limit=200'),
        s.api.get<Page<Service>>('/api/services?limit=200'),
      ]);
      const names = new Map(services.items.map((x) => [x.id, x.name]));
      const body = html`<h1>Cron jobs</h1>
        ${
          jobs.items.length === 0
            ? html`<div class="empty">
                No jobs yet. A job runs a command on a schedule in a one-off container of a
                service's serving release, with its environment and secrets.
              </div>`
            : html`<table>
                <thead>
                  <tr>
                    <th scope="col">Job</th>
                    <th scope="col">Service</th>
                    <th scope="col">Schedule</th>
                    <th scope="col">Next run</th>
                    <th scope="col">Command</th>
                  </tr>
                </thead>
                <tbody>
                  ${jobs.items.map(
                    (j) =>
                      html`<tr>
                        <td><a href="/dashboard/jobs/${j.id}">${j.name}</a></td>
                        <td>${names.get(j.serviceId) ?? j.serviceId} (${j.environment})</td>
                        <td><code>${j.schedule}</code> ${j.timeZone}</td>
                        <td>${j.nextRuns[0] ? when(j.nextRuns[0]) : '—'}</td>
                        <td class="mono">${j.command}</td>
                      </tr>`,
                  )}
                </tbody>
              </table>`
        }
        <h2>New job</h2>
        <form method="post" action="/dashboard/jobs" class="card">
          <label for="j-service">Service</label>
          <select id="j-service" name="serviceId" required>
            ${services.items.map((x) => html`<option value="${x.id}">${x.name}</option>`)}
          </select>
          <label for="j-env">Environment</label>
          <input id="j-env" name="environment" value="production" />
          <label for="j-name">Name</label>
          <input id="j-name" name="name" required placeholder="nightly-report" />
          <label for="j-schedule"
            >Schedule
            <span class="hint">minute hour day-of-month month day-of-week, or @daily</span></label
          >
          <input id="j-schedule" name="schedule" required placeholder="30 2 * * *" />
          <label for="j-tz">Time zone</label>
          <input id="j-tz" name="timeZone" value="UTC" />
          <label for="j-command">Command <span class="hint">run with sh -c</span></label>
          <input id="j-command" name="command" required />
          <label for="j-overlap">When the previous run still runs</label>
          <select id="j-overlap" name="overlap">
            <option value="skip">skip this run</option>
            <option value="allow">run anyway</option>
          </select>
          <label for="j-timeout">Timeout (seconds)</label>
          <input id="j-timeout" name="timeoutSeconds" inputmode="numeric" placeholder="300" />
          <label for="j-retries">Retries</label>
          <input id="j-retries" name="retries" inputmode="numeric" value="0" />
          <button type="submit">Create job</button>
        </form>`;
      return render(c, s, { title: 'Cron jobs', section: 'jobs' }, body);
    }),
  );

  app.post(
    '/dashboard/jobs',
    action(fetchApi, '/dashboard/jobs', async (_c, s, form) => {
      const timeoutSeconds = intOf(field(form, 'timeoutSeconds'));
      const retries = intOf(field(form, 'retries'));
      const job = await s.api.post<Job>('/api/jobs', {
        serviceId: field(form, 'serviceId') ?? '',
        name: field(form, 'name') ?? '',
        schedule: field(form, 'schedule') ?? '',
        command: field(form, 'command') ?? '',
        ...(field(form, 'environment') ? { environment: field(form, 'environment') } : {}),
        ...(field(form, 'timeZone') ? { timeZone: field(form, 'timeZone') } : {}),
        ...(field(form, 'overlap') ? { overlap: field(form, 'overlap') } : {}),
        ...(timeoutSeconds !== undefined ? { timeoutSeconds } : {}),
        ...(retries !== undefined ? { retries } : {}),
      });
      flash(_c, 'notice', `Job ${job.name} created.`);
      return `/dashboard/jobs/${job.id}`;
    }),
  );

  app.get(
    '/dashboard/jobs/:id',
    view(fetchApi, async (c, s) => {
      const id = encodeURIComponent(param(c, 'id'));
      const [job, runs] = await Promise.all([
        s.api.get<Job>(`/api/jobs/${id}`),
        s.api.get<Page<JobRun>>(`/api/jobs/${id}/runs?limit=200`),
      ]);
      const newestFirst = [...runs.items].reverse();
      const body = html`<h1>Job ${job.name}</h1>
        <dl class="card">
          <dt>Schedule</dt>
          <dd><code>${job.schedule}</code> in ${job.timeZone}</dd>
          <dt>Next runs</dt>
          <dd>${job.nextRuns.length ? job.nextRuns.map((r) => when(r)) : '—'}</dd>
          <dt>Command</dt>
          <dd class="mono">${job.command}</dd>
          <dt>Environment</dt>
          <dd>${job.environment}</dd>
          <dt>Overlap, timeout, retries</dt>
          <dd>${job.overlap}, ${job.timeoutSeconds} s, ${job.retries}</dd>
        </dl>
        <form method="post" action="/dashboard/jobs/${job.id}/run" class="inline">
          <button type="submit">Run now</button>
        </form>
        <form
          method="post"
          action="/dashboard/jobs/${job.id}/delete"
          class="inline"
          data-confirm="Delete the job ${job.name} with its schedule and run history?"
        >
          <button type="submit" class="secondary">Delete job</button>
        </form>
        <h2 id="runs">Runs</h2>
        ${
          newestFirst.length === 0
            ? html`<div class="empty">No runs yet.</div>`
            : html`<table>
                <thead>
                  <tr>
                    <th scope="col">Started</th>
                    <th scope="col">Trigger</th>
                    <th scope="col">Status</th>
                    <th scope="col">Exit code</th>
                    <th scope="col">Duration</th>
                    <th scope="col">Output (tail)</th>
                  </tr>
                </thead>
                <tbody>
                  ${newestFirst.map(
                    (r) =>
                      html`<tr>
                        <td>${when(r.startedAt)}</td>
                        <td>${r.trigger} #${r.attempt}</td>
                        <td>${badge(r.status)}</td>
                        <td>${r.exitCode ?? '—'}</td>
                        <td>
                          ${r.durationMs === null ? '—' : `${(r.durationMs / 1000).toFixed(1)} s`}
                        </td>
                        <td>
                          ${r.error ? html`<p>${r.error}</p>` : ''}
                          <pre class="mono">${r.logTail.split('\n').slice(-20).join('\n')}</pre>
                        </td>
                      </tr>`,
                  )}
                </tbody>
              </table>`
        }`;
      return render(c, s, { title: `Job ${job.name}`, section: 'jobs' }, body);
    }),
  );

  app.post(
    '/dashboard/jobs/:id/run',
    action(fetchApi, '/dashboard/jobs', async (c, s) => {
      const id = param(c, 'id');
      await s.api.post(`/api/jobs/${encodeURIComponent(id)}/run`);
      flash(c, 'notice', 'Run queued: it appears below when a worker starts it.');
      return `/dashboard/jobs/${id}#runs`;
    }),
  );

  app.post(
    '/dashboard/jobs/:id/delete',
    action(fetchApi, '/dashboard/jobs', async (c, s) => {
      await s.api.call('DELETE', `/api/jobs/${encodeURIComponent(param(c, 'id'))}`);
      flash(c, 'notice', 'Job deleted with its schedule and runs.');
      return '/dashboard/jobs';
    }),
  );
}
