"""PyTorch reference for examples/gpt.rs: the same GPT, data, optimizer and schedule.

Model (as wgmem's, see examples/gpt.rs): byte tokens (vocabulary 256), token and learned position
embeddings, `layers` pre-norm blocks x + attn(ln1(x)), x + mlp(ln2(x)) with causal multi-head
attention through F.scaled_dot_product_attention (QKV one Linear, then an output Linear) and a
4x MLP with tanh-GELU, a final LayerNorm, and the head tied to the token embedding; no dropout.
Init as wgmem's: Linear weights and biases uniform in +-1/sqrt(in) (PyTorch's nn.Linear
default), embeddings N(0, 0.02), LayerNorm weight 1 and bias 0.

Data (as wgmem's): data/kjv.txt.gz (or --data FILE) as bytes; the first 90% trains, the last 10%
validates. Training windows start every `context` bytes, shuffled each epoch; the validation
loss is the mean over the first --eval-windows non-overlapping windows of the validation split.

Optimizer (as wgmem's): AdamW betas (0.9, 0.95), eps 1e-8, weight decay 0.1 on parameters of
two or more dimensions only, gradient clipping at global norm 1.0, learning rate warmup over
--warmup steps to --lr then cosine to lr / 10 at the last step. fp32 with TF32 off.

Mixed precision (the reference of the example's `--precision mixed`): `--amp bf16` or `--amp f16`
runs forward and loss under torch.autocast (fp32 master weights, AdamW state and gradients);
f16 adds a GradScaler (dynamic loss scaling, as wgmem's), which unscales the gradients before
they are clipped and skips a step whose gradients overflowed. Evaluation runs under the same
autocast. The header line names the precision.

One step = host-to-device copy of the batch, forward, loss, backward, clip, AdamW, and
`loss.item()` (a sync), like wgmem's. Step time is the median over the steps after the first 3.

    python3 benches/reference/torch_gpt.py --steps 200 --batch-size 64
    python3 benches/reference/torch_gpt.py --steps 200 --batch-size 64 --amp f16
    python3 benches/reference/torch_gpt.py --memory-limit 4G --context 2048 --steps 3

Prints `val loss at step 0: X` first and `val loss: Y` last, like the example, and between them
`step time: ... ms`, `tokens/s: ...` and `peak allocated: ... MiB`.
"""
import argparse
import contextlib
import gzip
import math
import os
import time

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.utils.checkpoint

p = argparse.ArgumentParser()
p.add_argument("--steps", type=int, default=1000)
p.add_argument("--layers", type=int, default=6)
p.add_argument("--heads", type=int, default=6)
p.add_argument("--width", type=int, default=384)
p.add_argument("--context", type=int, default=256)
p.add_argument("--batch-size", type=int, default=16)
p.add_argument("--lr", type=float, default=1e-3)
p.add_argument("--warmup", type=int, default=None, help="default: steps / 10")
p.add_argument("--eval-every", type=int, default=100)
p.add_argument("--eval-windows", type=int, default=64)
p.add_argument("--data", default=None)
p.add_argument("--seed", type=int, default=0)
p.add_argument("--memory-limit", default=None, help="e.g. 4G: set_per_process_memory_fraction")
p.add_argument("--checkpoint", action="store_true", help="torch.utils.checkpoint per block")
p.add_argument("--amp", choices=["bf16", "f16"], default=None,
               help="mixed precision: torch.autocast in this type (f16 with a GradScaler)")
args = p.parse_args()

torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False
torch.set_float32_matmul_precision("highest")
dev = "cuda" if torch.cuda.is_available() else "cpu"
torch.manual_seed(args.seed)
amp_dtype = {"bf16": torch.bfloat16, "f16": torch.float16, None: None}[args.amp]
precision = f"autocast {args.amp}" if args.amp else "fp32"


def autocast():
    # A no-op context in fp32, so one code path serves both.
    return torch.autocast(device_type=dev, dtype=amp_dtype) if amp_dtype else contextlib.nullcontext()


# Dynamic loss scaling only for f16 (bf16 has f32's exponent range); disabled it is a pass-through.
scaler = torch.amp.GradScaler(dev, enabled=args.amp == "f16")

if args.memory_limit and dev == "cuda":
    units = {"K": 2**10, "M": 2**20, "G": 2**30}
    s = args.memory_limit.upper().rstrip("B").rstrip("I")
    limit = float(s[:-1]) * units[s[-1]] if s[-1] in units else float(s)
    total = torch.cuda.get_device_properties(0).total_memory
    torch.cuda.set_per_process_memory_fraction(limit / total)

here = os.path.dirname(os.path.abspath(__file__))
if args.data:
    text = open(args.data, "rb").read()
else:
    text = gzip.open(os.path.join(here, "..", "..", "data", "kjv.txt.gz")).read()
