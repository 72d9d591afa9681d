import { randomBytes } from 'node:crypto';
import { ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { mockClient } from 'aws-sdk-client-mock';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { S3ObjectStore } from '../../adapters/objects/s3.ts';
import { Unavailable } from '../../core/errors.ts';
import { runObjectStoreContract } from '../contracts/object-store.case.ts';
import { startS3rver, type LocalS3 } from '../support/s3rver.ts';

let s3: LocalS3;
let client: S3Client;
beforeAll(async () => {
  // One bucket per contract test keeps tests apart without a server each.
  s3 = await startS3rver(
    Array.from({ length: 40 }, (_, i) => `bucket-${i}`).concat('sse', 'direct'),
  );
  client = new S3Client(s3.clientConfig);
});
afterAll(async () => {
  client?.destroy();
  await s3?.stop();
});

let n = 0;
runObjectStoreContract({ make: () => new S3ObjectStore({ bucket: `bucket-${n++}`, client }) });

describe('S3ObjectStore', () => {
  it('hands out presigned URLs only when told to: a client PUTs exactly the signed size, and GETs it as an attachment', async () => {
    expect(new S3ObjectStore({ bucket: 'direct', client }).direct).toBeUndefined();
    const store = new S3ObjectStore({ bucket: 'direct', client, directTransfers: true });
    const direct = store.direct!;
    const body = randomBytes(70_000);
    const key = 'backups/o/ds/bak_1/dump.gz.enc';
    expect(await direct.size(key)).toBeNull();
    // S3 refuses a body of another size than the one signed (s3rver checks no v4 signature,
    // so the completion's own size check is what the API suite proves). No checksum is
    // signed: the SDK's default would be the empty body's, and S3 would refuse the upload.
    const put = await direct.url(key, 'PUT', { expiresSeconds: 60, bytes: body.length });
    const query = new URL(put).searchParams;
    expect(query.get('X-Amz-SignedHeaders')).toBe('content-length;host');
    expect(query.get('X-Amz-Expires')).toBe('60');
    expect([...query.keys()].filter((k) => /checksum/i.test(k))).toEqual([]);
    const ok = await fetch(put, {
      method: 'PUT',
      body,
      headers: { 'content-type': 'application/octet-stream' },
    });
    expect(ok.status, await ok.text()).toBe(200);
    expect(await direct.size(key)).toBe(body.length);
    expect(Buffer.from((await store.get(key))!)).toEqual(body);
    const got = await fetch(
      await direct.url(key, 'GET', { expiresSeconds: 60, filename: 'db-bak_1.gz.enc' }),
    );
    expect(got.status).toBe(200);
    expect(got.headers.get('content-disposition')).toBe('attachment; filename="db-bak_1.gz.enc"');
    expect(Buffer.from(await got.arrayBuffer())).toEqual(body);
  });

  // s3rver cannot truncate a listing on OpenSSL 3 (its continuation tokens use DES), so
  // paging is checked at the SDK boundary with answers shaped as S3 gives them.
  it('lists across pages with continuation tokens', async () => {
    const mock = mockClient(S3Client);
    mock
      .on(ListObjectsV2Command, { ContinuationToken: undefined })
      .resolves({
        Contents: [{ Key: 'p/b' }, { Key: 'p/a' }],
        IsTruncated: true,
        NextContinuationToken: 't1',
      })
      .on(ListObjectsV2Command, { ContinuationToken: 't1' })
      .resolves({ Contents: [{ Key: 'p/c' }], IsTruncated: false });
    const store = new S3ObjectStore({
      bucket: 'paged',
      client: new S3Client({ region: 'us-east-1' }),
      pageSize: 2,
    });
    expect(await store.list('p/')).toEqual(['p/a', 'p/b', 'p/c']);
    expect(mock.commandCalls(ListObjectsV2Command).map((c) => c.args[0].input)).toEqual([
      { Bucket: 'paged', Prefix: 'p/', MaxKeys: 2 },
      { Bucket: 'paged', Prefix: 'p/', MaxKeys: 2, ContinuationToken: 't1' },
    ]);
    mock.restore();
  });

  it('stops a listing that does not end, naming the bucket', async () => {
    const mock = mockClient(S3Client);
    mock
      .on(ListObjectsV2Command)
      .resolves({ Contents: [{ Key: 'p/a' }], IsTruncated: true, NextContinuationToken: 'again' });
    const store = new S3ObjectStore({
      bucket: 'paged',
      client: new S3Client({ region: 'us-east-1' }),
      maxPages: 2,
    });
    await expect(store.list('p/')).rejects.toThrow(
      'listing s3://paged/p/ did not end within 2 pages',
    );
    mock.restore();
  });

  it('asks for SSE-KMS with the configured key on every put', async () => {
    const sent: unknown[] = [];
    const spy = new S3Client(s3.clientConfig);
    spy.middlewareStack.add(
      (next) => async (args) => {
        sent.push((args as { input: unknown }).input);
        return next(args);
      },
      { step: 'initialize' },
    );
    const store = new S3ObjectStore({
      bucket: 'sse',
      client: spy,
      kmsKeyId: 'alias/selfdevop-objects',
    });
    await store.put('a', 'x', { contentType: 'text/plain' });
    expect(sent[0]).toMatchObject({
      Bucket: 'sse',
      Key: 'a',
      ContentType: 'text/plain',
      ServerSideEncryption: 'aws:kms',
      SSEKMSKeyId: 'alias/selfdevop-objects',
    });
    spy.destroy();
  });

  it('makes its own client from settings on first use, and destroy() closes only a client it has', async () => {
    const destroy = vi.spyOn(S3Client.prototype, 'destroy');
    try {
      const store = new S3ObjectStore({ bucket: 'sse', client: s3.clientConfig });
      await store.destroy();
      expect(destroy).not.toHaveBeenCalled();
      await store.put('from-settings', 'x');
      expect(new TextDecoder().decode((await store.get('from-settings')) ?? undefined)).toBe('x');
      await store.destroy();
      expect(destroy).toHaveBeenCalledTimes(1);
    } finally {
      destroy.mockRestore();
    }
  });

  it('answers ping for an existing bucket and Unavailable for a missing one', async () => {
    await expect(new S3ObjectStore({ bucket: 'sse', client }).ping()).resolves.toBeUndefined();
    const missing = new S3ObjectStore({
      bucket: `missing-${randomBytes(3).toString('hex')}`,
      client,
    });
    await expect(missing.ping()).rejects.toThrow(Unavailable);
  });

  it('names the bucket and key when S3 refuses a request', async () => {
    const missing = new S3ObjectStore({ bucket: 'no-such-bucket', client });
    await expect(missing.put('a/b', 'x')).rejects.toThrow(
      /^object store s3:\/\/no-such-bucket\/a\/b: NoSuchBucket/,
    );
  });

  it('refuses a bad bucket name, naming the variable', () => {
    for (const bucket of ['', 'Upper', 'a', 'has_underscore']) {
      expect(() => new S3ObjectStore({ bucket, client })).toThrow(
        /^OBJECTS_BUCKET must be an S3 bucket name/,
      );
    }
  });
});
