#!/usr/bin/env bash
# One command for a Mac user: does wgmem work on this Mac, and how fast?
#
#   bash benches/apple.sh               run everything (about 10-20 minutes on an M-series laptop)
#   bash benches/apple.sh --print-plan  print what would run, run nothing (works anywhere; CI)
#   bash benches/apple.sh --table       rebuild the table from the logs of an earlier run
#
# It installs what it needs through rustup and cargo only (Rust itself through rustup.rs when
# `cargo` is missing), then on Metal: the test suite, the digits example, the kernel,
# training-step and zero-copy benches at laptop sizes, and the simdgroup-matrix kernels beside
# the plain ones when this checkout has them. It prints one table (adapter, tests passed, test
# accuracy, matmul TFLOP/s, copy GB/s, step time, budget and footprint, zero-copy speed-up) and
# writes it to apple-report.md (or $WGMEM_REPORT) to paste into an issue. Logs of every step go
# to the directory named in the table.
set -uo pipefail
cd "$(dirname "$0")/.."

plan_only=false
table_only=false
case "${1:-}" in
    --print-plan) plan_only=true ;;
    --table) table_only=true ;;
    "") ;;
    *) echo "usage: bash benches/apple.sh [--print-plan | --table]" >&2; exit 2 ;;
esac

report=${WGMEM_REPORT:-apple-report.md}
logs=${WGMEM_LOGS:-target/apple-logs}
export WGMEM_BACKEND=metal
# ==== simdgroup-matrix step ====
# The simdgroup-matrix (cooperative) matmul is being written on another branch. When this
# checkout's src/ mentions its opt-in switch, the two coop_* steps below run its tests against
# the CPU reference and its bench beside the plain tilings; otherwise the table says it is
# absent. If the switch ends up with another name, change it here.
coop_switch=WGMEM_MATMUL_COOP
if grep -rqs "$coop_switch" src; then have_coop=true; else have_coop=false; fi

# name | command. Every command runs from the repository root with WGMEM_BACKEND=metal.
steps=(
    "install|command -v cargo >/dev/null || curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal; . \"\$HOME/.cargo/env\" 2>/dev/null; if command -v rustup >/dev/null; then rustup toolchain install stable --profile minimal; fi; cargo --version"
    "tests|cargo test --release"
    "digits|RUST_LOG=wgmem=info cargo run --release --example train -- --epochs 20"
    "kernels|WGMEM_BENCH_SHAPES=layer WGMEM_BENCH_TILES=T64,T128 WGMEM_BENCH_TSV=$logs/kernels.tsv cargo bench --bench kernels"
    "train_step|cargo bench --bench train_step -- --small"
    "zero_copy|cargo bench --bench zero_copy -- --small"
)
if $have_coop; then
    steps+=(
        "coop_tests|$coop_switch=1 cargo test --release --test kernels_matmul"
        "coop_kernels|$coop_switch=1 WGMEM_BENCH_SHAPES=layer WGMEM_BENCH_TSV=$logs/kernels_coop.tsv cargo bench --bench kernels"
    )
fi

if $plan_only; then
    echo "benches/apple.sh plan (WGMEM_BACKEND=metal; logs in $logs; table in $report):"
    for step in "${steps[@]}"; do
        printf '  %-12s %s\n' "${step%%|*}" "${step#*|}"
    done
    if ! $have_coop; then
        echo "  simdgroup-matrix kernels: not in this checkout (no $coop_switch in src/): step left out"
    fi
    exit 0
fi

if ! $table_only && [[ "$(uname -s)" != Darwin ]]; then
    echo "benches/apple.sh runs on macOS (Metal); this is $(uname -s). Try --print-plan." >&2
    exit 1
fi
mkdir -p "$logs"
$table_only && steps=()
# macOS ships bash 3.2: no associative arrays (each step's status is a variable status_<name>),
# and an empty array is "unbound" under `set -u` unless expanded this way.
for step in ${steps[@]+"${steps[@]}"}; do
    name=${step%%|*}
    echo "== $name: ${step#*|}"
    if bash -c "${step#*|}" >"$logs/$name.log" 2>&1; then
        printf -v "status_$name" '%s' ok
    else
        printf -v "status_$name" 'FAILED (see %s)' "$logs/$name.log"
    fi
    var="status_$name"
    echo "   ${!var}"
    # The install step may have just put cargo on the PATH.
    if [[ $name == install ]]; then . "$HOME/.cargo/env" 2>/dev/null || true; fi
