/**
 * Builds the three SDK v3 clients the AWS provider uses. Credentials come from the SDK's standard
 * chain (env, `profile`, SSO, web identity, instance role) unless given explicitly. Endpoints:
 * an explicit `endpoint` applies to all three clients; otherwise the SDK honours
 * `AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_AUTO_SCALING`, `AWS_ENDPOINT_URL_EC2`,
 * `AWS_ENDPOINT_URL_EC2_INSTANCE_CONNECT` and `endpoint_url` in the shared config file natively.
 *
 * `maxAttempts: 1` turns the SDK's own retries off: `retry.ts` is the single retry layer.
 */
import { AutoScalingClient, type AutoScalingClientConfig } from '@aws-sdk/client-auto-scaling';
import { EC2Client } from '@aws-sdk/client-ec2';
import { EC2InstanceConnectClient } from '@aws-sdk/client-ec2-instance-connect';

export interface AwsClients {
  autoscaling: AutoScalingClient;
  ec2: EC2Client;
  instanceConnect: EC2InstanceConnectClient;
}

export interface AwsClientOptions {
  region: string;
  /** Named profile from ~/.aws/config; otherwise AWS_PROFILE or the default chain. */
  profile?: string;
  /** Base URL for every client, e.g. `http://127.0.0.1:4566` for an AWS-compatible emulator. */
  endpoint?: string;
  /** Explicit credentials (tests, or a composition root that resolved them itself). */
  credentials?: AutoScalingClientConfig['credentials'];
}

export function createAwsClients(opts: AwsClientOptions): AwsClients {
  const config = {
    region: opts.region,
    maxAttempts: 1,
    ...(opts.profile !== undefined ? { profile: opts.profile } : {}),
    ...(opts.endpoint !== undefined ? { endpoint: opts.endpoint } : {}),
    ...(opts.credentials !== undefined ? { credentials: opts.credentials } : {}),
  };
  return {
    autoscaling: new AutoScalingClient(config),
    ec2: new EC2Client(config),
    instanceConnect: new EC2InstanceConnectClient(config),
  };
}

/**
 * Key under which a composition root should share one provider (and so one batched observe) among
 * fleets: fleets with the same region, profile and endpoint talk to the same API.
 */
export function awsClientKey(spec: { region: string; profile?: string; endpoint?: string }): string {
  return [spec.region, spec.profile ?? '', spec.endpoint ?? ''].join('|');
}
