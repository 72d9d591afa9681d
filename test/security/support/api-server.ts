/**
 * One self-hosted API in a process of its own, for attacks that need several API processes
 * on one database (shared counters, caches that must not outlive a revocation). Reads its
 * settings as JSON from SDO_API_SETTINGS and prints `listening <port>` when up.
 */
import { serveApi } from '../../../functions/selfhost/server.ts';
import { fromSelfhostSettings, type SelfhostTestSettings } from '../../support/selfhost-config.ts';

const settings = JSON.parse(process.env.SDO_API_SETTINGS ?? 'null') as SelfhostTestSettings | null;
if (!settings) {
  process.stderr.write('SDO_API_SETTINGS must hold the API settings as JSON\n');
  process.exit(2);
}
const system = await fromSelfhostSettings({
  ...settings,
  logDestination: { write: () => {} },
});
const served = await serveApi(system.api, { host: '127.0.0.1', port: 0, trustProxy: true });
process.stdout.write(`listening ${served.port}\n`);
process.on('SIGTERM', () => {
  void served
    .close()
    .then(() => system.close())
    .finally(() => process.exit(0));
});
