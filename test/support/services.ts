import net from 'node:net';

/**
 * Real components the integration suites need, and how to tell whether they are up.
 * Locally a suite may skip when one is missing, loudly; under CI (CI=true) a missing
 * component fails the run, so a green CI always means the suites really ran.
 */
export const services = {
  postgres: {
    host: '127.0.0.1',
    port: Number(process.env.PGPORT ?? 5432),
    fix: 'start PostgreSQL (TESTING.md)',
  },
  docker: { socket: '/var/run/docker.sock', fix: 'run ../shared/ci/setup-machine.sh docker' },
  caddy: { fix: 'run ../shared/ci/setup-machine.sh caddy (Caddy 2.11 at /usr/local/bin/caddy)' },
  sshd: { fix: 'apt-get install -y openssh-server (sshd at /usr/sbin/sshd; .ci/run does it)' },
  registry: {
    fix: "apt-get install -y docker-registry (Distribution's registry at /usr/bin/docker-registry; .ci/run does it)",
  },
  prometheus: {
    fix: 'apt-get install -y --no-install-recommends prometheus prometheus-alertmanager (.ci/run does it)',
  },
} as const;

export type ServiceName = keyof typeof services;

/** Distribution's image registry, from Debian's docker-registry package. */
export const registryBin = process.env.REGISTRY_BIN ?? '/usr/bin/docker-registry';

export const isCi = process.env.CI === 'true' || process.env.CI === '1';

export function canConnect(host: string, port: number, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

export function canConnectUnix(path: string, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ path });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

export async function isAvailable(name: ServiceName): Promise<boolean> {
  switch (name) {
    case 'postgres':
      return canConnect(services.postgres.host, services.postgres.port);
    case 'docker':
      return canConnectUnix(services.docker.socket);
    case 'caddy': {
      const { existsSync } = await import('node:fs');
      return existsSync(process.env.CADDY_BIN ?? '/usr/local/bin/caddy');
    }
    case 'sshd': {
      const { existsSync } = await import('node:fs');
      return existsSync(process.env.SSHD_BIN ?? '/usr/sbin/sshd');
    }
    case 'registry': {
      const { existsSync } = await import('node:fs');
      return existsSync(registryBin);
    }
    case 'prometheus': {
      const { existsSync } = await import('node:fs');
      return ['/usr/bin/prometheus', '/usr/bin/promtool', '/usr/bin/prometheus-alertmanager'].every(
        (f) => existsSync(f),
      );
    }
  }
}

/** Throws when the service is missing: for suites that cannot mean anything without it. */
export async function requireService(name: ServiceName): Promise<void> {
  if (!(await isAvailable(name))) {
    throw new Error(`${name} is not available: ${services[name].fix}`);
  }
}

/**
 * For `describe.skipIf(!(await available('docker')))`: true when the service is there.
 * Missing under CI throws (CI must never skip); missing locally prints a loud warning.
 */
export async function available(name: ServiceName): Promise<boolean> {
  if (await isAvailable(name)) return true;
  if (isCi) throw new Error(`CI must not skip: ${name} is not available: ${services[name].fix}`);
  console.warn(
    `\n*** SKIPPING ${name} suites: ${name} is not available (${services[name].fix}) ***\n`,
  );
  return false;
}
