import { createReadStream, createWriteStream } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import { Readable } from 'node:stream';
import http from 'node:http';
import https from 'node:https';
import { pipeline } from 'node:stream/promises';
import { CliError, type CliConfig } from './config.ts';
import type { Page } from '../core/models.ts';
import type { DirectDownload } from '../core/data-services/backup-transfer.ts';
import { NodeBackupCodec } from '../adapters/backup/node-codec.ts';

/** A failed API call: the API's own message, and its code for callers that branch on it. */
export class ApiError extends CliError {
  readonly status: number;
  readonly code: string;
  constructor(status: number, code: string, message: string) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export interface SseEvent {
  event: string;
  data: unknown;
  id?: string;
}

const idempotent = new Set(['GET', 'HEAD']);

/** fetch's error for a connection the server closed or reset before any response byte. */
function resetBeforeResponse(e: unknown): boolean {
  const cause = (e as { cause?: { code?: string } }).cause;
  // undici: UND_ERR_SOCKET ("other side closed") or the socket's own ECONNRESET/EPIPE.
  return ['UND_ERR_SOCKET', 'ECONNRESET', 'EPIPE'].includes(cause?.code ?? '');
}

/** The CLI's view of the public API: JSON in, JSON out, errors as one line. */
export class ApiClient {
  readonly config: CliConfig;
  constructor(config: CliConfig) {
    this.config = config;
  }

  private headers(extra: Record<string, string> = {}): Record<string, string> {
    return {
      authorization: `Bearer ${this.config.token}`,
      ...(this.config.orgId ? { 'x-org-id': this.config.orgId } : {}),
      'user-agent': 'selfdevop-cli',
      ...extra,
    };
  }

  private async send(
    method: string,
    path: string,
    body?: unknown,
    accept = 'application/json',
    redirect: RequestRedirect = 'follow',
  ): Promise<Response> {
    const headers = this.headers({
      accept,
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    });
    const attempt = () =>
      fetch(this.config.url + path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        redirect,
        // Streams (live events, app logs) last as long as the reader wants them.
        signal: accept === 'application/json' ? AbortSignal.timeout(60_000) : null,
      });
    try {
      try {
        return await attempt();
      } catch (e) {
        // A Caddy in front of the API closes a few connections without an answer each time
        // its config is replaced (a new service, a custom domain; ARCHITECTURE.md, "What a
        // reload costs"). A read that got no response byte is safe to send once more; a
        // write is not, and a real outage fails the second try as well.
        if (!idempotent.has(method) || !resetBeforeResponse(e)) throw e;
        await new Promise((r) => setTimeout(r, 100));
        return await attempt();
      }
    } catch (e) {
      const cause = (e as { cause?: { code?: string; message?: string } }).cause;
      throw new CliError(
        `cannot reach the API at ${this.config.url}: ${cause?.code ?? cause?.message ?? (e as Error).message}`,
      );
    }
  }

  private async fail(res: Response): Promise<never> {
    const text = await res.text();
    try {
      const parsed = JSON.parse(text) as { error?: { code?: string; message?: string } };
      if (parsed.error?.message)
        throw new ApiError(res.status, parsed.error.code ?? 'error', parsed.error.message);
    } catch (e) {
      if (e instanceof ApiError) throw e;
    }
    throw new ApiError(
      res.status,
      'http_error',
      `the API answered ${res.status} ${res.statusText}`.trim(),
    );
  }

  // The API's replies are JSON of known shape; each command states the type it expects.
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  async call<T = any>(method: string, path: string, body?: unknown): Promise<T> {
    const res = await this.send(method, path, body);
    if (!res.ok) await this.fail(res);
    if (res.status === 204) return undefined as T;
    return (await res.json()) as T;
  }

  /** Every item of a paginated collection (bounded: 50 pages). */
  async all<T>(path: string): Promise<T[]> {
    const items: T[] = [];
    let cursor: string | null = null;
    for (let i = 0; i < 50; i++) {
      const sep = path.includes('?') ? '&' : '?';
      const page: Page<T> = await this.call(
        'GET',
        `${path}${sep}limit=200${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`,
      );
      items.push(...page.items);
      if (!page.nextCursor) break;
      cursor = page.nextCursor;
    }
    return items;
  }

  /** Newline-delimited JSON of `path`, one object at a time as it arrives, until the stream ends. */
  async *lines<T>(path: string): AsyncGenerator<T> {
    const res = await this.send('GET', path, undefined, 'application/x-ndjson');
    if (!res.ok) await this.fail(res);
    if (!res.body) return;
    const decoder = new TextDecoder();
    let buffer = '';
    for await (const chunk of res.body) {
      buffer += decoder.decode(chunk as Uint8Array, { stream: true });
      let end: number;
      while ((end = buffer.indexOf('\n')) >= 0) {
        const line = buffer.slice(0, end);
        buffer = buffer.slice(end + 1);
        if (line.trim()) yield JSON.parse(line) as T;
      }
    }
  }

