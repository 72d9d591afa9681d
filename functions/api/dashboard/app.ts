import { Hono, type Context, type Next } from 'hono';
import { html } from 'hono/html';
import type { HostedSignIn, Logger } from '../../../core/ports.ts';
import type { ApiFetch } from './api.ts';
import { css, js } from './assets.ts';
import { logoutPathVariable, render } from './session.ts';
import { registerApiKeys } from './views/api-keys.ts';
import { registerAudit } from './views/audit.ts';
import { logoutPathOf, registerAuth } from './views/auth.ts';
import { registerDomains } from './views/domains.ts';
import { registerEnvironments } from './views/environments.ts';
import { registerInvites } from './views/invites.ts';
import { registerMembers } from './views/members.ts';
import { registerNodes } from './views/nodes.ts';
import { registerOrgs } from './views/orgs.ts';
import { registerProjects } from './views/projects.ts';
import { registerReleases } from './views/releases.ts';
import { registerSecrets } from './views/secrets.ts';
import { registerServices } from './views/services.ts';
import { registerWebhooks } from './views/webhooks.ts';
import { registerNotificationChannels } from './views/notification-channels.ts';
import { registerRegistries } from './views/registries.ts';
import { registerAlerts } from './views/alerts.ts';
import { registerEdge } from './views/edge.ts';
import { registerControlBackups } from './views/control-backups.ts';
import { registerDataServices } from './views/data-services.ts';
import { registerJobs } from './views/jobs.ts';

/**
 * Scripts and styles only from /dashboard/assets; no framing, forms post only to us (and,
 * with a hosted sign-in, log out there: browsers apply form-action to the redirect too).
 */
const contentSecurityPolicy = (formTargets: string[], connectTargets: string[]) =>
  [
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    ["connect-src 'self'", ...connectTargets].join(' '),
    ["form-action 'self'", ...formTargets].join(' '),
    "frame-ancestors 'none'",
    "base-uri 'none'",
  ].join('; ');

/**
 * The web dashboard: server-rendered pages that are clients of the public API. Every read
 * and write goes through `fetchApi` (the API app itself, in process) with the user's
 * session token, so the dashboard shows exactly what the API allows and says what it says.
 * In cloud mode `hostedSignIn` replaces the login form with the hosted sign-in page.
 * @example app.route('/', dashboardApp((req, env) => app.fetch(req, env), { hostedSignIn, logger }))
 */
export function dashboardApp(
  fetchApi: ApiFetch,
  options: {
    hostedSignIn?: HostedSignIn;
    logger: Logger;
    /**
     * The object store's origin where it takes uploads from the browser itself (the cloud):
     * app.js PUTs an import's object there, so the page may connect to it.
     */
    directUploadOrigin?: () => Promise<string>;
  },
): Hono {
  const app = new Hono();
  const logoutPath = logoutPathOf(options.hostedSignIn);
  const formTargets = options.hostedSignIn
    ? [new URL(options.hostedSignIn.logoutUrl()).origin]
    : [];
  // Read once, on the first page: the store's origin does not change while this runs.
  let csp: Promise<string> | undefined;
  const policy = () =>
    (csp ??= (options.directUploadOrigin?.() ?? Promise.resolve(null)).then(
      (origin) => contentSecurityPolicy(formTargets, origin ? [origin] : []),
      (e: unknown) => {
        options.logger.warn({ err: e }, 'the object store origin is unknown: uploads stay here');
        csp = undefined;
        return contentSecurityPolicy(formTargets, []);
      },
    ));

  app.use('/dashboard/*', async (c: Context, next: Next) => {
    // Cookies are SameSite=Strict already; refusing cross-origin form posts outright also
    // covers browsers that predate SameSite.
    if (c.req.method === 'POST') {
      const origin = c.req.header('origin');
      const site = c.req.header('sec-fetch-site');
      const host = c.req.header('host') ?? new URL(c.req.url).host;
      const crossOrigin =
        origin !== undefined && origin !== 'null' && new URL(origin).host !== host;
      if (crossOrigin || site === 'cross-site') {
        return render(
          c,
          null,
          { title: 'Refused' },
          html`<h1>Refused</h1>
            <div class="alert error" role="alert">this form was posted from another site</div>`,
          403,
        );
      }
    }
    c.set(logoutPathVariable, logoutPath);
    await next();
    c.header('Content-Security-Policy', await policy());
    c.header('X-Content-Type-Options', 'nosniff');
    c.header('Referrer-Policy', 'same-origin');
    c.header('X-Frame-Options', 'DENY');
  });

  app.get('/', (c) => c.redirect('/dashboard', 302));
  app.get('/dashboard/assets/app.css', (c) =>
    c.body(css, 200, {
      'content-type': 'text/css; charset=utf-8',
      'cache-control': 'public, max-age=300',
    }),
  );
  app.get('/dashboard/assets/app.js', (c) =>
    c.body(js, 200, {
      'content-type': 'text/javascript; charset=utf-8',
      'cache-control': 'public, max-age=300',
    }),
  );

  registerAuth(app, fetchApi, options.logger, options.hostedSignIn);
  registerOrgs(app, fetchApi);
  registerProjects(app, fetchApi);
  registerEnvironments(app, fetchApi);
  registerServices(app, fetchApi);
  registerSecrets(app, fetchApi);
  registerReleases(app, fetchApi);
  registerDomains(app, fetchApi);
  registerNodes(app, fetchApi);
  registerWebhooks(app, fetchApi);
  registerNotificationChannels(app, fetchApi);
  registerRegistries(app, fetchApi);
  registerAlerts(app, fetchApi);
  registerEdge(app, fetchApi);
  registerControlBackups(app, fetchApi);
  registerDataServices(app, fetchApi);
  registerJobs(app, fetchApi);
  registerApiKeys(app, fetchApi);
  registerMembers(app, fetchApi);
  registerInvites(app, fetchApi, !options.hostedSignIn);
  registerAudit(app, fetchApi);

  // Mounted with app.route(), a sub-app's notFound is not used: a catch-all route answers
  // unknown dashboard paths with a page instead of the API's JSON 404.
  app.get('/dashboard/*', (c) =>
    render(
      c,
      null,
      { title: 'Not found' },
      html`<h1>Page not found</h1>
        <div class="alert error" role="alert">no page at ${c.req.path}</div>
        <p><a href="/dashboard">Back to projects</a></p>`,
      404,
    ),
  );
  return app;
}
