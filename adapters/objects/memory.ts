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
}
