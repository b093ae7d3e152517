//! The f16-storage kernels (f32 arithmetic inside) against f64 CPU references, on lavapipe, at
//! sizes that are not multiples of any tile: `matmul_f16` for every transpose with both output
//! types, bias, activations and accumulation; conversions; activations forward and backward;
//! bias + activation; f16 column sums into f32; softmax cross-entropy with a gradient scale;
//! the mixed optimizer steps (unscale, update, zero, f16 copy) and the overflow check; and the
//! typed errors for operands of the wrong type.
//!
//! Tolerances. Inputs are rounded to f16 on the host and the references are computed in f64 from
//! those rounded values, so input rounding is not error. What remains: f32 arithmetic (a sum of
//! k products errs by at most (k + 2)·2^-24·Σ|terms|, Higham's gamma bound) and one rounding of
//! the result to f16, at most u = 2^-11 relative (half an ulp; subnormals add 2^-25 absolute).
//! So each check accepts |got - want| <= 2^-11·|want| + 1.2·(k + 2)·2^-24·Σ|terms| + 2^-24,
//! scaled by the activation's slope where there is one (GELU's is at most 1.13), plus a few f32
//! ulps for GELU's tanh. f32 outputs drop the 2^-11 term.

mod common;

use common::Rng;
use std::sync::Arc;
use wgmem::compute::{
    self, Activation, AdamParams, CrossEntropyOutputs, MatmulOptions, MatmulTile,
};
use wgmem::tensor::tags;
use wgmem::{Context, DType, Error, MemoryConfig, ops};

const U16: f64 = 1.0 / 2048.0;
const U32: f64 = 1.0 / 16_777_216.0;

fn ctx() -> Arc<Context> {
    let ctx = Context::new(common::gpu_backend(), MemoryConfig::default()).unwrap();
    assert!(ctx.gpu().supports_f16(), "these tests need SHADER_F16");
    ctx
}

/// Rounds to the nearest f16 (what an upload stores).
fn h(v: f32) -> f64 {
    f64::from(half::f16::from_f32(v).to_f32())
}

fn gelu(x: f64) -> f64 {
    0.5 * x * (1.0 + ((2.0 / std::f64::consts::PI).sqrt() * (x + 0.044715 * x * x * x)).tanh())
}

fn gelu_grad(x: f64) -> f64 {
    let c = (2.0 / std::f64::consts::PI).sqrt();
    let u = c * (x + 0.044715 * x * x * x);
    let t = u.tanh();
    0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * c * (1.0 + 3.0 * 0.044715 * x * x)
}

fn act(a: Activation, x: f64) -> f64 {
    match a {
        Activation::None => x,
        Activation::Relu => x.max(0.0),
        Activation::Gelu => gelu(x),
    }
}

