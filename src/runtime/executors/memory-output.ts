/**
 * A `JobOutput` that keeps the whole log in memory with plain-text section markers. For tests
 * and for callers that want the log as a string; the GitLab trace writer is the real sink.
 */
import type { JobOutput } from './executor.js';

const ANSI_COLOUR = new RegExp(`${String.fromCharCode(27)}\\[[0-9;]*m`, 'g');

export class MemoryJobOutput implements JobOutput {
  private readonly chunks: Buffer[] = [];
  /** Section names in the order they started. */
  readonly sections: string[] = [];

  write(chunk: Buffer | string, _stream: 'stdout' | 'stderr'): void {
    this.chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : chunk);
  }

  async section<T>(name: string, fn: () => Promise<T>): Promise<T> {
    this.sections.push(name);
    this.write(`[section_start:${name}]\n`, 'stdout');
    try {
      return await fn();
    } finally {
      this.write(`[section_end:${name}]\n`, 'stdout');
    }
  }

  /** The log so far, ANSI colour codes removed. */
  text(): string {
    return Buffer.concat(this.chunks).toString('utf8').replace(ANSI_COLOUR, '');
  }
}
