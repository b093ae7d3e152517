"""Reference figures for benches/kernels.rs from PyTorch on the same GPU, in the same call.

cuBLAS fp32 matmul with TF32 off for the same shapes and transposes, and torch's device copy
and in-place axpy bandwidth (bytes read + written). Each figure: warm-up, then the median of
several repeats of many iterations timed with CUDA events. With a path to the TSV written by
benches/kernels.rs (WGMEM_BENCH_TSV), it prints wgmem / torch ratios as the last table.

    python3 benches/reference/torch_kernels.py [wgmem.tsv]
"""
import re
import sys
import torch

torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False
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


rows = {}
print(f"torch {torch.__version__}, {torch.cuda.get_device_name()}, tf32 {torch.backends.cuda.matmul.allow_tf32}")
g = torch.Generator(device=dev).manual_seed(0)
NN, TN, NT = ("A·B", False, False), ("Aᵀ·B", True, False), ("A·Bᵀ", False, True)
for (m, n, k, tr) in [(4096, 4096, 4096, [NN]), (1024, 4096, 4096, [NN, TN, NT]),
                      (1024, 4096, 784, [NN]), (784, 4096, 1024, [TN])]:
    for label, ta, tb in tr:
        a = torch.rand((k, m) if ta else (m, k), device=dev, generator=g) * 2 - 1
        b = torch.rand((n, k) if tb else (k, n), device=dev, generator=g) * 2 - 1
        c = torch.empty((m, n), device=dev)
        aa = a.t() if ta else a
        bb = b.t() if tb else b
        ms = median_ms(lambda: torch.mm(aa, bb, out=c), 20)
        rows[f"matmul {label} {m}x{n}x{k}"] = (ms, 2 * m * n * k / ms / 1e6, "GFLOP/s")

for n in (64 << 20, 256 << 20):
    x = torch.rand(n, device=dev, generator=g)
    y = torch.rand(n, device=dev, generator=g)
    iters = 12 if n > 64 << 20 else 50
    ms = median_ms(lambda: y.copy_(x), iters)
    rows[f"copy {n * 4 >> 20} MiB"] = (ms, 2 * n * 4 / ms / 1e6, "GB/s")
    ms = median_ms(lambda: y.add_(x, alpha=0.5), iters)
    rows[f"axpby {n * 4 >> 20} MiB"] = (ms, 3 * n * 4 / ms / 1e6, "GB/s")
    del x, y

print(f"{'torch':<40} {'ms':>10} {'rate':>12} {'unit':>8}")
for name, (ms, rate, unit) in rows.items():
    print(f"{name:<40} {ms:>10.4f} {rate:>12.1f} {unit:>8}")

if len(sys.argv) > 1:
    print(f"\n{'wgmem / torch':<48} {'wgmem':>12} {'torch':>12} {'ratio':>8}")
    for line in open(sys.argv[1]):
        name, ms, rate, unit = line.rstrip("\n").split("\t")
        key = name.replace(" unchecked", "").replace(" 4/thread", "").replace(" 8/thread", "")
        key = re.sub(r" (T\w+|Auto)$", "", key)
        if key in rows:
            ref = rows[key][1]
            print(f"{name:<48} {float(rate):>12.1f} {ref:>12.1f} {float(rate) / ref:>8.3f}")
