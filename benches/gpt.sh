#!/usr/bin/env bash
# The GPT training step against PyTorch: the same model, data, optimizer and schedule
# (examples/gpt.rs and benches/reference/torch_gpt.py), fp32 (TF32 off in torch), then mixed
# precision (ours --precision mixed against torch autocast bf16 and autocast f16 with a
# GradScaler), all in one call.
#
# Here (build):    bash benches/gpt.sh --build
#   builds the release example into .dev/gpt (the corpus is embedded in it). Then, through the
#   device tool, with carry [".gl", ".dev"]:
# There (run):     bash benches/gpt.sh [STEPS] [BATCH]          (default 200 steps, batch 64)
#   the default model (6 layers, 6 heads, width 384, context 256) for STEPS steps in each of
#   the five runs; prints each run's step time, tokens/s, peak memory and validation loss, then
#   two tables: fp32 (ours, torch, ratio) and mixed (ours, torch bf16, torch f16, ratios).
#   Validation is evaluated only at step 0 and at the end. A mixed run that fails (a device
#   without SHADER_F16) leaves its column nan and does not stop the others.
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
echo "== wgmem: examples/gpt.rs ${common[*]} --precision mixed"
./.dev/gpt "${common[@]}" --precision mixed --sample 200 2>&1 | grep -v XDG | tee "$log/gpt_wgmem_mixed.txt" \
    || echo "wgmem mixed failed (see above)"
for amp in bf16 f16; do
    echo "== torch: benches/reference/torch_gpt.py ${common[*]} --amp $amp"
    python3 benches/reference/torch_gpt.py "${common[@]}" --amp "$amp" 2>&1 | tee "$log/gpt_torch_$amp.txt" \
        || echo "torch --amp $amp failed (see above)"
done

echo "== summary"
python3 - "$log" "$steps" "$batch" <<'PY'
import re, sys
log, steps, batch = sys.argv[1:]
def grab(name):
    try:
        text = open(f"{log}/{name}").read()
    except OSError:
        text = ""
    step = re.search(r"step time: ([\d.]+) ms", text)
    tok = re.search(r"tokens/s: ([\d.]+)", text)
    v0 = re.search(r"val loss at step 0: ([\d.]+)", text)
    v = re.findall(r"^val loss: ([\d.]+)", text, re.M)
    return [float(m.group(1)) if m else float("nan") for m in (step, tok, v0)] + [float(v[-1]) if v else float("nan")]
ours, ref = grab("gpt_wgmem.txt"), grab("gpt_torch.txt")
print(f"| GPT 6x384, context 256, batch {batch}, {steps} steps, fp32 | wgmem | torch | ratio | target |")
print("|---|---|---|---|---|")
rows = [("step time (ms)", "<= 2.0 (goal 1.0)"), ("tokens/s", ""), ("val loss at step 0", ""), (f"val loss after {steps} steps", "within 5%")]
def ratio(a, b):
    return a / b if b == b and b != 0 else float("nan")
for i, (what, target) in enumerate(rows):
    print(f"| {what} | {ours[i]:.4g} | {ref[i]:.4g} | {ratio(ours[i], ref[i]):.3f} | {target} |")
mixed, bf16, f16 = grab("gpt_wgmem_mixed.txt"), grab("gpt_torch_bf16.txt"), grab("gpt_torch_f16.txt")
print()
print(f"| GPT 6x384, context 256, batch {batch}, {steps} steps, mixed | wgmem mixed (f16) | torch autocast bf16 | torch autocast f16 | ratio vs bf16 | ratio vs f16 | wgmem mixed / wgmem fp32 | target |")
print("|---|---|---|---|---|---|---|---|")
for i, (what, target) in enumerate(rows):
    print(f"| {what} | {mixed[i]:.4g} | {bf16[i]:.4g} | {f16[i]:.4g} | {ratio(mixed[i], bf16[i]):.3f} | {ratio(mixed[i], f16[i]):.3f} | {ratio(mixed[i], ours[i]):.3f} | {target} |")
PY
