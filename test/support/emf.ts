import { vi } from 'vitest';

/** One CloudWatch Embedded Metric Format line, parsed. */
export interface EmfLine {
  _aws: {
    Timestamp: number;
    CloudWatchMetrics: Array<{
      Namespace: string;
      Dimensions: string[][];
      Metrics: Array<{ Name: string; Unit: string }>;
    }>;
  };
  [key: string]: unknown;
}

/** The EMF lines a WorkerMetrics writes to stdout (through console.log) while `work` runs. */
export async function emfLinesOf(work: () => Promise<void>): Promise<EmfLine[]> {
  const written: string[] = [];
  const spy = vi.spyOn(console, 'log').mockImplementation((line: unknown) => {
    written.push(String(line));
  });
  try {
    await work();
  } finally {
    spy.mockRestore();
  }
  return written.map((line) => JSON.parse(line) as EmfLine);
}
