/**
 * One image build on an engine through the Engine API's `POST /build`, its progress turned
 * into log lines as it arrives. Kept beside docker.ts, which owns dockerode and hands in a
 * structurally typed client.
 */
import { Readable } from 'node:stream';
import type { BuildResult, BuildSpec } from '../../core/ports.ts';
import { decodeBuildkitStatus } from './buildkit-status.ts';
import { LineSplitter } from './output-tail.ts';

/** What a build needs of a dockerode client. */
export interface BuildClient {
  buildImage(
    context: NodeJS.ReadableStream,
    options: Record<string, unknown>,
  ): Promise<NodeJS.ReadableStream>;
}

/** `buildkit` (the default: faster, cache mounts) or the `legacy` builder. */
export type Builder = 'buildkit' | 'legacy';

/** The query of `POST /build` for a spec; pure, so the options can be checked without an engine. */
export function buildOptions(spec: BuildSpec, builder: Builder): Record<string, unknown> {
  const options: Record<string, unknown> = {
    t: spec.tag,
    dockerfile: spec.dockerfile,
    buildargs: { ...spec.buildArgs },
    labels: { ...spec.labels },
    version: builder === 'buildkit' ? '2' : '1',
    // The legacy builder runs each step in a container: remove them, failed ones included.
    rm: true,
    forcerm: true,
    pull: false,
  };
  // Asked of the engine for every step. Docker 20.10's BuildKit does not apply them (its
  // steps run outside the engine's containers); the legacy builder does.
  if (spec.memoryMb) {
    options.memory = spec.memoryMb * 1024 * 1024;
    options.memswap = spec.memoryMb * 1024 * 1024;
  }
  if (spec.cpus) {
    options.cpuperiod = 100_000;
    options.cpuquota = Math.round(spec.cpus * 100_000);
  }
  return options;
}

interface BuildEvent {
  id?: string;
  aux?: unknown;
  stream?: string;
  error?: string;
  errorDetail?: { message?: string };
}

/**
 * Runs the build; every line goes to `onLine` as it comes and reading waits while a promise
 * it returned is pending, so a slow log holds the engine's output back instead of buffering
 * it here. On timeout (or `spec.signal`) the request is aborted: the engine cancels the
 * build and kills its steps.
 */
export async function runBuild(
  docker: BuildClient,
  spec: BuildSpec,
  builder: Builder,
  onLine: (line: string) => void | Promise<void>,
  maxLineLength?: number,
): Promise<BuildResult> {
  const abort = new AbortController();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    abort.abort();
  }, spec.timeoutMs);
  const cancel = () => abort.abort();
  spec.signal?.addEventListener('abort', cancel, { once: true });
  // A signal aborted before the call never fires its event: nothing is sent at all.
  if (spec.signal?.aborted) abort.abort();

  // Lines are gathered while a chunk is parsed and handed on after it, awaiting each.
  const pending: string[] = [];
  const vertexSplitters = new Map<string, LineSplitter>();
  const names = new Map<string, string>();
  const shown = new Set<string>();
  let failedStep: string | null = null;
  let error: string | null = null;
  let imageId: string | null = null;
  const streamLines = new LineSplitter((l) => pending.push(l), maxLineLength);

  const onEvent = (event: BuildEvent) => {
    if (event.error || event.errorDetail) {
      error = event.errorDetail?.message ?? event.error ?? 'the build failed';
      return;
    }
    if (event.id === 'moby.buildkit.trace' && typeof event.aux === 'string') {
      const status = decodeBuildkitStatus(event.aux);
      for (const v of status.vertexes) {
        if (v.name) names.set(v.digest, v.name);
        if (v.started && !shown.has(v.digest)) {
          shown.add(v.digest);
          pending.push(v.cached ? `CACHED ${v.name}` : v.name);
        }
        if (v.error) {
          failedStep = v.name || names.get(v.digest) || null;
          pending.push(`ERROR ${v.name}: ${v.error}`);
        }
      }
      for (const log of status.logs) {
        let splitter = vertexSplitters.get(log.vertex);
        if (!splitter) {
          splitter = new LineSplitter((l) => pending.push(l), maxLineLength);
          vertexSplitters.set(log.vertex, splitter);
        }
        splitter.write(log.msg);
      }
      return;
    }
    if (event.id === 'moby.image.id') {
      const id = (event.aux as { ID?: unknown } | undefined)?.ID;
      if (typeof id === 'string') imageId = id;
      return;
    }
    if (typeof event.stream === 'string') {
      // The legacy builder: `Step 2/3 : RUN …` then the step's output.
      const step = /^Step \d+\/\d+ : (.*)$/m.exec(event.stream);
      if (step) failedStep = step[0].trim();
      streamLines.write(event.stream);
      return;
    }
    const id = (event.aux as { ID?: unknown } | undefined)?.ID;
    if (typeof id === 'string') imageId = id;
  };

  let response: NodeJS.ReadableStream;
  try {
    response = await docker.buildImage(Readable.from(spec.context), {
      ...buildOptions(spec, builder),
      abortSignal: abort.signal,
    });
  } catch (e) {
    clearTimeout(timer);
    spec.signal?.removeEventListener('abort', cancel);
    if (abort.signal.aborted) return { imageId: null, error: 'the build was cancelled', timedOut };
    throw e;
  }
  const onAbort = () => (response as NodeJS.ReadableStream & { destroy?: () => void }).destroy?.();
  abort.signal.addEventListener('abort', onAbort, { once: true });
  let rest = '';
  const decoder = new TextDecoder();
  try {
    for await (const chunk of response as AsyncIterable<Uint8Array | string>) {
      const text =
        rest + (typeof chunk === 'string' ? chunk : decoder.decode(chunk, { stream: true }));
      const lines = text.split('\n');
      rest = lines.pop() ?? '';
      // A JSON event is small; one that never ends would be an engine bug, not a line to keep.
      if (rest.length > 16 * 1024 * 1024) rest = '';
      for (const raw of lines) {
        if (!raw.trim()) continue;
        try {
          onEvent(JSON.parse(raw) as BuildEvent);
        } catch {
          pending.push(raw);
        }
      }
      while (pending.length > 0) await onLine(pending.shift()!);
    }
  } catch (e) {
    if (!abort.signal.aborted) throw e;
  } finally {
    clearTimeout(timer);
    spec.signal?.removeEventListener('abort', cancel);
    abort.signal.removeEventListener('abort', onAbort);
  }
  streamLines.end();
  for (const s of vertexSplitters.values()) s.end();
  while (pending.length > 0) await onLine(pending.shift()!);
  if (abort.signal.aborted)
    return {
      imageId: null,
      error: timedOut ? 'the build timed out' : 'the build was cancelled',
      timedOut,
    };
  if (error !== null) {
    return {
      imageId: null,
      error: failedStep ? `${failedStep}: ${error}` : error,
      timedOut: false,
    };
  }
  if (imageId === null)
    return { imageId: null, error: 'the engine reported no image', timedOut: false };
  return { imageId, error: null, timedOut: false };
}
