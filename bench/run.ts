/**
 * `npm run bench`: runs the benchmarks, prints one table (and JSON with --json). Every
 * figure is set against a baseline measured in this run on this machine; nothing here
 * passes or fails, the `met` column only reads each figure against its goal.
 */
import { BENCHES, openContext, parseOptions, USAGE, type BenchName } from './context.js';
import { describeMachine, machineLine } from './machine.js';
import { runLatency } from './latency.js';
import { runCamera } from './camera.js';
import { runMemory, type MemoryData } from './memory.js';
import { runNative } from './native-row.js';
import { runPipeline, type PipelineData } from './pipeline.js';
import { runQuantization } from './quantization.js';
import { formatTable, type BenchResult } from './report.js';
import { runResearch } from './research.js';
import { openRig } from './rig.js';
import { DAEMON_NODE_FLAGS } from '../src/cli/node-flags.js';
import { memoryAllocator } from '../src/util/allocator.js';

async function main(argv: string[]): Promise<number> {
  const options = parseOptions(argv);
  if (options === 'help') {
    console.log(USAGE);
    return 0;
  }
  const machine = describeMachine();
  const wants = (name: BenchName) => options.only.includes(name);
  const progress = (line: string) => process.stderr.write(`bench: ${line}\n`);
  progress(`${machineLine(machine)}; ${options.threads} threads`);
  // The in-process pipeline should run under the daemon's Node flags, as `npm run bench` starts it.
  const missing = DAEMON_NODE_FLAGS.filter((flag) => ![...process.execArgv, ...(process.env.NODE_OPTIONS ?? '').split(/\s+/)].includes(flag));
  if (missing.length > 0) progress(`warning: Node runs without ${missing.join(' ')}, unlike the daemon; use \`npm run bench\``);
  const ctx = await openContext(options);
  progress(`bundle ${ctx.bundle.manifest.name} ${ctx.bundle.manifest.version} (${ctx.bundle.dir}); ${ctx.imageFiles.length} images from ${ctx.imageDir}`);
  const results: BenchResult[] = [];
  const record = (result: BenchResult) => {
    results.push(result);
    progress(`${result.name} done`);
  };

  let pipeline: PipelineData | undefined;
  if (wants('pipeline') || wants('latency') || wants('research')) {
    const rig = await openRig({ bundleDir: ctx.bundle.dir, threads: options.threads, imageFiles: ctx.imageFiles, ...(options.framesAhead ? { framesAhead: options.framesAhead } : {}) });
    try {
      progress('pipeline overhead ...');
      const result = await runPipeline(ctx, rig);
      pipeline = result.data;
      if (wants('pipeline')) record(result);
      if (wants('latency')) {
        progress('latency ...');
        record(await runLatency(ctx, rig, pipeline.pipelineFps, 1000 / pipeline.bareFps));
      }
    } finally {
      await rig.close();
    }
  }
  if (wants('quantization')) {
    progress('quantization ...');
    record(await runQuantization(ctx));
  }
  let memory: MemoryData | undefined;
  if (wants('memory') || wants('research')) {
    // Half the measured maximum, like the latency run: loaded, but not saturated.
    const fps = pipeline ? Math.min(120, Math.max(1, Math.round(pipeline.pipelineFps / 2))) : 10;
    progress(`memory (${options.memoryMinutes} min at ${fps} fps) ...`);
    const result = await runMemory(ctx, fps, progress);
    memory = result.data;
    if (wants('memory')) record(result);
  }
  if (wants('research')) {
    progress('research code (PyTorch eager) ...');
    record(await runResearch(ctx, pipeline, memory));
  }
  if (wants('camera')) {
    progress('live camera ...');
    record(await runCamera(ctx));
  }
  if (wants('native')) {
    progress('native vs JS ...');
    record(await runNative(ctx));
  }

  console.log(`moead-edge bench — ${new Date().toISOString()}`);
  console.log(`machine: ${machineLine(machine)}`);
  console.log(`bundle: ${ctx.bundle.manifest.name} ${ctx.bundle.manifest.version} (${ctx.bundle.manifest.model.precision} ${ctx.bundle.manifest.model.file} sha256 ${ctx.bundle.manifest.model.sha256.slice(0, 12)}…); images: ${ctx.imageFiles.length} from ${ctx.imageDir}; threads: ${options.threads}; malloc: ${memoryAllocator()}${options.quick ? '; --quick' : ''}`);
  console.log('');
  console.log(formatTable(results));
  if (options.json) {
    const order = Object.fromEntries(BENCHES.map((b, i) => [b, i]));
    const json = {
      date: new Date().toISOString(),
      machine,
      malloc: memoryAllocator(),
      options,
      bundle: { dir: ctx.bundle.dir, name: ctx.bundle.manifest.name, version: ctx.bundle.manifest.version },
      results: Object.fromEntries(results.sort((a, b) => (order[a.name] ?? 99) - (order[b.name] ?? 99)).map((r) => [r.name, { ...r.data, rows: r.rows, notes: r.notes }])),
    };
    console.log('');
    console.log(JSON.stringify(json, null, 2));
  }
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(`bench: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  },
);
