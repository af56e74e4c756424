import type { Template } from 'aws-cdk-lib/assertions';
import { beforeAll, describe, expect, it } from 'vitest';
import { resourceNames } from '../../contract/topology.ts';
import { WORKER_NAMES, type WorkerName, workers } from '../../infra/workers.ts';
import {
  BASE_CONTEXT,
  getAtt,
  onlyResource,
  queueIdByName,
  referencedId,
  resourcesOf,
  SECRET_ARNS,
  synthesizeFleet,
  taskDefinitionOf,
} from './fleet-template.ts';

/**
 * Least privilege, statement by statement: each worker's task role holds exactly what
 * that worker does, and its execution role reads exactly that worker's secrets.
 */

const names = resourceNames('adfleet');

interface Statement {
  Sid?: string;
  Effect: string;
  Action: string | string[];
  Resource: unknown;
  Condition?: unknown;
}

let template: Template;
let jaegerTemplate: Template;
beforeAll(() => {
  ({ template } = synthesizeFleet());
  ({ template: jaegerTemplate } = synthesizeFleet({
    ...BASE_CONTEXT,
    tracesBackend: 'jaeger',
    tracesEndpoint: 'https://jaeger.internal:4318',
  }));
});

function idOf(t: Template, type: string, match: (p: Record<string, unknown>) => boolean): string {
  return onlyResource(t, type, match)[0];
}
const busId = (t: Template) => idOf(t, 'AWS::Events::EventBus', (p) => p.Name === names.bus);

function taskDefinition(t: Template, worker: WorkerName) {
  return taskDefinitionOf(t, worker)[1].Properties;
}

/** Every statement attached to a role: its inline policies and the AWS::IAM::Policy resources naming it. */
function statementsOf(t: Template, roleId: string): Statement[] {
  const role = resourcesOf(t, 'AWS::IAM::Role')[roleId];
  if (role === undefined) throw new Error(`no role ${roleId}`);
  const inline = (
    (role.Properties.Policies ?? []) as { PolicyDocument: { Statement: Statement[] } }[]
  ).flatMap((policy) => policy.PolicyDocument.Statement);
  const attached = Object.values(resourcesOf(t, 'AWS::IAM::Policy'))
    .filter((policy) => (policy.Properties.Roles as unknown[]).some((r) => referencedId(r) === roleId))
    .flatMap((policy) => (policy.Properties.PolicyDocument as { Statement: Statement[] }).Statement);
  return [...inline, ...attached];
}

/** Statements compared as a set: CDK orders grants by when they were added, which means nothing. */
function sorted(statements: readonly Statement[]): Statement[] {
  return [...statements].sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b)));
}

function roleOf(t: Template, worker: WorkerName, arnProperty: 'TaskRoleArn' | 'ExecutionRoleArn') {
  const roleId = referencedId(taskDefinition(t, worker)[arnProperty]);
  const role = resourcesOf(t, 'AWS::IAM::Role')[roleId ?? ''];
  if (roleId === undefined || role === undefined) throw new Error(`${worker} has no ${arnProperty}`);
  // Worker roles carry no managed policies: every permission is in the statements below.
  expect(role.Properties.ManagedPolicyArns).toBeUndefined();
  return roleId;
}

function taskRoleStatements(t: Template, worker: WorkerName): Statement[] {
  return statementsOf(t, roleOf(t, worker, 'TaskRoleArn'));
}

function executionRoleStatements(t: Template, worker: WorkerName): Statement[] {
  return statementsOf(t, roleOf(t, worker, 'ExecutionRoleArn'));
}

function expectedTaskRoleStatements(t: Template, worker: WorkerName, withXRay: boolean): Statement[] {
  const sendTargets = workers[worker].sendsTo.map((queue) => getAtt(queueIdByName(t, names.queue(queue))));
  const statements: Statement[] = [
    {
      Sid: 'ConsumeOwnQueue',
      Effect: 'Allow',
      Action: [
        'sqs:ChangeMessageVisibility',
        'sqs:DeleteMessage',
        'sqs:GetQueueAttributes',
        'sqs:GetQueueUrl',
        'sqs:ReceiveMessage',
      ],
      Resource: getAtt(queueIdByName(t, names.queue(worker))),
    },
    {
      Sid: 'SendToQueues',
      Effect: 'Allow',
      Action: ['sqs:GetQueueUrl', 'sqs:SendMessage'],
      Resource: [...sendTargets, getAtt(queueIdByName(t, names.deadLetterQueue(worker)))],
    },
    {
      Sid: 'PublishFleetEvents',
      Effect: 'Allow',
      Action: 'events:PutEvents',
      Resource: getAtt(busId(t)),
      Condition: { StringEquals: { 'events:source': 'adfleet' } },
    },
  ];
  if (withXRay) {
    statements.push({
      Sid: 'ExportTracesToXRay',
      Effect: 'Allow',
      Action: ['xray:PutTelemetryRecords', 'xray:PutTraceSegments'],
      Resource: '*',
    });
  }
  return statements;
}

