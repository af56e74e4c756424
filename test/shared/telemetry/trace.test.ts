import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../support/database.ts';
import { stackEnv, workerEnv } from '../../support/env.ts';
import { payloadOf, SANDBOX_PROFILE_IDS } from '../../support/factories.ts';
import { type ReceivedSpan, SpanKindCode, startOtlpReceiver } from '../../support/otlp-receiver.ts';
import { type NodeProcess, spawnNode } from '../../support/processes.ts';
import { createTestTopology, type TestTopology } from '../../support/topology.ts';
import { WAIT } from '../../support/wait.ts';

/**
 * The chassis' trace property over both carriers: a producer span → EventBridge (context in
 * `detail._trace`) → SQS → profile-sync → SQS (context in message attributes) →
 * profile-sync → EventBridge is ONE trace, and every `process` span's parent is the span
 * that sent or published its message.
 */

const PROFILE_IDS = SANDBOX_PROFILE_IDS;
// BulkJobCompleted, 2 × SyncProfile.
const EXPECTED_PROCESS_SPANS = 1 + PROFILE_IDS.length;

async function runWorkflow(topology: TestTopology, databaseUrl: string, otlpEndpoint: string) {
  const env = workerEnv(topology.prefix, {
    DATABASE_URL: databaseUrl,
    OTEL_SDK_DISABLED: 'false',
    OTEL_EXPORTER_OTLP_ENDPOINT: otlpEndpoint,
  });
  const workers = [spawnNode('workers/profile-sync/main.ts', { ...env, OTEL_SERVICE_NAME: 'profile-sync' })];
  try {
    await Promise.all(workers.map((worker) => worker.waitForLog((line) => line.msg === 'worker started')));
    const completed = payloadOf('BulkJobCompleted', { profileIds: [...PROFILE_IDS] });
    const producer = spawnNode(
      'test/fixtures/publish-event.ts',
      { ...env, OTEL_SERVICE_NAME: 'test-producer' },
      ['BulkJobCompleted', JSON.stringify(completed)],
    );
    const published = await producer.waitForLog((line) => line.msg === 'published');
    expect((await producer.exited).code).toBe(0);
    return { traceId: String(published.trace_id), workers };
  } catch (error) {
    await Promise.all(workers.map((worker) => worker.stop()));
    throw error;
  }
}

const isPostgres = (span: ReceivedSpan) =>
  span.attributes['db.system.name'] === 'postgresql' || span.attributes['db.system'] === 'postgresql';
const isConnect = (span: ReceivedSpan) => span.name === 'pg-pool.connect' || span.name === 'pg.connect';

function assertOneConnectedTrace(spans: ReceivedSpan[], traceId: string, queuePrefix: string) {
  expect(new Set(spans.map((span) => span.traceId))).toEqual(new Set([traceId]));
  const byId = new Map(spans.map((span) => [span.spanId, span]));
  const processSpans = spans.filter((span) => span.name.startsWith('process '));
  expect(processSpans).toHaveLength(EXPECTED_PROCESS_SPANS);
  for (const span of processSpans) {
    expect(span.kind).toBe(SpanKindCode.Consumer);
    expect(span.attributes['messaging.system']).toBe('aws_sqs');
    expect(span.attributes['messaging.operation.type']).toBe('process');
    expect(String(span.attributes['messaging.destination.name'])).toMatch(new RegExp(`^${queuePrefix}-`));
    expect(span.attributes['messaging.message.id']).toEqual(expect.any(String));
    const parent = byId.get(span.parentSpanId);
    expect(parent, `parent of ${span.name} (${span.attributes['adfleet.message.type']})`).toBeDefined();
    // The parent is the span that sent (SQS) or published (EventBridge) this message.
    expect(parent?.kind).toBe(SpanKindCode.Producer);
  }
  const origins = processSpans.map((span) => span.attributes['adfleet.message.origin']);
  expect(origins.filter((origin) => origin === 'eventbridge')).toHaveLength(1);
  // The profile syncs went through the shared rate limit: one span per wait, and none of the
  // limiter's own Redis round trips.
  expect(spans.some((span) => span.name === 'ads rate limit')).toBe(true);
  const isRedis = (span: ReceivedSpan) =>
    span.attributes['db.system.name'] === 'redis' || span.attributes['db.system'] === 'redis';
  expect(spans.filter(isRedis).map((span) => span.name)).toEqual([]);
  // The handlers' queries are in the trace, the pool's connection checkouts are not.
  expect(spans.some(isPostgres)).toBe(true);
  expect(spans.filter(isConnect).map((span) => span.name)).toEqual([]);
  const root = spans.filter((span) => span.parentSpanId === '');
  expect(root.map((span) => span.name)).toEqual(['test submit']);
}

