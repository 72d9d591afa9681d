import type { Hono } from 'hono';
import { html } from 'hono/html';
import { webhookEventTypes } from '../../../../core/webhooks/events.ts';
import { ApiFailure, type ApiFetch, type DashboardApi } from '../api.ts';
import { action, view } from '../handler.ts';
import { badge, when } from '../layout.ts';
import { flash, param, render } from '../session.ts';

interface Webhook {
  id: string;
  url: string;
  events: string[];
  createdAt: string;
}

interface TestResult {
  delivered: boolean;
  status: number | null;
  error: string | null;
  eventId: string;
}

interface Delivery {
  id: string;
  eventId: string;
  eventType: string;
  attempt: number;
  delivered: boolean;
  responseStatus: number | null;
  error: string | null;
  createdAt: string;
}

/** The API lists webhooks but has no item route: a foreign or deleted id is simply absent. */
async function findWebhook(api: DashboardApi, id: string): Promise<Webhook> {
  const hook = (await api.all<Webhook>('/api/webhooks')).find((h) => h.id === id);
  if (!hook) throw new ApiFailure(404, 'not_found', `webhook ${id} not found`);
  return hook;
}

function testOutcome(r: TestResult): string {
  if (r.delivered) return `Test event delivered: the receiver answered ${r.status}.`;
  return `Test event not delivered: ${r.status !== null ? `the receiver answered ${r.status}` : (r.error ?? 'no answer')}.`;
}

function addForm(values: { url?: string; events?: string[] }) {
  const chosen = new Set(values.events ?? webhookEventTypes);
  return html`<form
    method="post"
    action="/dashboard/webhooks"
    class="card"
    aria-labelledby="new-hook-h"
  >
    <h2 id="new-hook-h">Add a webhook</h2>
    <div>
      <label for="hook-url"
        >URL <span class="hint">https://…, receives a signed POST per event</span></label
      ><input
        id="hook-url"
        name="url"
        type="url"
        required
        placeholder="https://ci.example.com/hooks/selfdevop"
        value="${values.url ?? ''}"
      />
    </div>
    <fieldset>
      <legend>Events</legend>
      ${webhookEventTypes.map(
        (e) =>
          html`<label class="inline"
            ><input type="checkbox" name="events" value="${e}" ${chosen.has(e) ? 'checked' : ''} />
            <code>${e}</code></label
          > `,
      )}
    </fieldset>
    <p class="hint">
      Loopback, link-local and the platform's own addresses are refused; private networks too unless
      the operator allowed them.
    </p>
    <div><button type="submit">Add webhook</button></div>
  </form>`;
}

