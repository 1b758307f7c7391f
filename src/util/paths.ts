/** Where the installed package lives (the repository root in a checkout), from dist/src/util/. */
import { fileURLToPath } from 'node:url';

export const PACKAGE_ROOT = fileURLToPath(new URL('../../../', import.meta.url));
