import type { HttpSender } from '../../core/ports.ts';

export interface SentRequest {
  url: string;
  body: string;
  headers: Record<string, string>;
}

/** What the fake endpoint answers: a status, or null for "nothing listens". */
export type Responder = (request: SentRequest) => number | null;

/** Records every POST and answers through `respond` (200 unless told otherwise). */
export class MemoryHttpSender implements HttpSender {
  readonly sent: SentRequest[] = [];
  respond: Responder;

  constructor(respond: Responder = () => 200) {
    this.respond = respond;
  }

  async post(url: string, body: string, headers: Record<string, string>) {
    const request = { url, body, headers };
    this.sent.push(request);
    const status = this.respond(request);
    return status === null
      ? { status: null, error: `connect ECONNREFUSED ${url}` }
      : { status, error: null };
  }
}
