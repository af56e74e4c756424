import { describe, expect, it } from 'vitest';
import { readSettings, SettingsError } from '../../infra/settings.ts';
import { SECRET_ARNS } from './fleet-template.ts';

const read = (context: Record<string, unknown>) => readSettings((key) => context[key]);

describe('CDK context settings', () => {
  it('needs only the secrets; everything else has a deployable default', () => {
    const settings = read({ ...SECRET_ARNS });
    expect(settings).toMatchObject({
      prefix: 'adfleet',
      dataStores: 'existing',
      tracesBackend: 'xray',
      adsApiUrl: 'https://advertising-api.amazon.com',
      lwaTokenUrl: 'https://api.amazon.com/auth/o2/token',
      containerInsights: true,
    });
    expect(settings.imageUri).toBeUndefined();
  });

  it('reads `-c key=value` strings', () => {
    const settings = read({
      ...SECRET_ARNS,
      containerInsights: 'false',
      tracesBackend: 'tempo',
      tracesEndpoint: 'https://tempo.internal:4318',
    });
    expect(settings.containerInsights).toBe(false);
    expect(settings.tracesEndpoint).toBe('https://tempo.internal:4318');
  });

  it('names every bad or missing key in one error, including rules between keys', () => {
    const attempt = () =>
      read({
        prefix: 'Not A Prefix',
        tracesBackend: 'jaeger',
        databaseUrlSecretArn: 'arn:aws:secretsmanager:eu-west-1:111111111111:secret:adfleet/database-url',
      });
    expect(attempt).toThrow(SettingsError);
    const message = (() => {
      try {
        attempt();
        return '';
      } catch (error) {
        return (error as Error).message;
      }
    })();
    // A partial ARN (no 6-character suffix) is refused: ECS needs the complete one.
    for (const key of [
      'prefix',
      'adsApiSecretArn',
      'databaseUrlSecretArn',
      'redisUrlSecretArn',
      'tracesEndpoint',
    ]) {
      expect(message).toContain(`  ${key}: `);
    }
  });

  it('refuses URL secrets when the stack is asked to create the data stores', () => {
    expect(() => read({ ...SECRET_ARNS, dataStores: 'create' })).toThrow(
      /databaseUrlSecretArn: dataStores=create/,
    );
  });
});
