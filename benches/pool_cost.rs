//! The honest pool figure: what a new buffer costs beyond `create_buffer`, and what the pool
//! saves a training step. Prints one table.
//!
//! - Buffer life, 4 KiB to 256 MiB: allocate + first use (a fill kernel, which is where wgpu
//!   zeroes a new buffer) + drop, each ended by a wait for the GPU so the deferred free is
//!   paid inside the timing, against the same with the buffer a pool hit. Median of the runs.
//! - The MLP step (upload, forward, loss, backward, Adam, loss read back) with the default
//!   `MemoryConfig` against `MemoryConfig::no_caching()` (soft limit 0: every released buffer
//!   is freed, every acquisition creates one).
//! - The same for a deep MLP under sqrt(n) gradient checkpointing, where buffers churn most.
//!
//! ```text
//! cargo bench --bench pool_cost              # a software adapter runs the small shapes
//! cargo bench --bench pool_cost -- --full    # the full shapes (the H200)
//! cargo bench --bench pool_cost -- --small   # small shapes on any adapter
//! ```

use std::sync::Arc;
use std::time::Instant;
use wgmem::checkpoint::{CheckpointPolicy, GradientCheckpointer};
use wgmem::compute;
use wgmem::memory::human_bytes;
use wgmem::nn::{Linear, Module, Sequential, softmax_cross_entropy};
use wgmem::optim::{Adam, Optimizer};
use wgmem::tensor::tags;
use wgmem::{Backend, BufferUsage, Context, MemoryConfig, WgpuBackend};

const SIZES: [u64; 5] = [4 << 10, 256 << 10, 4 << 20, 64 << 20, 256 << 20];

struct Shape {
    batch: usize,
    inputs: usize,
    hidden: usize,
    layers: usize,
    classes: usize,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn runs(size: u64, small: bool) -> usize {
    let base = if size >= 64 << 20 { 5 } else { 50 };
    if small { base.min(20) } else { base * 4 }
}

/// (new buffer, pool hit) medians in microseconds for one size; the two are timed
/// alternately, so drift on a shared machine affects both alike.
fn buffer_life(ctx: &Arc<Context>, size: u64, small: bool) -> (f64, f64) {
    let backend = ctx.backend();
    let memory = ctx.memory();
    let n = (size / 4) as usize;
    drop(memory.acquire(size, BufferUsage::Storage, "bench").unwrap());
    backend.wait_idle().unwrap();
    let misses = memory.stats().pool_misses;
    let (mut new, mut hit) = (Vec::new(), Vec::new());
    for _ in 0..runs(size, small) {
        let t = Instant::now();
        let buffer = backend.allocate(size, BufferUsage::Storage).unwrap();
        compute::fill(ctx.gpu(), &buffer, n, 1.0).unwrap();
        backend.wait_idle().unwrap();
        backend.free(buffer);
        backend.wait_idle().unwrap();
        new.push(t.elapsed().as_secs_f64() * 1e6);

        let t = Instant::now();
        let buffer = memory.acquire(size, BufferUsage::Storage, "bench").unwrap();
        compute::fill(ctx.gpu(), buffer.raw(), n, 1.0).unwrap();
        backend.wait_idle().unwrap();
        drop(buffer);
        backend.wait_idle().unwrap();
        hit.push(t.elapsed().as_secs_f64() * 1e6);
    }
    assert_eq!(
        memory.stats().pool_misses,
        misses,
        "every timed acquisition hit"
    );
    memory.clear_cache();
    (median(new), median(hit))
}

fn mlp(ctx: &Arc<Context>, s: &Shape) -> Sequential {
    let mut m = Sequential::new();
    let mut w = s.inputs;
    for i in 0..s.layers {
        m.push(Linear::new(ctx, w, s.hidden, i as u64).unwrap().with_relu());
        w = s.hidden;
    }
    m.push(Linear::new(ctx, w, s.classes, 99).unwrap());
    m
}

/// One training step's model, optimizer, checkpointer and batch on a context of its own.
struct Stepper {
    ctx: Arc<Context>,
    model: Sequential,
    opt: Adam,
    ck: GradientCheckpointer,
    x: Vec<f32>,
    y: Vec<u32>,
    batch: usize,
    inputs: usize,
}

impl Stepper {
    fn new(
        backend: &Arc<WgpuBackend>,
        config: MemoryConfig,
        policy: CheckpointPolicy,
        s: &Shape,
    ) -> Self {
        let ctx = Context::new(Arc::clone(backend), config).unwrap();
        let model = mlp(&ctx, s);
        let mut state = 12345u64;
        let x = (0..s.batch * s.inputs)
            .map(|_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (state >> 40) as f32 / (1u64 << 24) as f32
            })
            .collect();
        let y = (0..s.batch).map(|i| (i % s.classes) as u32).collect();
        Self {
            ctx,
            model,
            opt: Adam::new(1e-5),
            ck: GradientCheckpointer::new(policy),
            x,
            y,
            batch: s.batch,
            inputs: s.inputs,
        }
    }

