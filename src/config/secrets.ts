/**
 * What of a config may be shown: config errors and `config check --print` go to terminals
 * and the journal, where a password or a URL's user-info must not end up.
 */
import { redact } from '../util/redact.js';

/** Keys whose values are credentials (user names too, as the capture logs treat them). */
const SECRET_KEY = /^(user(name)?|pass(word)?)$|secret|token/i;

export function isSecretKey(key: PropertyKey | undefined): boolean {
  return typeof key === 'string' && SECRET_KEY.test(key);
}

/** A copy of `value` with credentials replaced by *** and every URL's user-info by ***. */
export function withoutSecrets(value: unknown, key?: PropertyKey): unknown {
  if (isSecretKey(key) && value !== undefined) return '***';
  if (typeof value === 'string') return redact(value);
  if (Array.isArray(value)) return value.map((item) => withoutSecrets(item));
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, withoutSecrets(v, k)]));
  }
  return value;
}
