import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

/** One span as exported over OTLP/HTTP JSON, flattened. */
export interface ReceivedSpan {
  readonly service: string;
  readonly traceId: string;
  readonly spanId: string;
  readonly parentSpanId: string;
  readonly name: string;
  /** OTLP SpanKind: 1 internal, 2 server, 3 client, 4 producer, 5 consumer. */
  readonly kind: number;
  readonly attributes: Record<string, string | number | boolean>;
  readonly links: Array<{ traceId: string; spanId: string }>;
  readonly events: Array<{ name: string; attributes: Record<string, string | number | boolean> }>;
  /** The exporting process's resource attributes (one object shared by its spans). */
  readonly resource: Record<string, string | number | boolean>;
  readonly statusMessage: string;
}

export const SpanKindCode = { Internal: 1, Server: 2, Client: 3, Producer: 4, Consumer: 5 } as const;

interface OtlpValue {
  stringValue?: string;
  intValue?: string | number;
  boolValue?: boolean;
  doubleValue?: number;
}
interface OtlpAttribute {
  key: string;
  value: OtlpValue;
}

function attributeValue(value: OtlpValue): string | number | boolean {
  if (value.stringValue !== undefined) return value.stringValue;
  if (value.intValue !== undefined) return Number(value.intValue);
  if (value.boolValue !== undefined) return value.boolValue;
  return value.doubleValue ?? '';
}

function attributes(list: OtlpAttribute[] | undefined) {
  return Object.fromEntries(
    (list ?? []).map((attribute) => [attribute.key, attributeValue(attribute.value)]),
  );
}

/** A real OTLP/HTTP endpoint (JSON encoding, what exporter-trace-otlp-http sends) for tests. */
export async function startOtlpReceiver() {
  const spans: ReceivedSpan[] = [];
  const server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      if (request.url === '/v1/traces') {
        const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as {
          resourceSpans?: Array<{
            resource?: { attributes?: OtlpAttribute[] };
            scopeSpans?: Array<{
              spans?: Array<{
                traceId: string;
                spanId: string;
                parentSpanId?: string;
                name: string;
                kind: number;
                attributes?: OtlpAttribute[];
                links?: Array<{ traceId: string; spanId: string }>;
                events?: Array<{ name: string; attributes?: OtlpAttribute[] }>;
                status?: { message?: string };
              }>;
            }>;
          }>;
        };
        for (const resourceSpan of body.resourceSpans ?? []) {
          const resource = attributes(resourceSpan.resource?.attributes);
          const service = String(resource['service.name'] ?? '');
          for (const scope of resourceSpan.scopeSpans ?? []) {
            for (const span of scope.spans ?? []) {
              spans.push({
                service,
                traceId: span.traceId,
                spanId: span.spanId,
                parentSpanId: span.parentSpanId ?? '',
                name: span.name,
                kind: span.kind,
                attributes: attributes(span.attributes),
                links: span.links ?? [],
                events: (span.events ?? []).map((event) => ({
                  name: event.name,
                  attributes: attributes(event.attributes),
                })),
                resource,
                statusMessage: span.status?.message ?? '',
              });
            }
          }
        }
      }
      response.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    spans,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
