/**
 * Cloud ObjectStore on Amazon S3 (artifacts, backups, logs). The only file that imports
 * @aws-sdk/client-s3 (and its presigner), and only when first used: the API's cold start would otherwise parse
 * the SDK for requests that never touch S3. Keys follow the same rules as every other
 * store (object-key.ts), so a key accepted in tests or self-hosted is accepted here and
 * nothing can escape a prefix.
 */
import type * as S3Sdk from '@aws-sdk/client-s3';
import type { S3Client, S3ClientConfig } from '@aws-sdk/client-s3';
import { Unavailable } from '../../core/errors.ts';
import type { DirectTransfers, ObjectStore } from '../../core/ports.ts';
import { assertObjectKey, assertObjectPrefix, bodyBytes, compareKeys } from './object-key.ts';
import { exportsOf, onFirstUse } from '../on-first-use.ts';

export interface S3ObjectStoreOptions {
  /** The value of OBJECTS_BUCKET. */
  bucket: string;
  /** A client to share, or settings for a new one (region, endpoint, forcePathStyle…). */
  client?: S3Client | S3ClientConfig;
  /**
   * Encrypt every object with this KMS key (SSE-KMS, the value of OBJECTS_KMS_KEY_ID);
   * without it the bucket's default encryption applies.
   */
  kmsKeyId?: string;
  /** Keys per ListObjectsV2 page; 1000 (S3's maximum) unless set. */
  pageSize?: number;
  /** Bound on the number of list pages, so a runaway listing stops (1000 pages unless set). */
  maxPages?: number;
  /**
   * Bytes per part of a streamed upload (putStream); 8 MiB unless set, at least 5 MiB
   * (S3's smallest part but the last). The one part in memory is the stream's whole cost.
   */
  partBytes?: number;
  /**
   * Hand clients short-lived presigned URLs to read and write objects themselves (the cloud
   * edition: its API cannot carry a backup). Off for a store the API's clients may not reach.
   */
  directTransfers?: boolean;
}

// S3's rules for bucket names: 3–63 lowercase letters, digits, dots and hyphens.
const bucketName = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;

function errorName(e: unknown): string {
  const name = (e as { name?: unknown } | null)?.name;
  return typeof name === 'string' ? name : 'Error';
}

function isMissing(e: unknown): boolean {
  const status = (e as { $metadata?: { httpStatusCode?: number } } | null)?.$metadata
    ?.httpStatusCode;
  return errorName(e) === 'NoSuchKey' || errorName(e) === 'NotFound' || status === 404;
}

/** The SDK's exports (TypeScript also lists a default export for a CommonJS package). */
type S3SdkExports = Omit<typeof S3Sdk, 'default'>;
const loadSdk: () => Promise<S3SdkExports> = onFirstUse(() =>
  import('@aws-sdk/client-s3').then(exportsOf),
);
const loadPresigner = onFirstUse(() => import('@aws-sdk/s3-request-presigner').then(exportsOf));

function isS3Client(c: S3ObjectStoreOptions['client']): c is S3Client {
  return typeof (c as S3Client | undefined)?.send === 'function';
}

/**
 * @example new S3ObjectStore({ bucket: env.OBJECTS_BUCKET, kmsKeyId: env.OBJECTS_KMS_KEY_ID })
 */
export class S3ObjectStore implements ObjectStore {
  readonly bucket: string;
  private readonly clientOption: S3ObjectStoreOptions['client'];
  private loaded: Promise<{ s3: S3SdkExports; client: S3Client }> | undefined;
  private readonly kmsKeyId: string | undefined;
  private readonly pageSize: number;
  private readonly maxPages: number;
  private readonly partBytes: number;
  readonly direct?: DirectTransfers;

