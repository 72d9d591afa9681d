import { isCoreError } from '../errors.ts';
import type {
  BuildResult,
  BuildSlotAnswer,
  BuildSpec,
  DockerTarget,
  SourceCheckout,
  SourceTree,
} from '../ports.ts';
import { openGitRemote, pinLearnedHostKeys } from '../builds/credentials.ts';
import { contextFilter, parseDockerIgnore } from '../builds/dockerignore.ts';
import { GitPathNotFound, SourceTooLarge } from '../builds/errors.ts';
import { buildLabels, buildSecretContext, buildTag } from '../builds/git-source.ts';
import {
  generatedDockerfileName,
  nodeConfigFiles,
  nodeLockfiles,
  planNodeBuild,
  type NodeBuildInput,
  type NodeLockfile,
} from '../builds/node-plan.ts';
import { appendLog, viaDocker, type StepContext } from './context.ts';
import { defaultBuildLimits, sendStep, type BuildLimits } from './deps.ts';
import { StepFailed } from './errors.ts';
import { imageFromAnotherNode } from './image-move.ts';
import { CommandOutputLog } from './output-log.ts';

/** A git failure as the release records it: the repository's answer fails for good, a missing `git` too. */
async function viaGit<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    const message = e instanceof Error ? e.message : String(e);
    throw new StepFailed(message, false, e);
  }
}

/**
 * The image of a git release on its node: the image already tagged `<service>:<sha>` there
 * (a redeploy or rollback of that sha never rebuilds), else that image moved from another
 * node an earlier release of the sha ran on, else a build of the commit from the
 * repository's Dockerfile, its output streamed into the release log line by line. The
 * source is fetched by this process and streamed to the node's engine as the build
 * context, so the build itself runs on the node and nothing of it is held here.
 * Resolves to the image id, or null when the build waits for a slot on its node (the step
 * was re-queued); a failed, timed-out or cancelled build fails the step.
 */
export async function buildFromGit(c: StepContext, target: DockerTarget): Promise<string | null> {
  const git = c.service.git;
  if (!git) throw new StepFailed('the service has no git source any more', false);
  const source = c.deps.source;
  if (!source) throw new StepFailed('this worker cannot read git repositories', false);
  let remote;
  try {
    remote = await openGitRemote(c.deps.vault, c.service);
  } catch (e) {
    const transient = isCoreError(e) && e.kind === 'unavailable';
    throw new StepFailed(
      `the service's git credential could not be opened: ${e instanceof Error ? e.message : String(e)}`,
      transient,
      e,
    );
  }
  // Never expected in output (tokens travel in a header, keys in a file), but masked if seen.
  const credential = remote.credential;
  if (credential) {
    const value = 'token' in credential ? credential.token : credential.privateKey;
    if (!c.secretValues.includes(value)) c.secretValues.push(value);
  }
  let sha = c.release.gitSha;
  if (!sha) {
    const ref = c.release.gitRef ?? git.ref;
    await appendLog(c, `resolving ${ref} of ${git.url}`);
    const resolved = await viaGit(() => source.resolveRef(remote, ref));
    await pinHostKeys(c, remote);
    sha = resolved;
    const image = buildTag(c.service, resolved);
    await c.deps.store.withOrg(c.release.orgId, (repos) =>
      repos.releases.update(c.release.id, {
        gitSha: resolved,
        image,
        updatedAt: c.deps.clock.now().toISOString(),
      }),
    );
    c.release = { ...c.release, gitSha: resolved, image };
    await appendLog(c, `${ref} is ${resolved}`);
  }
  const tag = buildTag(c.service, sha);
  const runtime = c.deps.runtime;
  const present = runtime.localImage
    ? await viaDocker(() => runtime.localImage!(target, tag))
    : null;
  if (present) {
    await appendLog(c, `image ${tag} is already on node ${c.node.name}: reused, nothing built`);
    return present;
  }
  // A rollback or redeploy of an earlier sha: its image moves from a node that still has it.
  const moved = await imageFromAnotherNode(c, tag, sha, { node: c.node, target });
  if (moved) return moved;
  if (!runtime.build) throw new StepFailed('this worker cannot build images', false);
  // Cancelled while it looked for the image elsewhere: no slot is taken, nothing is built.
  c.signal?.throwIfAborted();
  const limits = { ...defaultBuildLimits, ...c.deps.config.build };
  // At most `perNode` builds on one engine at once: a build that gets no slot waits for its
  // turn with the step re-queued (it holds no worker meanwhile), saying for whom it waits.
  const slots = c.deps.store.buildSlots;
  if (slots) {
    const answer = await slots.take(
      { releaseId: c.release.id, orgId: c.release.orgId, engine: c.node.dockerHost },
      limits.perNode,
      Math.ceil(limits.timeoutMs / 1000) + slotLeaseSpareSeconds,
    );
    if (!answer.granted) {
      await waitForSlot(c, answer, limits.perNode);
      return null;
    }
  }
  let freed: Promise<void> | undefined;
  const free = () => (freed ??= slots?.free(c.release.id, c.release.orgId) ?? Promise.resolve());
  try {
    return await buildWithSlot(c, target, { git, source, remote, sha, tag, limits, free });
  } finally {
    await free();
  }
}

