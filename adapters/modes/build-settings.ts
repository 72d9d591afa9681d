/**
 * The variables that limit builds from git, the same in both modes; `config.ts` and
 * `cloud-config.ts` spread them into their schemas (they stay the only readers of the
 * environment).
 */
import * as z from 'zod';
import type { BuildLimits } from '../../core/releases/deps.ts';

export const buildSettings = {
  /**
   * A build running longer is cancelled and its release fails. At most 50 minutes: the step
   * holds its queue message, which the self-hosted queue gives up on after an hour.
   */
  BUILD_TIMEOUT_SECONDS: z.coerce
    .number()
    .int()
    .min(10)
    .max(
      3_000,
      'must be at most 3000 (a build step holds its queue message, which expires after an hour)',
    )
    .default(900),
  /** Memory asked of the engine for a build's steps (the legacy builder applies it; see ARCHITECTURE.md). */
  BUILD_MEMORY_MB: z.coerce.number().int().min(64).max(262_144).default(2048),
  /** CPUs asked of the engine for a build's steps. */
  BUILD_CPUS: z.coerce.number().min(0.1).max(256).default(2),
  /** `buildkit` (default) or `legacy`: which of the engine's builders builds images. */
  BUILD_BUILDER: z.enum(['buildkit', 'legacy']).default('buildkit'),
  /**
   * The largest build context (the files of the commit under the sub-directory, after
   * `.dockerignore`) a build takes, in MB; a larger one fails the release naming this cap.
   */
  BUILD_MAX_SOURCE_MB: z.coerce.number().int().min(1).max(1_000_000).default(500),
  /** The base image of zero-config Node.js builds (Node and npm); selfhost/build-images.sh makes it. */
  BUILD_NODE_IMAGE: z.string().min(1).max(300).default('selfdevop/node-build:24'),
  /**
   * Built images (`<service>:<sha>`) the hourly prune keeps per service environment beyond
   * the serving, in-flight and rollback-target releases' ones: the newest N commits that served.
   */
  BUILD_KEEP_IMAGES: z.coerce.number().int().min(1).max(1000).default(5),
  /** Each engine's build cache is trimmed to this many MB by the hourly prune. */
  BUILD_CACHE_MAX_MB: z.coerce.number().int().min(0).max(10_000_000).default(10_240),
  /**
   * Builds one node's engine runs at once, across orgs; more wait (the release log says for
   * whom) and are served fairly across orgs.
   */
  BUILD_CONCURRENCY_PER_NODE: z.coerce.number().int().min(1).max(64).default(2),
  /** The git binary the worker (and the API, to resolve refs early) runs. */
  GIT_BIN: z.string().min(1).default('git'),
};

/** The build limits the release engine applies, from the validated variables. */
export const buildLimitsOf = (c: {
  BUILD_TIMEOUT_SECONDS: number;
  BUILD_MEMORY_MB: number;
  BUILD_CPUS: number;
  BUILD_MAX_SOURCE_MB: number;
  BUILD_NODE_IMAGE: string;
  BUILD_KEEP_IMAGES: number;
  BUILD_CACHE_MAX_MB: number;
  BUILD_CONCURRENCY_PER_NODE: number;
}): BuildLimits => ({
  timeoutMs: c.BUILD_TIMEOUT_SECONDS * 1000,
  memoryMb: c.BUILD_MEMORY_MB,
  cpus: c.BUILD_CPUS,
  maxSourceBytes: c.BUILD_MAX_SOURCE_MB * 1024 * 1024,
  nodeImage: c.BUILD_NODE_IMAGE,
  keepImages: c.BUILD_KEEP_IMAGES,
  cacheMaxBytes: c.BUILD_CACHE_MAX_MB * 1024 * 1024,
  perNode: c.BUILD_CONCURRENCY_PER_NODE,
});
