//! The fused causal attention kernels alone (`shaders/attention/`): forward with `lse`
//! saving, backward producing dq, dk and dv, at the default GPT's shapes (batch 8, 6 heads,
//! head size 64) and T = 1024 and 2048, for the comparison with torch SDPA
//! (`benches/reference/torch_attention.py`).
//!
//! Method as `benches/kernels.rs`: random data (uniform in [-1, 1), never zeros), the result
//! checked once per shape on sampled rows against an f64 CPU computation; then per figure two
//! warm-up calls, and `REPEATS` times record `iters` calls, flush, wait idle; the time per call
//! is from the submit of the recorded calls until the GPU is idle, median over the repeats (the
//! backend is told not to submit on its own before that flush).
//! Timed with all of naga's runtime checks (`KernelChecks::Full`), without its loop counters
//! (`Gpu::new`'s default, what the layers use) and without any (`Gpu::new_unchecked`).
//!
//! FLOPs counted, causal (half the `T x T` scores): forward `2 · 2·B·H·T²·D / 2` (q kᵀ and p v),
//! backward 2.5x forward (the FlashAttention-2 convention: five products of the same size, one
//! of them the recomputed q kᵀ).
//!
//! Run: `cargo bench --bench attention` (`-- --small` for T = 128 and 256, chosen by itself on
//! a software adapter such as lavapipe; `-- --gpt` for the default GPT's batch 64 at T = 256;
//! `WGMEM_ATTENTION_ROWS=all` (or `forward`, `dq`, `dkdv`, comma-separated) times the
//! one-row-per-thread kernels of those passes, `none` every pass blocked; set `WGMEM_BENCH_TSV=path` to also write the table as
//! TSV, which `torch_attention.py` reads to print ratios).

use std::sync::Arc;
use std::time::Instant;
use wgmem::compute::{
    AttentionDims, AttentionSaved, FusedKernels, attention_backward, attention_forward,
};
use wgmem::{Backend, BufferUsage, Gpu, KernelChecks, WgpuBackend, WgpuBackendOptions};

const REPEATS: usize = 7;
const BATCH: usize = 8;
const HEADS: usize = 6;
const HEAD_DIM: usize = 64;

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

fn scratch(b: &WgpuBackend, n: usize) -> wgpu::Buffer {
    b.allocate((n * 4) as u64, BufferUsage::Storage)
        .expect("allocate")
}

fn download(b: &WgpuBackend, buf: &wgpu::Buffer, n: usize) -> Vec<f32> {
    let mut out = vec![0f32; n];
    b.read(buf, 0, bytemuck::cast_slice_mut(&mut out))
        .expect("read");
    out
}

/// Median seconds per call of `f`, from the submit of `iters` recorded calls until idle.
fn time(gpu: &Gpu, iters: usize, mut f: impl FnMut()) -> f64 {
    for _ in 0..2 {
        f();
    }
    gpu.flush().unwrap();
    gpu.backend().wait_idle().unwrap();
    let mut batch = Vec::new();
    for _ in 0..REPEATS {
        for _ in 0..iters {
            f();
        }
        let recorded = Instant::now();
        gpu.flush().unwrap();
        gpu.backend().wait_idle().unwrap();
        batch.push(recorded.elapsed().as_secs_f64() / iters as f64);
    }
    batch.sort_by(f64::total_cmp);
    batch[REPEATS / 2]
}

