/**
 * A service manager's notification socket, as systemd binds it: an AF_UNIX datagram socket
 * (a path, or an abstract "@name"). Node cannot bind one, so a small Python process does and
 * prints each datagram it receives as one JSON line; tests read the messages in order.
 */
import { z } from 'zod';
import { spawnProcess, type ChildHandle } from './process.js';

const LISTENER = `
import json, socket, sys
address = sys.argv[1]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind("\\0" + address[1:] if address.startswith("@") else address)
print("listening", flush=True)
while True:
    print(json.dumps(s.recv(65536).decode("utf-8", "replace")), flush=True)
`;

export interface Notification {
  /** The datagram as sent: `KEY=value` lines. */
  text: string;
  /** Its fields, later keys winning. */
  fields: Record<string, string>;
}

function fieldsOf(text: string): Record<string, string> {
  return Object.fromEntries(
    text.split('\n').flatMap((line) => {
      const eq = line.indexOf('=');
      return eq > 0 ? [[line.slice(0, eq), line.slice(eq + 1)]] : [];
    }),
  );
}

export class NotifySocket {
  private constructor(
    readonly address: string,
    private readonly listener: ChildHandle,
  ) {}

  /** Binds `address` ("/path" or "@abstract-name") and resolves once it receives. */
  static async bind(address: string): Promise<NotifySocket> {
    const listener = spawnProcess('python3', ['-c', LISTENER, address]);
    await listener.waitForLine('listening', { stream: 'stdout', timeoutMs: 10_000 });
    return new NotifySocket(address, listener);
  }

  /** Every datagram received so far, in order. */
  get received(): Notification[] {
    return this.listener.lines
      .filter((l) => l.stream === 'stdout' && l.text !== 'listening')
      .map((l) => {
        const text = z.string().parse(JSON.parse(l.text));
        return { text, fields: fieldsOf(text) };
      });
  }

  /** The first datagram (received already or still to come) with the field `key` (= `value` when given). */
  async waitFor(key: string, value?: string, timeoutMs = 15_000): Promise<Notification> {
    const matches = (n: Notification) => n.fields[key] !== undefined && (value === undefined || n.fields[key] === value);
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.received.find(matches);
      if (found) return found;
      if (Date.now() > deadline) {
        throw new Error(`no notification with ${key}${value === undefined ? '' : `=${value}`} on ${this.address} within ${timeoutMs} ms; received: ${JSON.stringify(this.received.map((n) => n.text))}`);
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  async close(): Promise<void> {
    await this.listener.stop();
  }
}
