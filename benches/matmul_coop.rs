//! Cooperative-matrix matmul throughput: f16 inputs, f32 accumulation, at 4096³ and at the MLP
//! step's shapes (batch 1024, 784-4096x8-10: each layer's forward A·B, weight gradient Aᵀ·B and
//! input gradient A·Bᵀ), with all of naga's checks, without its loop counters (the default) and without any, f32 output (and f16 for the square and
//! the 4096-wide layer). Prints the kernel the device chose and TFLOP/s.
//!
//! Each figure: warm-up, then `REPEATS` times record `iters` dispatches, flush, wait idle, and
//! take the host time from the submit; the median is reported. The results are checked first
//! against the CPU at sampled entries (the full check is `examples/coop_check.rs`).
//!
//! Run: `cargo bench --bench matmul_coop` (`WGMEM_BENCH_TSV=path` writes the table as TSV, which
//! `benches/reference/torch_coop.py` reads to print ratios to cuBLAS f16). Prints "SKIPPED: no
//! cooperative matrices" and exits with status 3 on a device without them.

use half::f16;
use std::sync::Arc;
use std::time::Instant;
use wgmem::DType;
use wgmem::compute::{MatmulOptions, SplitK, matmul_coop, split_k_slices};
use wgmem::{Backend, BufferUsage, Gpu, KernelChecks, WgpuBackend};

const REPEATS: usize = 7;

/// `(m, n, k, (trans_a, trans_b), f16 output timed too)`.
type Shape = (usize, usize, usize, (bool, bool), bool);

fn halves(seed: u64, n: usize) -> Vec<f16> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            f16::from_f32(((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0)
        })
        .collect()
}

fn upload(b: &WgpuBackend, bytes: &[u8]) -> wgpu::Buffer {
    let buf = b
        .allocate(bytes.len() as u64, BufferUsage::Storage)
        .expect("allocate");
    b.write(&buf, 0, bytes).expect("write");
    buf
}

/// Median seconds per iteration from the submit until the GPU is idle.
fn time(gpu: &Gpu, iters: usize, mut f: impl FnMut()) -> f64 {
    for _ in 0..2 {
        f();
    }
    gpu.backend().wait_idle().unwrap();
    let mut runs = Vec::new();
    for _ in 0..REPEATS {
        for _ in 0..iters {
            f();
        }
        let recorded = Instant::now();
        gpu.flush().unwrap();
        gpu.backend().wait_idle().unwrap();
        runs.push(recorded.elapsed().as_secs_f64() / iters as f64);
    }
    runs.sort_by(f64::total_cmp);
    runs[REPEATS / 2]
}

