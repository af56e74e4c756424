import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { LoadWorkerReport, LoadWorkerSpec } from './ads-load-worker.ts';

const WORKER = fileURLToPath(new URL('./ads-load-worker.ts', import.meta.url));

export interface RunningLoadWorker {
  /** Resolves with the worker's report when it exits (its time is up, or `stop()`). */
  readonly done: Promise<LoadWorkerReport>;
  /** Asks the worker to stop now (SIGTERM); it still reports. */
  stop(): void;
}

/** Starts one load-worker process. */
export function startLoadWorker(spec: LoadWorkerSpec): RunningLoadWorker {
  let stop = () => {};
  const done = new Promise<LoadWorkerReport>((resolve, reject) => {
    const child = spawn(process.execPath, [WORKER, JSON.stringify(spec)], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, OTEL_SDK_DISABLED: 'true' },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
    });
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    stop = () => child.kill('SIGTERM');
    child.once('error', reject);
    child.once('exit', (code) => {
      if (code !== 0) {
        reject(new Error(`load worker exited with ${code}: ${stderr.trim().slice(-2_000)}`));
        return;
      }
      try {
        resolve(JSON.parse(stdout.trim().split('\n').at(-1) ?? '') as LoadWorkerReport);
      } catch {
        reject(new Error(`load worker printed no report: ${stdout.slice(-500)} ${stderr.slice(-500)}`));
      }
    });
  });
  return { done, stop: () => stop() };
}
