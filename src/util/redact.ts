/** Keeps credentials out of logs and status messages. */

/** Replaces the user-info of any URL and every known secret (raw or percent-encoded) with ***. */
export function redact(text: string, secrets: readonly string[] = []): string {
  let out = text.replace(/([a-z][a-z0-9+.-]*:\/\/)[^\s/@]*@/gi, '$1***@');
  // An empty secret would put *** between every character (split('') splits them all).
  for (const secret of secrets.filter((s) => s.length > 0)) {
    for (const form of new Set([secret, encodeURIComponent(secret)])) out = out.split(form).join('***');
  }
  return out;
}
