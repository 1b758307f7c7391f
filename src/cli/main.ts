#!/usr/bin/env node
/**
 * `moead-edge`: the command line. Exit codes: 0 done, 1 failed (bad config, unreadable
 * images, daemon could not start), 2 the command was called wrongly.
 */
import { packageVersion } from '../util/paths.js';
import { errorMessage } from '../util/log.js';
import { EXIT, UsageError } from './args.js';

const USAGE = `usage: moead-edge <command> [options]

commands:
  run [--config FILE]                          run the daemon (default command of \`npm start\`)
  config check FILE                            validate a config file without running
  score --model BUNDLE [--json] IMAGE...       score image files
  calibrate --model BUNDLE --good DIR          threshold from good images
  train [ARGS...]                              train a model (Python toolchain)
  systemd-unit [--config FILE] [--user NAME]   print a systemd service unit for this install
  keygen --out FILE                            make a signing key for model updates
  sign --key FILE BUNDLE_DIR                   sign a bundle for over-the-air updates
  --version                                    print the version

\`moead-edge <command> --help\` shows a command's options. Docs: docs/cli.md, docs/config.md.`;

// Loaded on demand: `config check` and `--version` should not pay for onnxruntime, sharp and MQTT.
const COMMANDS: Record<string, (argv: string[]) => Promise<number>> = {
  run: async (argv) => (await import('./run.js')).runCommand(argv),
  config: async (argv) => (await import('./config-check.js')).configCommand(argv),
  score: async (argv) => (await import('./score.js')).scoreCommand(argv),
  calibrate: async (argv) => (await import('./score.js')).calibrateCommand(argv),
  train: async (argv) => (await import('./train.js')).trainCommand(argv),
  'systemd-unit': async (argv) => (await import('./systemd-unit.js')).systemdUnitCommand(argv),
  keygen: async (argv) => (await import('./sign.js')).keygenCommand(argv),
  sign: async (argv) => (await import('./sign.js')).signCommand(argv),
};

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
    console.log(USAGE);
    return command === undefined ? EXIT.usage : EXIT.ok;
  }
  if (command === '--version' || command === '-v') {
    console.log(packageVersion());
    return EXIT.ok;
  }
  const run = COMMANDS[command];
  if (!run) throw new UsageError(`unknown command "${command}"`, USAGE);
  return run(rest);
}

// Exit explicitly once the command is done: a stopped daemon or a closed session must not
// linger because some library keeps a handle open (stdout/stderr writes to pipes and files are synchronous on Linux).
main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    if (err instanceof UsageError) {
      console.error(`moead-edge: ${err.message}\n\n${err.usage}`);
      process.exit(EXIT.usage);
    }
    console.error(`moead-edge: ${errorMessage(err)}`);
    process.exit(EXIT.failed);
  },
);
