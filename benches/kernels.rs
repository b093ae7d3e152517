//! Kernel throughput: matmul GFLOP/s for 4096^3 (A·B) and the MLP step's products (a 4096-wide
//! layer's A·B, Aᵀ·B and A·Bᵀ at batch 1024, and the 784-wide first layer's A·B and Aᵀ·B) in
//! each tiling, with all of naga's checks, without its loop counters (the default) and without any; and elementwise bandwidth (bytes read + written)
//! for copy and axpby.
//!
//! Each figure: warm-up, then `REPEATS` times record `iters` dispatches, flush, wait idle, and
//! take the host time; the median over repeats is reported. Results are checked on random data
//! first (sampled entries of every product against an f64 dot product on the CPU).
//!
//! Run: `cargo bench --bench kernels` (set `WGMEM_BENCH_TSV=path` to also write the table as
//! TSV, which `benches/reference/torch_kernels.py` reads to print ratios;
//! `WGMEM_BENCH_TILES=T128P,T128S,...` to time only those tilings; `WGMEM_BENCH_SHAPES=layer` to
//! leave out 4096^3, `=gpt` for the default GPT's products instead).

use std::time::Instant;
use wgmem::compute::{MatmulOptions, MatmulTile, axpby, copy, matmul};
use wgmem::{Backend, BufferUsage, Gpu, KernelChecks, WgpuBackend};

const REPEATS: usize = 7;

/// `(m, n, k, transposes (trans_a, trans_b) timed)`.
type Shape = (usize, usize, usize, Vec<(bool, bool)>);

struct Rng(u64);
impl Rng {
    fn uniform(&mut self) -> f32 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
    fn vec(&mut self, n: usize) -> Vec<f32> {
        (0..n).map(|_| self.uniform()).collect()
    }
}

fn upload(b: &WgpuBackend, data: &[f32]) -> wgpu::Buffer {
    let buf = b
        .allocate((data.len() * 4) as u64, BufferUsage::Storage)
        .expect("allocate");
    b.write(&buf, 0, bytemuck::cast_slice(data)).expect("write");
    buf
}

fn download(b: &WgpuBackend, buf: &wgpu::Buffer, n: usize) -> Vec<f32> {
    let mut out = vec![0f32; n];
    b.read(buf, 0, bytemuck::cast_slice_mut(&mut out))
        .expect("read");
    out
}

/// Median seconds per iteration of `f`, run `iters` times per repeat: `(batch, end_to_end)`.
/// `batch` is from the submit of the recorded iterations until the GPU is idle (the figure to
/// set against CUDA-event timings, which leave the host's launch work out); `end_to_end` adds the
/// host's recording of the dispatches (bind groups, parameter writes, pass encoding).
fn time(gpu: &Gpu, iters: usize, mut f: impl FnMut()) -> (f64, f64) {
    for _ in 0..2 {
        f();
    }
    gpu.backend().wait_idle().unwrap();
    let mut batch = Vec::new();
    let mut e2e = Vec::new();
    for _ in 0..REPEATS {
        let start = Instant::now();
        for _ in 0..iters {
            f();
        }
        let recorded = Instant::now();
        gpu.flush().unwrap();
        gpu.backend().wait_idle().unwrap();
        batch.push(recorded.elapsed().as_secs_f64() / iters as f64);
        e2e.push(start.elapsed().as_secs_f64() / iters as f64);
    }
    batch.sort_by(f64::total_cmp);
    e2e.sort_by(f64::total_cmp);
    (batch[REPEATS / 2], e2e[REPEATS / 2])
}

struct Row {
    name: String,
    ms: f64,
    rate: f64,
    rate_e2e: f64,
    unit: &'static str,
    err: f64,
}