#[allow(clippy::too_many_arguments)]
fn check_matmul(
    ctx: &Arc<Context>,
    rng: &mut Rng,
    (m, n, k): (usize, usize, usize),
    trans_a: bool,
    trans_b: bool,
    out: DType,
    bias: bool,
    activation: Activation,
    accumulate: bool,
    tile: MatmulTile,
) {
    let a = rng.vec(m * k);
    let b = rng.vec(k * n);
    let bias_v = rng.vec(n);
    let c_old = rng.vec(m * n);
    let a_shape = if trans_a { [k, m] } else { [m, k] };
    let b_shape = if trans_b { [n, k] } else { [k, n] };
    let at = ctx
        .from_slice_of(&a, &a_shape, DType::F16, tags::DATA)
        .unwrap();
    let bt = ctx
        .from_slice_of(&b, &b_shape, DType::F16, tags::DATA)
        .unwrap();
    let biast = ctx.from_slice(&bias_v, &[n], tags::DATA).unwrap();
    let ct = ctx.from_slice_of(&c_old, &[m, n], out, tags::DATA).unwrap();
    let opts = MatmulOptions {
        trans_a,
        trans_b,
        bias: bias.then(|| biast.raw()),
        activation,
        accumulate,
        tile,
        split_k: None,
    };
    ops::matmul(&at, &bt, &ct, &opts).unwrap();
    let got = ct.to_vec().unwrap();
    let ai = |i: usize, p: usize| h(if trans_a { a[p * m + i] } else { a[i * k + p] });
    let bj = |p: usize, j: usize| h(if trans_b { b[j * k + p] } else { b[p * n + j] });
    let old = |i: usize| {
        if out == DType::F16 {
            h(c_old[i])
        } else {
            f64::from(c_old[i])
        }
    };
    for i in 0..m {
        for j in 0..n {
            let (mut dot, mut mag) = (0.0, 0.0);
            for p in 0..k {
                dot += ai(i, p) * bj(p, j);
                mag += (ai(i, p) * bj(p, j)).abs();
            }
            if bias {
                dot += f64::from(bias_v[j]);
                mag += f64::from(bias_v[j]).abs();
            }
            let mut want = act(activation, dot);
            if accumulate {
                want += old(i * n + j);
                mag += old(i * n + j).abs();
            }
            let round = if out == DType::F16 { U16 } else { 0.0 };
            let tol = round * want.abs()
                + 1.2 * 1.13 * (k as f64 + 2.0) * U32 * mag
                + 4.0 * U32 * (1.0 + want.abs());
            let g = f64::from(got[i * n + j]);
            assert!(
                (g - want).abs() <= tol,
                "m={m} n={n} k={k} ta={trans_a} tb={trans_b} out={out} bias={bias} act={activation:?} acc={accumulate} tile={tile:?}: C[{i},{j}] = {g}, want {want} (tol {tol})"
            );
        }
    }
}