  constructor(options: S3ObjectStoreOptions) {
    if (typeof options.bucket !== 'string' || !bucketName.test(options.bucket)) {
      throw new Error(
        `OBJECTS_BUCKET must be an S3 bucket name (3-63 lowercase letters, digits, dots and hyphens), got ${JSON.stringify(options.bucket)}`,
      );
    }
    this.bucket = options.bucket;
    this.clientOption = options.client;
    this.kmsKeyId = options.kmsKeyId || undefined;
    this.pageSize = options.pageSize ?? 1000;
    this.maxPages = options.maxPages ?? 1000;
    this.partBytes = Math.max(options.partBytes ?? 8 * 1024 * 1024, 5 * 1024 * 1024);
    if (options.directTransfers)
      this.direct = {
        url: (key, method, o) => this.presigned(key, method, o),
        size: (key) => this.size(key),
        // Where the SDK's endpoint resolution puts this bucket (virtual-hosted on AWS, the
        // endpoint itself path-style): read off a URL, as clients will see it.
        origin: () =>
          this.presigned('origin', 'GET', { expiresSeconds: 1 }).then((u) => new URL(u).origin),
      };
  }

  /**
   * A presigned GET or PUT (signature v4 in the query). A PUT signs its Content-Length, so
   * S3 refuses a body of any other size; it names the KMS key as every write here does.
   */
  private async presigned(
    key: string,
    method: 'GET' | 'PUT',
    options: { expiresSeconds: number; bytes?: number; filename?: string },
  ): Promise<string> {
    assertObjectKey(key);
    const { s3, client } = await this.sdk();
    const { getSignedUrl } = await loadPresigner();
    const expiresIn = options.expiresSeconds;
    if (method === 'GET') {
      const disposition = options.filename
        ? `attachment; filename="${options.filename.replace(/["\\\r\n]/g, '_')}"`
        : undefined;
      const get = new s3.GetObjectCommand({
        Bucket: this.bucket,
        Key: key,
        ...(disposition ? { ResponseContentDisposition: disposition } : {}),
      });
      return this.call(key, () => getSignedUrl(client, get, { expiresIn }));
    }
    const put = new s3.PutObjectCommand({
      Bucket: this.bucket,
      Key: key,
      ...(options.bytes === undefined ? {} : { ContentLength: options.bytes }),
      ContentType: 'application/octet-stream',
      ...(this.kmsKeyId ? { ServerSideEncryption: 'aws:kms', SSEKMSKeyId: this.kmsKeyId } : {}),
    });
    // The SDK's default checksums would sign a CRC32 of the empty body the URL is made with,
    // and S3 would refuse the real upload against it: a presigned write carries none.
    put.middlewareStack.add(
      (next) => (args) => {
        const headers = (args.request as { headers?: Record<string, string> }).headers ?? {};
        for (const name of Object.keys(headers))
          if (name.startsWith('x-amz-checksum-') || name === 'x-amz-sdk-checksum-algorithm')
            delete headers[name];
        return next(args);
      },
      { step: 'build', priority: 'low', name: 'sdoPresignedNoChecksum' },
    );
    return this.call(key, () =>
      getSignedUrl(client, put, { expiresIn, signableHeaders: new Set(['content-length']) }),
    );
  }

  private async size(key: string): Promise<number | null> {
    assertObjectKey(key);
    const { s3, client } = await this.sdk();
    try {
      const out = await client.send(new s3.HeadObjectCommand({ Bucket: this.bucket, Key: key }));
      return out.ContentLength ?? 0;
    } catch (e) {
      if (isMissing(e)) return null;
      throw this.failure(key, e);
    }
  }

  async put(
    key: string,
    body: Uint8Array | string,
    options: { contentType?: string } = {},
  ): Promise<void> {
    assertObjectKey(key);
    const bytes = bodyBytes(body);
    const { s3, client } = await this.sdk();
    await this.call(key, () =>
      client.send(
        new s3.PutObjectCommand({
          Bucket: this.bucket,
          Key: key,
          Body: bytes,
          ContentLength: bytes.byteLength,
          ContentType: options.contentType ?? 'application/octet-stream',
          ...(this.kmsKeyId ? { ServerSideEncryption: 'aws:kms', SSEKMSKeyId: this.kmsKeyId } : {}),
        }),
      ),
    );
  }

