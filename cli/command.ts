import { parseArgs, type ParseArgsConfig } from 'node:util';
import { ApiClient } from './client.ts';
import { CliError, loadConfig } from './config.ts';
import type { Output } from './output.ts';

/** What a command gets: its arguments after the command name, and where to read and write. */
export interface CommandContext {
  args: string[];
  o: Output;
  env: NodeJS.ProcessEnv;
  stdin: NodeJS.ReadableStream & { isTTY?: boolean };
}

export interface Command {
  name: string;
  summary: string;
  /** Full help: usage line, options, an example. */
  help: string;
  run(ctx: CommandContext): Promise<number>;
}

type Options = NonNullable<ParseArgsConfig['options']>;

/** util.parseArgs with --help built in; a bad flag is a usage error (exit 2). */
export function parse<T extends Options>(args: string[], options: T) {
  try {
    return parseArgs({
      args,
      options: { ...options, help: { type: 'boolean', short: 'h' } },
      allowPositionals: true,
      strict: true,
    });
  } catch (e) {
    throw new CliError(`${(e as Error).message.split('\n')[0]} (see --help)`, 2);
  }
}

export async function client(env: NodeJS.ProcessEnv): Promise<ApiClient> {
  return new ApiClient(await loadConfig(env));
}

/** All of stdin, without the one trailing newline `echo` adds. */
export async function readStdin(stdin: NodeJS.ReadableStream): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of stdin) chunks.push(typeof c === 'string' ? Buffer.from(c) : (c as Buffer));
  return Buffer.concat(chunks)
    .toString('utf8')
    .replace(/\r?\n$/, '');
}

/**
 * A secret typed at a terminal, not echoed; or all of stdin when it is a pipe.
 */
export async function readSecret(ctx: CommandContext, prompt: string): Promise<string> {
  const stdin = ctx.stdin as NodeJS.ReadStream;
  if (!stdin.isTTY) return readStdin(stdin);
  process.stderr.write(prompt);
  stdin.setRawMode(true);
  stdin.resume();
  stdin.setEncoding('utf8');
  let value = '';
  try {
    await new Promise<void>((resolve, reject) => {
      const onData = (s: string) => {
        for (const ch of s) {
          if (ch === '\r' || ch === '\n') {
            stdin.off('data', onData);
            return resolve();
          }
          if (ch === '\u0003') {
            stdin.off('data', onData);
            return reject(new CliError('cancelled', 130));
          }
          if (ch === '\u007f') value = value.slice(0, -1);
          else value += ch;
        }
      };
      stdin.on('data', onData);
    });
  } finally {
    stdin.setRawMode(false);
    stdin.pause();
    process.stderr.write('\n');
  }
  return value;
}