fn main() {
    let backend = std::sync::Arc::new(WgpuBackend::new().expect("adapter"));
    let info = backend.adapter_info();
    println!(
        "adapter: {} ({:?}, driver {} {})",
        info.name, info.backend, info.driver, info.driver_info
    );
    let gpu = Gpu::with_checks(backend.clone(), KernelChecks::Full).expect("gpu");
    // SAFETY: only this crate's kernels run on it (see `Gpu::new_unchecked`).
    let ugpu = unsafe { Gpu::new_unchecked(backend.clone()) }.expect("gpu");
    let lgpu = Gpu::new(backend.clone()).expect("gpu"); // KernelChecks::NoLoopBounding
    // A software adapter (lavapipe) gets the small shapes: 4096³ would take hours there.
    let software = info.device_type == wgpu::DeviceType::Cpu;
    if software {
        println!("software driver: small shapes only; these are not GPU figures");
    }
    let quick = software || std::env::var("WGMEM_BENCH_QUICK").is_ok();
    let mut rows = Vec::new();
    let mut rng = Rng(7);

    // (m, n, k, transposes): the square product, the three products of a 4096-wide layer of
    // the MLP step (forward, weight gradient Aᵀ·B, input gradient A·Bᵀ) and the 784-wide first
    // layer's forward and weight gradient.
    const NN: (bool, bool) = (false, false);
    const TN: (bool, bool) = (true, false);
    const NT: (bool, bool) = (false, true);
    let only = std::env::var("WGMEM_BENCH_SHAPES").unwrap_or_default();
    let shapes: Vec<Shape> = if quick {
        vec![(130, 129, 131, vec![NN, TN, NT])]
    } else if only == "gpt" {
        // WGMEM_BENCH_SHAPES=gpt: the default GPT's products at batch 64 x context 256 (16384
        // rows of width 384): the forward, weight-gradient (Aᵀ·B over the 16384 rows) and
        // input-gradient (A·Bᵀ) products of the QKV, the MLP's up and its down projection.
        vec![
            (16384, 1152, 384, vec![NN]),
            (384, 1152, 16384, vec![TN]),
            (16384, 384, 1152, vec![NT]),
            (16384, 1536, 384, vec![NN, NT]),
            (384, 1536, 16384, vec![TN]),
            (16384, 384, 1536, vec![NN, NT]),
            (1536, 384, 16384, vec![TN]),
        ]
    } else if only == "layer" {
        // WGMEM_BENCH_SHAPES=layer: only the MLP step's shapes.
        vec![
            (1024, 4096, 4096, vec![NN, TN, NT]),
            (1024, 4096, 784, vec![NN]),
            (784, 4096, 1024, vec![TN]),
        ]
    } else {
        vec![
            (4096, 4096, 4096, vec![NN]),
            (1024, 4096, 4096, vec![NN, TN, NT]),
            (1024, 4096, 784, vec![NN]),
            (784, 4096, 1024, vec![TN]),
        ]
    };
    // WGMEM_BENCH_TILES=T128P,T128S,... picks the tilings timed (each with full, default and no
    // off); the K-16 tile of v2 is timed unchecked only, where it was ever faster.
    let tiles: Vec<MatmulTile> = match std::env::var("WGMEM_BENCH_TILES") {
        Ok(list) => list
            .split(',')
            .map(|name| match name.trim() {
                "T64" => MatmulTile::T64,
                "T128K16" => MatmulTile::T128K16,
                "T128P" => MatmulTile::T128P,
                "T128S" => MatmulTile::T128S,
                "Auto" => MatmulTile::Auto,
                other => panic!("unknown tile {other}"),
            })
            .collect(),
        Err(_) => vec![
            MatmulTile::T128K16,
            MatmulTile::T128P,
            MatmulTile::T128S,
            MatmulTile::Auto,
        ],
    };
    let mut variants = Vec::new();
    for &tile in &tiles {
        if tile != MatmulTile::T128K16 {
            variants.push((tile, &gpu, ""));
        }
        if tile != MatmulTile::Auto {
            variants.push((tile, &lgpu, " no-loop-bounding"));
            variants.push((tile, &ugpu, " unchecked"));
        }
    }
    for (m, n, k, transposes) in &shapes {
        let (m, n, k) = (*m, *n, *k);
        let a = rng.vec(m * k);
        let b = rng.vec(k * n);
        let (ab, bb) = (upload(&backend, &a), upload(&backend, &b));
        let cb = backend
            .allocate((m * n * 4) as u64, BufferUsage::Storage)
            .unwrap();
        for &(ta, tb) in transposes {
            let label = match (ta, tb) {
                (false, false) => "A·B",
                (true, false) => "Aᵀ·B",
                _ => "A·Bᵀ",
            };
            for &(tile, gpu, checks) in &variants {
                let storage = gpu.limits().max_compute_workgroup_storage_size;
                if (tile == MatmulTile::T128K16 && storage < 33_792)
                    || (tile == MatmulTile::T128S && storage < 32_768)
                {
                    continue;
                }
                let opts = MatmulOptions {
                    trans_a: ta,
                    trans_b: tb,
                    tile,
                    ..Default::default()
                };
                let a_shape = if ta { [k, m] } else { [m, k] };
                let b_shape = if tb { [n, k] } else { [k, n] };
                let run = || matmul(gpu, &ab, a_shape, &bb, b_shape, &cb, &opts).unwrap();
                // Check sampled entries on random data (the buffers hold one matrix each, read
                // with the transposed layout when ta/tb are set).
                run();
                let c = download(&backend, &cb, m * n);
                let mut err = 0f64;
                for s in 0..64 {
                    let i = (s * 7919 + 13) % m;
                    let j = (s * 104_729 + 5) % n;
                    let (mut dot, mut mag) = (0f64, 0f64);
                    for p in 0..k {
                        let x = f64::from(if ta { a[p * m + i] } else { a[i * k + p] });
                        let y = f64::from(if tb { b[j * k + p] } else { b[p * n + j] });
                        dot += x * y;
                        mag += (x * y).abs();
                    }
                    err = err.max((f64::from(c[i * n + j]) - dot).abs() / mag);
                }
                let flops = 2.0 * (m * n * k) as f64;
                let iters = if quick {
                    1
                } else {
                    ((2e12 / flops) as usize).clamp(3, 50)
                };
                let (secs, e2e) = time(gpu, iters, run);
                rows.push(Row {
                    name: format!("matmul {label} {m}x{n}x{k} {tile:?}{checks}"),
                    ms: secs * 1e3,
                    rate: flops / secs / 1e9,
                    rate_e2e: flops / e2e / 1e9,
                    unit: "GFLOP/s",
                    err,
                });
            }
        }
        // The fused epilogue of a layer's forward pass: + bias, GELU.
        let bias = upload(&backend, &rng.vec(n));
        let opts = MatmulOptions {
            bias: Some(&bias),
            activation: wgmem::compute::Activation::Gelu,
            ..Default::default()
        };
        let flops = 2.0 * (m * n * k) as f64;
        let iters = if quick {
            1
        } else {
            ((2e12 / flops) as usize).clamp(3, 50)
        };
        let (secs, e2e) = time(&gpu, iters, || {
            matmul(&gpu, &ab, [m, k], &bb, [k, n], &cb, &opts).unwrap()
        });
        rows.push(Row {
            name: format!("matmul A·B {m}x{n}x{k} +bias+GELU Auto"),
            ms: secs * 1e3,
            rate: flops / secs / 1e9,
            rate_e2e: flops / e2e / 1e9,
            unit: "GFLOP/s",
            err: 0.0,
        });
        for buf in [ab, bb, cb, bias] {
            backend.free(buf);
        }
    }

    // 256 MiB and 1 GiB per buffer (far past the 50 MiB L2).
    let sizes: &[usize] = if quick {
        &[1 << 18]
    } else {
        &[64 << 20, 256 << 20]
    };
    for &n in sizes {
        let x = upload(&backend, &rng.vec(n));
        let y = upload(&backend, &rng.vec(n));
        let bytes = (n * 4) as f64;
        let iters = if n > 64 << 20 { 12 } else { 50 };
        // Touch both buffers once before timing (the first use of fresh memory was slow once).
        copy(&gpu, &x, &y, n).unwrap();
        backend.wait_idle().unwrap();
        for per_thread in [4, 8] {
            gpu.set_vec4_per_thread(per_thread).unwrap();
            let checks = format!(" {per_thread}/thread");
            let gpu = &gpu;
            let (secs, e2e) = time(gpu, iters, || copy(gpu, &x, &y, n).unwrap());
            rows.push(Row {
                name: format!("copy {} MiB{checks}", (n * 4) >> 20),
                ms: secs * 1e3,
                rate: 2.0 * bytes / secs / 1e9,
                rate_e2e: 2.0 * bytes / e2e / 1e9,
                unit: "GB/s",
                err: 0.0,
            });
            let (secs, e2e) = time(gpu, iters, || axpby(gpu, 0.5, &x, 0.5, &y, n).unwrap());
            rows.push(Row {
                name: format!("axpby {} MiB{checks}", (n * 4) >> 20),
                ms: secs * 1e3,
                rate: 3.0 * bytes / secs / 1e9,
                rate_e2e: 3.0 * bytes / e2e / 1e9,
                unit: "GB/s",
                err: 0.0,
            });
        }
        backend.free(x);
        backend.free(y);
    }

    println!(
        "{:<48} {:>10} {:>12} {:>12} {:>8} {:>9}",
        "kernel (rate: submit to idle; e2e: with recording)",
        "ms",
        "rate",
        "e2e rate",
        "unit",
        "rel err"
    );
    let mut tsv = String::new();
    for r in &rows {
        println!(
            "{:<48} {:>10.4} {:>12.1} {:>12.1} {:>8} {:>9.1e}",
            r.name, r.ms, r.rate, r.rate_e2e, r.unit, r.err
        );
        tsv.push_str(&format!("{}\t{}\t{}\t{}\n", r.name, r.ms, r.rate, r.unit));
    }
    if let Ok(path) = std::env::var("WGMEM_BENCH_TSV") {
        std::fs::write(path, tsv).expect("write tsv");
    }
}
