import * as ec2 from 'aws-cdk-lib/aws-ec2';
import { Construct } from 'constructs';

/**
 * Where the tasks run: the team's VPC when `vpcId` is given (the usual case: Postgres and
 * Redis already live there), otherwise a new one. Tasks sit in private subnets with egress
 * (the Ads API and LWA are on the internet) and accept no inbound traffic at all — workers
 * pull from SQS, nothing calls them.
 */
export class FleetNetwork extends Construct {
  readonly vpc: ec2.IVpc;
  readonly taskSecurityGroup: ec2.SecurityGroup;
  readonly taskSubnets: ec2.SubnetSelection = { subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS };

  constructor(scope: Construct, id: string, vpcId: string | undefined) {
    super(scope, id);
    this.vpc =
      vpcId === undefined
        ? new ec2.Vpc(this, 'Vpc', {
            maxAzs: 2,
            // One NAT gateway: egress is the Ads API and AWS APIs; a zone outage delays
            // work (messages wait in SQS), it loses nothing. Add one per zone if that matters.
            natGateways: 1,
            subnetConfiguration: [
              { name: 'public', subnetType: ec2.SubnetType.PUBLIC },
              { name: 'private', subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS },
            ],
            restrictDefaultSecurityGroup: true,
          })
        : ec2.Vpc.fromLookup(this, 'Vpc', { vpcId });

    this.taskSecurityGroup = new ec2.SecurityGroup(this, 'Tasks', {
      vpc: this.vpc,
      description: 'adfleet worker tasks: no inbound, outbound to AWS APIs, Ads API, Postgres, Redis',
      allowAllOutbound: true,
    });
  }
}
