import type { ObjectStore } from '../../core/ports.ts';
import { assertObjectKey, assertObjectPrefix, bodyBytes, compareKeys } from './object-key.ts';

/** Objects in a Map, for tests; validates keys exactly as the real stores do. */
export class MemoryObjectStore implements ObjectStore {
  private readonly objects = new Map<string, Uint8Array>();

  async put(
    key: string,
    body: Uint8Array | string,
    _options?: { contentType?: string },
  ): Promise<void> {
    assertObjectKey(key);
    // Copied, so a caller reusing its buffer cannot change what was stored.
    this.objects.set(key, bodyBytes(body));
  }

  async get(key: string): Promise<Uint8Array | null> {
    assertObjectKey(key);
    const body = this.objects.get(key);
    return body ? Uint8Array.from(body) : null;
  }

  async list(prefix: string): Promise<string[]> {
    assertObjectPrefix(prefix);
    return [...this.objects.keys()].filter((key) => key.startsWith(prefix)).sort(compareKeys);
  }

  async delete(key: string): Promise<void> {
    assertObjectKey(key);
    this.objects.delete(key);
  }

  async putStream(key: string, body: AsyncIterable<Uint8Array>): Promise<{ bytes: number }> {
    assertObjectKey(key);
    // Collected before storing, so a source that fails leaves nothing at the key.
    const chunks: Uint8Array[] = [];
    let bytes = 0;
    for await (const chunk of body) {
      chunks.push(Uint8Array.from(chunk));
      bytes += chunk.byteLength;
    }
    const all = new Uint8Array(bytes);
    let at = 0;
    for (const c of chunks) {
      all.set(c, at);
      at += c.byteLength;
    }
    this.objects.set(key, all);
    return { bytes };
  }

  async getStream(key: string): Promise<AsyncIterable<Uint8Array> | null> {
    const body = await this.get(key);
    if (!body) return null;
    return (async function* () {
      for (let at = 0; at < body.byteLength; at += 64 * 1024) yield body.slice(at, at + 64 * 1024);
    })();
  }
}
