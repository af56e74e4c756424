/**
 * Chassis benchmark: QueueWorker (tracing on, no-op handler) against a bare AWS SDK
 * receive/delete loop at the same concurrency, and tracing on against tracing off — all in
 * one run, rounds interleaved (A B C A B C …) so the machine's noise hits every variant
 * alike, medians reported. Targets: worker ≥ 0.9 × bare; tracing costs ≤ 5 %.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { SendMessageBatchCommand } from '@aws-sdk/client-sqs';
import { resourceNames } from '../contract/topology.ts';
import { createAwsClients } from '../shared/aws.ts';
import { bootstrapTopology } from '../shared/bootstrap.ts';
import { benchEnv, median, printTable } from './support.ts';

const run = promisify(execFile);

const MESSAGES = Number(process.env.BENCH_QUEUE_MESSAGES ?? 3_000);
const CONCURRENCY = Number(process.env.BENCH_QUEUE_CONCURRENCY ?? 20);
const ROUNDS = Number(process.env.BENCH_QUEUE_ROUNDS ?? 3);

interface Variant {
  readonly label: string;
  readonly mode: 'bare' | 'worker';
  readonly env: Record<string, string>;
}

async function preload(prefix: string, env: Record<string, string>) {
  const clients = createAwsClients({
    AWS_REGION: env.AWS_REGION ?? 'us-east-1',
    AWS_ENDPOINT_URL: env.AWS_ENDPOINT_URL,
  });
  const state = await bootstrapTopology(clients, resourceNames(prefix));
  const QueueUrl = state.queues['bulk-item'].url;
  const batches = Math.ceil(MESSAGES / 10);
  for (let start = 0; start < batches; start += 20) {
    await Promise.all(
      Array.from({ length: Math.min(20, batches - start) }, (_, offset) =>
        clients.sqs.send(
          new SendMessageBatchCommand({
            QueueUrl,
            Entries: Array.from({ length: 10 }, (_, index) => ({
              Id: String(index),
              MessageBody: JSON.stringify({ type: 'Noop', payload: { n: (start + offset) * 10 + index } }),
            })),
          }),
        ),
      ),
    );
  }
  clients.destroy();
}

export async function runQueueWorkerBench(): Promise<void> {
  const env = benchEnv();
  const otlp = env.OTEL_EXPORTER_OTLP_ENDPOINT ?? 'http://127.0.0.1:4318';
  const variants: Variant[] = [
    { label: 'bare SDK loop', mode: 'bare', env: { OTEL_SDK_DISABLED: 'true' } },
    {
      label: 'QueueWorker, tracing on',
      mode: 'worker',
      env: { OTEL_SDK_DISABLED: 'false', OTEL_EXPORTER_OTLP_ENDPOINT: otlp },
    },
    { label: 'QueueWorker, tracing off', mode: 'worker', env: { OTEL_SDK_DISABLED: 'true' } },
  ];
  process.stdout.write(
    `\nqueue worker: ${MESSAGES} messages, concurrency ${CONCURRENCY}, ${ROUNDS} rounds, emulator ${env.ADFLEET_EMULATOR ?? '?'}\n`,
  );
  const rates = new Map<string, number[]>(variants.map((variant) => [variant.label, []]));
  for (let round = 1; round <= ROUNDS; round += 1) {
    for (const variant of variants) {
      const prefix = `bench-q-${Date.now().toString(36)}`;
      await preload(prefix, env);
      const { stdout } = await run(
        process.execPath,
        ['bench/queue-worker-run.ts', variant.mode, String(MESSAGES), String(CONCURRENCY)],
        {
          env: {
            ...process.env,
            ...env,
            ...variant.env,
            ADFLEET_RESOURCE_PREFIX: prefix,
            OTEL_SERVICE_NAME: 'bench',
          },
          maxBuffer: 16 * 1024 * 1024,
          timeout: 300_000,
        },
      );
      const result = JSON.parse(stdout.trim().split('\n').at(-1) ?? '{}') as { rate: number };
      rates.get(variant.label)?.push(result.rate);
      process.stdout.write(`  round ${round}: ${variant.label.padEnd(26)} ${result.rate.toFixed(0)} msg/s\n`);
    }
  }
  const bare = median(rates.get('bare SDK loop') ?? []);
  const traced = median(rates.get('QueueWorker, tracing on') ?? []);
  const untraced = median(rates.get('QueueWorker, tracing off') ?? []);
  printTable('queue worker throughput (medians)', [
    ['variant', 'msg/s', 'ratio'],
    ['bare SDK loop', bare.toFixed(0), '1.00'],
    ['QueueWorker, tracing on', traced.toFixed(0), (traced / bare).toFixed(2)],
    ['QueueWorker, tracing off', untraced.toFixed(0), (untraced / bare).toFixed(2)],
  ]);
  process.stdout.write(
    `  QueueWorker (traced) / bare loop: ${(traced / bare).toFixed(2)} (target ≥ 0.90)\n` +
      `  tracing cost: ${((1 - traced / untraced) * 100).toFixed(1)} % (target ≤ 5 %)\n`,
  );
}

if (import.meta.main) await runQueueWorkerBench();
