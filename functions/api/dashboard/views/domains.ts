import type { Hono } from 'hono';
import { html } from 'hono/html';
import type { ApiFetch } from '../api.ts';
import { action, view } from '../handler.ts';
import { badge, when, type Html } from '../layout.ts';
import { flash, render, param } from '../session.ts';
import type { Domain } from '../types.ts';

const lifecycle = ['pending_dns', 'dns_verified', 'cert_pending', 'active'] as const;
const words: Record<string, string> = {
  pending_dns: 'waiting for DNS',
  dns_verified: 'DNS verified',
  cert_pending: 'getting a certificate',
  active: 'active (HTTPS)',
};

/**
 * When the served certificate runs out. Within the `cert_expiring` rule's default 14 days
 * it is a warning with the runbook, since a renewal that has not happened by then is stuck.
 */
function certificate(d: Domain): Html | string {
  if (!d.certNotAfter || d.certDaysLeft === null) return '';
  const days = d.certDaysLeft;
  const left = days < 0 ? 'expired' : `${days} day${days === 1 ? '' : 's'} left`;
  const line = html`Certificate expires
    <time datetime="${d.certNotAfter}">${d.certNotAfter}</time>
    (${left})${d.certIssuer ? html`, issued by ${d.certIssuer}` : ''}.`;
  return days < 14
    ? html`<div class="alert error" role="alert" data-cert-days-left="${days}">
        <strong>${line}</strong> The edge renews certificates well before this; see
        <code>docs/runbooks/cert-not-issuing.md</code>.
      </div>`
    : html`<p data-cert-days-left="${days}">${line}</p>`;
}

/** The live part of a domain page: progress, last error, the records to create. */
function status(d: Domain): Html {
  const settled = d.status === 'active' || d.status === 'failed';
  const at = lifecycle.indexOf(d.status as (typeof lifecycle)[number]);
  return html`<div ${settled ? html`data-settled="${d.status}"` : ''}>
    <p>
      Status: ${badge(d.status)}
      <span class="hint"
        >DNS ${d.dnsStatus}, TLS ${d.tlsStatus}; last checked ${when(d.checkedAt)}</span
      >
    </p>
    <ol class="progress" aria-label="Progress">
      ${lifecycle.map(
        (s, i) =>
          html`<li
            class="${i < at || d.status === 'active' ? 'done' : i === at ? 'current' : ''}"
            ${i === at ? html`aria-current="step"` : ''}
          >
            ${words[s]}
          </li>`,
      )}
    </ol>
    ${d.lastError ? html`<div class="alert error" role="alert"><strong>Last error:</strong> ${d.lastError}</div>` : ''}
    ${certificate(d)}
    ${
      d.status === 'active'
        ? html`<p>
            ${d.hostname} is live at <a href="https://${d.hostname}">https://${d.hostname}</a>.
          </p>`
        : html`<h2>DNS records to create</h2>
            <p>
              At your DNS provider, create these records exactly, then press <em>Check now</em>. DNS
              changes can take a few minutes to be seen.
            </p>
            <table>
              <caption class="visually-hidden">
                DNS records for ${d.hostname}
              </caption>
              <thead>
                <tr>
                  <th scope="col">Type</th>
                  <th scope="col">Name</th>
                  <th scope="col">Value</th>
                </tr>
              </thead>
              <tbody>
                ${d.records.map(
                  (r) =>
                    html`<tr data-record="${r.type}">
                      <td>${r.type}</td>
                      <td>
                        <code>${r.name}</code>
                        <button
                          type="button"
                          class="secondary"
                          data-copy="${r.name}"
                          aria-label="Copy ${r.type} name"
                        >
                          Copy
                        </button>
                      </td>
                      <td>
                        <code>${r.value}</code>
                        <button
                          type="button"
                          class="secondary"
                          data-copy="${r.value}"
                          aria-label="Copy ${r.type} value"
                        >
                          Copy
                        </button>
                      </td>
                    </tr>`,
                )}
              </tbody>
            </table>`
    }
  </div>`;
}

export function registerDomains(app: Hono, fetchApi: ApiFetch): void {
  app.get(
    '/dashboard/domains/:id',
    view(fetchApi, async (c, s) => {
      const d = await s.api.get<Domain>(`/api/domains/${encodeURIComponent(param(c, 'id'))}`);
      const body = html`<p>
          <a href="/dashboard/services/${d.serviceId}#domains">Back to the service</a>
        </p>
        <h1>${d.hostname}</h1>
        <section
          id="domain-status"
          data-domain-id="${d.id}"
          ${d.status === 'active' || d.status === 'failed' ? '' : html`data-domain-live`}
          aria-live="polite"
        >
          ${status(d)}
        </section>
        <div class="row">
          <form method="post" action="/dashboard/domains/${d.id}/verify">
            <button type="submit">Check now</button>
          </form>
          <form
            method="post"
            action="/dashboard/domains/${d.id}/delete"
            data-confirm="Remove ${d.hostname}? Its route and certificate go away."
          >
            <button type="submit" class="danger">Remove domain</button>
          </form>
        </div>`;
      return render(c, s, { title: d.hostname, section: 'projects' }, body);
    }),
  );

  app.get(
    '/dashboard/domains/:id/status',
    view(fetchApi, async (c, s) => {
      c.header('Cache-Control', 'no-store');
      return c.html(
        status(await s.api.get<Domain>(`/api/domains/${encodeURIComponent(param(c, 'id'))}`)),
      );
    }),
  );

  app.post(
    '/dashboard/domains/:id/verify',
    action(fetchApi, '/dashboard', async (c, s) => {
      await s.api.post(`/api/domains/${param(c, 'id')}/verify`);
      flash(c, 'notice', 'Checking DNS now; this page updates by itself.');
      return `/dashboard/domains/${param(c, 'id')}`;
    }),
  );

  app.post(
    '/dashboard/domains/:id/delete',
    action(fetchApi, '/dashboard', async (c, s) => {
      const d = await s.api.get<Domain>(`/api/domains/${param(c, 'id')}`);
      await s.api.call('DELETE', `/api/domains/${d.id}`);
      flash(c, 'notice', `Removed ${d.hostname}.`);
      return `/dashboard/services/${d.serviceId}#domains`;
    }),
  );
}
