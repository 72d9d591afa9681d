import { describe, expect, it } from 'vitest';
import {
  normaliseServer,
  refreshesOnDeploy,
  registryOf,
  tagOf,
} from '../../../core/registries/image-ref.ts';

describe('reading where an image comes from', () => {
  it('names the registry the way the Docker Engine does', () => {
    expect(registryOf('nginx')).toBe('docker.io');
    expect(registryOf('nginx:1.27')).toBe('docker.io');
    expect(registryOf('library/nginx:1.27')).toBe('docker.io');
    expect(registryOf('acme/web:1')).toBe('docker.io');
    expect(registryOf('registry.example.com/acme/web:1')).toBe('registry.example.com');
    expect(registryOf('Registry.Example.com/acme/web:1')).toBe('registry.example.com');
    expect(registryOf('127.0.0.1:5000/web:latest')).toBe('127.0.0.1:5000');
    expect(registryOf('localhost/web')).toBe('localhost');
    expect(registryOf('index.docker.io/library/nginx')).toBe('docker.io');
    expect(registryOf('ghcr.io/acme/web@sha256:' + 'a'.repeat(64))).toBe('ghcr.io');
  });

  it('normalises a server as typed, and refuses what is not host[:port]', () => {
    expect(normaliseServer('https://registry.example.com/')).toBe('registry.example.com');
    expect(normaliseServer('https://registry.example.com/v2/')).toBe('registry.example.com');
    expect(normaliseServer('  127.0.0.1:5000 ')).toBe('127.0.0.1:5000');
    expect(normaliseServer('registry-1.docker.io')).toBe('docker.io');
    for (const bad of [
      '',
      'a b',
      'a/b',
      'registry.example.com:0',
      'host:70000',
      '-x.example',
      'x..y',
    ])
      expect(normaliseServer(bad), bad).toBeNull();
  });

  it('reads the tag: latest when none, null when pinned by digest', () => {
    expect(tagOf('nginx')).toBe('latest');
    expect(tagOf('127.0.0.1:5000/web')).toBe('latest');
    expect(tagOf('127.0.0.1:5000/web:v2')).toBe('v2');
    expect(tagOf('web@sha256:' + 'b'.repeat(64))).toBeNull();
    expect(tagOf('web:1@sha256:' + 'b'.repeat(64))).toBeNull();
  });

  it('pulls again on each deploy only what is meant to move (Kubernetes rule)', () => {
    expect(refreshesOnDeploy('web')).toBe(true);
    expect(refreshesOnDeploy('127.0.0.1:5000/web:latest')).toBe(true);
    expect(refreshesOnDeploy('web:1.4.2')).toBe(false);
    expect(refreshesOnDeploy('web@sha256:' + 'c'.repeat(64))).toBe(false);
  });
});
