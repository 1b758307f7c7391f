/**
 * Remote commands: every request is size-checked, JSON-parsed and zod-parsed before a handler
 * sees it; anything wrong gets an error reply and changes nothing. Handlers run one at a time
 * (a set-threshold never races a reload-config), and a bounded backlog keeps a flood of
 * requests from growing memory without limit.
 *
 * The timeout bounds how long a requester waits, not the handler: a promise cannot be
 * cancelled, so a handler past its time is answered "did not finish" and keeps the turn until
 * it settles (the next command never runs beside it). A request that waits longer than the
 * timeout for its turn is answered "not run" and is never started later.
 */
import type { z } from 'zod';
import type { CommandHandler } from './link.js';
import { COMMAND_SCHEMAS, CommandIdSchema, CommandRequestSchema, type CommandReply } from './topics.js';
import { formatKeyPath } from '../util/key-path.js';

export interface CommandLimits {
  allow?: string[] | undefined;
  maxPayloadBytes: number;
  timeoutMs: number;
}

/** Requests waiting for their turn; past this a request is answered "busy" at once. */
const MAX_BACKLOG = 64;

export class CommandDispatcher {
  readonly #handlers = new Map<string, CommandHandler>();
  readonly #limits: CommandLimits;
  #chain: Promise<unknown> = Promise.resolve();
  #backlog = 0;
  handled = 0;
  errors = 0;

  constructor(limits: CommandLimits) {
    this.#limits = limits;
  }

  register(name: string, handler: CommandHandler): void {
    if (this.#handlers.has(name)) throw new Error(`command ${JSON.stringify(name)} already has a handler`);
    this.#handlers.set(name, handler);
  }

  /** A request the link refuses before parsing it, answered and counted like any other error. */
  refuse(error: string): CommandReply {
    this.handled += 1;
    this.errors += 1;
    return { id: null, ok: false, error };
  }

  /** Why a request of `bytes` is refused for its size, or undefined when it fits; needs nothing decoded. */
  oversize(bytes: number): string | undefined {
    const limit = this.#limits.maxPayloadBytes;
    return bytes > limit ? `request of ${bytes} bytes is over the ${limit}-byte limit (mqtt.commands.maxPayloadBytes)` : undefined;
  }

  get names(): string[] {
    return [...this.#handlers.keys()].sort();
  }

  /** Parses and runs one request; always resolves to the reply to send (never throws). */
  async dispatch(name: string, payload: Buffer): Promise<CommandReply> {
    const reply = await this.#dispatch(name, payload);
    this.handled += 1;
    if (!reply.ok) this.errors += 1;
    return reply;
  }

  async #dispatch(name: string, payload: Buffer): Promise<CommandReply> {
    const fail = (id: string | null, error: string): CommandReply => ({ id, ok: false, error });
    const oversize = this.oversize(payload.length);
    if (oversize !== undefined) return fail(null, oversize);
    let body: unknown;
    try {
      body = JSON.parse(payload.toString('utf8'));
    } catch (err) {
      return fail(null, `request is not valid JSON: ${err instanceof Error ? err.message : String(err)}`);
    }
    // Echo the id whenever one can be read, even when the rest of the request is wrong.
    const idParse = CommandIdSchema.safeParse((body as { id?: unknown } | null)?.id);
    const id = idParse.success ? idParse.data : null;
    if (this.#limits.allow && !this.#limits.allow.includes(name)) {
      return fail(id, `command ${JSON.stringify(name)} is not allowed on this device (mqtt.commands.allow: ${this.#limits.allow.join(', ') || 'none'})`);
    }
    const handler = this.#handlers.get(name);
    if (!handler) return fail(id, `unknown command ${JSON.stringify(name)}; known: ${this.names.join(', ') || 'none'}`);
    const schema: z.ZodType<{ id: string }> = (COMMAND_SCHEMAS as Record<string, z.ZodType<{ id: string }>>)[name] ?? CommandRequestSchema;
    const parsed = schema.safeParse(body);
    if (!parsed.success) {
      const issues = parsed.error.issues.map((i) => `${i.path.length ? formatKeyPath(i.path) : '(request)'}: ${i.message}`).join('; ');
      return fail(id, `invalid ${name} request: ${issues}`);
    }
    if (this.#backlog >= MAX_BACKLOG) return fail(id, `busy: ${this.#backlog} commands are waiting; try again later`);
    this.#backlog += 1;
    try {
      return await this.#enqueue(handler, name, parsed.data);
    } finally {
      this.#backlog -= 1;
    }
  }

  /** Resolves with the reply as soon as there is one; the chain moves on only when the handler has settled. */
  #enqueue(handler: CommandHandler, name: string, request: { id: string } & Record<string, unknown>): Promise<CommandReply> {
    const { timeoutMs } = this.#limits;
    const limit = `${timeoutMs} ms (mqtt.commands.timeoutMs)`;
    return new Promise<CommandReply>((reply) => {
      let abandoned = false;
      const waiting = setTimeout(() => {
        abandoned = true;
        reply({ id: request.id, ok: false, error: `${name} not run: the command before it was still running after ${limit}; nothing was changed, try again later` });
      }, timeoutMs);
      this.#chain = this.#chain.then(async () => {
        clearTimeout(waiting);
        if (abandoned) return;
        const running = setTimeout(() => {
          reply({ id: request.id, ok: false, error: `${name} did not finish within ${limit}; it is still running and may yet take effect, and later commands wait for it` });
        }, timeoutMs);
        try {
          // undefined would vanish from the JSON; null keeps `result` present as the contract says.
          reply({ id: request.id, ok: true, result: (await handler(request)) ?? null });
        } catch (err) {
          reply({ id: request.id, ok: false, error: err instanceof Error ? err.message : String(err) });
        } finally {
          clearTimeout(running);
        }
      });
    });
  }
}
