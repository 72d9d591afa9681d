import http from 'node:http';
import https from 'node:https';
import type { HttpSender } from '../../core/ports.ts';

/** Response bodies are read only this far: a receiver's answer is never needed in full. */
const maxResponseBytes = 64 * 1024;

/**
 * Outbound POSTs with node:http(s): no redirects followed (a webhook that redirects is
 * misconfigured, and following would defeat the private-address check), a hard timeout.
 */
export class NodeHttpSender implements HttpSender {
  post(url: string, body: string, headers: Record<string, string>, timeoutMs: number) {
    return new Promise<{ status: number | null; error: string | null }>((resolve) => {
      let target: URL;
      try {
        target = new URL(url);
      } catch {
        resolve({ status: null, error: `invalid URL ${url}` });
        return;
      }
      const client = target.protocol === 'https:' ? https : http;
      const req = client.request(
        target,
        { method: 'POST', headers: { ...headers, 'content-length': Buffer.byteLength(body) }, timeout: timeoutMs, agent: false },
        (res) => {
          let read = 0;
          res.on('data', (chunk: Buffer) => {
            read += chunk.length;
            if (read > maxResponseBytes) res.destroy();
          });
          res.on('close', () => resolve({ status: res.statusCode ?? null, error: null }));
          res.on('error', () => resolve({ status: res.statusCode ?? null, error: null }));
        },
      );
      req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
      req.on('error', (e) => resolve({ status: null, error: e.message }));
      req.end(body);
    });
  }
}