describe('task roles', () => {
  it.each(WORKER_NAMES)(
    '%s: consume its own queue, send where it sends and to its DLQ, put fleet events',
    (worker) => {
      expect(taskRoleStatements(template, worker)).toEqual(
        expectedTaskRoleStatements(template, worker, true),
      );
    },
  );

  it.each(WORKER_NAMES)('%s: no X-Ray permission when traces go to Jaeger', (worker) => {
    expect(taskRoleStatements(jaegerTemplate, worker)).toEqual(
      expectedTaskRoleStatements(jaegerTemplate, worker, false),
    );
  });

  it('never grants a worker another worker’s queue or dead-letter queue', () => {
    for (const worker of WORKER_NAMES) {
      const resources = JSON.stringify(
        taskRoleStatements(template, worker).map((statement) => statement.Resource),
      );
      for (const other of WORKER_NAMES.filter(
        (name) => !(workers[worker].sendsTo as readonly string[]).includes(name),
      )) {
        expect(resources).not.toContain(`"${queueIdByName(template, names.queue(other))}"`);
        expect(resources).not.toContain(`"${queueIdByName(template, names.deadLetterQueue(other))}"`);
      }
    }
  });

  it('are each one role per worker, assumable only by ECS tasks of this account', () => {
    const roleIds = WORKER_NAMES.map((worker) => referencedId(taskDefinition(template, worker).TaskRoleArn));
    expect(new Set(roleIds).size).toBe(WORKER_NAMES.length);
    for (const roleId of roleIds) {
      const role = resourcesOf(template, 'AWS::IAM::Role')[roleId ?? ''];
      if (role === undefined) throw new Error(`no role ${roleId}`);
      const trust = (role.Properties.AssumeRolePolicyDocument as { Statement: Record<string, unknown>[] })
        .Statement;
      expect(trust).toHaveLength(1);
      expect(trust[0]).toMatchObject({
        Action: 'sts:AssumeRole',
        Principal: { Service: 'ecs-tasks.amazonaws.com' },
        Condition: { StringEquals: { 'aws:SourceAccount': { Ref: 'AWS::AccountId' } } },
      });
    }
  });
});

describe('execution roles', () => {
  const secretsOf = (worker: WorkerName) =>
    workers[worker].usesAdsApi
      ? [SECRET_ARNS.databaseUrlSecretArn, SECRET_ARNS.redisUrlSecretArn, SECRET_ARNS.adsApiSecretArn]
      : [SECRET_ARNS.databaseUrlSecretArn, SECRET_ARNS.redisUrlSecretArn];

  it.each(WORKER_NAMES)('%s: its log group, its image repository, and only its secrets', (worker) => {
    const logGroupId = idOf(template, 'AWS::Logs::LogGroup', (p) => p.LogGroupName === `/adfleet/${worker}`);
    const statements = executionRoleStatements(template, worker);
    expect(sorted(statements)).toEqual(
      sorted([
        {
          Effect: 'Allow',
          Action: ['ecr:BatchCheckLayerAvailability', 'ecr:GetDownloadUrlForLayer', 'ecr:BatchGetImage'],
          Resource: 'arn:aws:ecr:eu-west-1:111111111111:repository/adfleet',
        },
        // GetAuthorizationToken has no resource-level permissions: `*` is the only form.
        { Effect: 'Allow', Action: 'ecr:GetAuthorizationToken', Resource: '*' },
        {
          Effect: 'Allow',
          Action: ['logs:CreateLogStream', 'logs:PutLogEvents'],
          Resource: getAtt(logGroupId),
        },
        ...secretsOf(worker).map((arn) => ({
          Effect: 'Allow',
          Action: ['secretsmanager:GetSecretValue', 'secretsmanager:DescribeSecret'],
          Resource: arn,
        })),
      ]),
    );
  });

  it('keeps the LWA credentials away from the worker that does not call the Ads API', () => {
    const readers = WORKER_NAMES.filter((worker) =>
      JSON.stringify(executionRoleStatements(template, worker)).includes(SECRET_ARNS.adsApiSecretArn),
    );
    expect(readers).toEqual(WORKER_NAMES.filter((worker) => workers[worker].usesAdsApi));
    expect(readers).not.toContain('backfill-chunk');
  });
});

describe('the whole template', () => {
  /** Actions that have no resource-level permissions in IAM; `*` is the only resource they take. */
  const RESOURCE_WILDCARD_ONLY = new Set([
    'ecr:GetAuthorizationToken',
    'xray:PutTelemetryRecords',
    'xray:PutTraceSegments',
  ]);

  it.each([
    ['X-Ray', () => template],
    ['Jaeger', () => jaegerTemplate],
  ])(
    'has no wildcard action, and `*` resources only where IAM offers nothing narrower (%s)',
    (_label, current) => {
      const t = current();
      const roles = resourcesOf(t, 'AWS::IAM::Role');
      const statements = Object.keys(roles).flatMap((roleId) => statementsOf(t, roleId));
      expect(statements.length).toBeGreaterThan(10);
      for (const statement of statements) {
        const actions = [statement.Action].flat();
        for (const action of actions) expect(action).not.toMatch(/\*/);
        if (statement.Resource === '*' || [statement.Resource].flat().includes('*')) {
          for (const action of actions) expect(RESOURCE_WILDCARD_ONLY).toContain(action);
        }
      }
      // The one managed policy: CDK's provider that strips the new VPC's default security
      // group runs as a Lambda with the basic logging policy.
      const withManagedPolicies = Object.entries(roles).filter(
        ([, role]) => role.Properties.ManagedPolicyArns,
      );
      expect(
        withManagedPolicies.map(([id, role]) => [
          id.replace(/[0-9A-F]{8}$/, ''),
          role.Properties.ManagedPolicyArns,
        ]),
      ).toEqual([
        [
          'CustomVpcRestrictDefaultSGCustomResourceProviderRole',
          // biome-ignore lint/suspicious/noTemplateCurlyInString: a CloudFormation Fn::Sub, not a JS template
          [{ 'Fn::Sub': 'arn:${AWS::Partition}:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole' }],
        ],
      ]);
    },
  );
});
