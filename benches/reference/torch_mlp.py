"""PyTorch reference for benches/train_step.rs: the same MLP step on the same GPU.

Batch 1024, 784-4096x8-10 (ReLU), softmax cross-entropy, Adam, fp32 with TF32 off. One step =
host-to-device copy of the batch, forward, loss, backward, Adam step, and `loss.item()` (a
sync), like wgmem's step. Median of 20 timed steps after 3 warm-up steps.

Then the same step under autocast, the reference of wgmem's `--precision mixed`: bf16, and f16
with a GradScaler (dynamic loss scaling, as wgmem's mixed precision does). fp32 master weights
and Adam state in both, as in wgmem.

    python3 benches/reference/torch_mlp.py
"""
import time
import torch

torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False
dev = "cuda"
batch, inputs, hidden, layers, classes = 1024, 784, 4096, 8, 10

mods = []
w = inputs
for _ in range(layers):
    mods += [torch.nn.Linear(w, hidden), torch.nn.ReLU()]
    w = hidden
mods.append(torch.nn.Linear(w, classes))
model = torch.nn.Sequential(*mods).to(dev)
opt = torch.optim.Adam(model.parameters(), lr=1e-4)
x_host = torch.rand(batch, inputs)
y_host = torch.arange(batch) % classes


def step():
    x = x_host.to(dev)
    y = y_host.to(dev)
    opt.zero_grad(set_to_none=True)
    loss = torch.nn.functional.cross_entropy(model(x), y)
    loss.backward()
    opt.step()
    return loss.item()




def timed(step_fn):
    for _ in range(3):
        step_fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(20):
        t = time.perf_counter()
        step_fn()
        times.append((time.perf_counter() - t) * 1e3)
    times.sort()
    return times[len(times) // 2]


flops = 3 * 2 * batch * (inputs * hidden + (layers - 1) * hidden * hidden + hidden * classes)
torch.cuda.reset_peak_memory_stats()
ms = timed(step)
print(f"torch {torch.__version__} MLP step: {ms:.2f} ms ({flops / ms / 1e9:.1f} TFLOP/s), peak allocated {torch.cuda.max_memory_allocated() / 2**20:.0f} MiB")

scaler = torch.amp.GradScaler("cuda")


def amp_step(dtype):
    def run():
        x = x_host.to(dev)
        y = y_host.to(dev)
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=dtype):
            loss = torch.nn.functional.cross_entropy(model(x), y)
        if dtype == torch.float16:
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
        else:
            loss.backward()
            opt.step()
        return loss.item()

    return run


for name, dtype in (("bf16", torch.bfloat16), ("f16", torch.float16)):
    torch.cuda.reset_peak_memory_stats()
    ms = timed(amp_step(dtype))
    print(f"torch {torch.__version__} MLP step autocast {name}: {ms:.2f} ms ({flops / ms / 1e9:.1f} TFLOP/s), peak allocated {torch.cuda.max_memory_allocated() / 2**20:.0f} MiB")
