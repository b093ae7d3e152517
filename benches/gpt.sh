#!/usr/bin/env bash
# The GPT training step against PyTorch: the same model, data, optimizer and schedule
# (examples/gpt.rs and benches/reference/torch_gpt.py), fp32 (TF32 off in torch), in one call.
#
# Here (build):    bash benches/gpt.sh --build
#   builds the release example into .dev/gpt (the corpus is embedded in it). Then, through the
#   device tool, with carry [".gl", ".dev"]:
# There (run):     bash benches/gpt.sh [STEPS] [BATCH]          (default 200 steps, batch 64)
#   the default model (6 layers, 6 heads, width 384, context 256) for STEPS steps in both;
#   prints each side's step time, tokens/s, peak memory and validation loss, then a table
#   (ours, torch, ratio). Validation is evaluated only at step 0 and at the end.
#                  bash benches/gpt.sh --contexts [LIMIT]      (default 4G)
#   the longest context (256 .. 8192, doubling) that trains the default model at batch 8 under
#   a memory limit of LIMIT: wgmem without and with checkpointing (--memory-limit), torch
#   without and with torch.utils.checkpoint (set_per_process_memory_fraction); 3 steps each.
# Logs go to $OUT when it is set.
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ "${1:-}" == "--build" ]]; then
    mkdir -p .dev
    cargo build --release --example gpt
    cp target/release/examples/gpt .dev/gpt
    strip .dev/gpt
    ls -la .dev/gpt
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

if [[ "${1:-}" == "--contexts" ]]; then
    limit=${2:-4G}
    printf '| context | wgmem | wgmem sqrt checkpointing | torch | torch checkpoint |\n|---|---|---|---|---|\n'
    for t in 256 512 1024 2048 4096 8192; do
        row="| $t"
        for ck in none sqrt; do
            if ./.dev/gpt --steps 3 --batch-size 8 --context "$t" --eval-every 3 --eval-windows 8 \
                --sample 0 --checkpoint "$ck" --memory-limit "$limit" > "$log/gpt_ctx_${t}_$ck.txt" 2>&1; then
                f="$log/gpt_ctx_${t}_$ck.txt"
                row="$row | trains ($(grep -o 'peak live [^,]*' "$f"), $(grep -o 'micro-batch [0-9]*' "$f" | tail -1))"
            else
                row="$row | fails ($(tail -c 80 "$log/gpt_ctx_${t}_$ck.txt" | tr '\n|' '  '))"
            fi
        done
        for ck in "" "--checkpoint"; do
            if python3 benches/reference/torch_gpt.py --steps 3 --batch-size 8 --context "$t" \
                --eval-every 3 --eval-windows 8 --memory-limit "$limit" $ck > "$log/torch_ctx_${t}${ck}.txt" 2>&1; then
                row="$row | trains ($(grep -o 'peak allocated.*' "$log/torch_ctx_${t}${ck}.txt"))"
            else
                row="$row | fails (out of memory: $(grep -c OutOfMemoryError "$log/torch_ctx_${t}${ck}.txt"))"
            fi
        done
        echo "$row |"
    done
    exit 0
fi

steps=${1:-200}
batch=${2:-64}
common=(--steps "$steps" --batch-size "$batch" --eval-every "$steps")
echo "== wgmem: examples/gpt.rs ${common[*]}"
./.dev/gpt "${common[@]}" --sample 200 2>&1 | grep -v XDG | tee "$log/gpt_wgmem.txt"
echo "== torch: benches/reference/torch_gpt.py ${common[*]}"
python3 benches/reference/torch_gpt.py "${common[@]}" 2>&1 | tee "$log/gpt_torch.txt"

echo "== summary"
python3 - "$log" "$steps" "$batch" <<'PY'
import re, sys
log, steps, batch = sys.argv[1:]
def grab(name):
    text = open(f"{log}/{name}").read()
    step = re.search(r"step time: ([\d.]+) ms", text)
    tok = re.search(r"tokens/s: ([\d.]+)", text)
    v0 = re.search(r"val loss at step 0: ([\d.]+)", text)
    v = re.findall(r"^val loss: ([\d.]+)", text, re.M)
    return [float(m.group(1)) if m else float("nan") for m in (step, tok, v0)] + [float(v[-1]) if v else float("nan")]
ours, ref = grab("gpt_wgmem.txt"), grab("gpt_torch.txt")
print(f"| GPT 6x384, context 256, batch {batch}, {steps} steps, fp32 | wgmem | torch | ratio | target |")
print("|---|---|---|---|---|")
for i, (what, target) in enumerate([("step time (ms)", "<= 2.0 (goal 1.0)"), ("tokens/s", ""), ("val loss at step 0", ""), (f"val loss after {steps} steps", "within 5%")]):
    print(f"| {what} | {ours[i]:.4g} | {ref[i]:.4g} | {ours[i] / ref[i]:.3f} | {target} |")
PY
