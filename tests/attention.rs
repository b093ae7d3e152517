//! Causal attention: the fused kernels (`shaders/attention/`) and the naive reference
//! (`shaders/attention_naive.wgsl`) against an f64 CPU computation, against each other, for
//! masking, and the `CausalSelfAttention` layer against finite differences and bad input.
//!
//! Shapes: odd sequence lengths (19, 37, 70, 131: one to five 32-row workgroups, partial
//! 32-key and 16-key or 16-query tiles) and head sizes 16, 32 and 64.
//!
//! Tolerances. Inputs are uniform in [-1, 1), so with head size d ≤ 64 the scaled scores are
//! O(1) and every output and gradient is a sum of at most 131 terms of O(1) each, accumulated in
//! f32 (relative rounding 6e-8 per step): errors stay near 1e-6. Against the f64 reference we
//! accept 1e-4 + 1e-4·|ref|; fused against naive (two f32 orders of summation) the same.

mod common;

use common::Rng;
use std::sync::Arc;
use wgmem::compute::{self, AttentionDims, AttentionSaved, FusedKernel, FusedKernels};
use wgmem::nn::{AttentionKernel, CausalSelfAttention, Module};
use wgmem::{Backend, Context, Error, MemoryConfig, Tensor};

fn ctx() -> Arc<Context> {
    Context::new(common::gpu_backend(), MemoryConfig::default()).unwrap()
}

/// The f64 reference: o and dqkv (given d_o) for packed qkv.
fn reference(dims: AttentionDims, qkv: &[f32], d_o: &[f32]) -> (Vec<f64>, Vec<f64>) {
    let AttentionDims {
        batch,
        seq,
        heads,
        head_dim: dh,
    } = dims;
    let w = dims.width();
    let at = |b: usize, t: usize, part: usize, h: usize, d: usize| {
        (b * seq + t) * 3 * w + part * w + h * dh + d
    };
    let oat = |b: usize, t: usize, h: usize, d: usize| (b * seq + t) * w + h * dh + d;
    let scale = 1.0 / (dh as f64).sqrt();
    let x = |i: usize| f64::from(qkv[i]);
    let mut o = vec![0.0; dims.o_len()];
    let mut dqkv = vec![0.0; dims.qkv_len()];
    for b in 0..batch {
        for h in 0..heads {
            // p[i][j] for j <= i.
            let mut p = vec![vec![0.0; seq]; seq];
            for i in 0..seq {
                let s: Vec<f64> = (0..=i)
                    .map(|j| {
                        scale
                            * (0..dh)
                                .map(|d| x(at(b, i, 0, h, d)) * x(at(b, j, 1, h, d)))
                                .sum::<f64>()
                    })
                    .collect();
                let m = s.iter().cloned().fold(f64::MIN, f64::max);
                let z: f64 = s.iter().map(|v| (v - m).exp()).sum();
                for j in 0..=i {
                    p[i][j] = (s[j] - m).exp() / z;
                }
                for d in 0..dh {
                    o[oat(b, i, h, d)] = (0..=i).map(|j| p[i][j] * x(at(b, j, 2, h, d))).sum();
                }
            }
            for i in 0..seq {
                let g = |d: usize| f64::from(d_o[oat(b, i, h, d)]);
                let dp: Vec<f64> = (0..=i)
                    .map(|j| (0..dh).map(|d| g(d) * x(at(b, j, 2, h, d))).sum())
                    .collect();
                let dot: f64 = (0..=i).map(|j| p[i][j] * dp[j]).sum();
                for j in 0..=i {
                    let ds = p[i][j] * (dp[j] - dot);
                    for d in 0..dh {
                        dqkv[at(b, i, 0, h, d)] += scale * ds * x(at(b, j, 1, h, d));
                        dqkv[at(b, j, 1, h, d)] += scale * ds * x(at(b, i, 0, h, d));
                        dqkv[at(b, j, 2, h, d)] += p[i][j] * g(d);
                    }
                }
            }
        }
    }
    (o, dqkv)
}

