/**
 * One MQTT session kept alive for as long as the daemon runs. MQTT.js reconnects on a fixed
 * period and queues offline packets in an unbounded array; instead every attempt here is a
 * fresh client with reconnectPeriod 0, attempts are spaced by exponential backoff with full
 * jitter, and nothing is published while disconnected (the outbox keeps what must not be lost).
 * A fresh client per attempt also means subscriptions and retained state are renewed on every
 * connect by the onConnected hooks, never left to a library's memory of them.
 */
import { connect, ReasonCodes, type IClientOptions, type IClientPublishOptions, type IPublishPacket, type MqttClient } from 'mqtt';
import { z } from 'zod';
import { certificateDateError } from '../util/cert-dates.js';
import { redact } from '../util/redact.js';
import { Backoff } from './backoff.js';

export type Log = (level: 'info' | 'warn' | 'error', message: string) => void;

export interface ConnectionOptions {
  url: string;
  /** Everything but reconnect handling, which this class owns. */
  client: Omit<IClientOptions, 'reconnectPeriod'>;
  /** `random` is Math.random unless a test needs the delays known (src/mqtt/backoff.ts). */
  backoff: { minMs: number; maxMs: number; random?: () => number };
  /** Options that change with every attempt (Sparkplug's NDEATH will carries a new bdSeq). */
  perAttempt?: () => Partial<IClientOptions>;
  log: Log;
  /** Config path prefix named in error hints, e.g. "mqtt". */
  configPath: string;
}

export type MessageListener = (topic: string, payload: Buffer, packet: IPublishPacket) => void;

/** A connection that held this long counts as good: the next failure starts backoff afresh. */
const STABLE_MS = 5000;
/** Longest wait for a graceful disconnect at stop. */
const END_GRACE_MS = 3000;
/** A SUBACK's reason codes, one per filter asked for; 0x80 and up refuse it (only 0x80 in MQTT 3.1.1). */
const SubackCodesSchema = z.array(z.number().int().min(0).max(255));

export type SubscriptionFilters = Record<string, { qos: 0 | 1 }>;

export class Connection {
  readonly #opts: ConnectionOptions;
  /** The broker URL as logs and errors show it: user-info in mqtt.url must not reach the journal. */
  readonly #shownUrl: string;
  readonly #backoff: Backoff;
  readonly #onConnected: Array<(client: MqttClient) => Promise<void> | void> = [];
  readonly #onDisconnected: Array<() => void> = [];
  readonly #onMessage: MessageListener[] = [];
  #client: MqttClient | undefined;
  #connected = false;
  #stopped = false;
  #timer: NodeJS.Timeout | undefined;
  /** Pending retries of refused subscriptions; they belong to the live session only. */
  readonly #subscribeRetries = new Set<NodeJS.Timeout>();
  /**
   * performance.now() at the connect: how long a session held is monotonic time, since NTP
   * stepping the wall clock (boards without a battery-backed RTC) would make a session of a
   * second look stable, or a stable one not.
   */
  #connectedAt = 0;
  #reconnects = 0;
  #everConnected = false;
  #lastError: string | undefined;
  #firstOutcome: Promise<void>;
  #settleFirst!: () => void;
  /** Each attempt's generation: late events of an abandoned client are ignored. */
  #generation = 0;

