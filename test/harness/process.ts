/**
 * Child processes started by tests (the CLI, mosquitto, ffmpeg): output kept line by line
 * so a test can wait for a line, and a clean way to stop them that never leaves one behind.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import { CLI_MAIN, REPO_ROOT } from './paths.js';

export interface ExitStatus {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface OutputLine {
  stream: 'stdout' | 'stderr';
  text: string;
}

export interface SpawnOptions {
  cwd?: string;
  /** Added to (and overriding) the parent's environment. */
  env?: Record<string, string | undefined>;
  /** Echo the child's output to this process's stderr (for debugging a test). */
  echo?: boolean;
}

type LineWaiter = { match: (line: OutputLine) => boolean; resolve: (line: OutputLine) => void };

export class ChildHandle {
  readonly lines: OutputLine[] = [];
  readonly exited: Promise<ExitStatus>;
  #exit: ExitStatus | undefined;
  #waiters = new Set<LineWaiter>();

  constructor(
    readonly proc: ChildProcess,
    readonly description: string,
    echo: boolean,
  ) {
    this.exited = new Promise((resolve) => {
      proc.once('exit', (code, signal) => {
        this.#exit = { code, signal };
        resolve(this.#exit);
      });
      proc.once('error', (err) => {
        this.lines.push({ stream: 'stderr', text: `spawn error: ${err.message}` });
        this.#exit = { code: null, signal: null };
        resolve(this.#exit);
      });
    });
    for (const stream of ['stdout', 'stderr'] as const) {
      let pending = '';
      const source = proc[stream];
      source?.setEncoding('utf8');
      source?.on('data', (chunk: string) => {
        pending += chunk;
        const parts = pending.split('\n');
        pending = parts.pop() ?? '';
        for (const text of parts) this.#push({ stream, text }, echo);
      });
      source?.on('end', () => {
        if (pending) this.#push({ stream, text: pending }, echo);
        pending = '';
      });
    }
  }

  #push(line: OutputLine, echo: boolean): void {
    this.lines.push(line);
    if (echo) process.stderr.write(`[${this.description} ${line.stream}] ${line.text}\n`);
    for (const waiter of this.#waiters) {
      if (waiter.match(line)) {
        this.#waiters.delete(waiter);
        waiter.resolve(line);
      }
    }
  }

  get pid(): number | undefined {
    return this.proc.pid;
  }

  get exitStatus(): ExitStatus | undefined {
    return this.#exit;
  }

  /** All output so far, one string (for assertion messages). */
  output(stream?: 'stdout' | 'stderr'): string {
    return this.lines
      .filter((l) => stream === undefined || l.stream === stream)
      .map((l) => l.text)
      .join('\n');
  }

  /**
   * Resolves with the first line (already seen or still to come) that matches; rejects
   * when the process exits first or after timeoutMs, quoting the output so far.
   */
  waitForLine(pattern: RegExp | string, { timeoutMs = 10_000, stream }: { timeoutMs?: number; stream?: 'stdout' | 'stderr' } = {}): Promise<OutputLine> {
    const match = (line: OutputLine) =>
      (stream === undefined || line.stream === stream) &&
      (typeof pattern === 'string' ? line.text.includes(pattern) : pattern.test(line.text));
    const seen = this.lines.find(match);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const fail = (why: string) => {
        this.#waiters.delete(waiter);
        clearTimeout(timer);
        reject(new Error(`${this.description}: no line matching ${String(pattern)} ${why}; output so far:\n${this.output()}`));
      };
      const waiter: LineWaiter = {
        match,
        resolve: (line) => {
          clearTimeout(timer);
          resolve(line);
        },
      };
      const timer = setTimeout(() => fail(`within ${timeoutMs} ms`), timeoutMs);
      this.#waiters.add(waiter);
      void this.exited.then((status) => {
        if (this.#waiters.has(waiter)) fail(`before it exited (code ${status.code}, signal ${status.signal})`);
      });
    });
  }

  /** Waits for the process to end; rejects (and kills it) after timeoutMs. */
  async waitForExit(timeoutMs = 10_000): Promise<ExitStatus> {
    if (this.#exit) return this.#exit;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        this.proc.kill('SIGKILL');
        reject(new Error(`${this.description} did not exit within ${timeoutMs} ms; output:\n${this.output()}`));
      }, timeoutMs);
    });
    try {
      return await Promise.race([this.exited, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  signal(signal: NodeJS.Signals): void {
    if (!this.#exit) this.proc.kill(signal);
  }

  /** SIGTERM, then SIGKILL after graceMs; resolves with how it ended. Safe to call twice. */
  async stop(graceMs = 5000): Promise<ExitStatus> {
    if (this.#exit) return this.#exit;
    this.proc.kill('SIGTERM');
    const timer = setTimeout(() => this.proc.kill('SIGKILL'), graceMs);
    try {
      return await this.exited;
    } finally {
      clearTimeout(timer);
    }
  }
}

export function spawnProcess(command: string, args: string[], options: SpawnOptions = {}): ChildHandle {
  const proc = spawn(command, args, {
    cwd: options.cwd ?? REPO_ROOT,
    env: { ...process.env, ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return new ChildHandle(proc, `${command.split('/').pop()}${proc.pid ? `[${proc.pid}]` : ''}`, options.echo ?? false);
}

/** Where `npm start` and `npm run bench` go through: Node flags, and jemalloc when MOEAD_MALLOC=jemalloc. */
export const DAEMON_NODE_SCRIPT = join(REPO_ROOT, 'scripts', 'daemon-node.sh');

/** Starts the compiled CLI (`moead-edge ARGS…`) as a child process, the way `npm start` does. */
export function spawnCli(args: string[], options: SpawnOptions = {}): ChildHandle {
  return spawnProcess('sh', [DAEMON_NODE_SCRIPT, CLI_MAIN, ...args], { ...options, env: { MOEAD_NODE: process.execPath, ...options.env } });
}

export interface CliResult extends ExitStatus {
  stdout: string;
  stderr: string;
}

/** Runs the CLI to completion and returns its exit status and output. */
export async function runCli(args: string[], options: SpawnOptions & { timeoutMs?: number } = {}): Promise<CliResult> {
  return runToEnd(spawnCli(args, options), options.timeoutMs);
}

/** Runs a command to completion and returns its exit status and output. */
export async function runProcess(command: string, args: string[], options: SpawnOptions & { timeoutMs?: number } = {}): Promise<CliResult> {
  return runToEnd(spawnProcess(command, args, options), options.timeoutMs);
}

async function runToEnd(child: ChildHandle, timeoutMs = 60_000): Promise<CliResult> {
  const status = await child.waitForExit(timeoutMs);
  // 'exit' can fire before the pipes drain; 'close' means both streams ended.
  if (child.proc.stdout && !child.proc.stdout.readableEnded) await once(child.proc.stdout, 'end').catch(() => undefined);
  if (child.proc.stderr && !child.proc.stderr.readableEnded) await once(child.proc.stderr, 'end').catch(() => undefined);
  return { ...status, stdout: child.output('stdout'), stderr: child.output('stderr') };
}
