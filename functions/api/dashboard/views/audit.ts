import type { Hono } from 'hono';
import { html } from 'hono/html';
import type { Page } from '../../../../core/models.ts';
import type { ApiFetch } from '../api.ts';
import { view } from '../handler.ts';
import { when } from '../layout.ts';
import { render } from '../session.ts';

interface AuditEvent {
  id: string;
  actorType: string;
  actorId: string;
  action: string;
  targetType: string;
  targetId: string | null;
  data: Record<string, unknown>;
  createdAt: string;
}

export function registerAudit(app: Hono, fetchApi: ApiFetch): void {
  app.get(
    '/dashboard/audit',
    view(fetchApi, async (c, s) => {
      const actionFilter = c.req.query('action')?.trim() || undefined;
      const target = c.req.query('targetId')?.trim() || undefined;
      const cursor = c.req.query('cursor') || undefined;
      const q = new URLSearchParams({ limit: '50' });
      if (actionFilter) q.set('action', actionFilter);
      if (target) q.set('targetId', target);
      if (cursor) q.set('cursor', cursor);
      const page = await s.api.get<Page<AuditEvent>>(`/api/audit-events?${q}`);
      const next = new URLSearchParams(q);
      next.delete('limit');
      if (page.nextCursor) next.set('cursor', page.nextCursor);
      const body = html`<h1>Audit log</h1>
        <form method="get" action="/dashboard/audit" class="card row" role="search">
          <div>
            <label for="f-action">Action <span class="hint">e.g. release.completed</span></label
            ><input id="f-action" name="action" value="${actionFilter ?? ''}" />
          </div>
          <div>
            <label for="f-target">Target id</label
            ><input id="f-target" name="targetId" value="${target ?? ''}" />
          </div>
          <div>
            <button type="submit" class="secondary">Filter</button>
            <a href="/dashboard/audit">Clear</a>
          </div>
        </form>
        ${
          page.items.length === 0
            ? html`<div class="empty">
                ${actionFilter || target ? 'No events match these filters.' : 'Nothing recorded yet: every change made through the API or this dashboard appears here.'}
              </div>`
            : html`<table>
                <thead>
                  <tr>
                    <th scope="col">When</th>
                    <th scope="col">Actor</th>
                    <th scope="col">Action</th>
                    <th scope="col">Target</th>
                    <th scope="col">Details</th>
                  </tr>
                </thead>
                <tbody>
                  ${page.items.map(
                    (e) =>
                      html`<tr>
                        <td>${when(e.createdAt)}</td>
                        <td>${e.actorType} <span class="hint mono">${e.actorId}</span></td>
                        <td><code>${e.action}</code></td>
                        <td>
                          ${e.targetType}
                          ${e.targetId ? html`<a class="mono" href="/dashboard/audit?targetId=${e.targetId}">${e.targetId}</a>` : ''}
                        </td>
                        <td class="mono">
                          ${Object.keys(e.data).length ? JSON.stringify(e.data).slice(0, 200) : ''}
                        </td>
                      </tr>`,
                  )}
                </tbody>
              </table>`
        }
        ${page.nextCursor ? html`<p><a href="/dashboard/audit?${next.toString()}">More events →</a></p>` : ''}`;
      return render(c, s, { title: 'Audit log', section: 'audit' }, body);
    }),
  );
}
