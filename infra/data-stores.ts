import { Duration, Fn, RemovalPolicy, SecretValue } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as elasticache from 'aws-cdk-lib/aws-elasticache';
import * as rds from 'aws-cdk-lib/aws-rds';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import { Construct } from 'constructs';
import type { FleetNetwork } from './network.ts';

/**
 * Postgres and Redis, as the workers see them: two secrets holding `DATABASE_URL` and
 * `REDIS_URL`.
 *
 * By reference (the default). A platform team's Postgres outlives any one fleet: the API and
 * the operator CLI write jobs into it, it has its own backups, upgrades and on-call, and a
 * `cdk destroy` of the workers must never be able to take the data along. Redis likewise
 * is usually a shared cluster. The team stores the two URLs as secrets and passes their ARNs.
 *
 * Created (`dataStores=create`). For a stage or an evaluation account with nothing in it:
 * RDS Postgres and an ElastiCache Redis replication group, both encrypted at rest and in
 * transit, reachable only from the tasks' security group, with URL secrets composed by
 * CloudFormation from the generated credentials (the plain values never enter the template).
 */
export interface DataStoreSecrets {
  readonly databaseUrl: secretsmanager.ISecret;
  readonly redisUrl: secretsmanager.ISecret;
}

export function referencedDataStores(
  scope: Construct,
  arns: { readonly databaseUrlSecretArn: string; readonly redisUrlSecretArn: string },
): DataStoreSecrets {
  return {
    databaseUrl: secretsmanager.Secret.fromSecretCompleteArn(scope, 'DatabaseUrl', arns.databaseUrlSecretArn),
    redisUrl: secretsmanager.Secret.fromSecretCompleteArn(scope, 'RedisUrl', arns.redisUrlSecretArn),
  };
}

const POSTGRES_PORT = 5432;
const REDIS_PORT = 6379;
const DATABASE_NAME = 'adfleet';
const DATABASE_USER = 'adfleet';
/**
 * The generated password is spliced into a URL, so it is kept to characters that need no
 * percent-encoding in the userinfo part (letters, digits, `-._~`).
 */
const NOT_URL_SAFE = ' !"#$%&\'()*+,/:;<=>?@[\\]^`{|}';

export class CreatedDataStores extends Construct implements DataStoreSecrets {
  readonly databaseUrl: secretsmanager.Secret;
  readonly redisUrl: secretsmanager.Secret;
  readonly database: rds.DatabaseInstance;
  readonly redis: elasticache.CfnReplicationGroup;

  constructor(scope: Construct, id: string, prefix: string, network: FleetNetwork) {
    super(scope, id);
    const subnets = network.taskSubnets;

    const databaseSecurityGroup = new ec2.SecurityGroup(this, 'DatabaseSecurityGroup', {
      vpc: network.vpc,
      description: 'adfleet Postgres: only from the worker tasks',
      allowAllOutbound: false,
    });
    databaseSecurityGroup.addIngressRule(
      network.taskSecurityGroup,
      ec2.Port.tcp(POSTGRES_PORT),
      'worker tasks to Postgres',
    );
    this.database = new rds.DatabaseInstance(this, 'Postgres', {
      engine: rds.DatabaseInstanceEngine.postgres({ version: rds.PostgresEngineVersion.VER_17 }),
      instanceType: ec2.InstanceType.of(ec2.InstanceClass.T4G, ec2.InstanceSize.MEDIUM),
      vpc: network.vpc,
      vpcSubnets: subnets,
      securityGroups: [databaseSecurityGroup],
      databaseName: DATABASE_NAME,
      credentials: rds.Credentials.fromGeneratedSecret(DATABASE_USER, {
        secretName: `${prefix}/postgres-credentials`,
        excludeCharacters: NOT_URL_SAFE,
      }),
      storageEncrypted: true,
      allocatedStorage: 50,
      maxAllocatedStorage: 500,
      multiAz: true,
      backupRetention: Duration.days(7),
      deletionProtection: true,
      // Data outlives the stack: deleting it leaves a final snapshot.
      removalPolicy: RemovalPolicy.SNAPSHOT,
    });
    // verify-full: the image trusts the RDS CA bundle (NODE_EXTRA_CA_CERTS, see the Dockerfile).
    // Password rotation is not enabled: it would leave this composed URL stale.
    this.databaseUrl = new secretsmanager.Secret(this, 'DatabaseUrl', {
      secretName: `${prefix}/database-url`,
      description: 'DATABASE_URL of the adfleet workers, composed from the generated Postgres credentials',
      secretStringValue: SecretValue.unsafePlainText(
        Fn.join('', [
          `postgres://${DATABASE_USER}:`,
          this.database.secret?.secretValueFromJson('password').unsafeUnwrap() ?? '',
          '@',
          this.database.dbInstanceEndpointAddress,
          ':',
          this.database.dbInstanceEndpointPort,
          `/${DATABASE_NAME}?sslmode=verify-full`,
        ]),
      ),
    });

    const redisSecurityGroup = new ec2.SecurityGroup(this, 'RedisSecurityGroup', {
      vpc: network.vpc,
      description: 'adfleet Redis: only from the worker tasks',
      allowAllOutbound: false,
    });
    redisSecurityGroup.addIngressRule(
      network.taskSecurityGroup,
      ec2.Port.tcp(REDIS_PORT),
      'worker tasks to Redis',
    );
    const redisAuthToken = new secretsmanager.Secret(this, 'RedisAuthToken', {
      secretName: `${prefix}/redis-auth-token`,
      // ElastiCache AUTH tokens: 16-128 printable characters without / " @; alphanumerics are URL-safe too.
      generateSecretString: { passwordLength: 64, excludePunctuation: true },
    });
    const redisSubnets = new elasticache.CfnSubnetGroup(this, 'RedisSubnets', {
      description: 'adfleet Redis subnets',
      subnetIds: network.vpc.selectSubnets(subnets).subnetIds,
    });
    this.redis = new elasticache.CfnReplicationGroup(this, 'Redis', {
      replicationGroupDescription: 'adfleet rate limits and coordination',
      engine: 'redis',
      engineVersion: '7.1',
      cacheNodeType: 'cache.t4g.small',
      // A primary and a replica in another zone: losing Redis pauses Ads API calls fleet-wide.
      numCacheClusters: 2,
      automaticFailoverEnabled: true,
      multiAzEnabled: true,
      atRestEncryptionEnabled: true,
      transitEncryptionEnabled: true,
      authToken: redisAuthToken.secretValue.unsafeUnwrap(),
      port: REDIS_PORT,
      cacheSubnetGroupName: redisSubnets.ref,
      securityGroupIds: [redisSecurityGroup.securityGroupId],
    });
    this.redisUrl = new secretsmanager.Secret(this, 'RedisUrl', {
      secretName: `${prefix}/redis-url`,
      description: 'REDIS_URL of the adfleet workers (TLS), composed from the generated AUTH token',
      secretStringValue: SecretValue.unsafePlainText(
        Fn.join('', [
          'rediss://:',
          redisAuthToken.secretValue.unsafeUnwrap(),
          '@',
          this.redis.attrPrimaryEndPointAddress,
          ':',
          this.redis.attrPrimaryEndPointPort,
        ]),
      ),
    });
  }
}
