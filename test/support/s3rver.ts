import { mkdtemp, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';

/** What the tests use of s3rver (it ships no types). */
interface S3rverLike {
  run(): Promise<AddressInfo>;
  close(): Promise<void>;
}
type S3rverConstructor = new (options: Record<string, unknown>) => S3rverLike;

const require = createRequire(import.meta.url);

export interface LocalS3 {
  endpoint: string;
  /** Client settings for an S3Client talking to this server (path-style, fixed keys). */
  clientConfig: {
    endpoint: string;
    region: string;
    forcePathStyle: true;
    credentials: { accessKeyId: string; secretAccessKey: string };
    requestChecksumCalculation: 'WHEN_REQUIRED';
    responseChecksumValidation: 'WHEN_REQUIRED';
  };
  /** Buckets created at start. */
  buckets: string[];
  /** An install's `objectsS3` settings for one of its buckets; `direct` hands clients URLs. */
  objectsS3(
    bucket: string,
    direct: boolean,
  ): {
    bucket: string;
    endpoint: string;
    accessKeyId: string;
    secretAccessKey: string;
    direct: boolean;
  };
  stop(): Promise<void>;
}

/**
 * A real S3 protocol peer: s3rver on a loopback port, storing objects in a temporary
 * folder that stop() removes. s3rver accepts the fixed S3RVER key pair.
 */
export async function startS3rver(
  buckets: string[] = ['selfdevop-test'],
  options: { corsOrigin?: string } = {},
): Promise<LocalS3> {
  const S3rver = require('s3rver') as S3rverConstructor;
  const directory = await mkdtemp(path.join(os.tmpdir(), 'sdo-s3rver-'));
  const server = new S3rver({
    address: '127.0.0.1',
    port: 0,
    silent: true,
    directory,
    // Path-style requests only: the endpoint is an IP, not a wildcard host name.
    vhostBuckets: false,
    // A browser PUTs and GETs presigned URLs from the dashboard's origin (the cloud's bucket CORS).
    configureBuckets: buckets.map((name) => ({
      name,
      configs: options.corsOrigin ? [corsXml(options.corsOrigin)] : [],
    })),
  });
  const { port } = await server.run();
  const endpoint = `http://127.0.0.1:${port}`;
  return {
    endpoint,
    buckets,
    objectsS3: (bucket, direct) => ({
      bucket,
      endpoint,
      accessKeyId: 'S3RVER',
      secretAccessKey: 'S3RVER',
      direct,
    }),
    clientConfig: {
      endpoint,
      region: 'us-east-1',
      forcePathStyle: true,
      credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
      // s3rver predates the SDK's default CRC32 checksums on every request.
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
    },
    async stop() {
      await server.close();
      await rm(directory, { recursive: true, force: true });
    },
  };
}

const corsXml = (origin: string) =>
  Buffer.from(
    `<CORSConfiguration><CORSRule><AllowedOrigin>${origin}</AllowedOrigin><AllowedMethod>PUT</AllowedMethod><AllowedMethod>GET</AllowedMethod><AllowedHeader>content-type</AllowedHeader><MaxAgeSeconds>600</MaxAgeSeconds></CORSRule></CORSConfiguration>`,
  );
