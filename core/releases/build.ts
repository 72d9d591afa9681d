import { isCoreError } from '../errors.ts';
import type { BuildSlotAnswer, DockerTarget, SourceCheckout } from '../ports.ts';
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
  try {
    return await buildWithSlot(c, target, { git, source, remote, sha, tag, limits });
  } finally {
    await slots?.free(c.release.id, c.release.orgId);
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

async function buildWithSlot(
  c: StepContext,
  target: DockerTarget,
  x: {
    git: NonNullable<StepContext['service']['git']>;
    source: NonNullable<StepContext['deps']['source']>;
    remote: Awaited<ReturnType<typeof openGitRemote>>;
    sha: string;
    tag: string;
    limits: BuildLimits;
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
  await appendLog(c, `fetching ${git.url} at ${sha}`);
  const tree = await viaGit(() => source.fetch(remote, sha, git.subdir, c.signal));
  await pinHostKeys(c, remote);
  let archive: AsyncIterable<Uint8Array>;
  let filterOf: ((path: string) => boolean) | undefined;
  let extraFiles: Record<string, string> = {};
  let dockerfile = git.dockerfile;
  try {
    const where = git.subdir ? `${git.subdir}/` : '';
    const extra: Record<string, string> = {};
    // Each read is a git process of its own, and none waits for another: started together.
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
    if ((await viaGit(() => tree.read(git.dockerfile))) === null) {
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
      await appendLog(c, plan.summary);
      for (const line of plan.dockerfile.split('\n').filter((l) => l && !l.startsWith('#')))
        await appendLog(c, `  ${line}`);
    }
    const { ignoreText, exclude, weight } = await weighing;
    if (weight.bytes > limits.maxSourceBytes)
      throw new StepFailed(
        new SourceTooLarge(weight.bytes, limits.maxSourceBytes, true).message,
        false,
      );
    await appendLog(
      c,
      `build context: ${weight.files} files, ${Math.ceil(weight.bytes / 1024)} KiB${ignoreText !== null ? ' (after .dockerignore)' : ''}`,
    );
    archive = tree.archive({ exclude, extra, maxBytes: limits.maxSourceBytes });
    filterOf = exclude;
    extraFiles = extra;
  } catch (e) {
    await tree.close();
    throw e;
  }
  // A context that fails while the engine reads it (over the cap, git archive dying) reaches
  // the engine as a cut tar; its own error is the one worth reporting.
  let streamError: unknown = null;
  // The same context as files, for a BuildKit engine (file sync over the session): written
  // only if the engine takes it, and keyed per service and sub-directory, so the engine's
  // copy of the last build of this source is what the next one is compared with (never
  // another service's, whatever the org: the copy decides which files are not sent).
  // The checkout itself is kept by the source under the same key, updated in place, so
  // an unchanged file is not even rewritten.
  const checkout = tree.checkout?.bind(tree);
  let written: (SourceCheckout & { ms: number }) | null = null;
  const files = checkout
    ? {
        key: `selfdevop:${c.service.id}:${git.subdir}`,
        open: async () => {
          const t0 = Date.now();
          try {
            const made = await checkout({
              exclude: filterOf,
              extra: extraFiles,
              maxBytes: limits.maxSourceBytes,
              keep: { owner: c.service.id, name: git.subdir },
            });
            written = { ...made, ms: Date.now() - t0 };
            return made.dir;
          } catch (e) {
            streamError = e;
            throw e;
          }
        },
      }
    : undefined;
  const output = new CommandOutputLog(c, 'stdout');
  let result;
  try {
    await appendLog(
      c,
      `building ${tag} on node ${c.node.name} from ${context}/${dockerfile} (timeout ${Math.round(limits.timeoutMs / 1000)} s, memory ${limits.memoryMb ?? 'unlimited'} MB, cpus ${limits.cpus ?? 'unlimited'})${Object.keys(secrets).length > 0 ? `, build secrets: ${Object.keys(secrets).sort().join(', ')}` : ''}`,
    );
    try {
      result = await viaDocker(() =>
        runtime.build!(
          target,
          {
            tag,
            context: watched(archive, (e) => (streamError = e)),
            ...(files ? { files } : {}),
            dockerfile,
            buildArgs: git.buildArgs,
            labels: buildLabels(c.release, sha),
            memoryMb: limits.memoryMb,
            cpus: limits.cpus,
            timeoutMs: limits.timeoutMs,
            ...(c.signal ? { signal: c.signal } : {}),
            ...(Object.keys(secrets).length > 0 ? { secrets } : {}),
          },
          (line) => output.push(line),
        ),
      );
    } finally {
      await output.close();
    }
  } catch (e) {
    if (streamError !== null) throw new StepFailed(messageOf(streamError), false, streamError);
    throw e;
  } finally {
    await tree.close();
  }
  if (streamError !== null) throw new StepFailed(messageOf(streamError), false, streamError);
  if (result.timedOut)
    throw new StepFailed(
      `build timed out after ${Math.round(limits.timeoutMs / 1000)} s and was cancelled`,
      false,
    );
  if (result.error !== null || result.imageId === null)
    throw new StepFailed(`build failed: ${result.error ?? 'the engine named no image'}`, false);
  if (result.transfer) {
    const t = result.transfer;
    const w = written as (SourceCheckout & { ms: number }) | null;
    const disk = w
      ? `; checkout ${w.kept ? `kept, updated in place: ${w.written} of ${w.entries} written, ${w.removed} removed` : `written afresh: ${w.entries} entries`} in ${w.ms} ms`
      : '';
    await appendLog(
      c,
      `build context over the BuildKit session: ${t.requested} of ${t.entries} entries sent (${Math.ceil(t.bytes / 1024)} KiB), the rest unchanged since the last build${disk}`,
    );
  }
  await appendLog(c, `built ${tag} (${result.imageId})`);
  return result.imageId;
}

const messageOf = (e: unknown) =>
  `the build context could not be sent: ${e instanceof Error ? e.message : String(e)}`;

/** The same stream, its failure noted before it is passed on. */
async function* watched(
  stream: AsyncIterable<Uint8Array>,
  onError: (e: unknown) => void,
): AsyncGenerator<Uint8Array> {
  try {
    yield* stream;
  } catch (e) {
    onError(e);
    throw e;
  }
}
