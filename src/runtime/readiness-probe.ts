/**
 * The readiness probe the job runtime provides to the daemon: runs `instance_ready_command` on a
 * new instance through the same connectors jobs use (a local process for `local` sandboxes, the
 * pooled SSH connection otherwise). Without a ready command, a successful `true` over the
 * connector proves the instance takes commands.
 */
import type { Fleet } from '../model/fleet.js';
import type { ConnectInfo } from '../providers/provider.js';
import { shellQuote } from './script/shell-quote.js';
import type { SshConnectorPool } from './connectors/ssh-connector.js';
import { connectorFor } from './executor-factory.js';

export interface ProbeResult {
  ok: boolean;
  /** The command's output, truncated; shown in logs. Never contains connect credentials. */
  output?: string;
}

/**
 * Runs `fleet.instance_ready_command` on one instance (a bare `true` when it has none, proving the
 * instance takes commands). Must honour `signal` (timeout, shutdown). The daemon runs it on every
 * new instance before the instance takes jobs.
 */
export type ReadinessProbe = (
  fleet: Fleet,
  instanceId: string,
  connectInfo: ConnectInfo,
  signal: AbortSignal,
) => Promise<ProbeResult>;

const MAX_OUTPUT = 2000;

export function connectorReadinessProbe(ssh: SshConnectorPool): ReadinessProbe {
  return async (fleet, _id, info, signal) => {
    let output = '';
    const collect = (chunk: Buffer) => {
      if (output.length < MAX_OUTPUT) output += chunk.toString('utf8');
    };
    try {
      const connector = connectorFor(info, ssh);
      const command = fleet.instance_ready_command
        ? `sh -c ${shellQuote(fleet.instance_ready_command)}`
        : 'true';
      const result = await connector.exec(command, { signal, onStdout: collect, onStderr: collect });
      return { ok: result.exitCode === 0, output: output.slice(0, MAX_OUTPUT) };
    } catch (e) {
      return { ok: false, output: `${output}${(e as Error).message}`.slice(0, MAX_OUTPUT) };
    }
  };
}