/** A first contact's host key becomes the service's pin, and the log says which key. */
async function pinHostKeys(
  c: StepContext,
  remote: Awaited<ReturnType<typeof openGitRemote>>,
): Promise<void> {
  const pinned = await pinLearnedHostKeys(c.deps, c.release.orgId, c.service.id, remote);
  if (pinned.length > 0)
    await appendLog(
      c,
      `pinned the git server's SSH host key on first use: ${pinned.join(', ')} (a different key will fail later fetches)`,
    );
}

/** A build's lease outlives its timeout by this much before another build may take its slot. */
const slotLeaseSpareSeconds = 120;
/** How soon a build waiting for a slot asks again. */
const slotPollSeconds = 2;

/** Logs whom a build waits for (when that changed) and asks again in a moment. */
async function waitForSlot(
  c: StepContext,
  answer: Extract<BuildSlotAnswer, { granted: false }>,
  limit: number,
): Promise<void> {
  // Another org's release is not named: its id is that org's business.
  const whom = answer.running.map((r) =>
    r.orgId === c.release.orgId ? `release ${r.releaseId}` : "another org's build",
  );
  const line = `waiting for a build slot on node ${c.node.name}: ${answer.running.length} of ${limit} in use${whom.length > 0 ? ` (${whom.join(', ')})` : ''}, ${answer.ahead} waiting ahead`;
  if (line !== c.seen) await appendLog(c, line);
  await sendStep(c.deps, c.release, c.release.status, {
    hop: c.hop + 1,
    delaySeconds: slotPollSeconds,
    seen: line,
  });
}

/** What a build from git reads its source with: the service's git settings, the commit. */
interface SourceJob {
  git: NonNullable<StepContext['service']['git']>;
  source: NonNullable<StepContext['deps']['source']>;
  remote: Awaited<ReturnType<typeof openGitRemote>>;
  sha: string;
  limits: BuildLimits;
}