fn main() {
    let backend = Arc::new(WgpuBackend::new().expect("adapter"));
    let info = backend.adapter_info();
    println!(
        "adapter: {} ({:?}, driver {} {})",
        info.name, info.backend, info.driver, info.driver_info
    );
    let gpu = Gpu::with_checks(backend.clone(), KernelChecks::Full).expect("gpu");
    // SAFETY: only this crate's kernels run on it (see `Gpu::new_unchecked`).
    let ugpu = unsafe { Gpu::new_unchecked(backend.clone()) }.expect("gpu");
    let lgpu = Gpu::new(backend.clone()).expect("gpu"); // KernelChecks::NoLoopBounding
    let kernels = gpu.matmul_kernels();
    println!("kernel chosen: {kernels}");
    if kernels.f16.kernel().is_none() {
        println!("SKIPPED: no cooperative matrices ({})", kernels.f16);
        std::process::exit(3);
    }
    const NN: (bool, bool) = (false, false);
    const TN: (bool, bool) = (true, false);
    const NT: (bool, bool) = (false, true);
    // WGMEM_BENCH_SHAPES=gpt: the default GPT's products (batch 64 x context 256), as in
    // benches/kernels.rs.
    let gpt: Vec<Shape> = vec![
        (16384, 1152, 384, NN, true),
        (384, 1152, 16384, TN, false),
        (16384, 384, 1152, NT, true),
        (16384, 1536, 384, NN, true),
        (384, 1536, 16384, TN, false),
        (16384, 384, 1536, NN, true),
        (1536, 384, 16384, TN, false),
        (16384, 1536, 384, NT, true),
    ];
    let mlp: Vec<Shape> = vec![
        (4096, 4096, 4096, NN, true),
        (1024, 4096, 784, NN, false),
        (1024, 4096, 4096, NN, true),
        (1024, 10, 4096, NN, false),
        (784, 4096, 1024, TN, false),
        (4096, 4096, 1024, TN, false),
        (4096, 10, 1024, TN, false),
        (1024, 4096, 4096, NT, false),
        (1024, 4096, 10, NT, false),
    ];
    let shapes = if std::env::var("WGMEM_BENCH_SHAPES").is_ok_and(|s| s == "gpt") {
        gpt
    } else {
        mlp
    };
    let mut tsv = String::new();
    println!(
        "{:<44} {:>10} {:>10} {:>10}",
        "coop f16 matmul", "ms", "TFLOP/s", "max err"
    );
    for (m, n, k, (ta, tb), f16_out) in shapes {
        let a = halves(1, m * k);
        let bv = halves(2, k * n);
        let ga = upload(&backend, bytemuck::cast_slice(&a));
        let gb = upload(&backend, bytemuck::cast_slice(&bv));
        let gc = backend
            .allocate(
                (m * n * 4).next_multiple_of(16) as u64,
                BufferUsage::Storage,
            )
            .expect("allocate");
        let a_shape = if ta { [k, m] } else { [m, k] };
        let b_shape = if tb { [n, k] } else { [k, n] };
        let opts = MatmulOptions {
            trans_a: ta,
            trans_b: tb,
            ..Default::default()
        };
        let label = match (ta, tb) {
            (false, false) => "A·B",
            (true, false) => "Aᵀ·B",
            _ => "A·Bᵀ",
        };
        let outs: &[DType] = if f16_out {
            &[DType::F32, DType::F16]
        } else {
            &[DType::F32]
        };
        for &out in outs {
            // Sampled check against the CPU (f32 output only).
            let run = |g: &Gpu| {
                matmul_coop(g, DType::F16, &ga, a_shape, &gb, b_shape, &gc, out, &opts)
                    .expect("matmul_coop")
            };
            let mut err = f64::NAN;
            if out == DType::F32 {
                run(&gpu);
                let mut bytes = vec![0u8; m * n * 4];
                backend.read(&gc, 0, &mut bytes).expect("read");
                let got: &[f32] = bytemuck::cast_slice(&bytes);
                err = 0.0;
                for s in 0..64 {
                    let (i, j) = ((s * 7919) % m, (s * 104_729) % n);
                    let mut dot = 0f64;
                    for kk in 0..k {
                        let x = if ta { a[kk * m + i] } else { a[i * k + kk] };
                        let y = if tb { bv[j * k + kk] } else { bv[kk * n + j] };
                        dot += f64::from(x) * f64::from(y);
                    }
                    err = err.max((f64::from(got[i * n + j]) - dot).abs());
                }
            }
            let flops = 2.0 * (m * n * k) as f64;
            let iters = ((2e11 / flops) as usize).clamp(10, 2000);
            for (checks, g) in [
                ("", &gpu),
                (" no-loop-bounding", &lgpu),
                (" unchecked", &ugpu),
            ] {
                let secs = time(g, iters, || run(g));
                let name = format!(
                    "coop f16 {label} {m}x{n}x{k}{}{checks}",
                    if out == DType::F16 { " f16 out" } else { "" }
                );
                let tflops = flops / secs / 1e12;
                println!(
                    "{name:<44} {:>10.4} {tflops:>10.1} {err:>10.2e}",
                    secs * 1e3
                );
                tsv.push_str(&format!("{name}\t{}\t{tflops}\tTFLOP/s\n", secs * 1e3));
            }
            // Split-K where ops::matmul would split (f32 output), with the default checks.
            let slices = split_k_slices(&gpu, DType::F16, m, n, k);
            if out == DType::F32 && slices > 1 {
                let scratch = backend
                    .allocate((slices as usize * m * n * 4) as u64, BufferUsage::Storage)
                    .expect("allocate");
                let split = MatmulOptions {
                    split_k: Some(SplitK {
                        slices,
                        scratch: &scratch,
                    }),
                    ..opts
                };
                let secs = time(&lgpu, iters, || {
                    matmul_coop(
                        &lgpu,
                        DType::F16,
                        &ga,
                        a_shape,
                        &gb,
                        b_shape,
                        &gc,
                        out,
                        &split,
                    )
                    .expect("matmul_coop split")
                });
                let name = format!("coop f16 {label} {m}x{n}x{k} no-loop-bounding split {slices}");
                let tflops = flops / secs / 1e12;
                println!("{name:<44} {:>10.4} {tflops:>10.1}", secs * 1e3);
                tsv.push_str(&format!("{name}\t{}\t{tflops}\tTFLOP/s\n", secs * 1e3));
                backend.free(scratch);
            }
        }
    }
    if let Ok(path) = std::env::var("WGMEM_BENCH_TSV") {
        std::fs::write(&path, tsv).expect("write TSV");
    }
}
