/**
 * A wall clock that a test steps for a child process, as NTP steps an edge board's: boards
 * without a battery-backed RTC boot at 1970 or at the last saved time, and NTP later moves
 * the clock by years, forward or back. libfaketime is preloaded into the child and reads its
 * offset from a file the test rewrites (FAKETIME_NO_CACHE: read afresh at every call).
 * DONT_FAKE_MONOTONIC leaves CLOCK_MONOTONIC alone, since NTP steps only the wall clock;
 * Node's performance.now() and its timers run on the monotonic one.
 *
 * Needs the Debian package `faketime` (scripts/test.mjs installs it); without it the test
 * fails naming the package rather than running on the real clock and proving nothing.
 */
import { existsSync, readdirSync } from 'node:fs';
import { rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

/** Where Debian-family systems put the library: /usr/lib/<triplet>/faketime/; others /usr/lib/faketime/ or /usr/lib64/faketime/. */
function findLibfaketime(): string {
  const multiarch = readdirSync('/usr/lib').filter((d) => d.endsWith('-linux-gnu')).map((d) => join('/usr/lib', d, 'faketime'));
  for (const folder of [...multiarch, '/usr/lib/faketime', '/usr/lib64/faketime']) {
    const lib = join(folder, 'libfaketime.so.1');
    if (existsSync(lib)) return lib;
  }
  throw new Error('libfaketime.so.1 not found under /usr/lib: install the Debian package faketime (npm test installs it)');
}

export class WallClock {
  private constructor(readonly file: string) {}

  /** A clock at the real time, its offset kept in `file` (a path in a test's temporary folder). */
  static async create(file: string): Promise<WallClock> {
    const clock = new WallClock(file);
    await clock.set('+0');
    return clock;
  }

  /** Environment for the child process whose wall clock this is. */
  env(): Record<string, string> {
    return {
      // After what the environment preloads already (a test run under jemalloc keeps it).
      LD_PRELOAD: [process.env.LD_PRELOAD, findLibfaketime()].filter((p) => p !== undefined && p !== '').join(':'),
      FAKETIME_TIMESTAMP_FILE: this.file,
      FAKETIME_NO_CACHE: '1',
      DONT_FAKE_MONOTONIC: '1',
    };
  }

  /**
   * Steps the clock: an offset from the real time in libfaketime's words ("+3650d", "-30d",
   * "+0"). Written to a temporary file and renamed, so that the child never reads half of it.
   */
  async set(offset: string): Promise<void> {
    if (!/^[+-]\d+(\.\d+)?[smhdy]?$/.test(offset)) throw new Error(`WallClock.set: "${offset}" is not an offset such as +3650d or -30d`);
    await writeFile(`${this.file}.new`, `${offset}\n`);
    await rename(`${this.file}.new`, this.file);
  }
}