    /// One step (upload, forward, loss, backward, Adam, loss read back): milliseconds.
    fn step(&mut self) -> f64 {
        let t = Instant::now();
        let ctx = &self.ctx;
        let xt = Arc::new(
            ctx.from_slice(&self.x, &[self.batch, self.inputs], tags::DATA)
                .unwrap(),
        );
        let labels = ctx.upload_u32(&self.y, tags::DATA).unwrap();
        let batch = self.batch;
        let out = self
            .ck
            .forward_backward(&mut self.model, xt, |logits| {
                let out = softmax_cross_entropy(&logits, &labels, batch)?;
                Ok((out.grad, out.loss))
            })
            .unwrap();
        self.opt.step(self.model.parameters()).unwrap();
        out.to_vec().unwrap();
        t.elapsed().as_secs_f64() * 1e3
    }
}

/// Median step times (ms) with caching on and off, timed alternately, and create_buffer calls
/// per step of each.
fn step_times(
    backend: &Arc<WgpuBackend>,
    policy: CheckpointPolicy,
    s: &Shape,
    timed: usize,
) -> [(f64, f64); 2] {
    let mut on = Stepper::new(backend, MemoryConfig::default(), policy, s);
    let mut off = Stepper::new(backend, MemoryConfig::no_caching(), policy, s);
    for _ in 0..2 {
        on.step();
        off.step();
    }
    let (mut t_on, mut t_off, mut c_on, mut c_off) = (Vec::new(), Vec::new(), 0, 0);
    for _ in 0..timed {
        let created = backend.buffers_created();
        t_on.push(on.step());
        c_on += backend.buffers_created() - created;
        let created = backend.buffers_created();
        t_off.push(off.step());
        c_off += backend.buffers_created() - created;
    }
    let per = |c: u64| c as f64 / timed as f64;
    [(median(t_on), per(c_on)), (median(t_off), per(c_off))]
}

fn main() {
    let backend = Arc::new(WgpuBackend::new().expect("a GPU adapter"));
    let software = backend.adapter().device_type == "Cpu";
    let full = std::env::args().any(|a| a == "--full");
    let small = !full && (software || std::env::args().any(|a| a == "--small"));
    println!(
        "adapter: {}{}",
        backend.adapter(),
        match (software, small) {
            (true, true) => " (software driver, small shapes: not GPU figures)",
            (_, true) => " (--small shapes)",
            _ => " (full shapes)",
        }
    );
    let (mlp_shape, ck_shape, timed) = if small {
        (
            Shape {
                batch: 64,
                inputs: 784,
                hidden: 256,
                layers: 8,
                classes: 10,
            },
            Shape {
                batch: 32,
                inputs: 256,
                hidden: 128,
                layers: 31,
                classes: 10,
            },
            5,
        )
    } else {
        (
            Shape {
                batch: 1024,
                inputs: 784,
                hidden: 4096,
                layers: 8,
                classes: 10,
            },
            Shape {
                batch: 512,
                inputs: 2048,
                hidden: 2048,
                layers: 31,
                classes: 10,
            },
            20,
        )
    };
    println!(
        "| measurement | caching on (pool hit) | caching off (new buffer) | off / on | create_buffer per step on / off |"
    );
    println!("|---|---|---|---|---|");
    let ctx = Context::new(Arc::clone(&backend), MemoryConfig::default()).unwrap();
    for size in SIZES {
        let caps = backend.capabilities();
        if size > caps.max_buffer_size.min(caps.max_storage_binding_size) {
            println!(
                "| allocate + first use + drop, {} | skipped: over this adapter's largest storage binding ({}) | | | |",
                human_bytes(size),
                human_bytes(caps.max_storage_binding_size)
            );
            continue;
        }
        let (new, hit) = buffer_life(&ctx, size, small);
        println!(
            "| allocate + first use + drop, {} | {hit:.1} us | {new:.1} us | {:.2}x | |",
            human_bytes(size),
            new / hit
        );
    }
    drop(ctx);
    for (name, shape, policy) in [
        ("MLP step", &mlp_shape, CheckpointPolicy::None),
        (
            "checkpointed step, sqrt(n)",
            &ck_shape,
            CheckpointPolicy::SqrtN,
        ),
    ] {
        let [(on, created_on), (off, created_off)] = step_times(&backend, policy, shape, timed);
        println!(
            "| {name} {}-{}x{}-{} batch {} | {on:.2} ms | {off:.2} ms | {:.2}x | {created_on:.0} / {created_off:.0} |",
            shape.inputs,
            shape.hidden,
            shape.layers,
            shape.classes,
            shape.batch,
            off / on
        );
    }
}
