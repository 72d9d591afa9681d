import type { Context, Hono } from 'hono';
import { html, raw } from 'hono/html';
import { isCancellable } from '../../../../core/releases/cancel.ts';
import { stepNames } from '../../../../core/releases/steps.ts';
import { DashboardApi, type ApiFetch } from '../api.ts';
import { action, view } from '../handler.ts';
import { badge, seconds, when, type Html } from '../layout.ts';
import { flash, render, param } from '../session.ts';
import { terminal, type LogLine, type Project, type Release, type Service } from '../types.ts';

interface Loaded {
  release: Release;
  service: Service;
}

async function load(api: DashboardApi, id: string): Promise<Loaded> {
  const release = await api.get<Release>(`/api/releases/${encodeURIComponent(id)}`);
  const service = await api.get<Service>(`/api/services/${release.serviceId}`);
  return { release, service };
}

const projectName = (api: DashboardApi, projectId: string) =>
  api.get<Project>(`/api/projects/${projectId}`).then(
    (p) => p.name,
    () => 'project',
  );

/** The part of the release page that changes while it runs: status, steps, error, actions. */
function summary({ release: r }: Loaded): Html {
  const done = terminal.includes(r.status);
  const rows = stepNames.map((name) => {
    const step = r.steps?.find((s) => s.name === name);
    const status = step?.status ?? (done ? 'skipped' : 'pending');
    return { name, step, status };
  });
  const failedStep = rows.find((x) => x.status === 'failed');
  return html`<div ${done ? html`data-terminal="${r.status}"` : ''}>
    <p>
      Status: ${badge(r.status)}
      ${done ? html`<span class="hint">after ${seconds(r.createdAt, r.finishedAt)}</span>` : html`<span class="hint">running for ${seconds(r.createdAt, null)}</span>`}
    </p>
    ${
      r.status === 'failed' || r.error
        ? html`<div class="alert error" role="alert">
            <strong
              >${failedStep ? `Step ${failedStep.name} failed` : `Release ${r.status.replace('_', ' ')}`}:</strong
            >
            ${failedStep?.step?.error ?? r.error ?? 'no reason recorded'}
          </div>`
        : ''
    }
    <table>
      <caption class="visually-hidden">
        Steps
      </caption>
      <thead>
        <tr>
          <th scope="col">Step</th>
          <th scope="col">Status</th>
          <th scope="col">Started</th>
          <th scope="col">Duration</th>
          <th scope="col">Error</th>
        </tr>
      </thead>
      <tbody>
        ${rows.map(
          (x) =>
            html`<tr
              class="${x.status === 'failed' ? 'failed' : ''}"
              data-step="${x.name}"
              data-status="${x.status}"
            >
              <th scope="row">${x.name.replace(/_/g, ' ')}</th>
              <td>${badge(x.status === 'running' ? 'running' : x.status)}</td>
              <td>${x.step ? when(x.step.startedAt) : '–'}</td>
              <td>${x.step ? seconds(x.step.startedAt, x.step.finishedAt) : '–'}</td>
              <td>${x.step?.error ?? ''}</td>
            </tr>`,
        )}
      </tbody>
    </table>
    ${
      r.status === 'completed'
        ? html`<p>
            <a class="button secondary" href="/dashboard/releases/${r.id}/rollback">Roll back…</a>
            <span class="hint">returns traffic to the release before this one</span>
          </p>`
        : ''
    }
    ${
      isCancellable(r.status)
        ? html`<form method="post" action="/dashboard/releases/${r.id}/cancel" class="inline">
            <button type="submit" class="danger">Cancel release</button>
            <span class="hint"
              >stops it and removes its candidate; what serves now keeps serving</span
            >
          </form>`
        : ''
    }
  </div>`;
}