  /** A download's bytes as they arrive (a backup's dump), never held whole. */
  async download(path: string): Promise<AsyncIterable<Uint8Array>> {
    const answer = await this.send('GET', path, undefined, 'application/octet-stream', 'manual');
    // The cloud answers a backup's object with a 303 to the store's short-lived URL, which
    // is fetched as it is: this API's token and org never go to the store.
    const location = answer.status === 303 ? answer.headers.get('location') : null;
    const res = location ? await fetch(location) : answer;
    if (!res.ok) {
      if (location)
        throw new CliError(
          `the object store answered ${res.status} ${res.statusText} for the download`.trim(),
        );
      return this.fail(res);
    }
    if (!res.body) return (async function* () {})();
    return res.body as unknown as AsyncIterable<Uint8Array>;
  }

  /**
   * PUTs a body as a stream (a backup object of any size, never read whole) and answers the
   * JSON reply. Not retried: the stream is spent by the first try.
   */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  async upload<T = any>(path: string, body: AsyncIterable<Uint8Array>): Promise<T> {
    const it = body[Symbol.asyncIterator]();
    const stream = new ReadableStream<Uint8Array>({
      async pull(controller) {
        const next = await it.next();
        if (next.done) controller.close();
        else controller.enqueue(next.value);
      },
    });
    const res = await fetch(this.config.url + path, {
      method: 'PUT',
      headers: this.headers({
        accept: 'application/json',
        'content-type': 'application/octet-stream',
      }),
      body: stream,
      duplex: 'half',
    } as RequestInit);
    if (!res.ok) await this.fail(res);
    return (await res.json()) as T;
  }

  /** Server-sent events of `path`, parsed, until the server closes the stream. */
  async *events(path: string): AsyncGenerator<SseEvent> {
    const res = await this.send('GET', path, undefined, 'text/event-stream');
    if (!res.ok) await this.fail(res);
    if (!res.body) return;
    const decoder = new TextDecoder();
    let buffer = '';
    for await (const chunk of res.body) {
      buffer += decoder.decode(chunk as Uint8Array, { stream: true });
      let end: number;
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const event: SseEvent = { event: 'message', data: null };
        const data: string[] = [];
        for (const line of block.split('\n')) {
          const i = line.indexOf(':');
          const field = i < 0 ? line : line.slice(0, i);
          const value = i < 0 ? '' : line.slice(i + 1).replace(/^ /, '');
          if (field === 'event') event.event = value;
          else if (field === 'data') data.push(value);
          else if (field === 'id') event.id = value;
        }
        try {
          event.data = JSON.parse(data.join('\n'));
        } catch {
          event.data = data.join('\n');
        }
        yield event;
      }
    }
  }
}

/**
 * PUTs a file to a presigned URL of the object store (a cloud import's object), streamed
 * with its exact Content-Length (the URL's signature covers it) and the headers the API
 * named; no credential of this API goes with it. Answers once the store said 2xx.
 */
export async function putToStore(
  url: string,
  headers: Record<string, string>,
  file: string,
): Promise<void> {
  const target = new URL(url);
  const request = (target.protocol === 'https:' ? https : http).request(target, {
    method: 'PUT',
    headers,
  });
  const answered = new Promise<http.IncomingMessage>((resolve, reject) => {
    request.once('response', resolve);
    request.once('error', reject);
  });
  try {
    await pipeline(createReadStream(file, { highWaterMark: 256 * 1024 }), request);
    const res = await answered;
    let body = '';
    res.setEncoding('utf8');
    for await (const chunk of res) if (body.length < 2000) body += chunk as string;
    if ((res.statusCode ?? 0) >= 300)
      throw new CliError(
        `the object store refused the upload: ${res.statusCode} ${/<Message>([^<]*)</.exec(body)?.[1] ?? body.slice(0, 200)}`.trim(),
      );
  } catch (e) {
    if (e instanceof CliError) throw e;
    throw new CliError(
      `cannot upload to the object store at ${target.host}: ${(e as Error).message}`,
    );
  }
}

/**
 * A backup's dump from the object store itself (`POST …/download-url`): fetched without
 * this API's credentials, decrypted and gunzipped as it arrives (the install's own codec),
 * written to `out` only once the stored object's SHA-256 and the GCM tag both check out: a
 * partial or tampered download never stands under the name asked for.
 */
export async function decryptFromStore(d: DirectDownload, out: string): Promise<void> {
  let res: Response;
  try {
    res = await fetch(d.url);
  } catch (e) {
    const cause = (e as { cause?: { code?: string } }).cause;
    throw new CliError(
      `cannot reach the object store for the download: ${cause?.code ?? (e as Error).message}`,
    );
  }
  if (!res.ok || !res.body)
    throw new CliError(
      `the object store answered ${res.status} ${res.statusText} for the download`.trim(),
    );
  const partial = `${out}.part`;
  const decoded = new NodeBackupCodec().decode(
    res.body as unknown as AsyncIterable<Uint8Array>,
    d.dataKey,
  );
  try {
    await pipeline(Readable.from(decoded.output), createWriteStream(partial, { mode: 0o600 }));
    const totals = decoded.totals();
    if (totals.inBytes !== d.storedBytes || totals.inSha256 !== d.sha256)
      throw new CliError(
        `the downloaded backup does not match its manifest (${totals.inBytes} bytes, SHA-256 ${totals.inSha256}; expected ${d.storedBytes} bytes, ${d.sha256})`,
      );
    await rename(partial, out);
  } catch (e) {
    await rm(partial, { force: true });
    if (e instanceof CliError) throw e;
    throw new CliError(`the download failed: ${(e as Error).message}`);
  }
}