struct Run {
    o: Vec<f32>,
    dqkv: Vec<f32>,
}

fn run(ctx: &Arc<Context>, dims: AttentionDims, qkv: &[f32], d_o: &[f32], naive: bool) -> Run {
    run_with(ctx, dims, qkv, d_o, naive, None)
}

/// `kernels`: the fused passes' kernels, or `None` for the entry points' own choice.
fn run_with(
    ctx: &Arc<Context>,
    dims: AttentionDims,
    qkv: &[f32],
    d_o: &[f32],
    naive: bool,
    kernels: Option<FusedKernels>,
) -> Run {
    let gpu = ctx.gpu();
    let t = |data: &[f32]| ctx.from_slice(data, &[data.len()], "data").unwrap();
    let u = |n: usize| ctx.uninit(&[n], "activations").unwrap();
    let (qkv, d_o) = (t(qkv), t(d_o));
    let (o, lse, dqkv) = (u(dims.o_len()), u(dims.rows_len()), u(dims.qkv_len()));
    if naive {
        let (p, ds) = (u(dims.square_len()), u(dims.square_len()));
        compute::attention_naive_forward(gpu, dims, qkv.raw(), p.raw(), o.raw(), lse.raw())
            .unwrap();
        compute::attention_naive_backward(
            gpu,
            dims,
            qkv.raw(),
            p.raw(),
            d_o.raw(),
            dqkv.raw(),
            ds.raw(),
        )
        .unwrap();
    } else {
        let delta = u(dims.rows_len());
        let saved = AttentionSaved {
            qkv: qkv.raw(),
            o: o.raw(),
            lse: lse.raw(),
        };
        let (d_o, dqkv, delta) = (d_o.raw(), dqkv.raw(), delta.raw());
        match kernels {
            None => {
                compute::attention_forward(gpu, dims, qkv.raw(), o.raw(), lse.raw()).unwrap();
                compute::attention_backward(gpu, dims, &saved, d_o, dqkv, delta).unwrap();
            }
            Some(k) => {
                let (qkv, o, lse) = (qkv.raw(), o.raw(), lse.raw());
                compute::attention_forward_with(gpu, k.forward, dims, qkv, o, lse).unwrap();
                compute::attention_backward_with(gpu, k, dims, &saved, d_o, dqkv, delta).unwrap();
            }
        }
    }
    let (o, dqkv) = (o.to_vec().unwrap(), dqkv.to_vec().unwrap());
    assert_eq!(ctx.backend().uncaptured_errors(), 0, "every kernel ran");
    Run { o, dqkv }
}

fn assert_close(got: &[f32], want: &[f64], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!(
            (f64::from(g) - w).abs() <= 1e-4 + 1e-4 * w.abs(),
            "{what}[{i}]: {g} vs {w}"
        );
    }
}

const SHAPES: [(usize, usize, usize); 4] = [(37, 16, 3), (70, 32, 2), (19, 64, 1), (131, 64, 1)];

fn dims(seq: usize, head_dim: usize, heads: usize) -> AttentionDims {
    AttentionDims {
        batch: 2,
        seq,
        heads,
        head_dim,
    }
}

#[test]
fn fused_and_naive_attention_match_an_f64_reference_at_odd_lengths_and_head_sizes_16_32_64() {
    let ctx = ctx();
    for (k, &(seq, d, h)) in SHAPES.iter().enumerate() {
        let dims = dims(seq, d, h);
        let mut rng = Rng::new(10 + k as u64);
        let qkv = rng.vec(dims.qkv_len());
        let d_o = rng.vec(dims.o_len());
        let (o, dqkv) = reference(dims, &qkv, &d_o);
        for naive in [false, true] {
            let r = run(&ctx, dims, &qkv, &d_o, naive);
            let what = format!("{dims:?} naive={naive}");
            assert_close(&r.o, &o, &format!("{what} o"));
            assert_close(&r.dqkv, &dqkv, &format!("{what} dqkv"));
        }
    }
}

