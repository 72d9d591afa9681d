import type { Hono } from 'hono';
import { html } from 'hono/html';
import type { ApiFetch } from '../api.ts';
import { action, view } from '../handler.ts';
import { flash, render } from '../session.ts';
import type { Service } from '../types.ts';

/** GET /api/alerts/rules, as this page reads it. */
interface AlertRule {
  id: string;
  title: string;
  thresholdMeaning: string;
  unit: string;
  defaultThreshold: number;
  min: number;
  max: number;
  perService: boolean;
  severity: string;
  runbook: string;
  override?: number | null;
  threshold?: number;
}

/**
 * The alert rules (one definition in the core, evaluated by Prometheus or CloudWatch) and,
 * for a service, its own thresholds: firing and resolved alerts reach the org's
 * notification channels as `alert.firing` / `alert.resolved`.
 */
export function registerAlerts(app: Hono, fetchApi: ApiFetch): void {
  app.get(
    '/dashboard/alerts',
    view(fetchApi, async (c, s) => {
      const serviceId = c.req.query('serviceId');
      const service = serviceId
        ? await s.api.get<Service>(`/api/services/${encodeURIComponent(serviceId)}`)
        : null;
      const { items } = await s.api.get<{ items: AlertRule[] }>(
        `/api/alerts/rules${service ? `?serviceId=${service.id}` : ''}`,
      );
      const body = html`${service ? html`<p><a href="/dashboard/services/${service.id}">← ${service.name}</a></p>` : ''}
        <h1>Alerts${service ? html` for ${service.name}` : ''}</h1>
        <p>
          Firing and resolved alerts go to the
          <a href="/dashboard/notification-channels">notification channels</a> subscribed to
          <code>alert.firing</code> and <code>alert.resolved</code>, grouped like any event, each
          with its dashboard page and runbook.
          ${service ? '' : html`Open a service's page to change its thresholds.`}
        </p>
        <table>
          <caption class="visually-hidden">
            Alert rules
          </caption>
          <thead>
            <tr>
              <th scope="col">Rule</th>
              <th scope="col">Fires when</th>
              <th scope="col">Threshold</th>
              <th scope="col">Runbook</th>
            </tr>
          </thead>
          <tbody>
            ${items.map(
              (r) =>
                html`<tr id="rule-${r.id}">
                  <td>${r.title} <span class="hint">${r.severity}</span></td>
                  <td>${r.thresholdMeaning}</td>
                  <td>
                    ${
                      service && r.perService
                        ? html`<form
                            method="post"
                            action="/dashboard/alerts/thresholds"
                            class="inline"
                          >
                            <input type="hidden" name="serviceId" value="${service.id}" />
                            <input type="hidden" name="rule" value="${r.id}" />
                            <label for="th-${r.id}" class="visually-hidden"
                              >${r.title} threshold</label
                            >
                            <input
                              id="th-${r.id}"
                              name="value"
                              inputmode="decimal"
                              size="6"
                              value="${r.override ?? ''}"
                              placeholder="${r.defaultThreshold}"
                            />
                            <button type="submit" class="secondary">Set</button>
                            <span class="hint"
                              >${r.min}–${r.max};
                              ${r.override == null ? 'default' : `default ${r.defaultThreshold}`}</span
                            >
                          </form>`
                        : html`${r.defaultThreshold}
                            <span class="hint"
                              >${r.perService ? `${r.min}–${r.max}` : 'per node'}</span
                            >`
                    }
                  </td>
                  <td><code>${r.runbook}</code></td>
                </tr>`,
            )}
          </tbody>
        </table>`;
      return render(c, s, { title: 'Alerts', section: 'notifications' }, body);
    }),
  );

  app.post(
    '/dashboard/alerts/thresholds',
    action(fetchApi, '/dashboard/alerts', async (c, s, form) => {
      const serviceId = String(form.serviceId ?? '');
      const raw = String(form.value ?? '').trim();
      // An empty field puts the default back; anything else goes to the API as a number,
      // which answers a 400 naming the rule's range when it is out of it.
      const value = raw === '' ? null : Number(raw);
      await s.api.call('PUT', '/api/alerts/thresholds', { serviceId, rule: form.rule, value });
      flash(
        c,
        'notice',
        value === null ? 'Threshold back to the default.' : `Threshold set to ${value}.`,
      );
      return `/dashboard/alerts?serviceId=${encodeURIComponent(serviceId)}`;
    }),
  );
}
