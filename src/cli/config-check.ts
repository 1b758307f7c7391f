/** `moead-edge config check FILE`: validates a config (with the environment's overrides) without running anything. */
import { ConfigError } from '../config/errors.js';
import { loadConfig } from '../config/load.js';
import { loadBoard } from '../config/board.js';
import { withoutSecrets } from '../config/secrets.js';
import { redact } from '../util/redact.js';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { MANIFEST_FILE, parseManifest } from '../bundle/load.js';
import { thresholdProblems } from '../scoring/decide.js';
import { EXIT, parse, UsageError } from './args.js';

export const CONFIG_USAGE = `usage: moead-edge config check FILE [--print]
  Validates FILE as \`moead-edge run --config FILE\` would (MOEAD_* environment overrides
  included; the board profile and the bundle's manifest are read, thresholds checked against
  it) and exits 0 when it is valid, 1 with every problem listed when it is not.
  --print   also print the complete config, defaults filled in, as JSON (credentials as ***)`;

export async function configCommand(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  // `moead-edge <command> --help` is the main usage's promise for every command, this one too.
  if (sub === '--help' || sub === '-h') {
    console.log(CONFIG_USAGE);
    return EXIT.ok;
  }
  if (sub !== 'check') throw new UsageError(sub === undefined ? 'config: missing subcommand' : `config: unknown subcommand "${sub}"`, CONFIG_USAGE);
  const { values, positionals } = parse(rest, { print: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } }, CONFIG_USAGE, { positionals: true });
  if (values.help) {
    console.log(CONFIG_USAGE);
    return EXIT.ok;
  }
  if (positionals.length !== 1) throw new UsageError('config check: expected exactly one FILE', CONFIG_USAGE);
  const file = positionals[0] as string;
  try {
    const { config } = await loadConfig(file);
    // The board profile is part of what `run` would load; a name that exists in no profile is a config error too.
    await loadBoard(config.board).catch((err: unknown) => {
      throw new ConfigError(file, [`board: ${err instanceof Error ? err.message : String(err)}; received ${JSON.stringify(config.board)}`]);
    });
    // Thresholds can only be judged against the model: read its manifest (no session is opened).
    const manifestFile = join(config.inference.model, MANIFEST_FILE);
    const text = await readFile(manifestFile, 'utf8').catch(() => undefined);
    if (text === undefined) throw new ConfigError(file, [`inference.model: no bundle manifest at ${manifestFile}; received ${JSON.stringify(config.inference.model)}`]);
    let goodMedian: number;
    try {
      goodMedian = parseManifest(text, manifestFile).threshold.good_median;
    } catch (err) {
      throw new ConfigError(file, [`inference.model: ${err instanceof Error ? err.message : String(err)}`]);
    }
    const problems = thresholdProblems(config, goodMedian);
    if (problems.length) throw new ConfigError(file, problems);
    if (values.print) console.log(JSON.stringify(withoutSecrets(config), null, 2));
    console.error(`${file}: valid (${config.cameras.length} camera(s), board ${config.board}, ${config.mqtt.url ? `broker ${redact(config.mqtt.url)}` : 'embedded broker'})`);
    return EXIT.ok;
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    console.error(err.message);
    return EXIT.failed;
  }
}