  async get(key: string): Promise<Uint8Array | null> {
    assertObjectKey(key);
    const { s3, client } = await this.sdk();
    let out;
    try {
      out = await client.send(new s3.GetObjectCommand({ Bucket: this.bucket, Key: key }));
    } catch (e) {
      if (isMissing(e)) return null;
      throw this.failure(key, e);
    }
    if (!out.Body) return new Uint8Array(0);
    // A fresh array per call: the caller may change it without touching what is stored.
    return Uint8Array.from(await out.Body.transformToByteArray());
  }

  async list(prefix: string): Promise<string[]> {
    assertObjectPrefix(prefix);
    const { s3, client } = await this.sdk();
    const keys: string[] = [];
    let token: string | undefined;
    for (let page = 0; page < this.maxPages; page++) {
      const out = await this.call(prefix, () =>
        client.send(
          new s3.ListObjectsV2Command({
            Bucket: this.bucket,
            Prefix: prefix,
            MaxKeys: this.pageSize,
            ...(token ? { ContinuationToken: token } : {}),
          }),
        ),
      );
      for (const o of out.Contents ?? []) if (o.Key !== undefined) keys.push(o.Key);
      if (!out.IsTruncated || !out.NextContinuationToken) return keys.sort(compareKeys);
      token = out.NextContinuationToken;
    }
    throw new Error(
      `listing s3://${this.bucket}/${prefix} did not end within ${this.maxPages} pages`,
    );
  }

  async delete(key: string): Promise<void> {
    assertObjectKey(key);
    const { s3, client } = await this.sdk();
    // S3 answers 204 for a key that does not exist, as the port asks.
    await this.call(key, () =>
      client.send(new s3.DeleteObjectCommand({ Bucket: this.bucket, Key: key })),
    );
  }

  /**
   * A body smaller than one part is one PutObject; a larger one a multipart upload, one
   * part in memory at a time, aborted when the source or S3 fails (so no half object and no
   * parts left billed). The object appears only when the upload completes.
   */
  async putStream(
    key: string,
    body: AsyncIterable<Uint8Array>,
    options: { contentType?: string } = {},
  ): Promise<{ bytes: number }> {
    assertObjectKey(key);
    const { s3, client } = await this.sdk();
    const sse = this.kmsKeyId
      ? { ServerSideEncryption: 'aws:kms' as const, SSEKMSKeyId: this.kmsKeyId }
      : {};
    const contentType = options.contentType ?? 'application/octet-stream';
    let part = new PartBuffer(this.partBytes);
    let uploadId: string | undefined;
    const parts: { ETag: string; PartNumber: number }[] = [];
    let bytes = 0;
    const flush = async (last: Uint8Array) => {
      const PartNumber = parts.length + 1;
      const out = await this.call(key, () =>
        client.send(
          new s3.UploadPartCommand({
            Bucket: this.bucket,
            Key: key,
            UploadId: uploadId,
            PartNumber,
            Body: last,
            ContentLength: last.byteLength,
          }),
        ),
      );
      parts.push({ ETag: out.ETag ?? '', PartNumber });
    };
    try {
      for await (const chunk of body) {
        bytes += chunk.byteLength;
        let rest: Uint8Array = chunk;
        while (rest.byteLength > 0) {
          rest = part.take(rest);
          if (!part.full) continue;
          uploadId ??= (
            await this.call(key, () =>
              client.send(
                new s3.CreateMultipartUploadCommand({
                  Bucket: this.bucket,
                  Key: key,
                  ContentType: contentType,
                  ...sse,
                }),
              ),
            )
          ).UploadId;
          await flush(part.bytes());
          part = new PartBuffer(this.partBytes);
        }
      }
      if (!uploadId) {
        const whole = part.bytes();
        await this.call(key, () =>
          client.send(
            new s3.PutObjectCommand({
              Bucket: this.bucket,
              Key: key,
              Body: whole,
              ContentLength: whole.byteLength,
              ContentType: contentType,
              ...sse,
            }),
          ),
        );
        return { bytes };
      }
      if (part.length > 0) await flush(part.bytes());
      await this.call(key, () =>
        client.send(
          new s3.CompleteMultipartUploadCommand({
            Bucket: this.bucket,
            Key: key,
            UploadId: uploadId,
            MultipartUpload: { Parts: parts },
          }),
        ),
      );
      return { bytes };
    } catch (e) {
      if (uploadId)
        await client
          .send(
            new s3.AbortMultipartUploadCommand({
              Bucket: this.bucket,
              Key: key,
              UploadId: uploadId,
            }),
          )
          .catch(() => undefined);
      throw e;
    }
  }

