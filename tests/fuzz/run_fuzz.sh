#!/bin/sh
# Run a libFuzzer target for a bounded time.  New inputs go to a corpus
# folder in the build tree; the seed folders given after it are only read.
# A crash, leak or timeout exits 1 (libFuzzer's own default, 77, would read
# as "skipped" to meson).
#   run_fuzz.sh FUZZER SECONDS CORPUS SEED_DIR...
set -eu
fuzzer=$1 seconds=$2 corpus=$3
shift 3
mkdir -p "$corpus" "$corpus.crashes"
exec "$fuzzer" -max_total_time="$seconds" -rss_limit_mb=4096 \
	-max_len=1048576 -timeout=20 -error_exitcode=1 \
	-timeout_exitcode=1 -print_final_stats=1 \
	-artifact_prefix="$corpus.crashes/" "$corpus" "$@"