/// Both variants of every fused pass (one row per thread, register-blocked), alone and mixed.
#[test]
fn every_fused_kernel_variant_matches_an_f64_reference() {
    use FusedKernel::{Blocked, Rows};
    let ctx = ctx();
    let mixed = |forward, dq, dkdv| FusedKernels { forward, dq, dkdv };
    let variants = [
        FusedKernels::ROWS,
        FusedKernels::BLOCKED,
        mixed(Blocked, Rows, Blocked),
        mixed(Rows, Blocked, Rows),
    ];
    for (k, &(seq, d, h)) in SHAPES.iter().enumerate() {
        let dims = dims(seq, d, h);
        let mut rng = Rng::new(40 + k as u64);
        let qkv = rng.vec(dims.qkv_len());
        let d_o = rng.vec(dims.o_len());
        let (o, dqkv) = reference(dims, &qkv, &d_o);
        for kernels in variants {
            let r = run_with(&ctx, dims, &qkv, &d_o, false, Some(kernels));
            let what = format!("{dims:?} {kernels:?}");
            assert_close(&r.o, &o, &format!("{what} o"));
            assert_close(&r.dqkv, &dqkv, &format!("{what} dqkv"));
        }
    }
}

#[test]
fn fused_attention_equals_the_naive_kernels_within_1e_4() {
    let ctx = ctx();
    let dims = dims(45, 32, 2);
    let mut rng = Rng::new(5);
    // Larger scores (x3) make the softmax peaked, where the online rescaling matters most.
    let qkv: Vec<f32> = rng.vec(dims.qkv_len()).iter().map(|v| 3.0 * v).collect();
    let d_o = rng.vec(dims.o_len());
    let fused = run(&ctx, dims, &qkv, &d_o, false);
    let naive = run(&ctx, dims, &qkv, &d_o, true);
    let as64 = |v: &[f32]| v.iter().map(|&x| f64::from(x)).collect::<Vec<_>>();
    assert_close(&fused.o, &as64(&naive.o), "o");
    assert_close(&fused.dqkv, &as64(&naive.dqkv), "dqkv");
}

#[test]
fn a_change_to_a_later_token_leaves_earlier_outputs_bit_identical() {
    let ctx = ctx();
    for naive in [false, true] {
        let dims = dims(41, 16, 2);
        let mut rng = Rng::new(77);
        let qkv = rng.vec(dims.qkv_len());
        let d_o = vec![0.0; dims.o_len()];
        let before = run(&ctx, dims, &qkv, &d_o, naive);
        let changed_at = 23;
        let mut later = qkv.clone();
        for b in 0..dims.batch {
            let row = (b * dims.seq + changed_at) * 3 * dims.width();
            for v in &mut later[row..row + 3 * dims.width()] {
                *v = -*v * 1.5 + 0.25;
            }
        }
        let after = run(&ctx, dims, &later, &d_o, naive);
        let w = dims.width();
        for b in 0..dims.batch {
            for t in 0..dims.seq {
                let row = (b * dims.seq + t) * w..(b * dims.seq + t + 1) * w;
                let same = before.o[row.clone()] == after.o[row.clone()];
                if t < changed_at {
                    assert!(same, "naive={naive}: row {t} before the change moved");
                } else {
                    assert!(
                        !same,
                        "naive={naive}: row {t} at/after the change did not move"
                    );
                }
            }
        }
    }
}

#[test]
fn fused_attention_is_bit_for_bit_repeatable() {
    let ctx = ctx();
    let dims = dims(33, 16, 2);
    let mut rng = Rng::new(8);
    let (qkv, d_o) = (rng.vec(dims.qkv_len()), rng.vec(dims.o_len()));
    let a = run(&ctx, dims, &qkv, &d_o, false);
    let b = run(&ctx, dims, &qkv, &d_o, false);
    assert!(a.o == b.o && a.dqkv == b.dqkv);
}

fn layer_input(ctx: &Arc<Context>, shape: &[usize], seed: u64) -> Arc<Tensor> {
    let n = shape.iter().product();
    Arc::new(
        ctx.from_slice(&Rng::new(seed).vec(n), shape, "data")
            .unwrap(),
    )
}

