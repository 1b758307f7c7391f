/**
 * A real Mosquitto broker on a free loopback port, one per test file (or per test), with
 * its own temporary config and data folder. Tests can stop, kill and restart it to play a
 * broker outage; the port stays the same across restarts so clients can reconnect.
 */
import { spawnSync } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { freePort, waitForPort } from './net.js';
import { spawnProcess, type ChildHandle, type ExitStatus } from './process.js';
import { tempDir, type TempDir } from './tmp.js';

export interface MosquittoOptions {
  /** Fixed port; default a free one. */
  port?: number;
  /** Extra mosquitto.conf lines (e.g. `persistence true`, `max_inflight_messages 1`). */
  extraConfig?: string[];
  /** Echo the broker's log to stderr. */
  echo?: boolean;
  /** How long to wait for the broker to accept connections. */
  startTimeoutMs?: number;
}

let checked = false;
function assertMosquittoInstalled(): void {
  if (checked) return;
  const probe = spawnSync('mosquitto', ['-h'], { encoding: 'utf8' });
  if (probe.error) {
    throw new Error(
      'the tests need the mosquitto broker binary (`apt-get install mosquitto mosquitto-clients`); `npm test` installs it when apt-get is available',
    );
  }
  checked = true;
}

export class Mosquitto {
  #child: ChildHandle | undefined;
  #logs: string[] = [];

  private constructor(
    readonly port: number,
    readonly dir: TempDir,
    readonly configPath: string,
    private readonly options: MosquittoOptions,
  ) {}

  /** Writes a config, starts the broker and resolves once it accepts connections. */
  static async start(options: MosquittoOptions = {}): Promise<Mosquitto> {
    assertMosquittoInstalled();
    const dir = await tempDir('moead-mosquitto-');
    const port = options.port ?? (await freePort());
    const configPath = dir.file('mosquitto.conf');
    const config = [
      `listener ${port} 127.0.0.1`,
      'allow_anonymous true',
      `persistence_location ${dir.path}/`,
      // Started as root, mosquitto drops to the `mosquitto` user, which cannot write our
      // private temp folder, and `persistence true` then fails silently. Stay root.
      ...(process.getuid?.() === 0 ? ['user root'] : []),
      'log_dest stderr',
      'log_type error',
      'log_type warning',
      'log_type notice',
      'log_type information',
      ...(options.extraConfig ?? []),
    ];
    await writeFile(configPath, `${config.join('\n')}\n`);
    const broker = new Mosquitto(port, dir, configPath, options);
    try {
      await broker.#launch();
    } catch (err) {
      await dir.remove();
      throw err;
    }
    return broker;
  }

  get url(): string {
    return `mqtt://127.0.0.1:${this.port}`;
  }

  get running(): boolean {
    return this.#child !== undefined && this.#child.exitStatus === undefined;
  }

  /** Everything the broker logged, across restarts. */
  log(): string {
    return [...this.#logs, ...(this.#child ? [this.#child.output()] : [])].join('\n');
  }

  async #launch(): Promise<void> {
    const child = spawnProcess('mosquitto', ['-c', this.configPath], { echo: this.options.echo ?? false });
    this.#child = child;
    const timeoutMs = this.options.startTimeoutMs ?? 5000;
    const giveUp = new AbortController();
    const exitedEarly = child.exited.then((s) => {
      giveUp.abort();
      throw new Error(`mosquitto exited while starting (code ${s.code}, signal ${s.signal}):\n${child.output()}`);
    });
    try {
      await Promise.race([waitForPort(this.port, { timeoutMs, signal: giveUp.signal }), exitedEarly]);
    } catch (err) {
      await child.stop(1000);
      throw err;
    } finally {
      exitedEarly.catch(() => undefined);
    }
  }

  #retire(): void {
    if (this.#child) this.#logs.push(this.#child.output());
    this.#child = undefined;
  }

  /** Graceful stop (SIGTERM): the broker disconnects clients and, with persistence on, saves. */
  async stop(): Promise<ExitStatus | undefined> {
    const child = this.#child;
    if (!child) return undefined;
    const status = await child.stop();
    this.#retire();
    return status;
  }

  /** Abrupt end (SIGKILL): nothing saved, clients see the TCP connection drop. */
  async kill(): Promise<ExitStatus | undefined> {
    const child = this.#child;
    if (!child) return undefined;
    child.signal('SIGKILL');
    const status = await child.exited;
    this.#retire();
    return status;
  }

  /** Starts it again on the same port with the same config (stops it first if running). */
  async restart(): Promise<void> {
    if (this.running) await this.stop();
    this.#retire();
    await this.#launch();
  }

  /** Stops the broker and removes its folder; use in `after`/`finally`. */
  async teardown(): Promise<void> {
    await this.kill();
    await this.dir.remove();
  }
}

/** Starts a broker for the duration of `fn`. */
export async function withMosquitto<T>(fn: (broker: Mosquitto) => Promise<T>, options?: MosquittoOptions): Promise<T> {
  const broker = await Mosquitto.start(options);
  try {
    return await fn(broker);
  } finally {
    await broker.teardown();
  }
}
