/**
 * Config errors a person can act on: which file (or environment variable), which key
 * path, what value was there and what was expected.
 */
import type { z } from 'zod';
import { formatKeyPath } from '../util/key-path.js';
import { redact } from '../util/redact.js';
import { isSecretKey } from './secrets.js';

export { formatKeyPath };

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  constructor(
    /** The config file, or `(defaults)` when running without one. */
    readonly source: string,
    /** One line per problem: `key.path: message (received …)`. */
    readonly problems: string[],
  ) {
    super(`invalid config ${source}:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
  }
}

/** The value at `path` inside `root`, or undefined when the path does not exist. */
export function valueAt(root: unknown, path: ReadonlyArray<PropertyKey>): unknown {
  let node: unknown = root;
  for (const key of path) {
    if (node === null || typeof node !== 'object') return undefined;
    node = (node as Record<PropertyKey, unknown>)[key];
  }
  return node;
}

/**
 * The value found, as an error line shows it. Config errors go to the terminal and the
 * journal, so a credential in the wrong shape is hidden and URLs lose their user-info.
 */
function show(value: unknown, path: readonly PropertyKey[]): string {
  if (value === undefined) return 'nothing';
  if (isSecretKey(path.at(-1))) return `a ${typeof value} (not shown: a credential)`;
  const text = redact(JSON.stringify(value));
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

/**
 * One line per zod issue: the key path, zod's statement of what was expected, and the
 * value found there. `labels` maps a key path to where it came from (an env variable).
 */
export function describeIssues(issues: readonly z.core.$ZodIssue[], input: unknown, labels: Map<string, string> = new Map()): string[] {
  return issues.map((issue) => {
    const where = formatKeyPath(issue.path);
    const label = labels.get(where);
    const at = label ? `${where} (from ${label})` : where;
    if (issue.code === 'unrecognized_keys') {
      return issue.keys
        .map((key) => {
          const path = formatKeyPath([...issue.path, key]);
          const from = labels.get(path);
          return `${path}${from ? ` (from ${from})` : ''}: unknown key`;
        })
        .join('\n');
    }
    if (issue.code === 'invalid_union' && 'discriminator' in issue && issue.discriminator) {
      return `${at}: ${issue.message}, received ${show(valueAt(input, issue.path), issue.path)}`;
    }
    return `${at}: ${issue.message}; received ${show(valueAt(input, issue.path), issue.path)}`;
  }).flatMap((line) => line.split('\n'));
}
