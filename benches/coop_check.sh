#!/usr/bin/env bash
# The cooperative-matrix matmul on a GPU that has cooperative matrices (the H200, through the
# device tool): the correctness check (examples/coop_check.rs: CPU f64 reference, odd shapes,
# every transpose and epilogue), the benchmark (benches/matmul_coop.rs) and cuBLAS f16 from
# torch in the same call (benches/reference/torch_coop.py), with the ratios last.
#
#   benches/coop_check.sh BIN_DIR [LOG_DIR]
#
# BIN_DIR holds `coop_check` and `matmul_coop` (release builds: target/release/examples/coop_check
# and the bench binary that `cargo bench --bench matmul_coop --no-run` names). On a device
# without cooperative matrices both print "SKIPPED: no cooperative matrices" and this script
# exits with status 3: a skip, not a pass.
set -u
BIN=${1:?BIN_DIR}
LOG=${2:-.}
mkdir -p "$LOG"
"$BIN/coop_check" 2>&1 | tee "$LOG/coop_check.log"
check=${PIPESTATUS[0]}
if [ "$check" = 3 ]; then
    echo "coop_check.sh: SKIPPED (no cooperative matrices); nothing was verified"
    exit 3
fi
WGMEM_BENCH_TSV="$LOG/coop.tsv" "$BIN/matmul_coop" 2>&1 | tee "$LOG/coop_bench.log"
bench=${PIPESTATUS[0]}
if command -v python3 >/dev/null; then
    PYTHONUNBUFFERED=1 python3 "$(dirname "$0")/reference/torch_coop.py" "$LOG/coop.tsv" 2>&1 |
        tee "$LOG/torch_coop.log"
fi
echo "coop_check.sh: check exit $check, bench exit $bench"
[ "$check" = 0 ] && [ "$bench" = 0 ]
