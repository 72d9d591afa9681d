import { setTimeout as delay } from 'node:timers/promises';
import type { Clock } from '../../core/ports.ts';

export class SystemClock implements Clock {
  now(): Date {
    return new Date();
  }

  async sleep(ms: number, signal?: AbortSignal): Promise<void> {
    await delay(ms, undefined, signal ? { signal } : undefined);
  }
}
