/**
 * An MQTT client for tests: subscribes, keeps every message it receives in order, and
 * lets a test wait for the message it expects (already received or still to come).
 */
import mqtt, { type IClientOptions, type IClientPublishOptions, type MqttClient } from 'mqtt';

export interface ReceivedMessage {
  topic: string;
  payload: Buffer;
  retain: boolean;
  qos: number;
  /** Position in the collector's `messages`, for "after this one" waits. */
  index: number;
  /** MQTT 5 properties, when any came with the message. */
  properties?: Record<string, unknown>;
  text(): string;
  /** JSON.parse of the payload; throws naming the topic when it is not JSON. */
  json(): unknown;
}

/** MQTT topic filter matching (`+` one level, `#` the rest). */
export function topicMatches(filter: string, topic: string): boolean {
  const f = filter.split('/');
  const t = topic.split('/');
  for (let i = 0; i < f.length; i++) {
    if (f[i] === '#') return true;
    if (i >= t.length) return false;
    if (f[i] !== '+' && f[i] !== t[i]) return false;
  }
  return f.length === t.length;
}

export type MessageMatch = string | ((message: ReceivedMessage) => boolean);

export interface WaitOptions {
  timeoutMs?: number;
  /** Only consider messages at or after this index (default 0: all so far). */
  from?: number;
}

type Waiter = { accept: (m: ReceivedMessage) => boolean };

export class MqttCollector {
  readonly messages: ReceivedMessage[] = [];
  #waiters = new Set<Waiter>();

  private constructor(readonly client: MqttClient) {
    client.on('message', (topic, payload, packet) => {
      const message: ReceivedMessage = {
        topic,
        payload,
        retain: packet.retain,
        qos: packet.qos,
        index: this.messages.length,
        ...(packet.properties ? { properties: packet.properties } : {}),
        text: () => payload.toString('utf8'),
        json: () => {
          try {
            return JSON.parse(payload.toString('utf8')) as unknown;
          } catch {
            throw new Error(`payload on ${topic} is not JSON: ${payload.toString('utf8').slice(0, 200)}`);
          }
        },
      };
      this.messages.push(message);
      for (const waiter of this.#waiters) if (waiter.accept(message)) this.#waiters.delete(waiter);
    });
  }

  /** Connects to `url`, subscribes to `topics` (QoS 1) and resolves once the broker granted them. */
  static async connect(url: string, topics: string | string[], options: IClientOptions = {}): Promise<MqttCollector> {
    const client = await mqtt.connectAsync(url, { reconnectPeriod: 200, connectTimeout: 5000, ...options });
    const collector = new MqttCollector(client);
    await client.subscribeAsync(topics, { qos: 1 });
    return collector;
  }

  /** Messages whose topic matches `filter`, in arrival order. */
  on(filter: string): ReceivedMessage[] {
    return this.messages.filter((m) => topicMatches(filter, m.topic));
  }

  /** Index the next message will get: pass as `from` to wait only for newer ones. */
  get mark(): number {
    return this.messages.length;
  }

  /** The first message (from `from`) that matches a topic filter or predicate. */
  waitFor(match: MessageMatch, options: WaitOptions = {}): Promise<ReceivedMessage> {
    return this.waitForCount(match, 1, options).then((list) => list[0] as ReceivedMessage);
  }

  /** Resolves with the first `count` matching messages; rejects after timeoutMs listing what came. */
  waitForCount(match: MessageMatch, count: number, { timeoutMs = 10_000, from = 0 }: WaitOptions = {}): Promise<ReceivedMessage[]> {
    const test = typeof match === 'string' ? (m: ReceivedMessage) => topicMatches(match, m.topic) : match;
    const found = this.messages.slice(from).filter(test);
    if (found.length >= count) return Promise.resolve(found.slice(0, count));
    return new Promise((resolve, reject) => {
      const waiter: Waiter = {
        accept: (m) => {
          if (m.index < from || !test(m)) return false;
          found.push(m);
          if (found.length < count) return false;
          clearTimeout(timer);
          resolve(found.slice(0, count));
          return true;
        },
      };
      const timer = setTimeout(() => {
        this.#waiters.delete(waiter);
        const topics = [...new Set(this.messages.map((m) => m.topic))].join(', ') || 'none';
        reject(
          new Error(
            `waited ${timeoutMs} ms for ${count} message(s) matching ${typeof match === 'string' ? match : 'the predicate'}, got ${found.length}; topics seen: ${topics}`,
          ),
        );
      }, timeoutMs);
      this.#waiters.add(waiter);
    });
  }

  publish(topic: string, payload: string | Buffer | object, options: IClientPublishOptions = { qos: 1 }): Promise<unknown> {
    const body = typeof payload === 'string' || Buffer.isBuffer(payload) ? payload : JSON.stringify(payload);
    return this.client.publishAsync(topic, body, options);
  }

  /** Resolves once the client is connected (again, after a broker restart). */
  async waitConnected(timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!this.client.connected) {
      if (Date.now() > deadline) throw new Error(`MQTT client not connected within ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  clear(): void {
    this.messages.length = 0;
  }

  async close(): Promise<void> {
    await this.client.endAsync(true);
  }
}
