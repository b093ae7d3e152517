"""cuBLAS f16 reference for benches/matmul_coop.rs, on the same GPU in the same call.

f16 inputs with f32 accumulation (reduced-precision reductions off), f16 output as torch gives
it, at 4096^3 and at the MLP step's shapes and transposes. Each figure: warm-up, then the median
of several repeats of many iterations timed with CUDA events. With the TSV that
benches/matmul_coop.rs writes (WGMEM_BENCH_TSV), it prints wgmem / cuBLAS ratios last.

    python3 benches/reference/torch_coop.py [coop.tsv]
"""
import re
import sys
import torch

torch.backends.cuda.matmul.allow_fp16_reduced_precision_reduction = False
dev = "cuda"
REPEATS = 7


def median_ms(fn, iters):
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(REPEATS):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(iters):
            fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end) / iters)
    times.sort()
    return times[REPEATS // 2]


LABEL = {(False, False): "A·B", (True, False): "Aᵀ·B", (False, True): "A·Bᵀ"}
SHAPES = [(4096, 4096, 4096, False, False), (1024, 4096, 784, False, False),
          (1024, 4096, 4096, False, False), (1024, 10, 4096, False, False),
          (784, 4096, 1024, True, False), (4096, 4096, 1024, True, False),
          (4096, 10, 1024, True, False), (1024, 4096, 4096, False, True),
          (1024, 4096, 10, False, True)]

print(f"torch {torch.__version__}, {torch.cuda.get_device_name()}, cuBLAS f16 (f32 accumulate)")
g = torch.Generator(device=dev).manual_seed(0)
rows = {}
for (m, n, k, ta, tb) in SHAPES:
    a = (torch.rand((k, m) if ta else (m, k), device=dev, generator=g) * 2 - 1).half()
    b = (torch.rand((n, k) if tb else (k, n), device=dev, generator=g) * 2 - 1).half()
    c = torch.empty((m, n), device=dev, dtype=torch.half)
    aa = a.t() if ta else a
    bb = b.t() if tb else b
    iters = max(10, min(2000, int(2e11 / (2 * m * n * k))))
    ms = median_ms(lambda: torch.mm(aa, bb, out=c), iters)
    rows[f"coop f16 {LABEL[(ta, tb)]} {m}x{n}x{k}"] = (ms, 2 * m * n * k / ms / 1e9)

print(f"{'cuBLAS f16':<44} {'ms':>10} {'TFLOP/s':>10}")
for name, (ms, rate) in rows.items():
    print(f"{name.replace('coop f16', 'cublas f16'):<44} {ms:>10.4f} {rate:>10.1f}")

if len(sys.argv) > 1:
    print(f"\n{'wgmem / cuBLAS f16':<48} {'wgmem':>9} {'cuBLAS':>9} {'ratio':>7}")
    for line in open(sys.argv[1]):
        name, ms, rate, unit = line.rstrip("\n").split("\t")
        key = re.sub(r"( f16 out)?( unchecked)?$", "", name)
        if key in rows:
            ref = rows[key][1]
            print(f"{name:<48} {float(rate):>9.1f} {ref:>9.1f} {float(rate) / ref:>7.3f}")
