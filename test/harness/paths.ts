/** Where things are in the repository, seen from the compiled harness (dist/test/harness/). */
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));
/** The compiled CLI entry point, as `npm start` and the `moead-edge` bin run it. */
export const CLI_MAIN = join(REPO_ROOT, 'dist', 'src', 'cli', 'main.js');

export function repoPath(...parts: string[]): string {
  return join(REPO_ROOT, ...parts);
}
