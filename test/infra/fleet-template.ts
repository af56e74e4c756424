import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { App } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { FleetStack } from '../../infra/fleet-stack.ts';
import { readSettings } from '../../infra/settings.ts';
import type { WorkerName } from '../../infra/workers.ts';
import { REPO_ROOT } from '../support/processes.ts';

/**
 * Synthesizes the fleet stack in-process, exactly as `infra/app.ts` does (same settings
 * parser, same stack class); `cdk-cli.test.ts` proves the CLI path gives the same result.
 */

/** Cloud assemblies of this test process, removed when it exits. */
const OUT_ROOT = mkdtempSync(path.join(tmpdir(), 'adfleet-cdk-'));
process.once('exit', () => rmSync(OUT_ROOT, { recursive: true, force: true }));

const ACCOUNT = '111111111111';
const REGION = 'eu-west-1';
export const SECRET_ARNS = {
  adsApiSecretArn: `arn:aws:secretsmanager:${REGION}:${ACCOUNT}:secret:adfleet/ads-api-AbCdEf`,
  databaseUrlSecretArn: `arn:aws:secretsmanager:${REGION}:${ACCOUNT}:secret:adfleet/database-url-GhIjKl`,
  redisUrlSecretArn: `arn:aws:secretsmanager:${REGION}:${ACCOUNT}:secret:adfleet/redis-url-MnOpQr`,
} as const;

/** A CI-pushed image: keeps in-process synths free of Docker asset staging. */
export const IMAGE_URI = `${ACCOUNT}.dkr.ecr.${REGION}.amazonaws.com/adfleet:0123abc`;

export const BASE_CONTEXT: Readonly<Record<string, string>> = { ...SECRET_ARNS, imageUri: IMAGE_URI };

export interface SynthesizedFleet {
  readonly stack: FleetStack;
  readonly template: Template;
}

export function synthesizeFleet(
  context: Readonly<Record<string, string | undefined>> = BASE_CONTEXT,
  env?: { readonly account?: string; readonly region?: string },
): SynthesizedFleet {
  const app = new App({ context, outdir: mkdtempSync(path.join(OUT_ROOT, 'app-')) });
  const settings = readSettings((key) => app.node.tryGetContext(key));
  const stack = new FleetStack(app, `${settings.prefix}-fleet`, { settings, repoRoot: REPO_ROOT, env });
  return { stack, template: Template.fromStack(stack) };
}

type Resource = { Type: string; Properties: Record<string, unknown>; [key: string]: unknown };

/** Resources of one type, by logical id. */
export function resourcesOf(template: Template, type: string): Record<string, Resource> {
  return template.findResources(type) as Record<string, Resource>;
}

/**
 * The one resource of `type` whose properties satisfy `match`, as [logical id, resource];
 * throws unless exactly one does. `description` names what was looked for in that error.
 */
export function onlyResource(
  template: Template,
  type: string,
  match: (properties: Record<string, unknown>) => boolean,
  description?: string,
): [string, Resource] {
  const found = Object.entries(resourcesOf(template, type)).filter(([, resource]) =>
    match(resource.Properties),
  );
  if (found.length !== 1) {
    const what = description === undefined ? type : `${type} ${description}`;
    throw new Error(`expected one ${what}, found ${found.length}`);
  }
  return found[0] as [string, Resource];
}

/** A worker's task definition (family `adfleet-<worker>`), as [logical id, resource]. */
export function taskDefinitionOf(template: Template, worker: WorkerName): [string, Resource] {
  const family = `adfleet-${worker}`;
  return onlyResource(
    template,
    'AWS::ECS::TaskDefinition',
    (p) => p.Family === family,
    `with Family ${family}`,
  );
}

/** The queue named `queueName`, as [logical id, resource]. */
export function queueByName(template: Template, queueName: string): [string, Resource] {
  return onlyResource(
    template,
    'AWS::SQS::Queue',
    (p) => p.QueueName === queueName,
    `with QueueName ${queueName}`,
  );
}

/** The logical id of the queue named `queueName`. */
export function queueIdByName(template: Template, queueName: string): string {
  return queueByName(template, queueName)[0];
}

/** The logical id a `{ "Fn::GetAtt": [id, attr] }` or `{ "Ref": id }` points to. */
export function referencedId(value: unknown): string | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const getAtt = (value as { 'Fn::GetAtt'?: unknown })['Fn::GetAtt'];
  if (Array.isArray(getAtt)) return getAtt[0] as string;
  const ref = (value as { Ref?: unknown }).Ref;
  return typeof ref === 'string' ? ref : undefined;
}

export function getAtt(logicalId: string, attribute = 'Arn') {
  return { 'Fn::GetAtt': [logicalId, attribute] };
}
