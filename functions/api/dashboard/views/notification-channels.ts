import type { Hono } from 'hono';
import { html } from 'hono/html';
import { webhookEventTypes } from '../../../../core/webhooks/events.ts';
import { ApiFailure, type ApiFetch, type DashboardApi } from '../api.ts';
import { action, view } from '../handler.ts';
import { badge, when } from '../layout.ts';
import { flash, param, render } from '../session.ts';

interface Channel {
  id: string;
  kind: 'slack' | 'email';
  name: string;
  target: string;
  events: string[];
  groupWindowSeconds: number;
  createdAt: string;
}

interface Delivery {
  id: string;
  eventType: string;
  events: number;
  firstEventId: string;
  attempt: number;
  delivered: boolean;
  error: string | null;
  createdAt: string;
}

const base = '/api/notification-channels';

/** The API lists channels but has no item route: a foreign or deleted id is simply absent. */
async function findChannel(api: DashboardApi, id: string): Promise<Channel> {
  const channel = (await api.all<Channel>(base)).find((c) => c.id === id);
  if (!channel) throw new ApiFailure(404, 'not_found', `notification channel ${id} not found`);
  return channel;
}

interface Tried {
  kind?: string;
  name?: string;
  target?: string;
  window?: string;
  events?: string[];
}

function addForm(values: Tried) {
  const chosen = new Set(values.events ?? webhookEventTypes);
  return html`<form
    method="post"
    action="/dashboard/notification-channels"
    class="card"
    aria-labelledby="new-channel-h"
  >
    <h2 id="new-channel-h">Add a channel</h2>
    <div>
      <label for="channel-kind">Kind</label
      ><select id="channel-kind" name="kind">
        <option value="slack" ${values.kind === 'slack' ? 'selected' : ''}>
          Slack (incoming webhook)
        </option>
        <option value="email" ${values.kind === 'email' ? 'selected' : ''}>E-mail</option>
      </select>
    </div>
    <div>
      <label for="channel-name">Name</label
      ><input
        id="channel-name"
        name="name"
        required
        maxlength="100"
        placeholder="on-call"
        value="${values.name ?? ''}"
      />
    </div>
    <div>
      <label for="channel-target"
        >Slack URL or e-mail address
        <span class="hint">https://hooks.slack.com/services/… or ops@example.com</span></label
      ><input id="channel-target" name="target" required value="${values.target ?? ''}" />
    </div>
    <div>
      <label for="channel-window"
        >Grouping window (seconds)
        <span class="hint">events within it go out as one message; 0 sends each alone</span></label
      ><input
        id="channel-window"
        name="window"
        type="number"
        min="0"
        max="3600"
        value="${values.window ?? '60'}"
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
      A Slack URL is stored sealed and never shown again. For a signed POST to your own receiver,
      add a <a href="/dashboard/webhooks">webhook</a>.
    </p>
    <div><button type="submit">Add channel</button></div>
  </form>`;
}

