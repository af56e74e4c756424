import path from 'node:path';
import { App } from 'aws-cdk-lib';
import { FleetStack } from './fleet-stack.ts';
import { type FleetSettings, readSettings, SettingsError } from './settings.ts';

/**
 * The CDK app: `cdk synth` / `cdk deploy` from `infra/` (see infra/cdk.json), or
 * `node infra/app.ts` with CDK_OUTDIR set. Settings come from CDK context; see README.md, "Deploy".
 */
const app = new App();
let settings: FleetSettings;
try {
  settings = readSettings((key) => app.node.tryGetContext(key));
} catch (error) {
  // A configuration mistake is a message for the operator, not a stack trace.
  if (!(error instanceof SettingsError)) throw error;
  console.error(error.message);
  process.exit(1);
}
new FleetStack(app, `${settings.prefix}-fleet`, {
  settings,
  repoRoot: path.resolve(import.meta.dirname, '..'),
  // Account and region of the deploying credentials; a VPC lookup needs them.
  env: { account: process.env.CDK_DEFAULT_ACCOUNT, region: process.env.CDK_DEFAULT_REGION },
});
app.synth();