export function registerWebhooks(app: Hono, fetchApi: ApiFetch): void {
  const hooksPage = view(fetchApi, async (c, s) => {
    let created: (Webhook & { secret: string }) | null = null;
    let tried: { url?: string; events?: string[] } = {};
    if (c.req.method === 'POST') {
      // The signing secret is shown once, in the reply to the POST that made it, never stored here.
      const form = (await c.req.parseBody({ all: true })) as Record<string, unknown>;
      const events = ([] as unknown[]).concat(form.events ?? []).map(String);
      tried = { url: typeof form.url === 'string' ? form.url.trim() : '', events };
      try {
        created = await s.api.post<Webhook & { secret: string }>('/api/webhooks', {
          url: tried.url,
          events,
        });
        tried = {};
      } catch (e) {
        if (!(e instanceof ApiFailure)) throw e;
        // Kept in the form, so a refused URL can be corrected rather than typed again.
        s.shell.flash = {
          kind: 'error',
          text: events.length === 0 ? 'pick at least one event' : e.message,
        };
      }
    }
    const hooks = await s.api.all<Webhook>('/api/webhooks');
    const body = html`<h1>Webhooks</h1>
      <p>
        Each webhook receives a signed <code>POST</code> for the events it subscribes to, with the
        header <code>X-Selfdevop-Signature: t=…,v1=HMAC-SHA256(secret, "t.body")</code>. Failed
        deliveries are retried with backoff up to 8 times.
      </p>
      ${
        created
          ? html`<div class="card" role="status">
              <h2>Webhook added</h2>
              <p><strong>Copy its signing secret now: it is shown only once.</strong></p>
              <p>
                <code class="secret-once" id="new-secret">${created.secret}</code>
                <button type="button" class="secondary" data-copy="${created.secret}">Copy</button>
              </p>
              <p class="hint">Then send it a test event below to check your receiver.</p>
            </div>`
          : ''
      }
      ${
        hooks.length === 0
          ? html`<div class="empty">
              No webhooks yet. Add one to tell your CI or chat when a release completes or fails.
            </div>`
          : html`<table>
              <caption class="visually-hidden">
                Webhooks of this organization
              </caption>
              <thead>
                <tr>
                  <th scope="col">URL</th>
                  <th scope="col">Events</th>
                  <th scope="col">Created</th>
                  <th scope="col"><span class="visually-hidden">Actions</span></th>
                </tr>
              </thead>
              <tbody>
                ${hooks.map(
                  (h) =>
                    html`<tr>
                      <td><a href="/dashboard/webhooks/${h.id}" class="mono">${h.url}</a></td>
                      <td>${h.events.map((e) => html`<code>${e}</code> `)}</td>
                      <td>${when(h.createdAt)}</td>
                      <td>
                        <form
                          method="post"
                          action="/dashboard/webhooks/${h.id}/test"
                          class="inline"
                        >
                          <button
                            type="submit"
                            class="secondary"
                            aria-label="Send a test event to ${h.url}"
                          >
                            Send test event
                          </button>
                        </form>
                        <form
                          method="post"
                          action="/dashboard/webhooks/${h.id}/delete"
                          class="inline"
                          data-confirm="Remove the webhook to ${h.url}? Queued deliveries are dropped."
                        >
                          <button type="submit" class="secondary" aria-label="Remove ${h.url}">
                            Remove
                          </button>
                        </form>
                      </td>
                    </tr>`,
                )}
              </tbody>
            </table>`
      }
      ${addForm(tried)}`;
    return render(
      c,
      s,
      { title: 'Webhooks', section: 'webhooks' },
      body,
      created ? 201 : s.shell.flash?.kind === 'error' && c.req.method === 'POST' ? 400 : 200,
    );
  });
  app.get('/dashboard/webhooks', hooksPage);
  app.post('/dashboard/webhooks', hooksPage);

  app.get(
    '/dashboard/webhooks/:id',
    view(fetchApi, async (c, s) => {
      const hook = await findWebhook(s.api, param(c, 'id'));
      // The API lists oldest first and keeps at most 100: all of them, newest on top.
      const deliveries = (
        await s.api.all<Delivery>(`/api/webhooks/${encodeURIComponent(hook.id)}/deliveries`)
      ).reverse();
      const body = html`<p><a href="/dashboard/webhooks">Webhooks</a> ›</p>
        <h1>Webhook to ${hook.url}</h1>
        <dl class="facts">
          <dt>Events</dt>
          <dd>${hook.events.map((e) => html`<code>${e}</code> `)}</dd>
          <dt>Created</dt>
          <dd>${when(hook.createdAt)}</dd>
          <dt>Id</dt>
          <dd class="mono">${hook.id}</dd>
        </dl>
        <form method="post" action="/dashboard/webhooks/${hook.id}/test" class="inline">
          <button type="submit">Send test event</button>
        </form>
        <h2 id="deliveries">Recent deliveries</h2>
        ${
          deliveries.length === 0
            ? html`<div class="empty">
                Nothing delivered yet. Send a test event, or wait for the next release or domain
                event this webhook subscribes to.
              </div>`
            : html`<table>
                <caption class="visually-hidden">
                  Delivery attempts to ${hook.url}, newest first
                </caption>
                <thead>
                  <tr>
                    <th scope="col">When</th>
                    <th scope="col">Event</th>
                    <th scope="col">Attempt</th>
                    <th scope="col">Result</th>
                    <th scope="col">Receiver answered</th>
                  </tr>
                </thead>
                <tbody>
                  ${deliveries.map(
                    (d) =>
                      html`<tr class="${d.delivered ? '' : 'failed'}">
                        <td>${when(d.createdAt)}</td>
                        <td>
                          <code>${d.eventType}</code> <span class="hint mono">${d.eventId}</span>
                        </td>
                        <td>${d.attempt}</td>
                        <td>${badge(d.delivered ? 'succeeded' : 'failed')}</td>
                        <td>${d.responseStatus ?? d.error ?? 'no answer'}</td>
                      </tr>`,
                  )}
                </tbody>
              </table>`
        }
        <p class="hint">
          A failed delivery is retried with backoff up to 8 times; the newest 100 attempts are kept.
          The <a href="/dashboard/audit?targetId=${hook.id}">audit log</a> lists every change to
          this webhook.
        </p>`;
      return render(c, s, { title: 'Webhook', section: 'webhooks' }, body);
    }),
  );

  app.post(
    '/dashboard/webhooks/:id/test',
    action(fetchApi, '/dashboard/webhooks', async (c, s) => {
      const id = param(c, 'id');
      const r = await s.api.post<TestResult>(`/api/webhooks/${encodeURIComponent(id)}/test`);
      flash(c, r.delivered ? 'notice' : 'error', testOutcome(r));
      return `/dashboard/webhooks/${id}#deliveries`;
    }),
  );

  app.post(
    '/dashboard/webhooks/:id/delete',
    action(fetchApi, '/dashboard/webhooks', async (c, s) => {
      await s.api.call('DELETE', `/api/webhooks/${encodeURIComponent(param(c, 'id'))}`);
      flash(c, 'notice', 'Webhook removed.');
      return '/dashboard/webhooks';
    }),
  );
}
