/**
 * Decodes the progress BuildKit sends through the Engine API (`moby.buildkit.trace` events,
 * a base64 protobuf `StatusResponse`). The only file that imports protobufjs. The schema is
 * inline (the subset of moby/buildkit's control.proto a build log needs) so a bundle needs
 * no .proto file beside it.
 */
import protobuf from 'protobufjs';

export interface BuildkitVertex {
  digest: string;
  name: string;
  cached: boolean;
  started: boolean;
  completed: boolean;
  error: string;
}

export interface BuildkitLog {
  vertex: string;
  msg: Uint8Array;
}

export interface BuildkitStatus {
  vertexes: BuildkitVertex[];
  logs: BuildkitLog[];
}

const timestamp = {
  fields: { seconds: { type: 'int64', id: 1 }, nanos: { type: 'int32', id: 2 } },
};

const root = protobuf.Root.fromJSON({
  nested: {
    StatusResponse: {
      fields: {
        vertexes: { rule: 'repeated', type: 'Vertex', id: 1 },
        logs: { rule: 'repeated', type: 'VertexLog', id: 3 },
      },
    },
    Vertex: {
      fields: {
        digest: { type: 'string', id: 1 },
        name: { type: 'string', id: 3 },
        cached: { type: 'bool', id: 4 },
        started: { type: 'Timestamp', id: 5 },
        completed: { type: 'Timestamp', id: 6 },
        error: { type: 'string', id: 7 },
      },
    },
    VertexLog: {
      fields: {
        vertex: { type: 'string', id: 1 },
        msg: { type: 'bytes', id: 4 },
      },
    },
    Timestamp: timestamp,
  },
});
const statusResponse = root.lookupType('StatusResponse');

interface RawVertex {
  digest?: string;
  name?: string;
  cached?: boolean;
  started?: unknown;
  completed?: unknown;
  error?: string;
}

/** One trace event's vertices and log chunks. */
export function decodeBuildkitStatus(base64: string): BuildkitStatus {
  if (!base64) return { vertexes: [], logs: [] };
  const message = statusResponse.decode(Buffer.from(base64, 'base64')) as unknown as {
    vertexes?: RawVertex[];
    logs?: { vertex?: string; msg?: Uint8Array }[];
  };
  return {
    vertexes: (message.vertexes ?? []).map((v) => ({
      digest: v.digest ?? '',
      name: v.name ?? '',
      cached: Boolean(v.cached),
      started: v.started != null,
      completed: v.completed != null,
      error: v.error ?? '',
    })),
    logs: (message.logs ?? []).map((l) => ({
      vertex: l.vertex ?? '',
      msg: l.msg ?? new Uint8Array(),
    })),
  };
}