#[test]
fn attention_layer_gradients_match_finite_differences() {
    let ctx = ctx();
    for kernel in [AttentionKernel::Fused, AttentionKernel::Naive] {
        let mut layer = CausalSelfAttention::new(&ctx, 32, 2, 4)
            .unwrap()
            .with_kernel(kernel);
        let x = Rng::new(3).vec(2 * 7 * 32);
        common::gradcheck::grad_check(&ctx, &mut layer, &x, &[2, 7, 32], true, 16);
    }
}

#[test]
fn fused_and_naive_layers_agree() {
    let ctx = ctx();
    let mut fused = CausalSelfAttention::new(&ctx, 48, 3, 9).unwrap();
    let mut naive = CausalSelfAttention::new(&ctx, 48, 3, 9)
        .unwrap()
        .with_kernel(AttentionKernel::Naive);
    let x = layer_input(&ctx, &[3, 29, 48], 1);
    let a = fused
        .forward(Arc::clone(&x), false)
        .unwrap()
        .to_vec()
        .unwrap();
    let b = naive.forward(x, false).unwrap().to_vec().unwrap();
    let as64: Vec<f64> = b.iter().map(|&v| f64::from(v)).collect();
    assert_close(&a, &as64, "layer output");
}

#[test]
fn heads_that_do_not_divide_the_width_are_a_typed_error() {
    let ctx = ctx();
    for (width, heads) in [(30, 4), (32, 0), (256, 2)] {
        match CausalSelfAttention::new(&ctx, width, heads, 0) {
            Err(Error::InvalidArgument { what, reason }) => {
                assert!(what.starts_with("attention head"), "{what}: {reason}");
            }
            Err(e) => panic!("width {width}, heads {heads}: wrong error {e}"),
            Ok(_) => panic!("width {width}, heads {heads} was accepted"),
        }
    }
}

#[test]
fn attention_input_of_the_wrong_shape_is_a_typed_error() {
    let ctx = ctx();
    let mut layer = CausalSelfAttention::new(&ctx, 32, 2, 0).unwrap();
    for shape in [vec![7, 32], vec![2, 7, 16]] {
        let x = layer_input(&ctx, &shape, 2);
        assert!(matches!(layer.forward(x, true), Err(Error::Shape { .. })));
    }
    assert!(
        layer
            .backward(ctx.zeros(&[1, 1, 32], "data").unwrap(), true)
            .is_err()
    );
}

/// The manager's peak of activations plus scratch for one forward (saving) and backward.
fn layer_peak(ctx: &Arc<Context>, kernel: AttentionKernel, seq: usize) -> u64 {
    let mut layer = CausalSelfAttention::new(ctx, 32, 2, 1)
        .unwrap()
        .with_kernel(kernel);
    let x = layer_input(ctx, &[1, seq, 32], 4);
    let dy = ctx.zeros(&[1, seq, 32], "activations").unwrap();
    ctx.backend().wait_idle().unwrap();
    ctx.memory().reset_peaks();
    drop(layer.forward(x, true).unwrap());
    drop(layer.backward(dy, true).unwrap());
    let stats = ctx.memory().stats();
    stats.peak_for_tag("activations") + stats.peak_for_tag("scratch")
}

/// Memory, from the manager's account (not timing): doubling the context doubles the fused
/// layer's peak (up to the pool's size-class rounding, under 5%), while the naive one, which
/// keeps seq² probabilities per head, more than doubles.
#[test]
fn the_fused_layer_peak_grows_linearly_in_the_context_and_the_naive_one_does_not() {
    let ctx = ctx();
    let fused = [97, 194].map(|t| layer_peak(&ctx, AttentionKernel::Fused, t));
    let naive = [97, 194].map(|t| layer_peak(&ctx, AttentionKernel::Naive, t));
    let ratio = |p: [u64; 2]| p[1] as f64 / p[0] as f64;
    assert!(ratio(fused) <= 2.05, "fused: {fused:?}");
    assert!(ratio(naive) >= 2.5, "naive: {naive:?}");
}
