"""Reference figures for benches/attention.rs: torch's F.scaled_dot_product_attention, causal,
at the same shapes (batch 8, 6 heads, head size 64, T = 1024 and 2048; --small: 128 and 256).

fp32 with TF32 off is the comparison; bf16 is an extra column. Timed: the forward alone, and
forward + backward (torch.autograd.grad of the output with a random output gradient, giving
dq, dk, dv); backward alone is reported as their difference. Each figure: warm-up, then the
median of 7 repeats of many calls timed with CUDA events. FLOPs are counted as in
benches/attention.rs: causal forward 2*2*B*H*T^2*D/2, backward 2.5x forward. With a path to the
TSV written by benches/attention.rs (WGMEM_BENCH_TSV), it prints wgmem / torch ratios last.

    python3 benches/reference/torch_attention.py [--small] [wgmem.tsv]
"""
import sys
import torch
import torch.nn.functional as F

torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False
dev = "cuda"
REPEATS = 7
B, H, D = 8, 6, 64


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


def forward_flops(t):
    return 2 * 2 * B * H * t * t * D / 2


def measure(t, dtype, g):
    q, k, v = ((torch.rand(B, H, t, D, device=dev, generator=g) * 2 - 1).to(dtype).requires_grad_()
               for _ in range(3))
    do = (torch.rand(B, H, t, D, device=dev, generator=g) * 2 - 1).to(dtype)

    def fwd():
        with torch.no_grad():
            F.scaled_dot_product_attention(q, k, v, is_causal=True)

    def fwd_bwd():
        o = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        torch.autograd.grad(o, (q, k, v), do)

    iters = max(3, min(50, int(2e12 / (3.5 * forward_flops(t)))))
    return median_ms(fwd, iters), median_ms(fwd_bwd, iters)


args = [a for a in sys.argv[1:] if a != "--small"]
seqs = (128, 256) if "--small" in sys.argv[1:] else (1024, 2048)
print(f"torch {torch.__version__}, {torch.cuda.get_device_name()}, "
      f"tf32 {torch.backends.cuda.matmul.allow_tf32}")
print(f"F.scaled_dot_product_attention(is_causal=True) B={B} H={H} D={D}; TFLOP/s counts causal "
      f"FLOPs: forward 2*2*B*H*T^2*D/2, backward 2.5x forward; ms per call, CUDA events, "
      f"median of {REPEATS}; bwd = (fwd+bwd) - fwd")
g = torch.Generator(device=dev).manual_seed(0)
torch_rows = {}
print(f"| {'T':>5} | {'dtype':<5} | {'fwd ms':>9} | {'bwd ms':>9} | {'f+b ms':>9} | "
      f"{'fwd TF/s':>8} | {'f+b TF/s':>8} |")
print("|---|---|---|---|---|---|---|")
for t in seqs:
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        fwd_ms, both_ms = measure(t, dtype, g)
        torch_rows[(t, name)] = (fwd_ms, both_ms)
        f = forward_flops(t)
        print(f"| {t:>5} | {name:<5} | {fwd_ms:>9.3f} | {both_ms - fwd_ms:>9.3f} | {both_ms:>9.3f} | "
              f"{f / fwd_ms / 1e9:>8.2f} | {3.5 * f / both_ms / 1e9:>8.2f} |")

if args:
    print("\nwgmem / torch (ms ratios; above 1 is slower than torch)")
    print(f"| {'T':>5} | {'wgmem':<9} | {'wgmem fwd':>9} | {'torch fwd':>9} | {'fwd ratio':>9} | "
          f"{'wgmem f+b':>9} | {'torch f+b':>9} | {'f+b ratio':>9} | {'vs bf16 f+b':>11} |")
    print("|---|---|---|---|---|---|---|---|---|")
    with open(args[0]) as tsv:
        next(tsv)
        for line in tsv:
            t, variant, fwd_ms, _bwd_ms, both_ms, _tflops = line.rstrip("\n").split("\t")
            t, fwd_ms, both_ms = int(t), float(fwd_ms), float(both_ms)
            if (t, "fp32") not in torch_rows:
                continue
            ref_fwd, ref_both = torch_rows[(t, "fp32")]
            bf16_both = torch_rows[(t, "bf16")][1]
            print(f"| {t:>5} | {variant:<9} | {fwd_ms:>9.3f} | {ref_fwd:>9.3f} | {fwd_ms / ref_fwd:>9.3f} | "
                  f"{both_ms:>9.3f} | {ref_both:>9.3f} | {both_ms / ref_both:>9.3f} | "
                  f"{both_ms / bf16_both:>11.3f} |")