  constructor(opts: ConnectionOptions) {
    this.#opts = opts;
    this.#shownUrl = redact(opts.url);
    this.#backoff = new Backoff(opts.backoff.minMs, opts.backoff.maxMs, opts.backoff.random);
    this.#firstOutcome = new Promise((resolve) => {
      this.#settleFirst = resolve;
    });
  }

  onConnected(hook: (client: MqttClient) => Promise<void> | void): void {
    this.#onConnected.push(hook);
  }

  onDisconnected(hook: () => void): void {
    this.#onDisconnected.push(hook);
  }

  onMessage(listener: MessageListener): void {
    this.#onMessage.push(listener);
  }

  /** Starts connecting; resolves after the first attempt succeeded or failed (never rejects). */
  start(): Promise<void> {
    this.#attempt();
    return this.#firstOutcome;
  }

  get connected(): boolean {
    return this.#connected;
  }

  /** The client of the live session, or undefined while disconnected. */
  get client(): MqttClient | undefined {
    return this.#connected ? this.#client : undefined;
  }

  get reconnects(): number {
    return this.#reconnects;
  }

  /** Why the last attempt or session failed, worded for an operator. */
  get lastError(): string | undefined {
    return this.#lastError;
  }

  get generation(): number {
    return this.#generation;
  }

  /** Publishes on the live session; rejects when there is none or the broker refuses. */
  publish(topic: string, payload: string | Buffer, options: IClientPublishOptions): Promise<void> {
    const client = this.client;
    if (!client) return Promise.reject(new Error(`not connected to ${this.#shownUrl}`));
    return new Promise((resolve, reject) => {
      client.publish(topic, payload, options, (err) => (err ? reject(err) : resolve()));
    });
  }

  /**
   * Subscribes on the session of `client` and resolves at the SUBACK; rejects when none came.
   * A filter the broker refuses is logged with its reason code and asked for again with
   * backoff while this session lasts: the broker's ACL may allow it later, and what it carries
   * (commands) must not stay off until some unrelated reconnect. The next session subscribes afresh.
   */
  subscribe(client: MqttClient, filters: SubscriptionFilters, what: string): Promise<void> {
    const generation = this.#generation;
    const backoff = new Backoff(this.#opts.backoff.minMs, this.#opts.backoff.maxMs);
    const live = (): boolean => generation === this.#generation && this.#connected;
    const attempt = (wanted: SubscriptionFilters): Promise<void> => new Promise((resolve, reject) => {
      client.subscribe(wanted, (err, subs, packet) => {
        const topics = (subs ?? []).map((sub) => sub.topic);
        const codes = SubackCodesSchema.safeParse(packet?.granted);
        if (!codes.success || codes.data.length !== topics.length) {
          reject(new Error(`subscribing to ${what} failed: ${err ? errorText(err) : 'the SUBACK does not answer every filter'}`));
          return;
        }
        const refused = topics.filter((_, i) => codes.data[i]! >= 0x80);
        if (refused.length === 0) {
          if (backoff.attempts > 0) this.#opts.log('info', `mqtt: subscribed to ${topics.join(', ')} (${what}) after ${backoff.attempts} refusal(s)`);
          resolve();
          return;
        }
        // A refusal that answers after the session ended (or during stop) is not asked for again:
        // a timer set then would outlive the close that clears the others.
        const retry = live() && !this.#stopped;
        const delay = retry ? backoff.next() : 0;
        for (const [i, topic] of topics.entries()) {
          const code = codes.data[i]!;
          if (code < 0x80) continue;
          this.#opts.log('warn', `mqtt: the broker refused the subscription to ${topic} (${what}; SUBACK reason code 0x${code.toString(16)}: ${(ReasonCodes as Record<number, string | undefined>)[code] ?? 'unknown'}); ${retry ? `asking again in ${delay} ms` : 'not asked again, the session ended'}`);
        }
        if (!retry) {
          resolve();
          return;
        }
        const timer = setTimeout(() => {
          this.#subscribeRetries.delete(timer);
          if (!live()) return;
          attempt(Object.fromEntries(refused.map((t) => [t, wanted[t] ?? { qos: 1 }]))).catch((retryErr: unknown) => {
            if (live()) this.#opts.log('warn', `mqtt: ${errorText(retryErr)}`);
          });
        }, delay);
        this.#subscribeRetries.add(timer);
        resolve();
      });
    });
    return attempt(filters);
  }

  /** Runs `last` on the live session (e.g. publish offline), then closes it and stops reconnecting. */
  async stop(last?: (client: MqttClient) => Promise<void>): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    this.#clearSubscribeRetries();
    const client = this.#client;
    if (!client) return;
    if (this.#connected && last) {
      try {
        await last(client);
      } catch (err) {
        this.#opts.log('warn', `mqtt: while closing ${this.#shownUrl}: ${errorText(err)}`);
      }
    }
    const wasConnected = this.#connected;
    this.#connected = false;
    // A graceful end (no force) lets MQTT.js finish what is in flight; a dead session is dropped,
    // and so is a live one whose broker stops answering while we wait.
    let timer: NodeJS.Timeout | undefined;
    const giveUp = new Promise<void>((resolve) => {
      timer = setTimeout(() => {
        client.end(true);
        resolve();
      }, END_GRACE_MS);
    });
    await Promise.race([client.endAsync(!wasConnected).catch(() => undefined), giveUp]);
    clearTimeout(timer);
  }

  #attempt(): void {
    if (this.#stopped) return;
    const generation = ++this.#generation;
    const client = connect(this.#opts.url, { ...this.#opts.client, ...this.#opts.perAttempt?.(), reconnectPeriod: 0 });
    this.#client = client;
    let closed = false;
    const current = (): boolean => generation === this.#generation && !this.#stopped;

    client.on('connect', () => {
      if (!current()) return;
      this.#connected = true;
      if (this.#everConnected) this.#reconnects += 1;
      this.#everConnected = true;
      this.#connectedAt = performance.now();
      this.#lastError = undefined;
      this.#opts.log('info', `mqtt: connected to ${this.#shownUrl}`);
      void this.#runConnectedHooks(client, generation);
    });
    client.on('message', (topic, payload, packet) => {
      if (!current()) return;
      for (const l of this.#onMessage) l(topic, payload, packet);
    });
    client.on('error', (err) => {
      if (!current()) return;
      this.#lastError = describeConnectError(err, this.#shownUrl, this.#opts.configPath);
    });
    client.on('close', () => {
      if (closed || !current()) return;
      closed = true;
      const wasConnected = this.#connected;
      this.#connected = false;
      this.#clearSubscribeRetries();
      if (wasConnected) {
        if (performance.now() - this.#connectedAt >= STABLE_MS) this.#backoff.reset();
        for (const h of this.#onDisconnected) h();
      }
      this.#lastError ??= `connection to ${this.#shownUrl} closed`;
      // Force-end so the abandoned client does no reconnecting or resending of its own.
      client.end(true);
      const delay = this.#backoff.next();
      this.#opts.log(wasConnected ? 'warn' : 'error', `mqtt: ${wasConnected ? 'lost' : 'cannot connect to'} ${this.#shownUrl}: ${this.#lastError}; retrying in ${delay} ms`);
      this.#settleFirst();
      this.#timer = setTimeout(() => this.#attempt(), delay);
    });
  }

  #clearSubscribeRetries(): void {
    for (const t of this.#subscribeRetries) clearTimeout(t);
    this.#subscribeRetries.clear();
  }

  async #runConnectedHooks(client: MqttClient, generation: number): Promise<void> {
    for (const hook of this.#onConnected) {
      if (generation !== this.#generation || !this.#connected) return;
      try {
        await hook(client);
      } catch (err) {
        this.#opts.log('warn', `mqtt: after connecting to ${this.#shownUrl}: ${errorText(err)}`);
      }
    }
    this.#settleFirst();
  }
}

export function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Turns socket, TLS and CONNACK failures into one sentence that says what to check. */
export function describeConnectError(err: unknown, url: string, configPath: string): string {
  const e = err as Error & { code?: string | number };
  const code = typeof e.code === 'string' ? e.code : undefined;
  const dates = certificateDateError(code, 'the broker');
  if (dates !== undefined) return `TLS: ${dates}`;
  const tlsCodes = ['SELF_SIGNED_CERT_IN_CHAIN', 'DEPTH_ZERO_SELF_SIGNED_CERT', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'ERR_TLS_CERT_ALTNAME_INVALID', 'CERT_SIGNATURE_FAILURE'];
  if (code !== undefined && tlsCodes.includes(code)) {
    return `TLS: the broker's certificate was refused (${code}: ${e.message}); check ${configPath}.tls.ca and ${configPath}.tls.servername`;
  }
  if (code !== undefined && /^ERR_SSL|^EPROTO$/.test(code) || /alert|handshake|certificate/i.test(e.message)) {
    return `TLS handshake failed (${code ?? 'tls'}: ${e.message}); check ${configPath}.tls.cert/key and the broker's TLS settings`;
  }
  if (code === 'ECONNREFUSED') return `connection refused (is the broker running at ${url}?)`;
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') return `host of ${url} not found (${code})`;
  if (typeof e.code === 'number') {
    // CONNACK return codes: 1 / 132 unsupported protocol version; 4, 5 / 134, 135 bad credentials or not authorized.
    const hint = e.code === 1 || e.code === 132
      ? `check ${configPath}.protocolVersion (4 for MQTT 3.1.1 brokers)`
      : `check ${configPath}.username/password and the broker's ACL`;
    return `broker refused the connection (CONNACK ${e.code}: ${e.message}); ${hint}`;
  }
  if (/Not authorized|Bad username or password/i.test(e.message)) {
    return `broker refused the connection (${e.message}); check ${configPath}.username/password`;
  }
  return e.message || String(err);
}
