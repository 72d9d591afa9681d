import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

/** Where the CLI finds the API and its credential. */
export interface CliConfig {
  url: string;
  token: string;
  /** Sent as X-Org-Id, for a session that belongs to several orgs. */
  orgId?: string;
}

/** `$XDG_CONFIG_HOME/selfdevop/config.json`, else `~/.config/selfdevop/config.json`. */
/** The CLI's environment: SELFDEVOP_URL, SELFDEVOP_TOKEN, SELFDEVOP_CONFIG, HOME. Read only here. */
export const processEnv = (): NodeJS.ProcessEnv => process.env;

export function configPath(env: NodeJS.ProcessEnv = process.env): string {
  const base = env.XDG_CONFIG_HOME || path.join(env.HOME || os.homedir(), '.config');
  return path.join(base, 'selfdevop', 'config.json');
}

export class CliError extends Error {
  readonly exitCode: number;
  constructor(message: string, exitCode = 1) {
    super(message);
    this.exitCode = exitCode;
  }
}

async function readStored(file: string): Promise<Partial<CliConfig>> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return {};
    throw new CliError(`cannot read ${file}: ${(e as Error).message}`);
  }
  try {
    return JSON.parse(text) as Partial<CliConfig>;
  } catch {
    throw new CliError(`${file} is not valid JSON: run selfdevop login again`);
  }
}

/**
 * The stored config with SELFDEVOP_URL / SELFDEVOP_TOKEN / SELFDEVOP_ORG on top, so CI
 * needs no file at all.
 */
export async function loadConfig(env: NodeJS.ProcessEnv = process.env): Promise<CliConfig> {
  const stored = await readStored(configPath(env));
  const url = env.SELFDEVOP_URL || stored.url;
  const token = env.SELFDEVOP_TOKEN || stored.token;
  const orgId = env.SELFDEVOP_ORG || stored.orgId;
  if (!url || !token) {
    throw new CliError(
      'not logged in: run selfdevop login (or set SELFDEVOP_URL and SELFDEVOP_TOKEN)',
    );
  }
  return { url: url.replace(/\/+$/, ''), token, ...(orgId ? { orgId } : {}) };
}

/** Writes the config readable by its owner only: it holds an API key. */
export async function saveConfig(
  config: CliConfig,
  env: NodeJS.ProcessEnv = process.env,
): Promise<string> {
  const file = configPath(env);
  await mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  await writeFile(file, JSON.stringify(config, null, 2) + '\n', { mode: 0o600 });
  // writeFile's mode applies only when it creates the file; an older file keeps its mode.
  await chmod(file, 0o600);
  return file;
}
