/**
 * Remote commands: every request is size-checked, JSON-parsed and zod-parsed before a handler
 * sees it; anything wrong gets an error reply and changes nothing. Handlers run one at a time
 * (a set-threshold never races a reload-config) with a timeout, and a bounded backlog so a
 * flood of requests cannot grow memory without limit.
 */
import type { z } from 'zod';
import type { CommandHandler } from './link.js';
import { COMMAND_SCHEMAS, CommandIdSchema, CommandRequestSchema, type CommandReply } from './topics.js';

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
    if (payload.length > this.#limits.maxPayloadBytes) {
      return fail(null, `request of ${payload.length} bytes is over the ${this.#limits.maxPayloadBytes}-byte limit (mqtt.commands.maxPayloadBytes)`);
    }
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
      const issues = parsed.error.issues.map((i) => `${i.path.length ? i.path.join('.') : '(request)'}: ${i.message}`).join('; ');
      return fail(id, `invalid ${name} request: ${issues}`);
    }
    if (this.#backlog >= MAX_BACKLOG) return fail(id, `busy: ${this.#backlog} commands are waiting; try again later`);
    this.#backlog += 1;
    const run = this.#chain.then(() => this.#run(handler, name, parsed.data as { id: string } & Record<string, unknown>));
    this.#chain = run.catch(() => undefined);
    try {
      return await run;
    } finally {
      this.#backlog -= 1;
    }
  }

  async #run(handler: CommandHandler, name: string, request: { id: string } & Record<string, unknown>): Promise<CommandReply> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${name} did not finish within ${this.#limits.timeoutMs} ms`)), this.#limits.timeoutMs);
    });
    try {
      const result = await Promise.race([handler(request), timeout]);
      // undefined would vanish from the JSON; null keeps `result` present as the contract says.
      return { id: request.id, ok: true, result: result ?? null };
    } catch (err) {
      return { id: request.id, ok: false, error: err instanceof Error ? err.message : String(err) };
    } finally {
      clearTimeout(timer);
    }
  }
}
