import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../../shared/logging.ts';

function capture() {
  const lines: Array<Record<string, unknown>> = [];
  const destination = new Writable({
    write(chunk, _encoding, callback) {
      for (const line of String(chunk).split('\n').filter(Boolean)) lines.push(JSON.parse(line));
      callback();
    },
  });
  return { lines, logger: createLogger({ level: 'info', name: 'unit', destination }) };
}

describe('logger', () => {
  it('never writes secrets: Authorization headers, LWA tokens, client secrets', () => {
    const { lines, logger } = capture();
    logger.info(
      {
        request: { headers: { Authorization: 'Bearer Atza|secret', 'Amazon-Advertising-API-Scope': '42' } },
        refresh_token: 'Atzr|refresh',
        credentials: { clientSecret: 'secret-value-1', accessToken: 'secret-value-2' },
      },
      'calling the Ads API',
    );
    const text = JSON.stringify(lines);
    for (const secret of ['Atza|secret', 'Atzr|refresh', 'secret-value-1', 'secret-value-2'])
      expect(text).not.toContain(secret);
    expect(text).toContain('[redacted]');
    expect(text).toContain('Amazon-Advertising-API-Scope');
  });
});
