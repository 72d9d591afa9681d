/**
 * Custom domains: the certificate Caddy serves for a hostname, read with a TLS handshake
 * (SNI = hostname) on Caddy's HTTPS listener. Under on-demand TLS the handshake itself makes
 * Caddy obtain the certificate when the control API's `ask` allows it. Chain trust is not
 * checked here (the CA may be private); the name, the dates and a real issuer are.
 */
import tls from 'node:tls';
import { Unavailable } from '../../core/errors.ts';
import type { EdgeCertificate } from '../../core/ports.ts';

/** @param address host:port of Caddy's HTTPS listener, e.g. `127.0.0.1:443`. */
export function readEdgeCertificate(
  address: string,
  hostname: string,
  timeoutMs: number,
): Promise<EdgeCertificate> {
  const i = address.lastIndexOf(':');
  const host = address.slice(0, i).replace(/^\[(.*)\]$/, '$1');
  const port = Number(address.slice(i + 1));
  const missing = (detail: string): EdgeCertificate => ({
    status: 'missing',
    issuer: null,
    notAfter: null,
    detail,
  });
  return new Promise<EdgeCertificate>((resolve, reject) => {
    const socket = tls.connect({
      host,
      port,
      servername: hostname,
      rejectUnauthorized: false,
      ALPNProtocols: ['http/1.1'],
    });
    const done = (result: EdgeCertificate | Error) => {
      socket.destroy();
      if (result instanceof Error) reject(result);
      else resolve(result);
    };
    socket.setTimeout(timeoutMs, () =>
      done(missing(`TLS handshake for ${hostname} got no certificate within ${timeoutMs} ms`)),
    );
    socket.once('secureConnect', () => {
      const cert = socket.getPeerCertificate();
      const names = (cert.subjectaltname ?? '').split(/,\s*/);
      const issuer = [cert.issuer?.CN, cert.issuer?.O].filter(Boolean).join(', ') || null;
      const notAfter = cert.valid_to ? new Date(cert.valid_to).toISOString() : null;
      if (!names.includes(`DNS:${hostname}`))
        return done(
          missing(
            `the edge serves a certificate for ${cert.subjectaltname ?? 'another name'}, not ${hostname}`,
          ),
        );
      if (notAfter !== null && Date.parse(notAfter) <= Date.now())
        return done(missing(`the certificate for ${hostname} expired at ${notAfter}`));
      // Caddy's internal CA (self-signed fallback) is not a publicly trusted certificate.
      if (issuer === null || /Caddy Local Authority/i.test(issuer))
        return done(
          missing(
            `the certificate for ${hostname} is from ${issuer ?? 'no issuer'}, not the ACME CA`,
          ),
        );
      done({ status: 'active', issuer, notAfter, detail: null });
    });
    socket.once('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'ECONNREFUSED' || e.code === 'EHOSTUNREACH' || e.code === 'ETIMEDOUT') {
        const error = new Unavailable('caddy', `${address}: ${e.message}`);
        error.cause = e;
        return done(error);
      }
      const alert = /alert ([a-z ]+)/i.exec(e.message)?.[0] ?? e.code ?? e.message;
      done(
        missing(
          `the edge has no certificate for ${hostname} (TLS ${alert}): ask refused it or the CA has not issued it yet`,
        ),
      );
    });
  });
}
