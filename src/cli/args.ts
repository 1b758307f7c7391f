/** Argument parsing shared by the subcommands: node:util parseArgs, with usage errors that say what to type. */
import { parseArgs, type ParseArgsConfig } from 'node:util';

/** A mistake in how the command was called: printed with the usage, exit code 2. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
  constructor(
    message: string,
    readonly usage: string,
  ) {
    super(message);
  }
}

export const EXIT = { ok: 0, failed: 1, usage: 2 } as const;

type Options = NonNullable<ParseArgsConfig['options']>;

export function parse<O extends Options>(argv: string[], options: O, usage: string, { positionals = false } = {}) {
  try {
    return parseArgs({ args: argv, options, allowPositionals: positionals, strict: true });
  } catch (err) {
    throw new UsageError(err instanceof Error ? err.message : String(err), usage);
  }
}

/** A number option, checked: `--quantile 0.99`. */
export function numberOption(value: string | undefined, name: string, usage: string, check: (n: number) => boolean, expected: string): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isFinite(n) || !check(n)) throw new UsageError(`--${name}: expected ${expected}, received ${JSON.stringify(value)}`, usage);
  return n;
}