done

# Figures from the logs; "-" where a step failed or printed nothing to read.
first() { grep -m1 -E "$1" "$2" 2>/dev/null | sed -E "s/$3/\\1/" || true; }
or_dash() { [[ -n "$1" ]] && echo "$1" || echo "-"; }
adapter=$(or_dash "$(first '^adapter: ' "$logs/zero_copy.log" '^adapter: (.*)$')")
passed=$(awk '/^test result:/ { p += $4; f += $6 } END { printf "%d passed, %d failed", p, f }' \
    "$logs/tests.log" 2>/dev/null)
accuracy=$(or_dash "$(first '^test accuracy: ' "$logs/digits.log" '^test accuracy: (.*)$')")
footprint=$(or_dash "$(first '^footprint ' "$logs/digits.log" '^(.*)$')")
budget=$(grep -m1 -E 'budget [0-9]+ bytes' "$logs/digits.log" 2>/dev/null |
    sed -E 's/.*budget ([0-9]+) bytes \(([A-Za-z]+)\).*/\1 \2/' |
    awk '{ printf "%.2f GiB (%s)", $1 / 1073741824, $2 }')
budget=$(or_dash "$budget")
tflops() {
    awk -F'\t' '$1 ~ /^matmul/ && $4 == "GFLOP/s" && $3 > best { best = $3; name = $1 }
        END { if (best) printf "%.2f (%s)", best / 1000, name; else print "-" }' "$1" 2>/dev/null || echo "-"
}
matmul=$(tflops "$logs/kernels.tsv")
copy=$(awk -F'\t' '$1 ~ /^copy/ && $3 > best { best = $3 } END { if (best) printf "%.1f", best; else print "-" }' \
    "$logs/kernels.tsv" 2>/dev/null || echo "-")
step_ms=$(or_dash "$(grep -m1 -E '^\| MLP ' "$logs/train_step.log" 2>/dev/null |
    sed -E 's/^\| ([^|]*[^ ]) +\| ([0-9.]+ ms).*$/\2 (\1)/')")
zc_upload=$(or_dash "$(first '^\| 16.00 MiB \| upload' "$logs/zero_copy.log" '^.*\| ([0-9.]+x) \|$')")
zc_read=$(or_dash "$(first '^\| 16.00 MiB \| read' "$logs/zero_copy.log" '^.*\| ([0-9.]+x) \|$')")
if $have_coop; then
    coop="$(tflops "$logs/kernels_coop.tsv"); tests: ${status_coop_tests:-from the logs}"
else
    coop="not in this checkout (step left out)"
fi

{
    echo "wgmem on $(sysctl -n machdep.cpu.brand_string 2>/dev/null), macOS $(sw_vers -productVersion 2>/dev/null), $(date -u +%Y-%m-%d), commit $(git rev-parse --short HEAD 2>/dev/null)"
    echo
    echo "| what | result |"
    echo "|---|---|"
    echo "| adapter | $adapter |"
    echo "| tests (cargo test --release on Metal) | $passed; ${status_tests:-from the logs} |"
    echo "| digits test accuracy (20 epochs) | $accuracy; ${status_digits:-from the logs} |"
    echo "| matmul TFLOP/s, best plain tiling | $matmul |"
    echo "| matmul TFLOP/s, simdgroup-matrix ($coop_switch=1) | $coop |"
    echo "| copy GB/s | $copy |"
    echo "| MLP training step (--small) | $step_ms |"
    echo "| memory budget | $budget |"
    echo "| footprint after the digits run | $footprint |"
    echo "| zero-copy vs staging, 16 MiB upload / read | $zc_upload / $zc_read |"
    echo "| logs | $logs |"
} | tee "$report"
echo
echo "table written to $report"
