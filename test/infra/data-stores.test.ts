import type { Template } from 'aws-cdk-lib/assertions';
import { beforeAll, describe, expect, it } from 'vitest';
import { WORKER_NAMES, type WorkerName } from '../../infra/workers.ts';
import {
  IMAGE_URI,
  onlyResource,
  referencedId,
  resourcesOf,
  SECRET_ARNS,
  synthesizeFleet,
  taskDefinitionOf,
} from './fleet-template.ts';

/**
 * Postgres and Redis either by reference (default: the team's, behind URL secrets) or
 * created by the stack (dataStores=create). Both must hand the workers the same two secrets.
 */

let referenced: Template;
let created: Template;
beforeAll(() => {
  ({ template: referenced } = synthesizeFleet({ ...SECRET_ARNS, imageUri: IMAGE_URI }));
  ({ template: created } = synthesizeFleet({
    adsApiSecretArn: SECRET_ARNS.adsApiSecretArn,
    imageUri: IMAGE_URI,
    dataStores: 'create',
  }));
});

function workerSecrets(t: Template, worker: WorkerName) {
  const [, taskDefinition] = taskDefinitionOf(t, worker);
  const definitions = taskDefinition.Properties.ContainerDefinitions as {
    Name: string;
    Secrets?: { Name: string; ValueFrom: unknown }[];
  }[];
  const worker_ = definitions.find((definition) => definition.Name === 'worker');
  return Object.fromEntries((worker_?.Secrets ?? []).map((secret) => [secret.Name, secret.ValueFrom]));
}

describe('existing Postgres and Redis (default)', () => {
  it('creates no database, cache or secret of its own', () => {
    referenced.resourceCountIs('AWS::RDS::DBInstance', 0);
    referenced.resourceCountIs('AWS::ElastiCache::ReplicationGroup', 0);
    referenced.resourceCountIs('AWS::SecretsManager::Secret', 0);
  });

  it('hands every worker the referenced URL secrets', () => {
    for (const worker of WORKER_NAMES) {
      expect(workerSecrets(referenced, worker)).toMatchObject({
        DATABASE_URL: SECRET_ARNS.databaseUrlSecretArn,
        REDIS_URL: SECRET_ARNS.redisUrlSecretArn,
      });
    }
  });

  it('exports the task security group so the team can let it into their databases', () => {
    const outputs = referenced.findOutputs('TaskSecurityGroupId');
    expect(Object.keys(outputs)).toHaveLength(1);
  });
});

describe('created Postgres and Redis (dataStores=create)', () => {
  it('creates an encrypted, protected, multi-AZ RDS Postgres that keeps a snapshot on delete', () => {
    const [, database] = onlyResource(created, 'AWS::RDS::DBInstance', () => true);
    expect(database.Properties).toMatchObject({
      Engine: 'postgres',
      StorageEncrypted: true,
      DeletionProtection: true,
      MultiAZ: true,
      PubliclyAccessible: false,
      DBName: 'adfleet',
    });
    expect(database.DeletionPolicy).toBe('Snapshot');
  });

  it('creates a Redis replication group encrypted at rest and in transit, with an AUTH token', () => {
    const [, redis] = onlyResource(created, 'AWS::ElastiCache::ReplicationGroup', () => true);
    expect(redis.Properties).toMatchObject({
      Engine: 'redis',
      AtRestEncryptionEnabled: true,
      TransitEncryptionEnabled: true,
      AutomaticFailoverEnabled: true,
      NumCacheClusters: 2,
    });
    // The token is a dynamic reference resolved by CloudFormation, never a literal.
    expect(JSON.stringify(redis.Properties.AuthToken)).toContain('{{resolve:secretsmanager:');
  });

  it('lets only the worker tasks reach Postgres and Redis, on their ports', () => {
    const [tasksGroupId] = onlyResource(created, 'AWS::EC2::SecurityGroup', (p) =>
      String(p.GroupDescription).startsWith('adfleet worker tasks'),
    );
    const ingress = Object.values(resourcesOf(created, 'AWS::EC2::SecurityGroupIngress')).map(
      (rule) => rule.Properties,
    );
    expect(ingress).toHaveLength(2);
    expect(ingress.map((rule) => rule.FromPort).sort()).toEqual([5432, 6379]);
    for (const rule of ingress) {
      expect(rule.ToPort).toBe(rule.FromPort);
      expect(referencedId(rule.SourceSecurityGroupId)).toBe(tasksGroupId);
    }
  });

  it('composes DATABASE_URL and REDIS_URL secrets from the generated credentials, without plain values', () => {
    const [databaseUrlId, databaseUrl] = onlyResource(
      created,
      'AWS::SecretsManager::Secret',
      (p) => p.Name === 'adfleet/database-url',
    );
    const [redisUrlId, redisUrl] = onlyResource(
      created,
      'AWS::SecretsManager::Secret',
      (p) => p.Name === 'adfleet/redis-url',
    );
    const databaseUrlText = JSON.stringify(databaseUrl.Properties.SecretString);
    expect(databaseUrlText).toContain('postgres://adfleet:');
    expect(databaseUrlText).toContain('{{resolve:secretsmanager:');
    expect(databaseUrlText).toContain('sslmode=verify-full');
    const redisUrlText = JSON.stringify(redisUrl.Properties.SecretString);
    expect(redisUrlText).toContain('rediss://:');
    expect(redisUrlText).toContain('{{resolve:secretsmanager:');
    for (const worker of WORKER_NAMES) {
      const secrets = workerSecrets(created, worker);
      expect(referencedId(secrets.DATABASE_URL)).toBe(databaseUrlId);
      expect(referencedId(secrets.REDIS_URL)).toBe(redisUrlId);
    }
  });
});

describe('network', () => {
  it('creates its own VPC by default, and none when given an existing one', () => {
    referenced.resourceCountIs('AWS::EC2::VPC', 1);
    const { template: inExisting } = synthesizeFleet(
      { ...SECRET_ARNS, imageUri: IMAGE_URI, vpcId: 'vpc-0abc1234' },
      { account: '111111111111', region: 'eu-west-1' },
    );
    inExisting.resourceCountIs('AWS::EC2::VPC', 0);
    inExisting.resourceCountIs('AWS::ECS::Service', WORKER_NAMES.length);
  });
});
