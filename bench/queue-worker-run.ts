// One measured run of the queue-worker benchmark, in a process of its own so that tracing on
// and off are separate SDK states and the CPU and peak RSS read are this consumer's alone.
// Usage: node bench/queue-worker-run.ts <bare|worker|sqs-consumer> <messages> <concurrency>
// Environment: the stack's, plus ADFLEET_RESOURCE_PREFIX naming a preloaded topology.
import '../shared/telemetry/start.ts';

const { DeleteMessageCommand, GetQueueUrlCommand, ReceiveMessageCommand } = await import(
  '@aws-sdk/client-sqs'
);
const { Consumer } = await import('sqs-consumer');
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
const clients = createAwsClients(config);
const { QueueUrl } = await clients.sqs.send(
  new GetQueueUrlCommand({ QueueName: resourceNames(config.ADFLEET_RESOURCE_PREFIX).queue('bulk-item') }),
);
if (QueueUrl === undefined) throw new Error('bulk-item queue not found');

/**
 * What every variant reports: the clock and this process's CPU from the moment consumption
 * starts to the last handled message (the other pollers may still sit in an empty long poll
 * by then), and RSS sampled along the way for the long-run flatness check.
 */
let handled = 0;
let startedAt = 0;
let cpuAtStart: NodeJS.CpuUsage = { user: 0, system: 0 };
let finishedAt = 0;
let cpuAtFinish: NodeJS.CpuUsage = { user: 0, system: 0 };
const rssSamples: { handled: number; rssMb: number }[] = [];
let finish: () => void = () => {};
const finished = new Promise<void>((resolve) => {
  finish = resolve;
});

function begin(): void {
  startedAt = performance.now();
  cpuAtStart = process.cpuUsage();
}

function countHandled(): void {
  handled += 1;
  if (handled === total) {
    finishedAt = performance.now();
    cpuAtFinish = process.cpuUsage(cpuAtStart);
    finish();
  }
}

const sampler = setInterval(() => {
  rssSamples.push({ handled, rssMb: process.memoryUsage.rss() / 1024 / 1024 });
}, 500);

async function bareLoop(): Promise<void> {
  // The baseline: what a hand-written consumer does — long-poll 10 at a time, delete each
  // message once "handled", as many loops as it takes to keep `concurrency` messages busy.
  begin();
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
          countHandled();
        }),
      );
    }
  });
  await Promise.all(loops);
}

async function queueWorker(): Promise<void> {
  begin();
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
      onHandled: countHandled,
    },
  );
  await finished;
  await worker.stop();
}

async function plainSqsConsumer(): Promise<void> {
  // sqs-consumer as its README configures it: one consumer, a batch of 10, the message
  // returned to acknowledge (delete) it.
  const consumer = Consumer.create({
    queueUrl: QueueUrl as string,
    sqs: clients.sqs,
    batchSize: 10,
    waitTimeSeconds: 1,
    handleMessage: async (message) => {
      JSON.parse(message.Body ?? '{}');
      return message;
    },
  });
  // Counted once deleted, as the bare loop and QueueWorker count after their delete is sent.
  consumer.on('message_processed', countHandled);
  consumer.on('error', (error) => process.stderr.write(`sqs-consumer: ${error.message}\n`));
  begin();
  consumer.start();
  await finished;
  consumer.stop({ abort: true });
}

if (mode === 'bare') await bareLoop();
else if (mode === 'worker') await queueWorker();
else if (mode === 'sqs-consumer') await plainSqsConsumer();
else throw new Error(`unknown mode ${mode}`);
clearInterval(sampler);
const seconds = (finishedAt - startedAt) / 1000;
const cpuMs = (cpuAtFinish.user + cpuAtFinish.system) / 1000;
await telemetry.shutdown();
clients.destroy();
process.stdout.write(
  `${JSON.stringify({
    mode,
    tracing: telemetry.enabled,
    rate: handled / seconds,
    cpuMsPerMessage: cpuMs / handled,
    // maxRSS is in kilobytes.
    maxRssMb: process.resourceUsage().maxRSS / 1024,
    rssSamples,
  })}\n`,
);
process.exit(0);