/// The f64 reference for one head `(b, h)`: for each sampled query row `i`, `o[i]` and `dq[i]`;
/// for each sampled key row `j`, `dk[j]` and `dv[j]`. Returns the largest error of the GPU's
/// values relative to the largest magnitude of the reference's, over the four quantities.
fn check_head(
    dims: AttentionDims,
    qkv: &[f32],
    d_o: &[f32],
    got: (&[f32], &[f32]),
    (b, h): (usize, usize),
    rows: &[usize],
) -> f64 {
    let (seq, dh, w) = (dims.seq, dims.head_dim, dims.width());
    let at = |t: usize, part: usize, d: usize| (b * seq + t) * 3 * w + part * w + h * dh + d;
    let oat = |t: usize, d: usize| (b * seq + t) * w + h * dh + d;
    let x = |i: usize| f64::from(qkv[i]);
    let g = |t: usize, d: usize| f64::from(d_o[oat(t, d)]);
    let scale = 1.0 / (dh as f64).sqrt();
    let score = |i: usize, j: usize| {
        scale
            * (0..dh)
                .map(|d| x(at(i, 0, d)) * x(at(j, 1, d)))
                .sum::<f64>()
    };
    // Every row's log-denominator and delta_i = sum_j p_ij dp_ij = d_o_i · o_i.
    let mut lse = vec![0.0; seq];
    let mut delta = vec![0.0; seq];
    let mut o = vec![vec![0.0; dh]; seq];
    for i in 0..seq {
        let s: Vec<f64> = (0..=i).map(|j| score(i, j)).collect();
        let m = s.iter().cloned().fold(f64::MIN, f64::max);
        let z: f64 = s.iter().map(|v| (v - m).exp()).sum();
        lse[i] = m + z.ln();
        for (j, sj) in s.iter().enumerate() {
            let p = (sj - lse[i]).exp();
            for (d, od) in o[i].iter_mut().enumerate() {
                *od += p * x(at(j, 2, d));
            }
        }
        delta[i] = (0..dh).map(|d| g(i, d) * o[i][d]).sum();
    }
    let (o_gpu, dqkv_gpu) = got;
    let (mut err, mut mag) = ([0f64; 4], [0f64; 4]);
    let mut note = |k: usize, got: f32, want: f64| {
        err[k] = err[k].max((f64::from(got) - want).abs());
        mag[k] = mag[k].max(want.abs());
    };
    for &r in rows {
        // Query row r: o and dq.
        let mut dq = vec![0.0; dh];
        for j in 0..=r {
            let p = (score(r, j) - lse[r]).exp();
            let dp: f64 = (0..dh).map(|d| g(r, d) * x(at(j, 2, d))).sum();
            let ds = p * (dp - delta[r]);
            for (d, v) in dq.iter_mut().enumerate() {
                *v += scale * ds * x(at(j, 1, d));
            }
        }
        // Key row r: dk and dv.
        let (mut dk, mut dv) = (vec![0.0; dh], vec![0.0; dh]);
        for i in r..seq {
            let p = (score(i, r) - lse[i]).exp();
            let dp: f64 = (0..dh).map(|d| g(i, d) * x(at(r, 2, d))).sum();
            let ds = p * (dp - delta[i]);
            for d in 0..dh {
                dk[d] += scale * ds * x(at(i, 0, d));
                dv[d] += p * g(i, d);
            }
        }
        for d in 0..dh {
            note(0, o_gpu[oat(r, d)], o[r][d]);
            note(1, dqkv_gpu[at(r, 0, d)], dq[d]);
            note(2, dqkv_gpu[at(r, 1, d)], dk[d]);
            note(3, dqkv_gpu[at(r, 2, d)], dv[d]);
        }
    }
    (0..4).map(|k| err[k] / mag[k]).fold(0.0, f64::max)
}

struct Row {
    seq: usize,
    variant: &'static str,
    fwd_ms: f64,
    bwd_ms: f64,
    both_ms: f64,
    err: f64,
}

/// Forward FLOPs of causal attention: two products of `B·H·T²·D` multiply-adds, halved.
fn forward_flops(batch: usize, seq: usize) -> f64 {
    2.0 * 2.0 * (batch * HEADS * seq * seq * HEAD_DIM) as f64 / 2.0
}