  /** Aborts the key's unfinished multipart uploads (a worker that died mid-upload leaves parts billed). */
  async discardPartial(key: string): Promise<number> {
    assertObjectKey(key);
    const { s3, client } = await this.sdk();
    const out = await this.call(key, () =>
      client.send(new s3.ListMultipartUploadsCommand({ Bucket: this.bucket, Prefix: key })),
    );
    const mine = (out.Uploads ?? []).filter((u) => u.Key === key && u.UploadId);
    for (const u of mine)
      await this.call(key, () =>
        client.send(
          new s3.AbortMultipartUploadCommand({
            Bucket: this.bucket,
            Key: key,
            UploadId: u.UploadId,
          }),
        ),
      );
    return mine.length;
  }

  async getStream(key: string): Promise<AsyncIterable<Uint8Array> | null> {
    assertObjectKey(key);
    const { s3, client } = await this.sdk();
    let out;
    try {
      out = await client.send(new s3.GetObjectCommand({ Bucket: this.bucket, Key: key }));
    } catch (e) {
      if (isMissing(e)) return null;
      throw this.failure(key, e);
    }
    if (!out.Body) return (async function* () {})();
    // On Node the SDK's body is a Readable: read as the caller consumes it, never whole.
    return out.Body as unknown as AsyncIterable<Uint8Array>;
  }

  /** Readiness: the bucket exists and these credentials may use it. */
  async ping(): Promise<void> {
    try {
      const { s3, client } = await this.sdk();
      await client.send(new s3.HeadBucketCommand({ Bucket: this.bucket }));
    } catch (e) {
      throw new Unavailable('object store', `s3://${this.bucket}: ${errorName(e)}`);
    }
  }

  /** Closes the client's connections; a store that never reached S3 has none to close. */
  async destroy(): Promise<void> {
    const loaded = await this.loaded?.catch(() => undefined);
    loaded?.client.destroy();
  }

  /** The SDK and the client, loaded and made on first use (the client given is used as is). */
  private sdk(): Promise<{ s3: S3SdkExports; client: S3Client }> {
    this.loaded ??= loadSdk().then((s3) => ({
      s3,
      client: isS3Client(this.clientOption)
        ? this.clientOption
        : new s3.S3Client(this.clientOption ?? {}),
    }));
    return this.loaded;
  }

  private async call<T>(key: string, run: () => Promise<T>): Promise<T> {
    try {
      return await run();
    } catch (e) {
      throw this.failure(key, e);
    }
  }

  private failure(key: string, e: unknown): Error {
    return new Error(
      `object store s3://${this.bucket}/${key}: ${errorName(e)}: ${(e as Error).message}`,
      { cause: e },
    );
  }
}

/** One multipart part being filled: copies chunks in until it holds `size` bytes. */
class PartBuffer {
  private readonly buffer: Uint8Array;
  length = 0;
  constructor(size: number) {
    this.buffer = new Uint8Array(size);
  }
  get full(): boolean {
    return this.length === this.buffer.byteLength;
  }
  /** Copies what fits of chunk; answers the rest. */
  take(chunk: Uint8Array): Uint8Array {
    const n = Math.min(chunk.byteLength, this.buffer.byteLength - this.length);
    this.buffer.set(chunk.subarray(0, n), this.length);
    this.length += n;
    return chunk.subarray(n);
  }
  bytes(): Uint8Array {
    return this.buffer.subarray(0, this.length);
  }
}
