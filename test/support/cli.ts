/**
 * The real CLI process, spawned as CI runs it: credentials in the environment, no config
 * file (XDG_CONFIG_HOME points at a folder that does not exist), stdin piped in or closed.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';

export const cliMain = join(import.meta.dirname, '..', '..', 'cli', 'main.ts');

export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `selfdevop ARGS` in `cwd`; killed after `timeoutMs` (60 s), its exit code then -1. */
export function runCli(
  args: string[],
  options: { cwd: string; env: Record<string, string>; stdin?: string; timeoutMs?: number },
): Promise<CliRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [cliMain, ...args], {
      cwd: options.cwd,
      env: { ...process.env, XDG_CONFIG_HOME: join(options.cwd, 'no-config'), ...options.env },
      stdio: [options.stdin === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout!.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    child.stderr!.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    const killer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 60_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(killer);
      resolve({ code: code ?? -1, stdout, stderr });
    });
    if (options.stdin !== undefined) child.stdin?.end(options.stdin);
  });
}