async function buildWithSlot(
  c: StepContext,
  target: DockerTarget,
  x: SourceJob & {
    tag: string;
    /** Lets the build's slot go (once the engine's build has ended). */
    free: () => Promise<void>;
  },
): Promise<string> {
  const { git, source, remote, sha, tag, limits } = x;
  const runtime = c.deps.runtime;
  // Build-time secrets, opened for this build only: served through the engine's BuildKit
  // session, masked in the log should a step print one anyway.
  const secrets: Record<string, string> = {};
  for (const [id, sealed] of Object.entries(c.service.sealedBuildSecrets ?? {})) {
    try {
      secrets[id] = await c.deps.vault.open(
        sealed,
        buildSecretContext(c.release.orgId, c.service.id, id),
      );
    } catch (e) {
      const transient = isCoreError(e) && e.kind === 'unavailable';
      throw new StepFailed(
        `build secret ${id} could not be opened: ${e instanceof Error ? e.message : String(e)}`,
        transient,
        e,
      );
    }
    if (!c.secretValues.includes(secrets[id]!)) c.secretValues.push(secrets[id]!);
  }
  const context = git.subdir || '.';
  const { dockerfile: wanted } = git;
  const base: Omit<BuildSpec, 'context' | 'files' | 'dockerfile'> = {
    tag,
    buildArgs: git.buildArgs,
    labels: buildLabels(c.release, sha),
    memoryMb: limits.memoryMb,
    cpus: limits.cpus,
    timeoutMs: limits.timeoutMs,
    ...(Object.keys(secrets).length > 0 ? { secrets } : {}),
  };
  const where = {
    key: `selfdevop:${c.service.id}:${git.subdir}`,
    owner: c.service.id,
    name: git.subdir,
  };
  // The line is written while git runs: nothing waits on it but the lines after it.
  const fetching = appendLog(c, `fetching ${git.url} at ${sha}`);
  const fetched = fetchSource(c, { git, source, remote, sha, limits }, fetching);
  // Awaited below; a step that fails before then must not leave them unhandled.
  fetching.catch(() => undefined);
  fetched.catch(() => undefined);
  const output = new CommandOutputLog(c, 'stdout');
  // A source that writes checkouts sends its context as files, which the engine asks for
  // only once its frontend has started: the build request goes out now, so the engine's
  // own start-up (its session, its solver, the frontend: 50–250 ms) runs while git fetches.
  // It names the repository's Dockerfile; a commit without one (zero-config) drops it and
  // builds again naming the Dockerfile written for it.
  let early = source.checksOut
    ? startEarly(
        c,
        target,
        { ...base, dockerfile: wanted },
        contextOf(fetched, wanted, limits, where),
        output,
      )
    : null;
  let f: FetchedSource;
  try {
    f = await fetched;
  } catch (e) {
    await early?.drop();
    throw e;
  }
  let closed: Promise<void> | null = null;
  const close = () => (closed ??= f.tree.close());
  let parts: SourceParts | null = null;
  let result: BuildResult;
  try {
    if (early && f.dockerfile !== wanted) {
      await early.drop();
      early = null;
    }
    await appendLog(c, [
      ...f.lines,
      `building ${tag} on node ${c.node.name} from ${context}/${f.dockerfile} (timeout ${Math.round(limits.timeoutMs / 1000)} s, memory ${limits.memoryMb ?? 'unlimited'} MB, cpus ${limits.cpus ?? 'unlimited'})${Object.keys(secrets).length > 0 ? `, build secrets: ${Object.keys(secrets).sort().join(', ')}` : ''}`,
    ]);
    let running: Promise<BuildResult>;
    if (early) {
      parts = early.parts;
      running = early.go();
    } else {
      const made = contextOf(Promise.resolve(f), f.dockerfile, limits, where);
      parts = made;
      running = viaDocker(() =>
        runtime.build!(
          target,
          {
            ...base,
            dockerfile: f.dockerfile,
            context: made.context,
            ...(f.tree.checkout ? { files: made.files } : {}),
            ...(c.signal ? { signal: c.signal } : {}),
          },
          (line) => output.push(line),
        ),
      );
    }
    try {
      result = await running;
    } catch (e) {
      await output.close();
      throw e;
    }
  } catch (e) {
    // Not let into the log (a line before it failed), or failed: it is ended either way.
    await early?.drop();
    await close();
    const streamError = parts?.streamError() ?? null;
    if (streamError !== null) throw new StepFailed(messageOf(streamError), false, streamError);
    throw e;
  }
  // The engine's build has ended: its slot, the tree (its temporary directory, the kept
  // checkout's lock) and the last lines are let go together, none waiting for another.
  const freeing = x.free();
  // Awaited below, and again by the caller; a failure before then must not go unhandled.
  freeing.catch(() => undefined);
  void close().catch(() => undefined);
  const streamError = parts!.streamError();
  if (streamError !== null) {
    await Promise.all([output.close(), closed]);
    throw new StepFailed(messageOf(streamError), false, streamError);
  }
  if (result.timedOut || result.error !== null || result.imageId === null) {
    await Promise.all([output.close(), closed]);
    if (result.timedOut)
      throw new StepFailed(
        `build timed out after ${Math.round(limits.timeoutMs / 1000)} s and was cancelled`,
        false,
      );
    throw new StepFailed(`build failed: ${result.error ?? 'the engine named no image'}`, false);
  }
  const lines: string[] = [];
  if (result.transfer) {
    const t = result.transfer;
    const w = parts!.written();
    const disk = w
      ? `; checkout ${w.kept ? `kept, updated in place: ${w.written} of ${w.entries} written, ${w.removed} removed` : `written afresh: ${w.entries} entries`} in ${w.ms} ms`
      : '';
    lines.push(
      `build context over the BuildKit session: ${t.requested} of ${t.entries} entries sent (${Math.ceil(t.bytes / 1024)} KiB), the rest unchanged since the last build${disk}`,
    );
  }
  lines.push(`built ${tag} (${result.imageId})`);
  // After the build's own output, in the same transaction.
  await Promise.all([closed, output.close(lines), freeing]);
  return result.imageId;
}

