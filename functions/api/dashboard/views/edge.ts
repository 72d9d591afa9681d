import type { Hono } from 'hono';
import { html } from 'hono/html';
import type { ApiFetch } from '../api.ts';
import { view } from '../handler.ts';
import { badge, when } from '../layout.ts';
import { render } from '../session.ts';

interface EdgeStatus {
  reachable: boolean;
  error: string | null;
  version: string | null;
  routes: { expected: number; present: number; missing: string[] };
  lastRebuild: { at: string; restoredRoutes: number; restoredHosts: number } | null;
  certificates: {
    hostname: string;
    domainId: string;
    status: string;
    issuer: string | null;
    notAfter: string | null;
    daysLeft: number | null;
    detail: string | null;
  }[];
}

/** Fewer days than this before expiry is worth a look: renewal normally happens at 30. */
const expiryWarningDays = 14;

export function registerEdge(app: Hono, fetchApi: ApiFetch): void {
  app.get(
    '/dashboard/edge',
    view(fetchApi, async (c, s) => {
      const e = await s.api.get<EdgeStatus>('/api/edge');
      const body = html`<h1>Edge</h1>
        <p>
          The edge (Caddy) routes your services' traffic and holds their certificates. It is rebuilt
          from the database every minute, so a lost route comes back by itself.
        </p>
        <dl class="facts" aria-label="Edge status">
          <dt>Reachable</dt>
          <dd id="edge-reachable">
            ${badge(e.reachable ? 'healthy' : 'failed')}
            ${e.error ? html`<span class="hint">${e.error}</span>` : ''}
          </dd>
          <dt>Version</dt>
          <dd>${e.version ?? html`<span class="hint">not reported by Caddy's admin API</span>`}</dd>
          <dt>Your routes</dt>
          <dd id="edge-routes">
            ${e.routes.present} of ${e.routes.expected} present
            ${e.routes.missing.length ? html`<span class="hint">missing: ${e.routes.missing.map((m) => html`<code>${m}</code> `)}</span>` : ''}
          </dd>
          <dt>Last rebuild from the database</dt>
          <dd id="edge-rebuild">
            ${e.lastRebuild ? html`${when(e.lastRebuild.at)} <span class="hint">restored ${e.lastRebuild.restoredRoutes} routes, ${e.lastRebuild.restoredHosts} hosts</span>` : 'not yet'}
          </dd>
        </dl>
        <h2 id="certificates">Certificates of your domains</h2>
        ${
          e.certificates.length === 0
            ? html`<div class="empty">
                No custom domain with a certificate to check yet. Add one on a service's domains
                page.
              </div>`
            : html`<table>
                <caption class="visually-hidden">
                  Certificates the edge serves for your domains
                </caption>
                <thead>
                  <tr>
                    <th scope="col">Domain</th>
                    <th scope="col">Certificate</th>
                    <th scope="col">Issuer</th>
                    <th scope="col">Expires</th>
                    <th scope="col">Days left</th>
                  </tr>
                </thead>
                <tbody>
                  ${e.certificates.map(
                    (c) =>
                      html`<tr
                        class="${c.status === 'active' && (c.daysLeft ?? 0) >= expiryWarningDays ? '' : 'failed'}"
                      >
                        <td class="mono">${c.hostname}</td>
                        <td>
                          ${badge(c.status)}
                          ${c.detail ? html`<span class="hint">${c.detail}</span>` : ''}
                        </td>
                        <td>${c.issuer ?? '–'}</td>
                        <td>${c.notAfter ? when(c.notAfter) : '–'}</td>
                        <td>${c.daysLeft ?? '–'}</td>
                      </tr>`,
                  )}
                </tbody>
              </table>`
        }
        <p class="hint">
          Something wrong? See the runbooks: <code>docs/runbooks/cert-not-issuing.md</code>,
          <code>docs/runbooks/app-down.md</code>.
        </p>`;
      return render(c, s, { title: 'Edge', section: 'edge' }, body);
    }),
  );
}
