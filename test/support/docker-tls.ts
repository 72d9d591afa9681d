import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** PEM material of one test PKI: the node's CA, server and client pairs, and an impostor CA's. */
export interface TestPki {
  ca: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
  /** Another CA, with a client certificate it signed: trusted by nobody here. */
  otherCa: string;
  otherClientCert: string;
  otherClientKey: string;
}

/**
 * Makes a throwaway PKI with the openssl CLI, as a tenant following Docker's "protect the
 * daemon socket" guide would: a CA, a server certificate for 127.0.0.1, a client
 * certificate for the control plane (extendedKeyUsage clientAuth). Valid for one day.
 */
export async function makeTestPki(): Promise<TestPki> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'sdo-pki-'));
  const f = (name: string) => path.join(dir, name);
  const openssl = (...args: string[]) => run('openssl', args, { cwd: dir, timeout: 30_000 });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  try {
    for (const ca of ['ca', 'other-ca']) {
      await openssl(
        'req',
        '-x509',
        ...ec,
        '-keyout',
        f(`${ca}.key`),
        '-out',
        f(`${ca}.pem`),
        '-days',
        '1',
        '-subj',
        `/CN=selfdevop test ${ca}`,
      );
    }
    await writeFile(
      f('server.ext'),
      'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n',
    );
    await writeFile(f('client.ext'), 'extendedKeyUsage=clientAuth\n');
    const issue = async (name: string, ca: string, ext: string) => {
      await openssl(
        'req',
        ...ec,
        '-keyout',
        f(`${name}.key`),
        '-out',
        f(`${name}.csr`),
        '-subj',
        `/CN=${name}`,
      );
      await openssl(
        'x509',
        '-req',
        '-in',
        f(`${name}.csr`),
        '-CA',
        f(`${ca}.pem`),
        '-CAkey',
        f(`${ca}.key`),
        '-CAcreateserial',
        '-out',
        f(`${name}.pem`),
        '-days',
        '1',
        '-extfile',
        f(ext),
      );
    };
    await issue('server', 'ca', 'server.ext');
    await issue('client', 'ca', 'client.ext');
    await issue('other-client', 'other-ca', 'client.ext');
    const read = (name: string) => readFile(f(name), 'utf8');
    return {
      ca: await read('ca.pem'),
      serverCert: await read('server.pem'),
      serverKey: await read('server.key'),
      clientCert: await read('client.pem'),
      clientKey: await read('client.key'),
      otherCa: await read('other-ca.pem'),
      otherClientCert: await read('other-client.pem'),
      otherClientKey: await read('other-client.key'),
    };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

export interface DockerTlsProxy {
  /** `tcp://127.0.0.1:<port>`, for a node's dockerHost. */
  dockerHost: string;
  port: number;
  /** Connections served to a verified client, and handshakes refused (with the reason). */
  accepted: number;
  refused: string[];
  stop(): Promise<void>;
}

/**
 * A remote Docker Engine as `dockerd --tlsverify` presents one, in front of the machine's
 * socket: TLS on a loopback port, a client certificate signed by `pki.ca` required, then
 * the bytes piped both ways (hijacked attach streams included).
 */
export async function startDockerTlsProxy(
  pki: TestPki,
  socketPath = '/var/run/docker.sock',
): Promise<DockerTlsProxy> {
  const sockets = new Set<net.Socket>();
  const proxy: Omit<DockerTlsProxy, 'dockerHost' | 'port' | 'stop'> = { accepted: 0, refused: [] };
  const server = tls.createServer(
    {
      key: pki.serverKey,
      cert: pki.serverCert,
      ca: pki.ca,
      requestCert: true,
      rejectUnauthorized: true,
    },
    (client) => {
      proxy.accepted++;
      const engine = net.connect(socketPath);
      sockets.add(client).add(engine);
      const close = () => {
        client.destroy();
        engine.destroy();
      };
      client.on('error', close).on('close', close);
      engine.on('error', close).on('close', close);
      client.pipe(engine).pipe(client);
    },
  );
  server.on('tlsClientError', (e) => proxy.refused.push(e.message));
  server.on('connection', (s: net.Socket) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as net.AddressInfo).port;
  return Object.assign(proxy, {
    dockerHost: `tcp://127.0.0.1:${port}`,
    port,
    async stop() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  });
}