/** A fetched commit, read: what the build sends, and what the log says of it first. */
interface FetchedSource {
  tree: SourceTree;
  /** The repository's Dockerfile, or the name of the one written for a zero-config build. */
  dockerfile: string;
  exclude: (path: string) => boolean;
  /** Files added to the context (path → text): a generated Dockerfile. */
  extra: Record<string, string>;
  /** The zero-config plan, if any, and the context's size. */
  lines: string[];
}

/**
 * Fetches the commit and reads what the build needs of it: `.dockerignore`, whether the
 * Dockerfile is there (else a zero-config plan), the context's size against the cap. The
 * tree is closed if anything fails. `logged` is the fetch's own log line, written meanwhile.
 */
async function fetchSource(
  c: StepContext,
  x: SourceJob,
  logged: Promise<void>,
): Promise<FetchedSource> {
  const { git, source, remote, sha, limits } = x;
  const tree = await viaGit(() => source.fetch(remote, sha, git.subdir, c.signal));
  try {
    await logged;
    await pinHostKeys(c, remote);
    const where = git.subdir ? `${git.subdir}/` : '';
    const extra: Record<string, string> = {};
    const lines: string[] = [];
    let dockerfile = git.dockerfile;
    // Started together: none waits for another (a source that lists the tree answers the
    // Dockerfile's presence, an absent .dockerignore and the weighing from one listing).
    const ignoreRead = viaGit(() => tree.read('.dockerignore'));
    // What the docker CLI does before it sends a context: `.dockerignore` leaves files out
    // (the Dockerfile and .dockerignore itself are always sent). Weighed before anything is
    // sent: a repository over the cap fails at once, by its listed sizes, without its
    // content being read. The weighing needs only .dockerignore, so it runs while the
    // Dockerfile is read (and a zero-config plan made): one git process fewer in a row.
    const weighing = ignoreRead.then(async (text) => {
      const exclude = contextFilter(parseDockerIgnore(text), [git.dockerfile, '.dockerignore']);
      return { ignoreText: text, exclude, weight: await viaGit(() => tree.size(exclude)) };
    });
    // Awaited below; a step that fails before then must not leave it unhandled.
    weighing.catch(() => undefined);
    const hasDockerfile = tree.has
      ? await viaGit(() => tree.has!(git.dockerfile))
      : (await viaGit(() => tree.read(git.dockerfile))) !== null;
    if (!hasDockerfile) {
      // No Dockerfile: a Node.js app (package.json and a lockfile) gets one written for it.
      const packageJson = await viaGit(() => tree.read('package.json'));
      if (packageJson === null)
        throw new StepFailed(
          `${new GitPathNotFound('Dockerfile', `${where}${git.dockerfile}`, sha).message}, and there is no ${where}package.json for a zero-config Node.js build`,
          false,
        );
      const lockfiles: NodeLockfile[] = [];
      const files: NonNullable<NodeBuildInput['files']> = {};
      const [lockTexts, configTexts] = await Promise.all([
        Promise.all(nodeLockfiles.map((l) => viaGit(() => tree.read(l)))),
        Promise.all(nodeConfigFiles.map((f) => viaGit(() => tree.read(f)))),
      ]);
      nodeLockfiles.forEach((l, i) => {
        const text = lockTexts[i];
        if (text === null || text === undefined) return;
        lockfiles.push(l);
        // Its head tells yarn classic from berry.
        if (l === 'yarn.lock') files[l] = text.slice(0, 4096);
      });
      nodeConfigFiles.forEach((f, i) => {
        const text = configTexts[i];
        if (text !== null && text !== undefined) files[f] = text;
      });
      let plan;
      try {
        plan = planNodeBuild({
          subdir: git.subdir,
          dockerfile: git.dockerfile,
          packageJson,
          lockfiles,
          files,
          baseImage: limits.nodeImage,
        });
      } catch (e) {
        throw new StepFailed(e instanceof Error ? e.message : String(e), false, e);
      }
      dockerfile = generatedDockerfileName;
      extra[dockerfile] = plan.dockerfile;
      lines.push(
        plan.summary,
        ...plan.dockerfile
          .split('\n')
          .filter((l) => l && !l.startsWith('#'))
          .map((l) => `  ${l}`),
      );
    }
    const { ignoreText, exclude, weight } = await weighing;
    if (weight.bytes > limits.maxSourceBytes)
      throw new StepFailed(
        new SourceTooLarge(weight.bytes, limits.maxSourceBytes, true).message,
        false,
      );
    lines.push(
      `build context: ${weight.files} files, ${Math.ceil(weight.bytes / 1024)} KiB${ignoreText !== null ? ' (after .dockerignore)' : ''}`,
    );
    return { tree, dockerfile, exclude, extra, lines };
  } catch (e) {
    await tree.close();
    throw e;
  }
}