export function registerNotificationChannels(app: Hono, fetchApi: ApiFetch): void {
  const channelsPage = view(fetchApi, async (c, s) => {
    let tried: Tried = {};
    let created = false;
    if (c.req.method === 'POST') {
      const form = (await c.req.parseBody({ all: true })) as Record<string, unknown>;
      const events = ([] as unknown[]).concat(form.events ?? []).map(String);
      const str = (v: unknown) => (typeof v === 'string' ? v.trim() : '');
      tried = {
        kind: str(form.kind),
        name: str(form.name),
        target: str(form.target),
        window: str(form.window),
        events,
      };
      try {
        await s.api.post<Channel>(base, {
          kind: tried.kind,
          name: tried.name,
          ...(tried.kind === 'slack' ? { url: tried.target } : { address: tried.target }),
          events,
          ...(tried.window ? { groupWindowSeconds: Number(tried.window) } : {}),
        });
        created = true;
        tried = {};
        s.shell.flash = { kind: 'notice', text: 'Channel added. Send it a test message below.' };
      } catch (e) {
        if (!(e instanceof ApiFailure)) throw e;
        s.shell.flash = {
          kind: 'error',
          text: events.length === 0 ? 'pick at least one event' : e.message,
        };
      }
    }
    const channels = await s.api.all<Channel>(base);
    const body = html`<h1>Notifications</h1>
      <p>
        Channels tell people in Slack or by e-mail when a release fails, completes or is rolled back
        and when a domain's DNS or certificate comes through. Events within a channel's grouping
        window go out as one message, with links to the dashboard page and the runbook.
      </p>
      ${
        channels.length === 0
          ? html`<div class="empty">
              No channels yet. Add one so that a failed deploy reaches someone.
            </div>`
          : html`<table>
              <caption class="visually-hidden">
                Notification channels of this organization
              </caption>
              <thead>
                <tr>
                  <th scope="col">Name</th>
                  <th scope="col">Kind</th>
                  <th scope="col">Sends to</th>
                  <th scope="col">Events</th>
                  <th scope="col">Window</th>
                  <th scope="col"><span class="visually-hidden">Actions</span></th>
                </tr>
              </thead>
              <tbody>
                ${channels.map(
                  (ch) =>
                    html`<tr>
                      <td><a href="/dashboard/notification-channels/${ch.id}">${ch.name}</a></td>
                      <td>${ch.kind === 'slack' ? 'Slack' : 'E-mail'}</td>
                      <td class="mono">${ch.target}</td>
                      <td>${ch.events.map((e) => html`<code>${e}</code> `)}</td>
                      <td>${ch.groupWindowSeconds} s</td>
                      <td>
                        <form
                          method="post"
                          action="/dashboard/notification-channels/${ch.id}/test"
                          class="inline"
                        >
                          <button
                            type="submit"
                            class="secondary"
                            aria-label="Send a test message to ${ch.name}"
                          >
                            Send test
                          </button>
                        </form>
                        <form
                          method="post"
                          action="/dashboard/notification-channels/${ch.id}/delete"
                          class="inline"
                          data-confirm="Remove the channel ${ch.name}? Events it holds are dropped."
                        >
                          <button type="submit" class="secondary" aria-label="Remove ${ch.name}">
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
      { title: 'Notifications', section: 'notifications' },
      body,
      created ? 201 : s.shell.flash?.kind === 'error' && c.req.method === 'POST' ? 400 : 200,
    );
  });
  app.get('/dashboard/notification-channels', channelsPage);
  app.post('/dashboard/notification-channels', channelsPage);

  app.get(
    '/dashboard/notification-channels/:id',
    view(fetchApi, async (c, s) => {
      const ch = await findChannel(s.api, param(c, 'id'));
      const deliveries = (
        await s.api.all<Delivery>(`${base}/${encodeURIComponent(ch.id)}/deliveries`)
      ).reverse();
      const body = html`<p><a href="/dashboard/notification-channels">Notifications</a> ›</p>
        <h1>Channel ${ch.name}</h1>
        <dl class="facts">
          <dt>Kind</dt>
          <dd>${ch.kind === 'slack' ? 'Slack' : 'E-mail'}</dd>
          <dt>Sends to</dt>
          <dd class="mono">${ch.target}</dd>
          <dt>Events</dt>
          <dd>${ch.events.map((e) => html`<code>${e}</code> `)}</dd>
          <dt>Grouping window</dt>
          <dd>${ch.groupWindowSeconds} s</dd>
          <dt>Created</dt>
          <dd>${when(ch.createdAt)}</dd>
          <dt>Id</dt>
          <dd class="mono">${ch.id}</dd>
        </dl>
        <form method="post" action="/dashboard/notification-channels/${ch.id}/test" class="inline">
          <button type="submit">Send test message</button>
        </form>
        <h2 id="deliveries">Recent messages</h2>
        ${
          deliveries.length === 0
            ? html`<div class="empty">Nothing sent yet. Send a test message.</div>`
            : html`<table>
                <caption class="visually-hidden">
                  Messages sent to ${ch.name}, newest first
                </caption>
                <thead>
                  <tr>
                    <th scope="col">When</th>
                    <th scope="col">Event</th>
                    <th scope="col">Events grouped</th>
                    <th scope="col">Attempt</th>
                    <th scope="col">Result</th>
                    <th scope="col">Error</th>
                  </tr>
                </thead>
                <tbody>
                  ${deliveries.map(
                    (d) =>
                      html`<tr class="${d.delivered ? '' : 'failed'}">
                        <td>${when(d.createdAt)}</td>
                        <td><code>${d.eventType}</code></td>
                        <td>${d.events}</td>
                        <td>${d.attempt}</td>
                        <td>${badge(d.delivered ? 'succeeded' : 'failed')}</td>
                        <td>${d.error ?? ''}</td>
                      </tr>`,
                  )}
                </tbody>
              </table>`
        }
        <p class="hint">
          A failed message is retried with backoff up to 8 times; the newest 100 attempts are kept.
        </p>`;
      return render(c, s, { title: 'Notification channel', section: 'notifications' }, body);
    }),
  );

  app.post(
    '/dashboard/notification-channels/:id/test',
    action(fetchApi, '/dashboard/notification-channels', async (c, s) => {
      const id = param(c, 'id');
      const r = await s.api.post<{ delivered: boolean; error: string | null }>(
        `${base}/${encodeURIComponent(id)}/test`,
      );
      flash(
        c,
        r.delivered ? 'notice' : 'error',
        r.delivered ? 'Test message delivered.' : `Test message not delivered: ${r.error}.`,
      );
      return `/dashboard/notification-channels/${id}#deliveries`;
    }),
  );

  app.post(
    '/dashboard/notification-channels/:id/delete',
    action(fetchApi, '/dashboard/notification-channels', async (c, s) => {
      await s.api.call('DELETE', `${base}/${encodeURIComponent(param(c, 'id'))}`);
      flash(c, 'notice', 'Channel removed.');
      return '/dashboard/notification-channels';
    }),
  );
}