const escapeText = (text: string) => text.replace(/[&<>"']/g, (ch) => `&#${ch.charCodeAt(0)};`);

/**
 * The log as one <span> per line, each ending in a newline. Built as a plain string: an
 * HTML formatter reflowing the page templates must not touch the newlines inside <pre>.
 */
function logSpans(lines: LogLine[]): Html {
  if (lines.length === 0) return raw('<span id="log-empty">waiting for the first line…\n</span>');
  return raw(lines.map((l) => `<span class="${l.stream}">${escapeText(l.line)}\n</span>`).join(''));
}

async function readLog(api: DashboardApi, id: string): Promise<LogLine[]> {
  const res = await api.get<{ items: LogLine[] }>(`/api/releases/${id}/logs?limit=5000`);
  return res.items;
}

export function registerReleases(app: Hono, fetchApi: ApiFetch): void {
  app.get(
    '/dashboard/releases/:id',
    view(fetchApi, async (c, s) => {
      const loaded = await load(s.api, param(c, 'id'));
      const { release: r, service } = loaded;
      const [lines, project] = await Promise.all([
        readLog(s.api, r.id),
        projectName(s.api, service.projectId),
      ]);
      const live = !terminal.includes(r.status);
      const body = html`<p>
          <a href="/dashboard">Projects</a> ›
          <a href="/dashboard/projects/${service.projectId}">${project}</a> ›
          <a href="/dashboard/services/${service.id}">${service.name}</a> ›
        </p>
        <h1>Release <span class="mono">${r.id}</span></h1>
        <div
          id="release"
          data-release-id="${r.id}"
          data-after="${lines.at(-1)?.seq ?? 0}"
          ${live ? html`data-release-live` : html`data-release-done="${r.status}"`}
        >
          <dl class="facts">
            <dt>Service</dt>
            <dd><a href="/dashboard/services/${service.id}">${service.name}</a></dd>
            <dt>Image</dt>
            <dd>
              <code>${r.image}</code
              >${r.imageDigest ? html` <span class="hint mono">${r.imageDigest.slice(0, 19)}…</span>` : ''}
            </dd>
            ${
              r.gitSha
                ? html`<dt>Commit</dt>
                    <dd class="mono" data-git-sha>
                      ${r.gitSha}${r.gitRef && r.gitRef !== r.gitSha ? html` <span class="hint">(${r.gitRef})</span>` : ''}
                    </dd>`
                : r.gitRef
                  ? html`<dt>Git ref</dt>
                      <dd class="mono">
                        ${r.gitRef} <span class="hint">resolved when it builds</span>
                      </dd>`
                  : ''
            }
            <dt>Created</dt>
            <dd>${when(r.createdAt)}</dd>
            ${
              r.previousReleaseId
                ? html`<dt>Previous</dt>
                    <dd>
                      <a href="/dashboard/releases/${r.previousReleaseId}"
                        >${r.previousReleaseId}</a
                      >
                    </dd>`
                : ''
            }
          </dl>
          <section id="summary" aria-live="polite">${summary(loaded)}</section>
          <h2>Log</h2>
          <pre class="log" id="log" tabindex="0" aria-label="Release log">${logSpans(lines)}</pre>
        </div>`;
      return render(c, s, { title: `Release ${r.id}`, section: 'projects' }, body);
    }),
  );

  // The fragment the page's script swaps in on every status change.
  app.get(
    '/dashboard/releases/:id/summary',
    view(fetchApi, async (c, s) => {
      c.header('Cache-Control', 'no-store');
      return c.html(summary(await load(s.api, param(c, 'id'))));
    }),
  );

  // EventSource cannot send a bearer token: the cookie authenticates this proxy of the API stream.
  app.get('/dashboard/releases/:id/events', async (c: Context) => {
    const api = new DashboardApi(c, fetchApi);
    const after = Number(c.req.query('after') ?? 0) || 0;
    const lastId = c.req.header('last-event-id');
    const res = await api.raw(
      'GET',
      `/api/releases/${encodeURIComponent(param(c, 'id'))}/logs?after=${after}`,
      {
        headers: { accept: 'text/event-stream', ...(lastId ? { 'last-event-id': lastId } : {}) },
      },
    );
    return new Response(res.body, {
      status: res.status,
      headers: {
        'content-type': res.headers.get('content-type') ?? 'text/plain',
        'cache-control': 'no-cache',
      },
    });
  });

  app.get(
    '/dashboard/releases/:id/rollback',
    view(fetchApi, async (c, s) => {
      const { release: r, service } = await load(s.api, param(c, 'id'));
      const previous = r.previousReleaseId
        ? await s.api.get<Release>(`/api/releases/${r.previousReleaseId}`).catch(() => null)
        : null;
      const body = html`<h1>Roll back ${service.name}?</h1>
        <div class="card">
          <p>
            Release <a href="/dashboard/releases/${r.id}">${r.id}</a> (<code>${r.image}</code>) is
            serving now.
          </p>
          <p>
            ${
              previous
                ? html`Traffic returns to release
                    <a href="/dashboard/releases/${previous.id}">${previous.id}</a>
                    (<code>${previous.image}</code>) — at once while its container is still warm,
                    else by deploying that image again.`
                : 'Traffic returns to the release before this one.'
            }
          </p>
          <form method="post" action="/dashboard/releases/${r.id}/rollback" class="inline">
            <button type="submit" class="danger">Yes, roll back</button>
          </form>
          <a class="button secondary" href="/dashboard/releases/${r.id}">Cancel</a>
        </div>`;
      return render(c, s, { title: 'Roll back', section: 'projects' }, body);
    }),
  );

  app.post(
    '/dashboard/releases/:id/rollback',
    action(fetchApi, '/dashboard', async (c, s) => {
      const id = param(c, 'id');
      const res = await s.api.post<{ path: string; to: Release; redeploy: Release | null }>(
        `/api/releases/${id}/rollback`,
      );
      if (res.path === 'warm') {
        flash(c, 'notice', `Rolled back: traffic is back on ${res.to.id} (${res.to.image}).`);
        return `/dashboard/releases/${id}`;
      }
      flash(c, 'notice', `Rolling back: ${res.to.image} is being deployed again.`);
      return `/dashboard/releases/${res.redeploy?.id ?? id}`;
    }),
  );

  app.post(
    '/dashboard/releases/:id/cancel',
    action(fetchApi, '/dashboard', async (c, s) => {
      const id = param(c, 'id');
      const res = await s.api.post<Release>(`/api/releases/${id}/cancel`);
      flash(c, 'notice', `Cancelled: ${res.error ?? `release ${id} failed`}.`);
      return `/dashboard/releases/${id}`;
    }),
  );
}
