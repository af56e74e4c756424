// One measured run of the queue-worker benchmark, in a process of its own so that tracing
// on and off are separate SDK states. Usage: node bench/queue-worker-run.ts <bare|worker> <messages> <concurrency>
// Environment: the stack's, plus ADFLEET_RESOURCE_PREFIX naming a preloaded topology.
import '../shared/telemetry/start.ts';

const { DeleteMessageCommand, GetQueueUrlCommand, ReceiveMessageCommand } = await import(
  '@aws-sdk/client-sqs'
);
const { loadConfig } = await import('../contract/config.ts');
const { createAwsClients } = await import('../shared/aws.ts');
const { createLogger } = await import('../shared/logging.ts');
const { startWorker } = await import('../shared/runtime/start-worker.ts');
const { on } = await import('../shared/worker.ts');
const { resourceNames } = await import('../contract/topology.ts');
const { telemetry } = await import('../shared/telemetry/start.ts');
const { z } = await import('zod');

const [mode, messagesArg, concurrencyArg] = process.argv.slice(2);
const total = Number(messagesArg);
const concurrency = Number(concurrencyArg);
const config = loadConfig({ ...process.env, ADFLEET_CONCURRENCY: String(concurrency), LOG_LEVEL: 'warn' });

async function bareLoop(): Promise<number> {
  // The baseline: what a hand-written consumer does — long-poll 10 at a time, delete each
  // message once "handled", as many loops as it takes to keep `concurrency` messages busy.
  const clients = createAwsClients(config);
  const { QueueUrl } = await clients.sqs.send(
    new GetQueueUrlCommand({
      QueueName: resourceNames(config.ADFLEET_RESOURCE_PREFIX).queue('bulk-item'),
    }),
  );
  let handled = 0;
  const started = performance.now();
  // Timed to the last handled message, like the worker below: the other loops may still
  // sit in an empty long poll by then.
  let finished = started;
  const loops = Array.from({ length: Math.ceil(concurrency / 10) }, async () => {
    while (handled < total) {
      const { Messages = [] } = await clients.sqs.send(
        new ReceiveMessageCommand({
          QueueUrl,
          MaxNumberOfMessages: 10,
          WaitTimeSeconds: 1,
          MessageAttributeNames: ['All'],
        }),
      );
      await Promise.all(
        Messages.map(async (message) => {
          JSON.parse(message.Body ?? '{}');
          await clients.sqs.send(
            new DeleteMessageCommand({ QueueUrl, ReceiptHandle: message.ReceiptHandle }),
          );
          handled += 1;
          if (handled === total) finished = performance.now();
        }),
      );
    }
  });
  await Promise.all(loops);
  const seconds = (finished - started) / 1000;
  clients.destroy();
  return handled / seconds;
}

async function queueWorker(): Promise<number> {
  let handled = 0;
  let started = 0;
  let resolveDone: () => void = () => {};
  const done = new Promise<void>((resolve) => {
    resolveDone = resolve;
  });
  const worker = await startWorker(
    {
      queue: 'bulk-item',
      setup: async () => ({}),
      handlers: { Noop: on(z.object({ n: z.number() }), async () => {}) },
    },
    {
      config,
      logger: createLogger({ level: 'warn', name: 'bench', pretty: false }),
      waitTimeSeconds: 1,
      onHandled: () => {
        if (started === 0) started = performance.now();
        handled += 1;
        if (handled === total) resolveDone();
      },
    },
  );
  const begin = performance.now();
  await done;
  // Deletes are acknowledged after onHandled; measure to the last handled message.
  const seconds = (performance.now() - Math.min(begin, started || begin)) / 1000;
  await worker.stop();
  return handled / seconds;
}

const rate = mode === 'bare' ? await bareLoop() : await queueWorker();
await telemetry.shutdown();
process.stdout.write(`${JSON.stringify({ mode, tracing: telemetry.enabled, rate })}\n`);
process.exit(0);
