/**
 * A worker's health gate and the end of its release's path: no port to probe and no route
 * to switch, so "healthy" is the container staying up with the engine's restart count
 * unchanged for `workerHealth.stableSeconds`, then (when set) its health command exiting 0
 * inside it. The release then moves to traffic_shifted with nothing switched.
 *
 * On a Swarm the command is not exec'd (a task runs on a member's engine, which selfdevop
 * does not reach): it is the task's own health check (`planCandidate`), and swarmkit
 * reports a task with one `running` only once the check passed (until then it is
 * `starting`), then replaces the task when the check fails `retries` times in a row. So the
 * task seen running and staying up without a restart is the command passing; a command that
 * keeps failing shows as a task that never runs (the start fails with Swarm's reason) or as
 * restarts, each with how the task ended (`lastFailure`: "unhealthy container", or an exit code).
 */
import { appendLog, beginStep, endStep, move, nodeTarget, viaDocker } from './context.ts';
import type { StepContext } from './context.ts';
import { sendStep } from './deps.ts';
import { StepFailed } from './errors.ts';
import { containerName, planWorkerGate } from './plan.ts';

/** Engine restarts seen during the gate after which the worker counts as crash-looping. */
export const crashLoopRestarts = 3;

export async function workerGate(c: StepContext): Promise<void> {
  const step = await beginStep(c, 'health_check');
  const name = containerName(c.release);
  const target = await nodeTarget(c);
  const gate = planWorkerGate(c.service, target.swarm === true && target.pinned !== true);
  const clock = c.deps.clock;
  const then = !gate.command
    ? ''
    : gate.commandRunBy === 'exec'
      ? `, then \`${gate.command[2]}\` must exit 0`
      : ` (its health command \`${gate.command[2]}\` is the Swarm task's health check: Swarm runs the task only once it passed, and replaces it when it keeps failing)`;
  await appendLog(
    c,
    `worker: waiting for ${name} to run ${gate.stableMs / 1000} s without a restart${then}`,
  );
  const started = clock.now().getTime();
  const deadline = started + gate.deadlineMs;
  let baseline: number | null = null;
  let stableSince: number | null = null;
  let lastRestarts = 0;
  // The engine's word on the last failed run (a Swarm task's error), for every failure below.
  let lastFailure = '';
  const why = () => (lastFailure ? `: ${lastFailure}` : '');
  // Bounded even when the clock does not move (tests' manual clock).
  const maxLooks = Math.ceil(gate.deadlineMs / Math.max(1, gate.pollMs)) + 2;
  for (let look = 0; look < maxLooks; look++) {
    const now = clock.now().getTime();
    if (now > deadline) break;
    const info = await viaDocker(() => c.deps.runtime.inspect(target, name));
    if (!info) throw new StepFailed(`worker container ${name} is gone`, false);
    if (info.lastFailure) lastFailure = info.lastFailure;
    if (info.state === 'exited' || info.state === 'dead')
      throw new StepFailed(
        `worker container ${name} ${info.state} and was not restarted${why()}`,
        false,
      );
    const restarts = info.restarts ?? 0;
    baseline ??= restarts;
    if (restarts - baseline >= crashLoopRestarts)
      throw new StepFailed(
        `worker is crash-looping: the engine restarted it ${restarts - baseline} times while it was checked${why()}`,
        false,
      );
    if (info.state !== 'running' || restarts !== lastRestarts) {
      if (restarts !== lastRestarts)
        await appendLog(c, `worker restarted (${restarts} restarts)${why()}`);
      stableSince = null;
      lastRestarts = restarts;
    } else {
      stableSince ??= now;
      if (now - stableSince >= gate.stableMs) {
        if (gate.commandRunBy === 'exec')
          await healthCommand(c, target, name, gate.command, Math.max(1, deadline - now));
        else if (gate.command)
          await appendLog(
            c,
            `health command \`${gate.command[2]}\` is the Swarm task's health check: it passed`,
          );
        await appendLog(
          c,
          `worker is healthy: up ${Math.round((now - stableSince) / 1000)} s with no restart`,
        );
        await endStep(c, step);
        await appendLog(c, 'worker: no route to switch');
        if (await move(c, 'traffic_shifted')) await sendStep(c.deps, c.release, 'traffic_shifted');
        return;
      }
    }
    await clock.sleep(gate.pollMs);
  }
  throw new StepFailed(
    `worker did not stay up ${gate.stableMs / 1000} s without a restart within ${gate.deadlineMs} ms (${lastRestarts} restarts)${why()}`,
    false,
  );
}

async function healthCommand(
  c: StepContext,
  target: Awaited<ReturnType<typeof nodeTarget>>,
  name: string,
  command: string[] | null,
  timeoutMs: number,
): Promise<void> {
  if (!command) return;
  const exec = c.deps.runtime.exec?.bind(c.deps.runtime);
  if (!exec)
    throw new StepFailed('this runtime cannot run a health command inside a container', false);
  const r = await viaDocker(() => exec(target, name, command, Math.min(timeoutMs, 30_000)));
  const tail = r.output.trim().split('\n').slice(-5).join(' | ');
  if (r.timedOut || r.exitCode !== 0)
    throw new StepFailed(
      `worker health command \`${command[2]}\` ${r.timedOut ? 'timed out' : `exited with code ${r.exitCode ?? 'unknown'}`}${tail ? `: ${tail}` : ''}`,
      false,
    );
  await appendLog(c, `health command \`${command[2]}\` exited 0`);
}