describe('one trace across EventBridge and SQS hops', () => {
  let topology: TestTopology;
  let database: TestDatabase;
  let workers: NodeProcess[] = [];

  beforeAll(async () => {
    topology = await createTestTopology('trace');
    database = await createTestDatabase(stackEnv().DATABASE_URL as string);
  });
  afterAll(async () => {
    await Promise.all(workers.map((worker) => worker.stop()));
    await topology.destroy();
    await database.drop();
  });

  it('is one trace whose consumer spans are children of their producers (OTLP receiver)', async () => {
    const receiver = await startOtlpReceiver();
    try {
      const run = await runWorkflow(topology, database.url, receiver.url);
      workers = run.workers;
      const spans = await vi.waitFor(() => {
        const processSpans = receiver.spans.filter((span) => span.name.startsWith('process '));
        expect(processSpans.length, 'process spans exported').toBeGreaterThanOrEqual(EXPECTED_PROCESS_SPANS);
        expect(receiver.spans.map((span) => span.name)).toContain('test submit');
        return receiver.spans.filter(
          (span) => span.traceId === run.traceId || span.name.startsWith('process '),
        );
      }, WAIT);
      assertOneConnectedTrace(spans, run.traceId, topology.prefix);

      // Every log line written while handling a message carries that message's span.
      const handlerLines = run.workers
        .flatMap((worker) => worker.logs)
        .filter((line) => line.messageId !== undefined);
      expect(handlerLines.length).toBeGreaterThanOrEqual(EXPECTED_PROCESS_SPANS);
      const processSpanIds = new Set(spans.filter((s) => s.name.startsWith('process ')).map((s) => s.spanId));
      for (const line of handlerLines) {
        expect(line.trace_id).toBe(run.traceId);
        expect(processSpanIds.has(String(line.span_id))).toBe(true);
      }
    } finally {
      await Promise.all(workers.map((worker) => worker.stop()));
      workers = [];
      await receiver.close();
    }
  });

  it('shows a traced query, not the pool connection it waited for', async () => {
    const receiver = await startOtlpReceiver();
    let queries: NodeProcess | undefined;
    try {
      queries = spawnNode('test/fixtures/traced-query.ts', {
        ...stackEnv(),
        DATABASE_URL: database.url,
        OTEL_SDK_DISABLED: 'false',
        OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
        OTEL_SERVICE_NAME: 'test-queries',
      });
      const { trace_id: traceId } = await queries.waitForLog((line) => line.msg === 'queried');
      expect((await queries.exited).code).toBe(0);
      // The process flushed its spans before exiting: what the receiver holds is all of them.
      const spans = receiver.spans.filter((span) => span.traceId === traceId);
      expect(spans.some((span) => span.name === 'test queries')).toBe(true);
      // pool.query and a client checked out for a transaction: SELECT 1, BEGIN, SELECT 2, COMMIT.
      expect(spans.filter(isPostgres).length).toBeGreaterThanOrEqual(4);
      expect(spans.filter(isConnect).map((span) => span.name)).toEqual([]);
    } finally {
      await queries?.stop('SIGKILL');
      await receiver.close();
    }
  });

  it('is the same one trace in Jaeger, read back through its query API', async () => {
    const env = stackEnv();
    const jaeger = env.ADFLEET_JAEGER_URL ?? 'http://127.0.0.1:16686';
    const run = await runWorkflow(
      topology,
      database.url,
      env.OTEL_EXPORTER_OTLP_ENDPOINT ?? 'http://127.0.0.1:4318',
    );
    workers = run.workers;
    type JaegerTrace = {
      spans: Array<{
        spanID: string;
        operationName: string;
        references: Array<{ refType: string; spanID: string }>;
      }>;
    };
    const trace = await vi.waitFor(async () => {
      const response = await fetch(`${jaeger}/api/traces/${run.traceId}`);
      expect(response.status, `GET /api/traces/${run.traceId}`).toBe(200);
      const body = (await response.json()) as { data?: JaegerTrace[] };
      const found = body.data?.[0];
      const processSpans = found?.spans.filter((span) => span.operationName.startsWith('process ')) ?? [];
      expect(processSpans.length, 'process spans in Jaeger').toBeGreaterThanOrEqual(EXPECTED_PROCESS_SPANS);
      return found as JaegerTrace;
    }, WAIT);
    const ids = new Set(trace.spans.map((span) => span.spanID));
    for (const span of trace.spans.filter((s) => s.operationName.startsWith('process '))) {
      const parent = span.references.find((reference) => reference.refType === 'CHILD_OF');
      expect(parent && ids.has(parent.spanID)).toBe(true);
    }
  });
});