fn main() {
    // Nothing is submitted until the timed flush (the default submits every 24 commands,
    // which would start the GPU while the calls are still being recorded).
    let options = WgpuBackendOptions {
        flush_every: Some(1 << 20),
        ..Default::default()
    };
    let backend = Arc::new(WgpuBackend::with_options(options).expect("adapter"));
    let info = backend.adapter_info();
    println!(
        "adapter: {} ({:?}, driver {} {})",
        info.name, info.backend, info.driver, info.driver_info
    );
    let gpu = Gpu::with_checks(backend.clone(), KernelChecks::Full).expect("gpu");
    // SAFETY: only this crate's kernels run on it (see `Gpu::new_unchecked`).
    let ugpu = unsafe { Gpu::new_unchecked(backend.clone()) }.expect("gpu");
    let lgpu = Gpu::new(backend.clone()).expect("gpu"); // KernelChecks::NoLoopBounding
    // A software adapter (lavapipe) gets the small shapes: T = 2048 would take very long there.
    let software = info.device_type == wgpu::DeviceType::Cpu;
    if software {
        println!("software driver: small shapes only; these are not GPU figures");
    }
    println!(
        "fused kernels: {:?} (WGMEM_ATTENTION_ROWS names the passes that run one row per thread)",
        FusedKernels::current()
    );
    let small = software || std::env::args().any(|a| a == "--small");
    let gpt = !software && std::env::args().any(|a| a == "--gpt");
    // (batch, T): --gpt is the default GPT's training shape.
    let shapes: &[(usize, usize)] = match (gpt, small) {
        (true, _) => &[(64, 256)],
        (false, true) => &[(BATCH, 128), (BATCH, 256)],
        (false, false) => &[(BATCH, 1024), (BATCH, 2048)],
    };
    let batch = shapes[0].0;
    let mut rng = Rng(17);
    let mut rows = Vec::new();
    for &(_, seq) in shapes {
        let dims = AttentionDims {
            batch,
            seq,
            heads: HEADS,
            head_dim: HEAD_DIM,
        };
        let qkv_host = rng.vec(dims.qkv_len());
        let d_o_host = rng.vec(dims.o_len());
        let qkv = upload(&backend, &qkv_host);
        let d_o = upload(&backend, &d_o_host);
        let (o, lse) = (
            scratch(&backend, dims.o_len()),
            scratch(&backend, dims.rows_len()),
        );
        let dqkv = scratch(&backend, dims.qkv_len());
        let delta = scratch(&backend, dims.rows_len());
        let saved = AttentionSaved {
            qkv: &qkv,
            o: &o,
            lse: &lse,
        };
        // Check once, with naga's checks on: sampled rows of two heads (the first and last
        // rows, and rows between) against the f64 reference.
        attention_forward(&gpu, dims, &qkv, &o, &lse).unwrap();
        attention_backward(&gpu, dims, &saved, &d_o, &dqkv, &delta).unwrap();
        gpu.flush().unwrap();
        let o_gpu = download(&backend, &o, dims.o_len());
        let dqkv_gpu = download(&backend, &dqkv, dims.qkv_len());
        assert_eq!(backend.uncaptured_errors(), 0, "every kernel ran");
        let sampled = [0, 1, seq / 3, seq / 2 + 5, seq - 2, seq - 1];
        let err = [(0, 0), (batch - 1, HEADS - 1)]
            .into_iter()
            .map(|head| {
                check_head(
                    dims,
                    &qkv_host,
                    &d_o_host,
                    (&o_gpu, &dqkv_gpu),
                    head,
                    &sampled,
                )
            })
            .fold(0.0, f64::max);
        println!("T = {seq}: rel err {err:.1e} (o, dq, dk, dv on sampled rows vs f64)");

        let flops = 3.5 * forward_flops(batch, seq);
        let iters = if software {
            1
        } else {
            ((2e12 / flops) as usize).clamp(3, 50)
        };
        for (variant, gpu) in [
            ("full", &gpu),
            ("no-loop-bounding", &lgpu),
            ("unchecked", &ugpu),
        ] {
            let fwd = || attention_forward(gpu, dims, &qkv, &o, &lse).unwrap();
            let bwd = || attention_backward(gpu, dims, &saved, &d_o, &dqkv, &delta).unwrap();
            let fwd_s = time(gpu, iters, fwd);
            let bwd_s = time(gpu, iters, bwd);
            let both_s = time(gpu, iters, || {
                fwd();
                bwd();
            });
            rows.push(Row {
                seq,
                variant,
                fwd_ms: fwd_s * 1e3,
                bwd_ms: bwd_s * 1e3,
                both_ms: both_s * 1e3,
                err,
            });
        }
        for buf in [qkv, d_o, o, lse, dqkv, delta] {
            backend.free(buf);
        }
    }

    println!(
        "causal attention B={batch} H={HEADS} D={HEAD_DIM} fp32; TFLOP/s counts causal FLOPs: \
         forward 2·2·B·H·T²·D/2, backward 2.5x forward; ms per call, submit to idle, median of {REPEATS}"
    );
    println!(
        "| {:>5} | {:<9} | {:>9} | {:>9} | {:>9} | {:>8} | {:>8} | {:>8} | {:>7} |",
        "T", "checks", "fwd ms", "bwd ms", "f+b ms", "fwd TF/s", "bwd TF/s", "f+b TF/s", "rel err"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    let mut tsv = String::from("T\tvariant\tfwd_ms\tbwd_ms\tfwd_bwd_ms\tfwd_bwd_tflops\n");
    for r in &rows {
        let f = forward_flops(batch, r.seq);
        let tf = |flops: f64, ms: f64| flops / (ms * 1e-3) / 1e12;
        println!(
            "| {:>5} | {:<9} | {:>9.3} | {:>9.3} | {:>9.3} | {:>8.2} | {:>8.2} | {:>8.2} | {:>7.1e} |",
            r.seq,
            r.variant,
            r.fwd_ms,
            r.bwd_ms,
            r.both_ms,
            tf(f, r.fwd_ms),
            tf(2.5 * f, r.bwd_ms),
            tf(3.5 * f, r.both_ms),
            r.err
        );
        tsv.push_str(&format!(
            "{}\t{}\t{}\t{}\t{}\t{}\n",
            r.seq,
            r.variant,
            r.fwd_ms,
            r.bwd_ms,
            r.both_ms,
            tf(3.5 * f, r.both_ms)
        ));
    }
    if let Ok(path) = std::env::var("WGMEM_BENCH_TSV") {
        std::fs::write(path, tsv).expect("write tsv");
    }
}
