import type { Hono } from 'hono';
import { ApiFailure, orgCookie, type ApiFetch } from '../api.ts';
import { action } from '../handler.ts';
import { field, flash, safeNext, setSessionCookie } from '../session.ts';

/**
 * Orgs: switching the org a browser acts in (the switcher in every page's header) and
 * creating one (the form on the projects page for a user in no org, or in another).
 */
export function registerOrgs(app: Hono, fetchApi: ApiFetch): void {
  app.post(
    '/dashboard/org',
    action(fetchApi, '/dashboard', async (c, s, form) => {
      const orgId = field(form, 'orgId');
      if (!orgId || !s.shell.orgs?.some((o) => o.id === orgId))
        throw new ApiFailure(404, 'org_not_found', `org ${orgId ?? ''} not found`);
      setSessionCookie(c, orgCookie, orgId);
      return '/dashboard';
    }),
  );
  app.post(
    '/dashboard/orgs',
    action(fetchApi, '/dashboard', async (c, s, form) => {
      const org = await s.api.call<{ id: string; name: string }>(
        'POST',
        '/api/orgs',
        { name: field(form, 'name') ?? '' },
        { org: null },
      );
      setSessionCookie(c, orgCookie, org.id);
      flash(c, 'notice', `Created ${org.name}; you are now working in it.`);
      // Back to the page that sent a user in no org here, if one did.
      return safeNext(field(form, 'next'));
    }),
  );
}
