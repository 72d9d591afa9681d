/**
 * What users run is what is tested: the Caddy config the Compose stack ships must carry
 * the on-demand TLS `ask` permission exactly as the tests configure it.
 */
import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { composeEdgeBaseConfig } from '../../../core/edge/caddy-control.ts';
import { caddyOnDemandTls } from '../../../core/edge/caddy-route.ts';

const shippedFile = new URL('../../../selfhost/images/caddy/caddy.json', import.meta.url);

describe('the shipped Caddy base config (selfhost/images/caddy/caddy.json)', () => {
  it('gates on-demand certificates by the API ask endpoint, as the tests configure it', async () => {
    const shipped = JSON.parse(await readFile(shippedFile, 'utf8')) as {
      apps?: { tls?: { automation?: { on_demand?: unknown } } };
    };
    const tested = caddyOnDemandTls({ askUrl: 'http://api:3000/api/domains/ask' }) as {
      automation: { on_demand: unknown };
    };
    expect(shipped.apps?.tls?.automation?.on_demand).toStrictEqual(tested.automation.on_demand);
    expect(tested.automation.on_demand).toStrictEqual({
      permission: { module: 'http', endpoint: 'http://api:3000/api/domains/ask' },
    });
  });

  it('is the config core/edge generates (npm run edge:base-config writes it)', async () => {
    const shipped: unknown = JSON.parse(await readFile(shippedFile, 'utf8'));
    expect(shipped).toStrictEqual(composeEdgeBaseConfig());
  });
});
