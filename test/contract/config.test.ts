import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig, SANDBOX_CREDENTIALS } from '../../contract/config.ts';

const valid = {
  DATABASE_URL: 'postgres://postgres@127.0.0.1:5432/adfleet',
  REDIS_URL: 'redis://127.0.0.1:6379',
};

describe('loadConfig', () => {
  it('accepts a minimal environment and fills the defaults', () => {
    const config = loadConfig(valid);
    expect(config.AWS_REGION).toBe('us-east-1');
    expect(config.LOG_LEVEL).toBe('info');
    expect(config.ADFLEET_CONCURRENCY).toBe(20);
    expect(config.ADFLEET_RESOURCE_PREFIX).toBe('adfleet');
  });

  it('coerces numbers and treats empty values as unset', () => {
    const config = loadConfig({ ...valid, ADFLEET_CONCURRENCY: '64', LOG_LEVEL: '' });
    expect(config.ADFLEET_CONCURRENCY).toBe(64);
    expect(config.LOG_LEVEL).toBe('info');
  });

  it('names every bad or missing variable in one error', () => {
    const attempt = () =>
      loadConfig({
        REDIS_URL: 'not a url',
        LOG_LEVEL: 'chatty',
        ADFLEET_CONCURRENCY: '-3',
        ADFLEET_RESOURCE_PREFIX: 'Has Spaces',
      });
    expect(attempt).toThrow(ConfigError);
    try {
      attempt();
    } catch (error) {
      const configError = error as ConfigError;
      expect([...configError.variables].sort()).toEqual(
        ['ADFLEET_CONCURRENCY', 'ADFLEET_RESOURCE_PREFIX', 'DATABASE_URL', 'LOG_LEVEL', 'REDIS_URL'].sort(),
      );
      for (const name of configError.variables) expect(configError.message).toContain(name);
      expect(configError.message.split('\n')[0]).toMatch(/invalid configuration/);
    }
  });

  it('rejects a URL with the wrong scheme', () => {
    expect(() => loadConfig({ ...valid, DATABASE_URL: 'ftp://example' })).toThrow(/DATABASE_URL/);
  });

  it('gives the sandbox credentials only to a process aimed at the local sandbox', () => {
    const local = loadConfig({ ...valid, ADFLEET_ADS_API_URL: 'http://127.0.0.1:45123' });
    expect(local.ADFLEET_ADS_CLIENT_SECRET).toBe(SANDBOX_CREDENTIALS.ADFLEET_ADS_CLIENT_SECRET);
    expect(loadConfig(valid).ADFLEET_ADS_REFRESH_TOKEN).toBe(SANDBOX_CREDENTIALS.ADFLEET_ADS_REFRESH_TOKEN);
  });

  it('refuses to start against the real Ads API without real credentials, naming each missing one', () => {
    const attempt = () =>
      loadConfig({
        ...valid,
        ADFLEET_ADS_API_URL: 'https://advertising-api.amazon.com',
        ADFLEET_ADS_CLIENT_ID: 'amzn1.application-oa2-client.real',
      });
    expect(attempt).toThrow(ConfigError);
    try {
      attempt();
    } catch (error) {
      expect((error as ConfigError).variables).toEqual([
        'ADFLEET_ADS_CLIENT_SECRET',
        'ADFLEET_ADS_REFRESH_TOKEN',
      ]);
      expect((error as Error).message).toContain('not the local sandbox');
    }
    const real = loadConfig({
      ...valid,
      ADFLEET_ADS_API_URL: 'https://advertising-api.amazon.com',
      ADFLEET_ADS_CLIENT_ID: 'id',
      ADFLEET_ADS_CLIENT_SECRET: 'secret',
      ADFLEET_ADS_REFRESH_TOKEN: 'refresh',
    });
    expect(real.ADFLEET_ADS_CLIENT_SECRET).toBe('secret');
  });
});
