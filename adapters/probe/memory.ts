import type { HealthProbe, HealthProbeResult } from '../../core/ports.ts';

/** A scripted answer: a result, or a function of the probe's timeout (e.g. to move a ManualClock). */
export type ScriptedProbe =
  HealthProbeResult | ((url: string, timeoutMs: number) => HealthProbeResult);

/**
 * Health probes answered from a script, for engine tests. `script(url, …answers)` answers
 * that url in order, repeating the last answer; urls without a script get `setDefault`'s
 * answers (refused until set). Every call is recorded in `calls`.
 */
export class MemoryHealthProbe implements HealthProbe {
  static readonly healthy: HealthProbeResult = { ok: true, status: 200, error: null };
  static readonly refused: HealthProbeResult = {
    ok: false,
    status: null,
    error: 'connect ECONNREFUSED',
  };
  static status(status: number): HealthProbeResult {
    return { ok: status >= 200 && status < 400, status, error: null };
  }
  /** A probe that waits its whole timeout; pass `advance` (ManualClock.advance) to let time pass. */
  static hang(advance?: (ms: number) => void): ScriptedProbe {
    return (_url, timeoutMs) => {
      advance?.(timeoutMs);
      return { ok: false, status: null, error: `timed out after ${timeoutMs} ms` };
    };
  }

  readonly calls: { url: string; timeoutMs: number }[] = [];
  private readonly scripts = new Map<string, { answers: ScriptedProbe[]; next: number }>();
  private fallback: { answers: ScriptedProbe[]; next: number } = {
    answers: [MemoryHealthProbe.refused],
    next: 0,
  };

  script(url: string, ...answers: ScriptedProbe[]): this {
    if (answers.length === 0) throw new Error('script needs at least one answer');
    this.scripts.set(url, { answers, next: 0 });
    return this;
  }

  setDefault(...answers: ScriptedProbe[]): this {
    if (answers.length === 0) throw new Error('setDefault needs at least one answer');
    this.fallback = { answers, next: 0 };
    return this;
  }

  async check(url: string, timeoutMs: number): Promise<HealthProbeResult> {
    this.calls.push({ url, timeoutMs });
    const s = this.scripts.get(url) ?? this.fallback;
    const answer = s.answers[Math.min(s.next, s.answers.length - 1)]!;
    s.next++;
    return typeof answer === 'function' ? answer(url, timeoutMs) : { ...answer };
  }
}
