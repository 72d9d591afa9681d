/**
 * What an image reference says about where it comes from, read the way the Docker Engine
 * reads it: the first path component is a registry only when it looks like a host (a dot,
 * a port, or `localhost`); anything else is on Docker Hub.
 */

/** Docker Hub's names for itself, all meaning the same registry. */
const dockerHubAliases = new Set(['docker.io', 'index.docker.io', 'registry-1.docker.io']);

/** The registry an image is pulled from, normalised: `docker.io` for Docker Hub. */
export function registryOf(image: string): string {
  const slash = image.indexOf('/');
  if (slash < 0) return 'docker.io';
  const first = image.slice(0, slash);
  const isHost = first.includes('.') || first.includes(':') || first === 'localhost';
  if (!isHost) return 'docker.io';
  return normaliseServer(first) ?? first;
}

/**
 * A registry server as the user typed it (`https://registry.example.com/`, `Docker.io`,
 * `127.0.0.1:5000`), as `registryOf` names it; null when it is not a host[:port].
 */
export function normaliseServer(input: string): string | null {
  const bare = input
    .trim()
    .toLowerCase()
    .replace(/^https?:\/\//, '')
    .replace(/\/+(v[12]\/?)?$/, '');
  if (!/^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*(:[0-9]{1,5})?$/.test(bare))
    return null;
  const port = bare.includes(':') ? Number(bare.slice(bare.lastIndexOf(':') + 1)) : null;
  if (port !== null && (port < 1 || port > 65535)) return null;
  return dockerHubAliases.has(bare) ? 'docker.io' : bare;
}

/** The tag of a reference (`latest` when it names none), or null when it is pinned by digest. */
export function tagOf(image: string): string | null {
  if (image.includes('@')) return null;
  const name = image.slice(image.lastIndexOf('/') + 1);
  const colon = name.indexOf(':');
  return colon < 0 ? 'latest' : name.slice(colon + 1);
}

/**
 * Whether a deploy must ask the registry again rather than use the node's copy: Kubernetes'
 * rule, so it surprises no one. `:latest` (or no tag) is meant to move, so it is pulled on
 * every deploy; any other tag is taken as fixed and pulled only when the node lacks it; a
 * digest never moves. A team that moves other tags deploys by digest or by `:latest`.
 */
export const refreshesOnDeploy = (image: string): boolean => tagOf(image) === 'latest';
