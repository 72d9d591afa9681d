import { html } from 'hono/html';

export type Html = ReturnType<typeof html>;

export interface Shell {
  title: string;
  /** The nav entry to mark as current. */
  section?:
    | 'projects'
    | 'data'
    | 'nodes'
    | 'keys'
    | 'members'
    | 'audit'
    | 'webhooks'
    | 'notifications'
    | 'registries'
    | 'edge'
    | 'control-backups'
    | 'jobs';
  orgs?: { id: string; name: string }[];
  orgId?: string | null;
  flash?: { kind: 'error' | 'notice'; text: string } | null;
  /** Where "Log out" posts; the sign-in routes of the mode decide (`/dashboard/logout` unless set). */
  logoutPath?: string;
}

const navItems = [
  ['projects', '/dashboard', 'Projects'],
  ['data', '/dashboard/data-services', 'Data services'],
  ['jobs', '/dashboard/jobs', 'Cron jobs'],
  ['nodes', '/dashboard/nodes', 'Nodes'],
  ['registries', '/dashboard/registries', 'Registries'],
  ['webhooks', '/dashboard/webhooks', 'Webhooks'],
  ['notifications', '/dashboard/notification-channels', 'Notifications'],
  ['edge', '/dashboard/edge', 'Edge'],
  ['keys', '/dashboard/api-keys', 'API keys'],
  ['members', '/dashboard/members', 'Members'],
  ['audit', '/dashboard/audit', 'Audit log'],
] as const;

function orgSwitcher(orgs: { id: string; name: string }[], orgId: string | null | undefined): Html {
  return html`<form method="post" action="/dashboard/org" class="inline">
    <label for="org-switch" class="visually-hidden">Organization</label>
    <select id="org-switch" name="orgId">
      ${orgs.map((o) => html`<option value="${o.id}" ${o.id === orgId ? 'selected' : ''}>${o.name}</option>`)}
    </select>
    <button type="submit" class="secondary">Switch</button>
  </form>`;
}

/** The page every dashboard screen sits in: header, nav, org switcher, flash message. */
export function page(shell: Shell, body: Html): Html {
  const signedIn = shell.orgs !== undefined;
  return html`<!doctype html>
    <html lang="en">
      <head>
        <meta charset="utf-8" />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        <title>${shell.title} · selfdevop</title>
        <link rel="stylesheet" href="/dashboard/assets/app.css" />
        <script src="/dashboard/assets/app.js" defer></script>
      </head>
      <body>
        <a class="skip" href="#main">Skip to content</a>
        <header class="top">
          <a href="/dashboard">selfdevop</a>
          ${
            signedIn
              ? html`<nav aria-label="Main">
                    ${navItems.map(
                      ([key, href, label]) =>
                        html`<a
                          href="${href}"
                          ${shell.section === key ? html`aria-current="page"` : ''}
                          >${label}</a
                        >`,
                    )}
                  </nav>
                  <div class="right">
                    ${shell.orgs!.length ? orgSwitcher(shell.orgs!, shell.orgId) : ''}
                    <form
                      method="post"
                      action="${shell.logoutPath ?? '/dashboard/logout'}"
                      class="inline"
                    >
                      <button type="submit" class="secondary">Log out</button>
                    </form>
                  </div>`
              : ''
          }
        </header>
        <main id="main">
          <div id="announce" class="visually-hidden" aria-live="polite"></div>
          ${shell.flash ? html`<div class="alert ${shell.flash.kind}" role="${shell.flash.kind === 'error' ? 'alert' : 'status'}">${shell.flash.text}</div>` : ''}
          ${body}
        </main>
      </body>
    </html>`;
}

/** A status word as a badge whose text, not only its colour, carries the meaning. */
export function badge(status: string): Html {
  const kind = ['completed', 'active', 'succeeded', 'healthy', 'reachable'].includes(status)
    ? 'ok'
    : ['failed', 'rolled_back', 'unhealthy', 'down', 'lost'].includes(status)
      ? 'bad'
      : ['pending', 'never deployed', 'skipped', 'draining', 'not_deployed', 'unknown'].includes(
            status,
          )
        ? 'idle'
        : 'run';
  return html`<span class="badge ${kind}">${status.replace(/_/g, ' ')}</span>`;
}

export function seconds(
  startedAt: string | null | undefined,
  finishedAt: string | null | undefined,
): string {
  if (!startedAt) return '';
  const ms = (finishedAt ? Date.parse(finishedAt) : Date.now()) - Date.parse(startedAt);
  return `${(Math.max(0, ms) / 1000).toFixed(1)} s`;
}

export function when(iso: string | null | undefined): Html {
  if (!iso) return html`–`;
  return html`<time datetime="${iso}">${iso.replace('T', ' ').replace(/\.\d+Z$/, 'Z')}</time>`;
}
