#!/usr/bin/env bash
# Every GPU benchmark, with its reference measured in the same call, in one script.
#
# Here (build):    bash benches/gpu.sh --build
#   builds the release bench binaries, strips them into .dev/ with the PyTorch reference
#   scripts. Then, through the device tool, with carry [".gl", ".dev"]:
# There (run):     bash benches/gpu.sh
#   pool hit vs create_buffer; new buffer with first use vs pool hit, steps with caching on
#   and off; matmul and bandwidth vs cuBLAS / torch copy; the cooperative-matrix f16 matmul
#   vs cuBLAS f16; the MLP training step (f32 and mixed) vs PyTorch; checkpointing peak and
#   step time; fused attention vs torch SDPA. Each section prints its own table (ours, the
#   reference, the ratio); a summary table comes last. Logs go to $OUT when it is set.
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ "${1:-}" == "--build" ]]; then
    mkdir -p .dev
    cargo bench --no-run --bench pool --bench pool_cost --bench kernels --bench train_step \
        --bench matmul_coop --bench attention 2>&1 |
        sed -n 's/.*Executable benches\/\([a-z_]*\)\.rs (\(.*\))/\1 \2/p' |
        while read -r name path; do cp "$path" ".dev/$name"; strip ".dev/$name"; done
    cargo build --release --example coop_check
    cp target/release/examples/coop_check .dev/ && strip .dev/coop_check
    cp benches/reference/*.py .dev/
    ls -la .dev
    exit 0
fi

if [[ -d .gl ]]; then
    for f in .gl/*.deb; do dpkg -x "$f" /; done
    ldconfig
fi
if [[ -f /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json ]]; then
    export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
fi
export WGMEM_BACKEND=${WGMEM_BACKEND:-vulkan}
log=${OUT:-/tmp}
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null || true
date -u

echo "== pool: acquire/release vs raw allocation"
./.dev/pool --gpu-only 2>&1 | grep -v XDG | tee "$log/pool.txt"
echo "== pool cost: new buffer (allocate + first use + free) vs pool hit; steps with caching on and off"
./.dev/pool_cost --full 2>&1 | grep -v XDG | tee "$log/pool_cost.txt"
echo "== kernels: matmul and bandwidth vs torch"
WGMEM_BENCH_TSV="$log/kernels.tsv" ./.dev/kernels 2>&1 | grep -v XDG > "$log/kernels.txt"
python3 .dev/torch_kernels.py "$log/kernels.tsv" 2>&1 | tee "$log/torch_kernels.txt" | sed -n '/wgmem \/ torch/,$p'
echo "== cooperative-matrix f16 matmul: CPU check, then vs cuBLAS f16"
coop=0
./.dev/coop_check 2>&1 | grep -v XDG > "$log/coop_check.txt" || coop=$?
tail -2 "$log/coop_check.txt"
if [[ $coop == 0 ]]; then
    WGMEM_BENCH_TSV="$log/coop.tsv" ./.dev/matmul_coop 2>&1 | grep -v XDG > "$log/coop_bench.txt"
    python3 .dev/torch_coop.py "$log/coop.tsv" 2>&1 | tee "$log/torch_coop.txt" | sed -n '/wgmem \/ cuBLAS/,$p'
fi
echo "== training step and checkpointing vs torch"
./.dev/train_step 2>&1 | grep -v XDG | tee "$log/train_step.txt"
echo "== the same in mixed precision (f16 activations and working weights, f32 master and Adam)"
./.dev/train_step --precision mixed 2>&1 | grep -v XDG | tee "$log/train_step_mixed.txt"
python3 .dev/torch_mlp.py 2>&1 | tee "$log/torch_mlp.txt"
echo "== attention vs torch SDPA"
WGMEM_BENCH_TSV="$log/attention.tsv" ./.dev/attention 2>&1 | grep -v XDG | tee "$log/attention.txt"
python3 .dev/torch_attention.py "$log/attention.tsv" 2>&1 | tee "$log/torch_attention.txt"

echo "== summary"
python3 - "$log" <<'PY'
import re, sys
log = sys.argv[1]
pool = open(f"{log}/pool.txt").read().split("bare device.create_buffer")[-1]
rows = []
for size in ("1.00 MiB", "16.00 MiB"):
    m = re.search(r"\| " + re.escape(size) + r" \| ([\d.]+) \| [\d.]+ \| ([\d.]+) \| ([\d.]+) \|", pool)
    if m:
        ref, hit, p99 = map(float, m.groups())
        rows.append((f"pool hit vs create_buffer {size} (p99 hit {p99} us)", f"{hit} us", f"{ref} us", ref / hit, "50x faster"))
for line in open(f"{log}/torch_kernels.txt"):
    m = re.match(r"(matmul A·B 4096x4096x4096 T128P|matmul A·B 1024x4096x4096 T128P|copy 256 MiB 4/thread|axpby 256 MiB 4/thread)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)$", line.strip())
    if m:
        rows.append((m.group(1), m.group(2), m.group(3), float(m.group(4)), "0.60" if "matmul" in line else "0.90"))
step = re.search(r"\| MLP .*? \| ([\d.]+) ms", open(f"{log}/train_step.txt").read())
torch = re.search(r"MLP step: ([\d.]+) ms", open(f"{log}/torch_mlp.txt").read())
if step and torch:
    ours, ref = float(step.group(1)), float(torch.group(1))
    rows.append(("MLP step 784-4096x8-10 b1024 Adam (time)", f"{ours} ms", f"{ref} ms", ours / ref, "<= 1.2"))
mixed = re.search(r"\| MLP .*? \| ([\d.]+) ms", open(f"{log}/train_step_mixed.txt").read())
for name in ("bf16", "f16"):
    amp = re.search(r"MLP step autocast " + name + r": ([\d.]+) ms", open(f"{log}/torch_mlp.txt").read())
    if mixed and amp:
        ours, ref = float(mixed.group(1)), float(amp.group(1))
        rows.append((f"MLP step mixed vs torch autocast {name} (time)", f"{ours} ms", f"{ref} ms", ours / ref, "<= 1.5 (goal 1.0)"))
ck = open(f"{log}/train_step.txt").read()
for m in re.finditer(r"\| (SqrtN|Budget\(\d+\)) \| [^|]+\| [^|]+\| (\d+)% \| [\d.]+ ms \| \+?(-?\d+)% \|", ck):
    rows.append((f"checkpointing {m.group(1)}: activation saved / extra time", f"{m.group(2)}%", f"+{m.group(3)}%", float(m.group(2)) / 100, ">= 70% for < 30%"))
print(f"| {'what':<62} | {'wgmem':>12} | {'reference':>12} | {'ratio':>7} | target |")
print("|---|---|---|---|---|")
for what, ours, ref, ratio, target in rows:
    print(f"| {what:<62} | {ours:>12} | {ref:>12} | {ratio:>7.3f} | {target} |")
PY