#[test]
fn matmul_f16_matches_f64_for_every_transpose_output_type_and_tile() {
    let ctx = ctx();
    let mut rng = Rng::new(7);
    // The 128 tile needs 16.5 KiB of workgroup memory: lavapipe has 32 KiB.
    let tiles = [MatmulTile::T64, MatmulTile::T128P];
    let shapes = [
        (1, 1, 1),
        (7, 65, 33),
        (67, 9, 70),
        (65, 130, 7),
        (131, 129, 17),
    ];
    let none = Activation::None;
    for tile in tiles {
        // The 128 tile on the shapes that cross its edges (lavapipe is slow: keep CI short).
        let shapes = if tile == MatmulTile::T64 {
            &shapes[..]
        } else {
            &shapes[3..]
        };
        for &shape in shapes {
            for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
                for out in [DType::F16, DType::F32] {
                    check_matmul(&ctx, &mut rng, shape, ta, tb, out, false, none, false, tile);
                }
            }
        }
        // Epilogues: bias with each activation, and accumulation, into each output type.
        for out in [DType::F16, DType::F32] {
            for a in [Activation::None, Activation::Relu, Activation::Gelu] {
                let shape = (33, 130, 19);
                check_matmul(
                    &ctx, &mut rng, shape, false, false, out, true, a, false, tile,
                );
            }
            let (tn, nt) = ((130, 33, 66), (19, 131, 33));
            check_matmul(
                &ctx, &mut rng, tn, true, false, out, false, none, true, tile,
            );
            check_matmul(
                &ctx,
                &mut rng,
                nt,
                false,
                true,
                out,
                true,
                Activation::Relu,
                true,
                tile,
            );
        }
    }
    // Auto on a large output picks the 128 tile; it must agree with the reference too.
    let big = (129 * 10, 129, 9);
    check_matmul(
        &ctx,
        &mut rng,
        big,
        false,
        false,
        DType::F16,
        true,
        none,
        false,
        MatmulTile::Auto,
    );
    // A tiling the f16 kernel does not have is a typed error.
    let a = ctx.zeros_of(&[2, 2], DType::F16, tags::DATA).unwrap();
    let b = ctx.zeros_of(&[2, 2], DType::F16, tags::DATA).unwrap();
    let c = ctx.zeros_of(&[2, 2], DType::F16, tags::DATA).unwrap();
    let opts = MatmulOptions {
        tile: MatmulTile::T128S,
        ..Default::default()
    };
    let err = ops::matmul(&a, &b, &c, &opts).unwrap_err();
    assert!(
        matches!(
            err,
            Error::InvalidArgument {
                what: "matmul tile",
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn conversions_round_to_nearest_and_overflow_to_infinity() {
    let ctx = ctx();
    let mut rng = Rng::new(3);
    let mut data: Vec<f32> = rng.vec(1001).iter().map(|v| v * 300.0).collect();
    data.extend([65504.0, 65519.0, 65520.0, -1e6, 1e-6, -0.0]);
    let src = ctx.from_slice(&data, &[data.len()], tags::DATA).unwrap();
    let half = ctx
        .uninit_of(&[data.len()], DType::F16, tags::DATA)
        .unwrap();
    ops::convert(&src, &half).unwrap();
    let back = ctx.uninit(&[data.len()], tags::DATA).unwrap();
    ops::convert(&half, &back).unwrap();
    let got = back.to_vec().unwrap();
    for (&v, &g) in data.iter().zip(&got) {
        // The host's conversion (half crate: IEEE round to nearest even) is the reference.
        let want = half::f16::from_f32(v).to_f32();
        assert_eq!(g.to_bits(), want.to_bits(), "{v} -> {g}, want {want}");
    }
    assert_eq!(got[data.len() - 4], f32::INFINITY);
    assert_eq!(got[data.len() - 3], f32::NEG_INFINITY);
    // f16 -> f16 is a copy.
    let copy = ctx
        .uninit_of(&[data.len()], DType::F16, tags::DATA)
        .unwrap();
    ops::convert(&half, &copy).unwrap();
    assert_eq!(copy.to_vec().unwrap(), half.to_vec().unwrap());
}

#[test]
fn activations_and_bias_on_f16_match_f64() {
    let ctx = ctx();
    let gpu = ctx.gpu();
    let mut rng = Rng::new(5);
    let (rows, cols) = (13, 77);
    let n = rows * cols;
    let x: Vec<f32> = rng.vec(n).iter().map(|v| v * 4.0).collect();
    let g: Vec<f32> = rng.vec(n);
    let bias: Vec<f32> = rng.vec(cols);
    let xt = ctx
        .from_slice_of(&x, &[rows, cols], DType::F16, tags::DATA)
        .unwrap();
    let gt = ctx
        .from_slice_of(&g, &[rows, cols], DType::F16, tags::DATA)
        .unwrap();
    let bt = ctx.from_slice(&bias, &[cols], tags::DATA).unwrap();
    // One f32 evaluation then one f16 rounding: u|want| plus a few f32 ulps (tanh, exp).
    let close = |got: f32, want: f64, what: &str, i: usize| {
        let tol = U16 * want.abs() + 8.0 * U32 * (1.0 + want.abs()) + 6e-8;
        assert!(
            (f64::from(got) - want).abs() <= tol,
            "{what}[{i}] = {got}, want {want}"
        );
    };
    for a in [Activation::Relu, Activation::Gelu] {
        let y = ctx
            .uninit_of(&[rows, cols], DType::F16, tags::DATA)
            .unwrap();
        ops::activation_forward(a, &xt, &y).unwrap();
        for (i, &v) in y.to_vec().unwrap().iter().enumerate() {
            close(v, act(a, h(x[i])), "forward", i);
        }
        let dx = ctx
            .uninit_of(&[rows, cols], DType::F16, tags::DATA)
            .unwrap();
        compute::activation_backward_f16(gpu, a, gt.raw(), xt.raw(), dx.raw(), n).unwrap();
        let inplace = gt.duplicate(tags::DATA).unwrap();
        ops::activation_backward_in_place(a, &inplace, &xt).unwrap();
        let slope = |v: f64| match a {
            Activation::Relu => f64::from(u8::from(v > 0.0)),
            _ => gelu_grad(v),
        };
        let (dxv, inv) = (dx.to_vec().unwrap(), inplace.to_vec().unwrap());
        for i in 0..n {
            let want = h(g[i]) * slope(h(x[i]));
            close(dxv[i], want, "backward", i);
            assert_eq!(dxv[i], inv[i], "in place and out of place agree at {i}");
        }
        let y = xt.duplicate(tags::DATA).unwrap();
        compute::bias_activation_f16(gpu, y.raw(), bt.raw(), rows, cols, a).unwrap();
        for (i, &v) in y.to_vec().unwrap().iter().enumerate() {
            close(v, act(a, h(x[i]) + f64::from(bias[i % cols])), "bias", i);
        }
    }
}

#[test]
fn column_sums_of_f16_accumulate_in_f32() {
    let ctx = ctx();
    let mut rng = Rng::new(11);
    let (rows, cols) = (1031, 45);
    let x = rng.vec(rows * cols);
    let xt = ctx
        .from_slice_of(&x, &[rows, cols], DType::F16, tags::DATA)
        .unwrap();
    let start = rng.vec(cols);
    let out = ctx.from_slice(&start, &[cols], tags::DATA).unwrap();
    ops::column_sums(&xt, &out, true).unwrap();
    let got = out.to_vec().unwrap();
    for c in 0..cols {
        let (mut want, mut mag) = (f64::from(start[c]), f64::from(start[c]).abs());
        for r in 0..rows {
            want += h(x[r * cols + c]);
            mag += h(x[r * cols + c]).abs();
        }
        // f32 sums only (no f16 rounding of the result): (rows + 2)·2^-24·Σ|x|.
        let tol = 1.2 * (rows as f64 + 2.0) * U32 * mag;
        assert!(
            (f64::from(got[c]) - want).abs() <= tol,
            "col {c}: {} vs {want}",
            got[c]
        );
    }
}

#[test]
fn softmax_cross_entropy_f16_scales_the_gradient_before_rounding() {
    let ctx = ctx();
    let mut rng = Rng::new(13);
    let (batch, classes) = (37, 11);
    let logits: Vec<f32> = rng.vec(batch * classes).iter().map(|v| v * 5.0).collect();
    let labels: Vec<u32> = (0..batch).map(|r| (r * 7 % classes) as u32).collect();
    let lt = ctx
        .from_slice_of(&logits, &[batch, classes], DType::F16, tags::DATA)
        .unwrap();
    let lb = ctx.upload_u32(&labels, tags::DATA).unwrap();
    let grad = ctx
        .uninit_of(&[batch, classes], DType::F16, tags::DATA)
        .unwrap();
    let loss = ctx.uninit(&[1], tags::DATA).unwrap();
    let correct = ctx.upload_u32(&[0], tags::DATA).unwrap();
    let scale = 1024.0;
    let out = CrossEntropyOutputs {
        grad_logits: grad.raw(),
        loss: loss.raw(),
        correct: correct.raw(),
    };
    compute::softmax_cross_entropy_f16(ctx.gpu(), lt.raw(), lb.raw(), batch, classes, scale, &out)
        .unwrap();
    let g = grad.to_vec().unwrap();
    let (mut loss_want, mut correct_want) = (0.0, 0u32);
    for r in 0..batch {
        let row: Vec<f64> = (0..classes).map(|c| h(logits[r * classes + c])).collect();
        let max = row.iter().cloned().fold(f64::MIN, f64::max);
        let total: f64 = row.iter().map(|v| (v - max).exp()).sum();
        let label = labels[r] as usize;
        loss_want += total.ln() + max - row[label];
        let argmax = row.iter().position(|&v| v == max).unwrap();
        correct_want += u32::from(argmax == label);
        for c in 0..classes {
            let p = (row[c] - max).exp() / total;
            let want = (p - f64::from(u8::from(c == label))) / batch as f64 * f64::from(scale);
            // f32 exp/sum over `classes` terms, then one f16 rounding.
            let tol =
                U16 * want.abs() + 16.0 * classes as f64 * U32 * f64::from(scale) / batch as f64;
            let got = f64::from(g[r * classes + c]);
            assert!(
                (got - want).abs() <= tol,
                "grad[{r},{c}] = {got}, want {want}"
            );
        }
    }
    loss_want /= batch as f64;
    let l = f64::from(loss.to_vec().unwrap()[0]);
    assert!(
        (l - loss_want).abs() <= 1e-5 * (1.0 + loss_want),
        "loss {l} vs {loss_want}"
    );
    assert_eq!(ctx.read_u32(&correct, 1).unwrap()[0], correct_want);
}

#[test]
fn adam_mixed_unscales_updates_zeroes_and_writes_the_f16_copy() {
    let ctx = ctx();
    let gpu = ctx.gpu();
    let mut rng = Rng::new(17);
    let n = 1029;
    let p0 = rng.vec(n);
    let g0: Vec<f32> = rng.vec(n).iter().map(|v| v * 512.0).collect();
    let (m0, v0): (Vec<f32>, Vec<f32>) = (rng.vec(n), rng.vec(n).iter().map(|v| v.abs()).collect());
    let p = ctx.from_slice(&p0, &[n], tags::PARAMS).unwrap();
    let g = ctx.from_slice(&g0, &[n], tags::GRADIENTS).unwrap();
    let m = ctx.from_slice(&m0, &[n], tags::OPTIMIZER).unwrap();
    let v = ctx.from_slice(&v0, &[n], tags::OPTIMIZER).unwrap();
    let half = ctx.uninit_of(&[n], DType::F16, tags::PARAMS).unwrap();
    let hp = AdamParams {
        lr: 0.01,
        weight_decay: 0.1,
        decoupled: true,
        ..Default::default()
    };
    let (step, inv_scale) = (3u32, 1.0 / 512.0);
    compute::adam_mixed(
        gpu,
        p.raw(),
        g.raw(),
        m.raw(),
        v.raw(),
        Some(half.raw()),
        n,
        step,
        &hp,
        inv_scale,
    )
    .unwrap();
    let (pv, hv, gv) = (
        p.to_vec().unwrap(),
        half.to_vec().unwrap(),
        g.to_vec().unwrap(),
    );
    let (b1, b2) = (f64::from(hp.beta1), f64::from(hp.beta2));
    for i in 0..n {
        let gr = f64::from(g0[i]) * f64::from(inv_scale);
        let pp = f64::from(p0[i]) * (1.0 - f64::from(hp.lr) * f64::from(hp.weight_decay));
        let m1 = b1 * f64::from(m0[i]) + (1.0 - b1) * gr;
        let v1 = b2 * f64::from(v0[i]) + (1.0 - b2) * gr * gr;
        let denom = (v1 / (1.0 - b2.powi(3))).sqrt() + f64::from(hp.eps);
        let want = pp - f64::from(hp.lr) / (1.0 - b1.powi(3)) * m1 / denom;
        // A dozen f32 operations on values of order 1.
        assert!(
            (f64::from(pv[i]) - want).abs() <= 64.0 * U32 * (1.0 + want.abs()),
            "p[{i}]"
        );
        assert_eq!(
            hv[i],
            half::f16::from_f32(pv[i]).to_f32(),
            "the f16 copy is the rounded master"
        );
        assert_eq!(gv[i], 0.0, "the gradient is zeroed");
    }
}

#[test]
fn check_finite_flags_inf_and_nan_only() {
    let ctx = ctx();
    let gpu = ctx.gpu();
    let mut data = finite_values(2053);
    let flag = ctx.upload_u32(&[0], tags::DATA).unwrap();
    let g = ctx
        .from_slice(&data, &[data.len()], tags::GRADIENTS)
        .unwrap();
    compute::check_finite(gpu, g.raw(), data.len(), flag.raw()).unwrap();
    assert_eq!(
        ctx.read_u32(&flag, 1).unwrap()[0],
        0,
        "finite values (f32::MAX too) pass"
    );
    for bad in [f32::INFINITY, f32::NEG_INFINITY, f32::NAN] {
        data[2052] = bad;
        let g = ctx
            .from_slice(&data, &[data.len()], tags::GRADIENTS)
            .unwrap();
        let flag = ctx.upload_u32(&[0], tags::DATA).unwrap();
        compute::check_finite(gpu, g.raw(), data.len(), flag.raw()).unwrap();
        assert_eq!(ctx.read_u32(&flag, 1).unwrap()[0], 1, "{bad} is caught");
    }
}

/// Finite values including the extremes (f32::MAX, a subnormal) that the check must pass.
fn finite_values(n: usize) -> Vec<f32> {
    let mut v = Rng::new(19).vec(n);
    v[0] = f32::MAX;
    v[1] = -f32::MAX;
    v[2] = f32::MIN_POSITIVE / 4.0;
    v
}

#[test]
fn operands_of_the_wrong_type_are_typed_errors() {
    let ctx = ctx();
    let a16 = ctx.zeros_of(&[3, 5], DType::F16, tags::DATA).unwrap();
    let b32 = ctx.zeros(&[5, 7], tags::DATA).unwrap();
    let c16 = ctx.zeros_of(&[3, 7], DType::F16, tags::DATA).unwrap();
    let a32 = ctx.zeros(&[3, 5], tags::DATA).unwrap();
    let opts = MatmulOptions::default();
    let err = ops::matmul(&a16, &b32, &c16, &opts).unwrap_err();
    assert!(
        matches!(
            err,
            Error::DType {
                expected: DType::F16,
                found: DType::F32,
                ..
            }
        ),
        "{err}"
    );
    let err = ops::matmul(&a32, &b32, &c16, &opts).unwrap_err();
    assert!(
        matches!(
            err,
            Error::DType {
                expected: DType::F32,
                found: DType::F16,
                ..
            }
        ),
        "{err}"
    );
    let g16 = ctx.zeros_of(&[4], DType::F16, tags::DATA).unwrap();
    let x32 = ctx.zeros(&[4], tags::DATA).unwrap();
    let err = ops::activation_backward_in_place(Activation::Relu, &g16, &x32).unwrap_err();
    assert!(matches!(err, Error::DType { .. }), "{err}");
    let out16 = ctx.zeros_of(&[7], DType::F16, tags::DATA).unwrap();
    let err = ops::column_sums(&c16, &out16, false).unwrap_err();
    assert!(
        matches!(
            err,
            Error::DType {
                expected: DType::F32,
                ..
            }
        ),
        "{err}"
    );
    // Inner dimensions that differ are a shape error naming both shapes.
    let err = compute::matmul_f16(
        ctx.gpu(),
        a16.raw(),
        [3, 5],
        c16.raw(),
        [3, 7],
        out16.raw(),
        DType::F16,
        &opts,
    )
    .unwrap_err();
    assert!(matches!(err, Error::Shape { .. }), "{err}");
}

#[test]
fn sgd_mixed_matches_f64_with_and_without_momentum() {
    let ctx = ctx();
    let gpu = ctx.gpu();
    let mut rng = Rng::new(23);
    let n = 517;
    let p0 = rng.vec(n);
    let g0: Vec<f32> = rng.vec(n).iter().map(|v| v * 64.0).collect();
    let v0 = rng.vec(n);
    let inv_scale = 1.0 / 64.0;
    for (momentum, nesterov) in [(0.0, false), (0.9, false), (0.9, true)] {
        let hp = compute::SgdParams {
            lr: 0.05,
            momentum,
            weight_decay: 0.01,
            nesterov,
        };
        let p = ctx.from_slice(&p0, &[n], tags::PARAMS).unwrap();
        let g = ctx.from_slice(&g0, &[n], tags::GRADIENTS).unwrap();
        let v = ctx.from_slice(&v0, &[n], tags::OPTIMIZER).unwrap();
        let half = ctx.uninit_of(&[n], DType::F16, tags::PARAMS).unwrap();
        let vel = (momentum != 0.0).then(|| v.raw());
        compute::sgd_mixed(
            gpu,
            p.raw(),
            g.raw(),
            vel,
            Some(half.raw()),
            n,
            &hp,
            inv_scale,
        )
        .unwrap();
        let (pv, hv, gv, vv) = (
            p.to_vec().unwrap(),
            half.to_vec().unwrap(),
            g.to_vec().unwrap(),
            v.to_vec().unwrap(),
        );
        let (lr, mu, wd) = (
            f64::from(hp.lr),
            f64::from(momentum),
            f64::from(hp.weight_decay),
        );
        for i in 0..n {
            let pp = f64::from(p0[i]);
            let gr = f64::from(g0[i]) * f64::from(inv_scale) + wd * pp;
            let (want, want_v) = if momentum == 0.0 {
                (pp - lr * gr, f64::from(v0[i]))
            } else {
                let buf = mu * f64::from(v0[i]) + gr;
                let step = if nesterov { gr + mu * buf } else { buf };
                (pp - lr * step, buf)
            };
            // A handful of f32 operations on values of order 1.
            let tol = 16.0 * U32 * (1.0 + want.abs());
            assert!(
                (f64::from(pv[i]) - want).abs() <= tol,
                "momentum {momentum}: p[{i}]"
            );
            assert!(
                (f64::from(vv[i]) - want_v).abs() <= tol,
                "momentum {momentum}: v[{i}]"
            );
            assert_eq!(hv[i], half::f16::from_f32(pv[i]).to_f32());
            assert_eq!(gv[i], 0.0);
        }
    }
}

#[test]
fn f16_accumulate_add_and_scale_match_f64() {
    let ctx = ctx();
    let gpu = ctx.gpu();
    let mut rng = Rng::new(29);
    let n = 1001;
    let (x, z) = (rng.vec(n), rng.vec(n));
    let xt = ctx.from_slice_of(&x, &[n], DType::F16, tags::DATA).unwrap();
    let zt = ctx.from_slice_of(&z, &[n], DType::F16, tags::DATA).unwrap();
    // One f32 operation on exact f16 inputs, then one f16 rounding: within u |want| (+ the
    // smallest subnormal step, 2^-24, near zero).
    let close = |got: &[f32], want: &dyn Fn(usize) -> f64, what: &str| {
        for (i, &g) in got.iter().enumerate() {
            let w = want(i);
            assert!(
                (f64::from(g) - w).abs() <= U16 * w.abs() + U32,
                "{what}[{i}] = {g}, want {w}"
            );
        }
    };
    let y = ctx.uninit_of(&[n], DType::F16, tags::DATA).unwrap();
    compute::add_f16(gpu, xt.raw(), zt.raw(), y.raw(), n).unwrap();
    close(&y.to_vec().unwrap(), &|i| h(x[i]) + h(z[i]), "add");
    let acc = zt.duplicate(tags::DATA).unwrap();
    compute::accumulate_f16(gpu, xt.raw(), acc.raw(), n).unwrap();
    close(&acc.to_vec().unwrap(), &|i| h(x[i]) + h(z[i]), "accumulate");
    let s = xt.duplicate(tags::DATA).unwrap();
    compute::scale_in_place_f16(gpu, 3.0, s.raw(), n).unwrap();
    close(&s.to_vec().unwrap(), &|i| 3.0 * h(x[i]), "scale");
    // Past f16's range the result is infinity, not an indeterminate value (values within 10%
    // of the threshold are left out: f32 rounding of the product could put them either side).
    let before = s.to_vec().unwrap();
    compute::scale_in_place_f16(gpu, 1e6, s.raw(), n).unwrap();
    let big = s.to_vec().unwrap();
    let mut overflowed = 0;
    for (i, (&b, &v)) in before.iter().zip(&big).enumerate() {
        let product = f64::from(b) * 1e6;
        if product.abs() > 72_000.0 {
            assert!(
                v.is_infinite() && (v > 0.0) == (b > 0.0),
                "scale overflow at {i}: {v}"
            );
            overflowed += 1;
        } else if product.abs() < 59_000.0 {
            assert!(v.is_finite(), "{i}: {b} * 1e6 = {v}");
        }
    }
    assert!(overflowed > n / 2, "most values overflow: {overflowed}");
}
