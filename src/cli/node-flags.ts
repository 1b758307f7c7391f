/**
 * Node/V8 flags the daemon runs with. `npm start`, `npm run bench` and the test harness start
 * Node through scripts/daemon-node.sh, which passes them (a test runs the script and checks
 * each one). V8 reads them only at start-up, so they cannot be set from inside the process.
 *
 * --max-semi-space-size=2: V8 grows its young generation towards 16 MiB per semi-space
 * while a program allocates; the daemon allocates small objects for every frame, so its
 * RSS climbed for the first 2-3 minutes (243 → 259 MiB at 10 fps) and then stayed flat
 * for half an hour. At 4 MiB it started and stayed near 223 MiB. 2 MiB, for the reason below.
 *
 * --heap-growing-percent=100: after each full collection V8 lets the old generation grow to
 * twice what survived it, instead of a factor it picks from how fast the program allocates
 * in its own heap. The daemon allocates little there, so V8 chose a factor near its minimum
 * (about 12 MiB of room over 22 MiB live). V8 also counts the ArrayBuffers allocated since
 * the last full collection against that room, and each frame allocated about 1 MiB of them
 * (the inflated rows, the input tensor, the full-size map; a camera's raw frames more), which
 * only a scavenge frees. So at 200 fps the room filled every 10-30 frames, and the main
 * thread ran 6 full collections a second, each holding it 4-12 ms: long enough for the
 * model's thread to run out of queued frames. With twice the room and scavenges twice as
 * often (the 2 MiB young generation), there were 3-4 full collections in a whole pipeline
 * benchmark instead of 80-118, and the pipeline row read 0.94 and 0.97 in 12 s runs instead
 * of 0.78-0.83 (0.92 in a quick run; docs/bench.md has the runs). Either flag alone left
 * 30-120 full collections. Since then the input tensor is reused and the full-size map is
 * not handed over per frame, which leaves about 250 KiB of ArrayBuffers a frame from a PNG
 * folder; without this flag that still meant 34-37 full collections a benchmark, against 3.
 * Not allowed in NODE_OPTIONS: it has to be on Node's command line.
 *
 * --expose-gc: the price of that room is paid at low frame rates, where nothing fills it for
 * half an hour and RSS climbs meanwhile; the daemon asks for a full collection itself when
 * the old generation has grown by a few MiB (src/daemon/heap-trim.ts), which needs `gc`.
 */
export const DAEMON_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=2', '--heap-growing-percent=100', '--expose-gc'];
