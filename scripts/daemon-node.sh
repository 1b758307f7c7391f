#!/bin/sh
# Runs a Node script the way the daemon runs: `sh scripts/daemon-node.sh SCRIPT [ARGS...]`
# (`npm start` and `npm run bench` go through here, and so does the test harness).
#
# - The V8 flags of src/cli/node-flags.ts (V8 reads them only at start-up; a test checks that
#   this file passes each one).
# - MOEAD_MALLOC=jemalloc preloads jemalloc (Debian/Ubuntu/JetPack: `apt-get install
#   libjemalloc2`). Measured here (docs/bench.md, memory): with glibc's malloc the daemon's RSS
#   climbs 10-20 MiB over its first minutes, as the per-thread arenas of the decoding, libuv
#   and onnxruntime threads fill, and then stays flat; with jemalloc it was flat from the first
#   minute and 20 MiB lower. One A/B read the saturated pipeline about 5 % slower under it,
#   a later one (two frames queued ahead) no difference above the noise. The default,
#   MOEAD_MALLOC=system, keeps the C library's malloc, with MALLOC_ARENA_MAX=2 unless the
#   environment sets it: glibc gives each thread that allocates (decoding pool, onnxruntime,
#   libvips) an arena of its own, up to 8 per core, and their slack grew for the first
#   minutes of a run. With two, a 10-minute run at 10 fps held 161-165 MiB instead of
#   176-185 MiB, and the saturated pipeline read the same (docs/bench.md, memory).
# - MOEAD_NODE names the node binary (default: the one on PATH).
set -eu
if [ "$#" -lt 1 ]; then
  echo "usage: sh scripts/daemon-node.sh SCRIPT [ARGS...]" >&2
  exit 2
fi
case "${MOEAD_MALLOC:-system}" in
  system)
    : "${MALLOC_ARENA_MAX:=2}"
    export MALLOC_ARENA_MAX
    ;;
  jemalloc)
    case ":${LD_PRELOAD:-}:" in
      *libjemalloc*) ;;
      *)
        found=
        for lib in /usr/lib/*-linux-gnu/libjemalloc.so.2 /usr/lib64/libjemalloc.so.2 /usr/lib/libjemalloc.so.2 /usr/local/lib/libjemalloc.so.2; do
          if [ -r "$lib" ]; then
            found=$lib
            break
          fi
        done
        if [ -z "$found" ]; then
          echo "moead-edge: MOEAD_MALLOC=jemalloc, but no libjemalloc.so.2 was found (Debian/Ubuntu: apt-get install libjemalloc2)" >&2
          exit 2
        fi
        LD_PRELOAD="$found${LD_PRELOAD:+:$LD_PRELOAD}"
        export LD_PRELOAD
        ;;
    esac
    ;;
  *)
    echo "moead-edge: MOEAD_MALLOC must be 'system' or 'jemalloc', not '${MOEAD_MALLOC}'" >&2
    exit 2
    ;;
esac
script="$1"
shift
exec "${MOEAD_NODE:-node}" --max-semi-space-size=2 --heap-growing-percent=100 --expose-gc "$script" "$@"
