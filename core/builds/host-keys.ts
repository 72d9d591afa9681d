/**
 * The SSH host keys a service's git server must present (OpenSSH known_hosts lines):
 * given by a person, or pinned from the first successful contact (trust on first use),
 * then enforced on every fetch. Pure: parsing, the SHA256 fingerprints OpenSSH prints, and
 * the error a changed key fails with.
 */
import { sha256 } from '@noble/hashes/sha2.js';
import * as z from 'zod';
import { CoreError } from '../errors.ts';

/** Key types OpenSSH servers present (certificates are refused: a CA is not a pin). */
const keyTypes = new Set([
  'ssh-ed25519',
  'ssh-rsa',
  'ecdsa-sha2-nistp256',
  'ecdsa-sha2-nistp384',
  'ecdsa-sha2-nistp521',
  'sk-ssh-ed25519@openssh.com',
  'sk-ecdsa-sha2-nistp256@openssh.com',
]);

/** One pinned key: the hosts it stands for, its type and its SHA256 fingerprint. */
export interface HostKey {
  hosts: string;
  type: string;
  /** `SHA256:<base64 without padding>`, as `ssh-keygen -lf` and ssh's warnings print it. */
  fingerprint: string;
}

/** The fingerprint OpenSSH prints for a base64 key blob. */
export function hostKeyFingerprint(blobBase64: string): string {
  const binary = atob(blobBase64);
  const bytes = Uint8Array.from(binary, (ch) => ch.charCodeAt(0));
  let b64 = '';
  const digest = sha256(bytes);
  for (const b of digest) b64 += String.fromCharCode(b);
  return `SHA256:${btoa(b64).replace(/=+$/, '')}`;
}

/** Reads one known_hosts line; a reason string when it is not one selfdevop pins. */
function readLine(line: string): HostKey | string {
  const parts = line.trim().split(/\s+/);
  if (parts[0]?.startsWith('@'))
    return `${parts[0]} lines are not host keys (pin the server's own key)`;
  if (parts.length < 3) return 'must be "<host> <key type> <base64 key>"';
  const [hosts, type, blob] = parts as [string, string, string];
  if (!/^[A-Za-z0-9.:[\],*?|=+/_-]+$/.test(hosts))
    return `host "${hosts.slice(0, 80)}" is not valid`;
  if (!keyTypes.has(type)) return `key type "${type.slice(0, 60)}" is not an SSH host key type`;
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(blob) || blob.length % 4 !== 0) return 'the key is not base64';
  let fingerprint: string;
  try {
    // The blob names its own type first: a line whose two disagree is not a key.
    const binary = atob(blob);
    const len =
      (binary.charCodeAt(0) << 24) |
      (binary.charCodeAt(1) << 16) |
      (binary.charCodeAt(2) << 8) |
      binary.charCodeAt(3);
    if (binary.slice(4, 4 + len) !== type) return `the key is not a ${type} key`;
    fingerprint = hostKeyFingerprint(blob);
  } catch {
    return 'the key is not base64';
  }
  return { hosts, type, fingerprint };
}

/** The lines of a known_hosts text that carry keys (blank lines and comments skipped). */
const keyLines = (text: string): string[] =>
  text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));

/** The keys of a known_hosts text selfdevop stored (already validated). */
export function hostKeys(knownHosts: string | null | undefined): HostKey[] {
  if (!knownHosts) return [];
  return keyLines(knownHosts)
    .map(readLine)
    .filter((k): k is HostKey => typeof k !== 'string');
}

/** The known_hosts text as stored: key lines only, one per line, in the order given. */
export const normalizeKnownHosts = (text: string): string => keyLines(text).join('\n');

/** `git.knownHosts` in the API: OpenSSH known_hosts lines (`ssh-keyscan` prints them). */
export const knownHostsInput = z
  .string()
  .max(16 * 1024)
  .superRefine((text, ctx) => {
    const lines = keyLines(text);
    if (lines.length === 0)
      ctx.addIssue({
        code: 'custom',
        message:
          'must hold at least one "<host> <key type> <base64 key>" line (null forgets the pin)',
      });
    if (lines.length > 20) ctx.addIssue({ code: 'custom', message: 'at most 20 host keys' });
    lines.forEach((line, i) => {
      const read = readLine(line);
      if (typeof read === 'string')
        ctx.addIssue({ code: 'custom', message: `line ${i + 1}: ${read}` });
    });
  })
  .transform(normalizeKnownHosts);

/**
 * The git server presented a host key other than the pinned one(s): someone is in the
 * middle, or the server's key was rotated. Either way nothing is fetched; a person who
 * knows the rotation is real replaces `git.knownHosts` (or sets it to null to pin anew).
 */
export class GitHostKeyChanged extends CoreError {
  constructor(host: string, pinned: string[], presented: string | null) {
    super(
      'invalid',
      'git_host_key_changed',
      `the SSH host key of ${host} changed: pinned ${pinned.join(', ') || '(none)'}, the server presented ${presented ?? 'a key no pinned line names for this host'}; nothing was fetched. If the server's key was rotated, set the service's git.knownHosts to its new key (or null to pin the next one seen)`,
      { field: 'git.knownHosts', host, pinned, presented },
    );
  }
}
