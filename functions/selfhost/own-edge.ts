/**
 * The edge `npm start` brings when no CADDY_ADMIN_URL is given: its own Caddy, configured
 * from the same core code the tests use, with its state under DATA_DIR/caddy.
 */
import path from 'node:path';
import type { Config } from '../../adapters/modes/config.ts';
import {
  CaddyListenFailed,
  CaddyStateInUse,
  NoCaddyAvailable,
  startOwnCaddy,
} from '../../adapters/edge/caddy-process.ts';
import { DockerRuntime } from '../../adapters/runtime/docker.ts';
import { caddyBaseConfig } from '../../core/edge/caddy-route.ts';
import { StartupError } from './start-errors.ts';

export interface OwnEdge {
  adminUrl: string;
  /** Where this process reaches Caddy's HTTPS listener to read certificates back. */
  tlsAddress: string;
  /** Lines for the start-up banner. */
  banner: string[];
  stop(): Promise<void>;
}

const localDocker = { dockerHost: 'unix:///var/run/docker.sock' };
/** Caddy's official image, for machines that can pull but did not build selfdevop's. */
const pullableImage = 'caddy:2';

const loopback = (host: string) =>
  host === '' || host === '0.0.0.0' || host === '::' || host === '[::]' ? '127.0.0.1' : host;
const splitListen = (listen: string) => {
  const i = listen.lastIndexOf(':');
  return { host: listen.slice(0, i), port: listen.slice(i + 1) };
};

/**
 * Starts selfdevop's own Caddy. When there is none to run, the API still starts and the
 * banner says what to install: a new user trying the API and dashboard first should not be
 * stopped by the one part only deploys need, and a deploy then fails naming the edge.
 */
export async function startOwnEdge(
  config: Config,
  dataDir: string,
  apiPort: number,
): Promise<OwnEdge> {
  const adminUrl = `http://${config.CADDY_ADMIN_LISTEN}`;
  const https = splitListen(config.EDGE_HTTPS_LISTEN);
  const tlsAddress = `${loopback(https.host)}:${https.port}`;
  const apiHost = loopback(config.HOST);
  const askUrl = `http://${apiHost.includes(':') ? `[${apiHost}]` : apiHost}:${apiPort}/api/domains/ask`;
  const runtime = new DockerRuntime({ connectTimeoutMs: 2_000 });
  try {
    const caddy = await startOwnCaddy({
      adminListen: config.CADDY_ADMIN_LISTEN,
      listens: [config.EDGE_HTTP_LISTEN, config.EDGE_HTTPS_LISTEN],
      stateDir: path.join(dataDir, 'caddy'),
      ...(config.CADDY_BIN ? { binary: config.CADDY_BIN } : {}),
      searchPath: config.PATH,
      container: {
        runtime,
        target: localDocker,
        images:
          config.CADDY_IMAGE === pullableImage
            ? [pullableImage]
            : [config.CADDY_IMAGE, pullableImage],
      },
      config: (storageRoot) =>
        caddyBaseConfig({
          adminListen: config.CADDY_ADMIN_LISTEN,
          httpListen: config.EDGE_HTTP_LISTEN,
          httpsListen: config.EDGE_HTTPS_LISTEN,
          serverName: config.CADDY_SERVER,
          storageRoot,
          onDemandTls: { askUrl },
        }),
    });
    return {
      adminUrl,
      tlsAddress,
      banner: [
        `  edge:      Caddy on ${config.EDGE_HTTP_LISTEN} (HTTP) and ${config.EDGE_HTTPS_LISTEN} (HTTPS), ${caddy.runs}`,
      ],
      stop: async () => {
        await caddy.stop();
        runtime.close();
      },
    };
  } catch (e) {
    runtime.close();
    if (e instanceof CaddyListenFailed) throw listenError(config, e);
    if (e instanceof CaddyStateInUse) {
      throw new StartupError(
        'the edge (Caddy) did not start',
        e.message,
        'Stop the other selfdevop, or set DATA_DIR to another directory for this one.',
      );
    }
    if (!(e instanceof NoCaddyAvailable))
      throw new StartupError(
        'the edge (Caddy) did not start',
        e instanceof Error ? e.message : String(e),
      );
    return {
      adminUrl,
      tlsAddress,
      banner: [
        '  edge:      none, so deploys fail until there is one. Install either:',
        '               - Caddy 2 (https://caddyserver.com/docs/install), on PATH or named by CADDY_BIN, or',
        `               - Docker Engine with the image ${config.CADDY_IMAGE} (selfhost/build-images.sh) or access to pull ${pullableImage};`,
        '             or run Caddy yourself and set CADDY_ADMIN_URL. Then start selfdevop again.',
        `             (${e.tried.join('; ')})`,
      ],
      stop: async () => undefined,
    };
  }
}

function listenError(config: Config, e: CaddyListenFailed): StartupError {
  const what = `the edge (Caddy) could not listen on ${e.address}`;
  const denied = e.message.includes('needs root');
  if (e.address === config.CADDY_ADMIN_LISTEN) {
    return new StartupError(
      what,
      e.message,
      'Set CADDY_ADMIN_LISTEN to a free loopback port (e.g. CADDY_ADMIN_LISTEN=127.0.0.1:2020), or CADDY_ADMIN_URL to use the Caddy already listening there.',
    );
  }
  const variable =
    e.address === config.EDGE_HTTPS_LISTEN ? 'EDGE_HTTPS_LISTEN' : 'EDGE_HTTP_LISTEN';
  const example = variable === 'EDGE_HTTPS_LISTEN' ? '127.0.0.1:8443' : '127.0.0.1:8080';
  return new StartupError(
    what,
    e.message,
    denied
      ? 'Run selfdevop as root, or set EDGE_HTTP_LISTEN and EDGE_HTTPS_LISTEN to ports above 1024 (e.g. EDGE_HTTP_LISTEN=127.0.0.1:8080 EDGE_HTTPS_LISTEN=127.0.0.1:8443).'
      : `Set ${variable} to a free address (e.g. ${variable}=${example}), or stop what listens there.`,
  );
}
