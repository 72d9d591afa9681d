import { ApiClient } from '../client.ts';
import { parse, readSecret, type Command } from '../command.ts';
import { CliError, saveConfig } from '../config.ts';

export const login: Command = {
  name: 'login',
  summary: 'Store the API URL and an API key',
  help: `Usage: selfdevop login --url URL [--token KEY] [--org ORG_ID]

Checks the key against the API, then stores URL and key in
$XDG_CONFIG_HOME/selfdevop/config.json (or ~/.config/selfdevop/config.json), mode 0600.
Without --token the key is read from stdin (typed without echo at a terminal), so it
stays out of shell history. In CI, skip login: set SELFDEVOP_URL and SELFDEVOP_TOKEN.

Create a key in the dashboard (API keys) or with POST /api/orgs/{orgId}/api-keys.

Example:
  echo "$SELFDEVOP_KEY" | selfdevop login --url https://deploy.example.com`,
  async run(ctx) {
    const { values } = parse(ctx.args, {
      url: { type: 'string' },
      token: { type: 'string' },
      org: { type: 'string' },
    });
    const url = (values.url ?? ctx.env.SELFDEVOP_URL)?.replace(/\/+$/, '');
    if (!url)
      throw new CliError(
        'missing --url: the address of the selfdevop API, e.g. https://deploy.example.com',
        2,
      );
    if (!/^https?:\/\/[^\s]+$/.test(url))
      throw new CliError(`--url must be an http(s) URL, got ${url}`, 2);
    const token = (values.token ?? (await readSecret(ctx, 'API key: '))).trim();
    if (!token) throw new CliError('no API key given: pass --token or pipe it on stdin', 2);
    const api = new ApiClient({ url, token, ...(values.org ? { orgId: values.org } : {}) });
    const me = await api.call<{ actorType: string; orgId: string | null; role: string | null }>(
      'GET',
      '/api/me',
    );
    const file = await saveConfig(
      { url, token, ...(values.org ? { orgId: values.org } : {}) },
      ctx.env,
    );
    ctx.o.out(
      `logged in to ${url} as ${me.actorType === 'api_key' ? 'an API key' : 'a user'} (org ${me.orgId ?? '-'}, role ${me.role ?? '-'}); saved ${file}`,
    );
    return 0;
  },
};