/** A build's context from a source being fetched: as a tar and as files, made only when read. */
interface SourceParts {
  context: AsyncIterable<Uint8Array>;
  files: NonNullable<BuildSpec['files']>;
  /** A failure while the context was made or sent (over the cap, git dying), else null. */
  streamError(): unknown;
  /** The checkout the engine was served, when it was. */
  written(): (SourceCheckout & { ms: number }) | null;
}

/**
 * The context of the build of `fetched` that names `dockerfile`: the tar (for the legacy
 * builder and engines without sessions) and the checkout (BuildKit's file sync), each made
 * only if the runtime reads it, once the source is fetched. The checkout is kept per
 * service and sub-directory, the same key as the session's, so the engine's copy of the
 * last build of this source is what the next one is compared with (never another
 * service's, whatever the org: the copy decides which files are not sent), and an
 * unchanged file is not even rewritten. A source that turned out to need another
 * Dockerfile (zero-config) gives neither: that build is dropped.
 */
function contextOf(
  fetched: Promise<FetchedSource>,
  dockerfile: string,
  limits: BuildLimits,
  where: { key: string; owner: string; name: string },
): SourceParts {
  let streamError: unknown = null;
  let written: (SourceCheckout & { ms: number }) | null = null;
  const fitting = async () => {
    const f = await fetched;
    if (f.dockerfile !== dockerfile)
      throw new Error(`the build names ${dockerfile}, the source needs ${f.dockerfile}`);
    return f;
  };
  async function* context(): AsyncGenerator<Uint8Array> {
    const f = await fitting();
    try {
      yield* f.tree.archive({
        exclude: f.exclude,
        extra: f.extra,
        maxBytes: limits.maxSourceBytes,
      });
    } catch (e) {
      // A context that fails while the engine reads it (over the cap, git archive dying)
      // reaches the engine as a cut tar; its own error is the one worth reporting.
      streamError = e;
      throw e;
    }
  }
  return {
    context: context(),
    files: {
      key: where.key,
      open: async () => {
        const f = await fitting();
        if (!f.tree.checkout) throw new Error('this source writes no checkouts');
        const t0 = Date.now();
        try {
          const made = await f.tree.checkout({
            exclude: f.exclude,
            extra: f.extra,
            maxBytes: limits.maxSourceBytes,
            keep: { owner: where.owner, name: where.name },
          });
          written = { ...made, ms: Date.now() - t0 };
          return made.dir;
        } catch (e) {
          streamError = e;
          throw e;
        }
      },
    },
    streamError: () => streamError,
    written: () => written,
  };
}

/**
 * A build sent before its source is fetched. Its output waits until `go` (the lines before
 * it written, so the log reads in order); `drop` cancels it, its output unwritten, and
 * waits for its end.
 */
interface EarlyBuild {
  parts: SourceParts;
  go(): Promise<BuildResult>;
  drop(): Promise<void>;
}

function startEarly(
  c: StepContext,
  target: DockerTarget,
  spec: Omit<BuildSpec, 'context' | 'files' | 'signal'>,
  parts: SourceParts,
  output: CommandOutputLog,
): EarlyBuild {
  const abort = new AbortController();
  const signal = c.signal ? AbortSignal.any([c.signal, abort.signal]) : abort.signal;
  let open!: (keep: boolean) => void;
  const gate = new Promise<boolean>((resolve) => (open = resolve));
  const result = viaDocker(() =>
    c.deps.runtime.build!(
      target,
      { ...spec, context: parts.context, files: parts.files, signal },
      async (line) => {
        if (await gate) return output.push(line);
      },
    ),
  );
  result.catch(() => undefined);
  return {
    parts,
    go: () => {
      open(true);
      return result;
    },
    drop: async () => {
      open(false);
      abort.abort();
      await result.catch(() => undefined);
    },
  };
}

const messageOf = (e: unknown) =>
  `the build context could not be sent: ${e instanceof Error ? e.message : String(e)}`;