tokens = torch.tensor(list(text), dtype=torch.long)
n_val = max(len(tokens) // 10, 1)
train_tokens, val_tokens = tokens[: len(tokens) - n_val], tokens[len(tokens) - n_val :]
T = args.context


def window_starts(n, stride):
    return torch.arange(0, n - T, stride)  # each window needs T + 1 tokens


train_starts = window_starts(len(train_tokens), T)
val_starts = window_starts(len(val_tokens), T)[: args.eval_windows]
offsets = torch.arange(T + 1)


def windows(src, starts):
    w = src[starts[:, None] + offsets[None, :]]
    return w[:, :-1], w[:, 1:]


class Block(nn.Module):
    def __init__(self, width, heads):
        super().__init__()
        self.heads = heads
        self.ln1 = nn.LayerNorm(width)
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)
        self.ln2 = nn.LayerNorm(width)
        self.fc = nn.Linear(width, 4 * width)
        self.out = nn.Linear(4 * width, width)

    def forward(self, x):
        b, t, c = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(c, dim=2)
        q, k, v = (z.view(b, t, self.heads, c // self.heads).transpose(1, 2) for z in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.proj(y.transpose(1, 2).reshape(b, t, c))
        return x + self.out(F.gelu(self.fc(self.ln2(x)), approximate="tanh"))


class Gpt(nn.Module):
    def __init__(self):
        super().__init__()
        self.tok = nn.Embedding(256, args.width)
        self.pos = nn.Embedding(T, args.width)
        nn.init.normal_(self.tok.weight, std=0.02)
        nn.init.normal_(self.pos.weight, std=0.02)
        self.blocks = nn.ModuleList(Block(args.width, args.heads) for _ in range(args.layers))
        self.ln_f = nn.LayerNorm(args.width)

    def forward(self, idx):
        x = self.tok(idx) + self.pos(torch.arange(idx.shape[1], device=idx.device))
        for blk in self.blocks:
            if args.checkpoint and self.training:
                x = torch.utils.checkpoint.checkpoint(blk, x, use_reentrant=False)
            else:
                x = blk(x)
        return self.ln_f(x) @ self.tok.weight.T  # tied head


model = Gpt().to(dev)
decay = [p for p in model.parameters() if p.dim() >= 2]
no_decay = [p for p in model.parameters() if p.dim() < 2]
opt = torch.optim.AdamW(
    [{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
    lr=args.lr, betas=(0.9, 0.95), eps=1e-8, foreach=True,
)
warmup = args.warmup if args.warmup is not None else max(args.steps // 10, 1)
warmup = min(warmup, args.steps)


def lr_at(step):  # as wgmem::optim::LrSchedule::warmup_cosine(lr, lr / 10, warmup, steps)
    peak, low = args.lr, args.lr / 10
    if step < warmup:
        return peak * (step + 1) / warmup
    if step >= args.steps:
        return low
    progress = (step - warmup) / max(args.steps - warmup, 1)
    return low + (peak - low) * 0.5 * (1 + math.cos(math.pi * progress))


@torch.no_grad()
def evaluate():
    model.eval()
    losses = []
    for i in range(0, len(val_starts), args.batch_size):
        x, y = windows(val_tokens, val_starts[i : i + args.batch_size])
        with autocast():
            logits = model(x.to(dev))
        # The loss in f32 from the (possibly low-precision) logits.
        losses.append(F.cross_entropy(logits.float().flatten(0, 1), y.to(dev).flatten(), reduction="sum"))
    model.train()
    return (sum(losses) / (len(val_starts) * T)).item()


params = sum(p.numel() for p in model.parameters())
print(f"torch {torch.__version__} on {torch.cuda.get_device_name(0) if dev == 'cuda' else 'cpu'}: "
      f"{params / 1e6:.2f}M parameters, {len(train_starts)} train / {len(val_starts)} val windows of {T}, "
      f"precision {precision}")
print(f"val loss at step 0: {evaluate():.4f}")
gen = torch.Generator().manual_seed(args.seed)
order, at, epoch = torch.randperm(len(train_starts), generator=gen), 0, 0
times = []
for step in range(args.steps):
    if at + args.batch_size > len(order):
        epoch += 1
        order, at = torch.randperm(len(train_starts), generator=gen), 0
    x, y = windows(train_tokens, train_starts[order[at : at + args.batch_size]])
    at += args.batch_size
    t0 = time.perf_counter()
    for g in opt.param_groups:
        g["lr"] = lr_at(step)
    x, y = x.to(dev), y.to(dev)
    with autocast():
        logits = model(x)
        loss = F.cross_entropy(logits.flatten(0, 1), y.flatten())
    opt.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.unscale_(opt)  # clip the true gradients (a no-op when the scaler is disabled)
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    scaler.step(opt)  # skipped when a gradient overflowed (f16 only)
    scaler.update()
    value = loss.item()
    times.append(time.perf_counter() - t0)
    if (step + 1) % args.eval_every == 0 and step + 1 < args.steps:
        print(f"step {step + 1}: loss {value:.4f}, val loss {evaluate():.4f}")
timed = sorted(times[3:] or times)
ms = timed[len(timed) // 2] * 1e3
print(f"step time: {ms:.2f} ms (median of {len(timed)} steps, batch {args.batch_size}, context {T}, {precision})")
print(f"tokens/s: {args.batch_size * T / ms * 1e3:.0f}")
if dev == "cuda":
    print(f"peak allocated: {torch.cuda.max_memory_allocated() / 2**20:.0f} MiB")
print(f"val loss: {evaluate():.4f}")
