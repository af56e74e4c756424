import type { Context } from 'hono';
import { bodyLimit } from 'hono/body-limit';

/**
 * How the sandbox speaks on the wire, shared by the API and admin routes: JSON bodies with an
 * exact Content-Type and Content-Length, refusals as Amazon's `{ code, details }`, and the
 * request body limit.
 */

export class HttpError extends Error {
  readonly status: number;
  readonly code: string;
  readonly headers: Record<string, string>;

  constructor(status: number, code: string, details: string, headers: Record<string, string> = {}) {
    super(details);
    this.status = status;
    this.code = code;
    this.headers = headers;
  }
}

/**
 * A JSON response written as given: Hono's `c.json` would add its own Content-Type, and the
 * v3 routes answer in their vendor media type.
 */
export function jsonResponse(
  status: number,
  body: unknown,
  contentType = 'application/json',
  headers: Record<string, string> = {},
): Response {
  const text = JSON.stringify(body);
  return new Response(text, {
    status,
    headers: { 'content-type': contentType, 'content-length': String(Buffer.byteLength(text)), ...headers },
  });
}

export function refusal(error: HttpError): Response {
  return jsonResponse(
    error.status,
    { code: error.code, details: error.message },
    'application/json',
    error.headers,
  );
}

const MAX_BODY_BYTES = 5 * 1024 * 1024;

/** Larger bodies are refused with 413 before they are read whole. */
export const limitBody = bodyLimit({
  maxSize: MAX_BODY_BYTES,
  onError: () => refusal(new HttpError(413, 'PAYLOAD_TOO_LARGE', 'request body too large')),
});

/** The body as JSON whatever its Content-Type (the media type is checked where it matters); empty is `{}`. */
export async function jsonBody(c: Context): Promise<unknown> {
  const text = await c.req.text();
  if (text === '') return {};
  try {
    return JSON.parse(text);
  } catch {
    throw new HttpError(400, 'MALFORMED_REQUEST', 'request body is not valid JSON');
  }
}
