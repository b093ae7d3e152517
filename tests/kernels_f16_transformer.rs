//! The f16-storage twins of the transformer kernels (f32 arithmetic inside) against f64 CPU
//! references, on lavapipe: layer norm forward and backward, embedding forward and both
//! backwards, dropout, and fused causal attention forward and backward. Shapes are not multiples
//! of any tile: 37 rows of width 70; sequences of 19 and 37 with head sizes 16, 32 and 64. Also:
//! dropout's f16 mask equals the f32 one, a buffer of the wrong length is a typed error for every
//! twin, and a device without `SHADER_F16` refuses every twin with `UnsupportedDType`.
//!
//! Tolerances. Inputs are rounded to f16 on the host and the references are computed in f64 from
//! those rounded values, so input rounding is not error. What remains is f32 arithmetic and one
//! rounding of each f16 output (at most u = 2^-11 relative, half an ulp; subnormals add 2^-25
//! absolute). A sum of k terms in f32 errs by at most about k·2^-24·Σ|terms| (Higham's gamma
//! bound); each reference also computes that Σ|terms| (`mag`), with the errors of the
//! quantities a term is made of (a row's mean and rstd, a score and its softmax) folded in, and
//! each check accepts |got - want| <= 2^-11·|want| + 1.2·k·2^-24·mag + 2^-24 (f32 outputs drop
//! the 2^-11 term).

mod common;

#[path = "common/own_device.rs"]
mod own;

use common::Rng;
use std::sync::Arc;
use wgmem::compute::{
    self, AttentionDims, AttentionSaved, DropoutMask, EmbeddingDims, LayerNormBuffers,
    LayerNormGrads,
};
use wgmem::tensor::tags;
use wgmem::{Context, DType, Error, MemoryConfig, Tensor, WgpuBackend, WgpuBackendOptions};

const U16: f64 = 1.0 / 2048.0;
const U32: f64 = 1.0 / 16_777_216.0;

fn ctx() -> Arc<Context> {
    let ctx = Context::new(common::gpu_backend(), MemoryConfig::default()).unwrap();
    assert!(ctx.gpu().supports_f16(), "these tests need SHADER_F16");
    ctx
}

/// `v` rounded to the nearest f16 (what an f16 upload stores), as f32.
fn round16(v: &[f32]) -> Vec<f32> {
    v.iter().map(|&x| half::f16::from_f32(x).to_f32()).collect()
}

fn f16(ctx: &Arc<Context>, data: &[f32]) -> Tensor {
    ctx.from_slice_of(data, &[data.len()], DType::F16, tags::DATA)
        .unwrap()
}

fn f32s(ctx: &Arc<Context>, data: &[f32]) -> Tensor {
    ctx.from_slice(data, &[data.len()], tags::DATA).unwrap()
}

/// Checks `got` against `want` with the bound of the module doc: `k` terms per sum, `mag` their
/// absolute sum, `f16_out` whether the output was rounded to f16.
fn check(what: &str, got: &[f32], want: &[f64], mag: &[f64], k: usize, f16_out: bool) {
    check_plus(what, got, want, mag, k, f16_out, |_| 0.0);
}

/// As [`check`], accepting `extra(i)` more at element `i`.
fn check_plus(
    what: &str,
    got: &[f32],
    want: &[f64],
    mag: &[f64],
    k: usize,
    f16_out: bool,
    extra: impl Fn(usize) -> f64,
) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    assert_eq!(mag.len(), want.len(), "{what}: magnitudes");
    let u = if f16_out { U16 } else { 0.0 };
    for (i, ((&g, &w), &m)) in got.iter().zip(want).zip(mag).enumerate() {
        let tol = u * w.abs() + 1.2 * k as f64 * U32 * m + U32 + extra(i);
        assert!(
            (f64::from(g) - w).abs() <= tol,
            "{what}[{i}]: got {g}, want {w} (tolerance {tol:e})"
        );
    }
}

fn no_gpu_errors(ctx: &Arc<Context>) {
    assert_eq!(ctx.backend().uncaptured_errors(), 0, "every kernel ran");
}

const ROWS: usize = 37;
const WIDTH: usize = 70;

/// The f64 layer norm of `x` `[ROWS, WIDTH]`: y, dx, dgamma and dbeta (onto `init`), each
/// with its magnitude.
struct LnRef {
    y: [Vec<f64>; 2],
    dx: [Vec<f64>; 2],
    dgamma: [Vec<f64>; 2],
    dbeta: [Vec<f64>; 2],
}

fn ln_reference(x: &[f32], dy: &[f32], gamma: &[f32], beta: &[f32], init: &[f32]) -> LnRef {
    let n = WIDTH as f64;
    let init_want: Vec<f64> = init.iter().map(|&v| f64::from(v)).collect();
    let init_mag: Vec<f64> = init_want.iter().map(|v| v.abs()).collect();
    let mut r = LnRef {
        y: [vec![0.0; x.len()], vec![0.0; x.len()]],
        dx: [vec![0.0; x.len()], vec![0.0; x.len()]],
        dgamma: [init_want.clone(), init_mag.clone()],
        dbeta: [init_want, init_mag],
    };
    for row in 0..ROWS {
        let xs: Vec<f64> = (0..WIDTH).map(|c| f64::from(x[row * WIDTH + c])).collect();
        let mean = xs.iter().sum::<f64>() / n;
        let var = xs.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n;
        let rstd = 1.0 / (var + 1e-5).sqrt();
        // The f32 mean and rstd err by about WIDTH ulps of these: what each xhat inherits.
        let slack = rstd * xs.iter().map(|v| v.abs()).sum::<f64>() / n;
        let xhat: Vec<f64> = xs.iter().map(|v| (v - mean) * rstd).collect();
        let g: Vec<f64> = (0..WIDTH)
            .map(|c| f64::from(gamma[c]) * f64::from(dy[row * WIDTH + c]))
            .collect();
        let mg = g.iter().sum::<f64>() / n;
        let mgx = g.iter().zip(&xhat).map(|(g, x)| g * x).sum::<f64>() / n;
        let mag_g = g.iter().map(|g| g.abs()).sum::<f64>() / n;
        let mag_gx = g
            .iter()
            .zip(&xhat)
            .map(|(g, x)| g.abs() * (x.abs() + slack))
            .sum::<f64>()
            / n;
        for c in 0..WIDTH {
            let i = row * WIDTH + c;
            let d = f64::from(dy[i]);
            let xm = xhat[c].abs() + slack;
            r.y[0][i] = xhat[c] * f64::from(gamma[c]) + f64::from(beta[c]);
            r.y[1][i] = xm * f64::from(gamma[c]).abs() + f64::from(beta[c]).abs();
            r.dx[0][i] = rstd * (g[c] - mg - xhat[c] * mgx);
            r.dx[1][i] = rstd * (g[c].abs() + mag_g + xm * mag_gx);
            r.dgamma[0][c] += d * xhat[c];
            r.dgamma[1][c] += d.abs() * xm;
            r.dbeta[0][c] += d;
            r.dbeta[1][c] += d.abs();
        }
    }
    r
}

#[test]
fn layer_norm_f16_matches_f64_forward_and_backward() {
    let ctx = ctx();
    let gpu = ctx.gpu();
    let mut rng = Rng::new(17);
    let n = ROWS * WIDTH;
    // Rows with an offset, so that the mean matters.
    let x: Vec<f32> = round16(&rng.vec(n).iter().map(|v| 2.0 * v + 0.5).collect::<Vec<_>>());
    let dy = round16(&rng.vec(n));
    let gamma: Vec<f32> = rng.vec(WIDTH).iter().map(|v| 1.0 + 0.5 * v).collect();
    let beta = rng.vec(WIDTH);
    let init = rng.vec(WIDTH);
    let (xt, dyt) = (f16(&ctx, &x), f16(&ctx, &dy));
    let y = ctx.zeros_of(&[n], DType::F16, tags::DATA).unwrap();
    let dx = ctx.zeros_of(&[n], DType::F16, tags::DATA).unwrap();
    let (gt, bt) = (f32s(&ctx, &gamma), f32s(&ctx, &beta));
    let stats = ctx.zeros(&[2 * ROWS], tags::DATA).unwrap();
    let (dg, db) = (f32s(&ctx, &init), f32s(&ctx, &init));
    let s0 = ctx.zeros(&[n], tags::DATA).unwrap();
    let s1 = ctx.zeros(&[WIDTH], tags::DATA).unwrap();
    let bufs = LayerNormBuffers {
        gamma: gt.raw(),
        beta: bt.raw(),
        stats: stats.raw(),
    };
    let grads = LayerNormGrads {
        dx: dx.raw(),
        gamma: dg.raw(),
        beta: db.raw(),
        scratch: [s0.raw(), s1.raw()],
    };
    let shape = [ROWS, WIDTH];
    compute::layer_norm_forward_f16(gpu, xt.raw(), y.raw(), shape, 1e-5, &bufs).unwrap();
    compute::layer_norm_backward_f16(gpu, xt.raw(), dyt.raw(), shape, &bufs, &grads).unwrap();
    let want = ln_reference(&x, &dy, &gamma, &beta, &init);
    let k = WIDTH + 8;
    check("y", &y.to_vec().unwrap(), &want.y[0], &want.y[1], k, true);
    check(
        "dx",
        &dx.to_vec().unwrap(),
        &want.dx[0],
        &want.dx[1],
        2 * k,
        true,
    );
    let (dgv, dbv) = (dg.to_vec().unwrap(), db.to_vec().unwrap());
    check(
        "dgamma",
        &dgv,
        &want.dgamma[0],
        &want.dgamma[1],
        k + ROWS,
        false,
    );
    check(
        "dbeta",
        &dbv,
        &want.dbeta[0],
        &want.dbeta[1],
        ROWS + 2,
        false,
    );
    no_gpu_errors(&ctx);
}

#[test]
fn embedding_f16_matches_f64_forward_and_both_backwards() {
    let ctx = ctx();
    let gpu = ctx.gpu();
    let mut rng = Rng::new(23);
    let (seq, vocab, width) = (19, 11, WIDTH);
    let dims = EmbeddingDims {
        rows: 2 * seq,
        seq,
        width,
        vocab,
    };
    let n = dims.rows * width;
    // Repeated ids (38 tokens over 11 rows), and one row of the table no token uses.
    let ids: Vec<f32> = (0..dims.rows)
        .map(|_| (rng.next_u64() % (vocab as u64 - 1)) as f32)
        .collect();
    let table = rng.vec(vocab * width);
    let pos = rng.vec(seq * width);
    let dy = round16(&rng.vec(n));
    let (table_init, pos_init) = (rng.vec(vocab * width), rng.vec(seq * width));
    let (idt, tt, pt) = (f32s(&ctx, &ids), f32s(&ctx, &table), f32s(&ctx, &pos));
    let out = ctx.zeros_of(&[n], DType::F16, tags::DATA).unwrap();
    let dyt = f16(&ctx, &dy);
    let (tg, pg) = (f32s(&ctx, &table_init), f32s(&ctx, &pos_init));
    compute::embedding_forward_f16(gpu, dims, idt.raw(), tt.raw(), Some(pt.raw()), out.raw())
        .unwrap();
    compute::embedding_backward_table_f16(gpu, dims, idt.raw(), dyt.raw(), tg.raw()).unwrap();
    compute::embedding_backward_positions_f16(gpu, dims, dyt.raw(), pg.raw()).unwrap();

    let (mut want, mut mag) = (vec![0.0; n], vec![0.0; n]);
    let mut tw: Vec<f64> = table_init.iter().map(|&v| f64::from(v)).collect();
    let mut tm: Vec<f64> = tw.iter().map(|v| v.abs()).collect();
    let mut pw: Vec<f64> = pos_init.iter().map(|&v| f64::from(v)).collect();
    let mut pm: Vec<f64> = pw.iter().map(|v| v.abs()).collect();
    for r in 0..dims.rows {
        let (v, t) = (ids[r] as usize, r % seq);
        for c in 0..width {
            let (a, b) = (table[v * width + c], pos[t * width + c]);
            want[r * width + c] = f64::from(a) + f64::from(b);
            mag[r * width + c] = f64::from(a.abs() + b.abs());
            let g = f64::from(dy[r * width + c]);
            tw[v * width + c] += g;
            tm[v * width + c] += g.abs();
            pw[t * width + c] += g;
            pm[t * width + c] += g.abs();
        }
    }
    check("out", &out.to_vec().unwrap(), &want, &mag, 1, true);
    let k = dims.rows + 2;
    check("table_grad", &tg.to_vec().unwrap(), &tw, &tm, k, false);
    check("pos_grad", &pg.to_vec().unwrap(), &pw, &pm, k, false);

    // Without positions; an id that is not a valid index gives a NaN row.
    let mut bad = ids.clone();
    bad[3] = vocab as f32;
    bad[5] = 1.5;
    let badt = f32s(&ctx, &bad);
    compute::embedding_forward_f16(gpu, dims, badt.raw(), tt.raw(), None, out.raw()).unwrap();
    let got = out.to_vec().unwrap();
    for r in 0..dims.rows {
        for c in 0..width {
            let g = got[r * width + c];
            if r == 3 || r == 5 {
                assert!(g.is_nan(), "row {r} has an invalid id: {g}");
            } else {
                let w = f64::from(table[bad[r] as usize * width + c]);
                check("out (no positions)", &[g], &[w], &[w.abs()], 1, true);
            }
        }
    }
    no_gpu_errors(&ctx);
}

#[test]
fn dropout_f16_drops_what_the_f32_kernel_drops_and_scales_within_rounding() {
    let ctx = ctx();
    let gpu = ctx.gpu();
    let n = 4099;
    // Away from zero, so a zero output means dropped.
    let x = round16(
        &Rng::new(29)
            .vec(n)
            .iter()
            .map(|v| v + 2.0)
            .collect::<Vec<_>>(),
    );
    let mask = DropoutMask {
        seed: 0x1234_5678_9abc,
        step: 3,
        p: 0.3,
    };
    let (x16, x32) = (f16(&ctx, &x), f32s(&ctx, &x));
    let y16 = ctx.zeros_of(&[n], DType::F16, tags::DATA).unwrap();
    let y32 = ctx.zeros(&[n], tags::DATA).unwrap();
    compute::dropout_f16(gpu, mask, x16.raw(), y16.raw(), n).unwrap();
    compute::dropout(gpu, mask, x32.raw(), y32.raw(), n).unwrap();
    let (a, b) = (y16.to_vec().unwrap(), y32.to_vec().unwrap());
    let scale = 1.0 / (1.0 - f64::from(mask.p));
    let mut dropped = 0;
    for i in 0..n {
        assert_eq!(a[i] == 0.0, b[i] == 0.0, "element {i}: same mask");
        let want = if b[i] == 0.0 {
            dropped += 1;
            0.0
        } else {
            f64::from(x[i]) * scale
        };
        check("dropout y", &a[i..=i], &[want], &[want.abs()], 2, true);
    }
    // 30% of 4099 is 1230; binomial standard deviation 29.
    assert!((1100..1360).contains(&dropped), "{dropped} dropped");
    no_gpu_errors(&ctx);
}

/// The f64 attention of `qkv` (and its backward from `d_o`), each value with its magnitude;
/// `dqkv[2]` is what storing `o` in f16 adds to the error of dq and dk: the backward's
/// `delta_i = do_i . o_i` reads the rounded `o`, off by up to 2^-11·Σ|do_i||o_i|.
struct AttnRef {
    o: [Vec<f64>; 2],
    dqkv: [Vec<f64>; 3],
}

fn attn_reference(dims: AttentionDims, qkv: &[f32], d_o: &[f32]) -> AttnRef {
    let (seq, heads, dh, w) = (dims.seq, dims.heads, dims.head_dim, dims.width());
    let at = |b: usize, t: usize, part: usize, h: usize, d: usize| {
        (b * seq + t) * 3 * w + part * w + h * dh + d
    };
    let oat = |b: usize, t: usize, h: usize, d: usize| (b * seq + t) * w + h * dh + d;
    let scale = 1.0 / (dh as f64).sqrt();
    let x = |i: usize| f64::from(qkv[i]);
    let g = |i: usize| f64::from(d_o[i]);
    let mut r = AttnRef {
        o: [vec![0.0; dims.o_len()], vec![0.0; dims.o_len()]],
        dqkv: [
            vec![0.0; dims.qkv_len()],
            vec![0.0; dims.qkv_len()],
            vec![0.0; dims.qkv_len()],
        ],
    };
    for b in 0..dims.batch {
        for h in 0..heads {
            for i in 0..seq {
                let s: Vec<f64> = (0..=i)
                    .map(|j| {
                        scale
                            * (0..dh)
                                .map(|d| x(at(b, i, 0, h, d)) * x(at(b, j, 1, h, d)))
                                .sum::<f64>()
                    })
                    .collect();
                // A score errs by about dh ulps of its absolute terms, and p as much relatively.
                let s_mag = |j: usize| {
                    scale
                        * (0..dh)
                            .map(|d| (x(at(b, i, 0, h, d)) * x(at(b, j, 1, h, d))).abs())
                            .sum::<f64>()
                };
                let m = s.iter().cloned().fold(f64::MIN, f64::max);
                let z: f64 = s.iter().map(|v| (v - m).exp()).sum();
                let p: Vec<f64> = s.iter().map(|v| (v - m).exp() / z).collect();
                // Per term of a sum over keys: 1 for the sum itself, s_mag for the score's error
                // (dh ulps of s_mag, under the k of the check) and 1 for the running maximum and
                // denominator (seq ulps).
                let p_err: Vec<f64> = (0..=i).map(|j| 2.0 + s_mag(j)).collect();
                let mut o_dot_mag = 0.0;
                for d in 0..dh {
                    let terms = (0..=i).map(|j| (p[j], x(at(b, j, 2, h, d))));
                    let o: f64 = terms.clone().map(|(p, v)| p * v).sum();
                    r.o[0][oat(b, i, h, d)] = o;
                    r.o[1][oat(b, i, h, d)] =
                        terms.zip(&p_err).map(|((p, v), e)| p * v.abs() * e).sum();
                    o_dot_mag += (g(oat(b, i, h, d)) * o).abs();
                }
                let dp: Vec<f64> = (0..=i)
                    .map(|j| {
                        (0..dh)
                            .map(|d| g(oat(b, i, h, d)) * x(at(b, j, 2, h, d)))
                            .sum()
                    })
                    .collect();
                let dp_mag: Vec<f64> = (0..=i)
                    .map(|j| {
                        (0..dh)
                            .map(|d| (g(oat(b, i, h, d)) * x(at(b, j, 2, h, d))).abs())
                            .sum()
                    })
                    .collect();
                let delta: f64 = (0..=i).map(|j| p[j] * dp[j]).sum();
                let delta_mag: f64 = (0..=i).map(|j| p[j] * dp_mag[j]).sum();
                for j in 0..=i {
                    let ds = p[j] * (dp[j] - delta);
                    let ds_mag = p[j] * (p_err[j] * (dp_mag[j] + delta_mag));
                    for d in 0..dh {
                        let (q, k) = (at(b, i, 0, h, d), at(b, j, 1, h, d));
                        let v = at(b, j, 2, h, d);
                        r.dqkv[0][q] += scale * ds * x(k);
                        r.dqkv[1][q] += scale * ds_mag * x(k).abs();
                        r.dqkv[2][q] += scale * p[j] * o_dot_mag * U16 * x(k).abs();
                        r.dqkv[0][k] += scale * ds * x(q);
                        r.dqkv[1][k] += scale * ds_mag * x(q).abs();
                        r.dqkv[2][k] += scale * p[j] * o_dot_mag * U16 * x(q).abs();
                        r.dqkv[0][v] += p[j] * g(oat(b, i, h, d));
                        r.dqkv[1][v] += p[j] * p_err[j] * g(oat(b, i, h, d)).abs();
                    }
                }
            }
        }
    }
    r
}

#[test]
fn fused_attention_f16_matches_f64_for_odd_lengths_and_head_sizes_16_32_64() {
    let ctx = ctx();
    let gpu = ctx.gpu();
    let mut rng = Rng::new(31);
    for (seq, head_dim, heads) in [(37, 16, 3), (19, 32, 2), (37, 64, 1)] {
        let dims = AttentionDims {
            batch: 2,
            seq,
            heads,
            head_dim,
        };
        let qkv = round16(&rng.vec(dims.qkv_len()));
        let d_o = round16(&rng.vec(dims.o_len()));
        let (qt, dot) = (f16(&ctx, &qkv), f16(&ctx, &d_o));
        let o = ctx
            .zeros_of(&[dims.o_len()], DType::F16, tags::DATA)
            .unwrap();
        let dqkv = ctx
            .zeros_of(&[dims.qkv_len()], DType::F16, tags::DATA)
            .unwrap();
        let lse = ctx.zeros(&[dims.rows_len()], tags::DATA).unwrap();
        let delta = ctx.zeros(&[dims.rows_len()], tags::DATA).unwrap();
        compute::attention_forward_f16(gpu, dims, qt.raw(), o.raw(), lse.raw()).unwrap();
        let saved = AttentionSaved {
            qkv: qt.raw(),
            o: o.raw(),
            lse: lse.raw(),
        };
        compute::attention_backward_f16(gpu, dims, &saved, dot.raw(), dqkv.raw(), delta.raw())
            .unwrap();
        let want = attn_reference(dims, &qkv, &d_o);
        // Sums over up to seq keys (or queries) of dot products over head_dim, twice over in
        // the backward (scores, then dp and delta).
        let k = 2 * (seq + head_dim) + 16;
        let what = format!("seq {seq} head {head_dim}");
        check(
            &format!("{what} o"),
            &o.to_vec().unwrap(),
            &want.o[0],
            &want.o[1],
            k,
            true,
        );
        let got = dqkv.to_vec().unwrap();
        let [dw, dm, f16_o] = &want.dqkv;
        check_plus(&format!("{what} dqkv"), &got, dw, dm, k, true, |i| f16_o[i]);
        no_gpu_errors(&ctx);
    }
}

fn out_of_bounds(r: wgmem::Result<()>, what: &str) {
    match r {
        Err(Error::OutOfBounds { op, .. }) => assert!(op.contains(what), "{op} names {what}"),
        other => panic!("{what}: expected OutOfBounds, got {other:?}"),
    }
}

#[test]
fn every_f16_twin_refuses_a_buffer_of_the_wrong_length() {
    let ctx = ctx();
    let gpu = ctx.gpu();
    let h = |n: usize| ctx.zeros_of(&[n], DType::F16, tags::DATA).unwrap();
    let f = |n: usize| ctx.zeros(&[n], tags::DATA).unwrap();
    let (rows, width) = (ROWS, WIDTH);
    let n = rows * width;
    let (x, y, dy, short) = (h(n), h(n), h(n), h(n / 4));
    let (gamma, beta, stats, dg, db) = (f(width), f(width), f(2 * rows), f(width), f(width));
    let (s0, s1) = (f(n), f(width));
    // Stats sized as f16: half the bytes the f32 statistics need.
    let stats16 = h(2 * rows / 4);
    let bufs = LayerNormBuffers {
        gamma: gamma.raw(),
        beta: beta.raw(),
        stats: stats.raw(),
    };
    let bufs16 = LayerNormBuffers {
        stats: stats16.raw(),
        ..bufs
    };
    let shape = [rows, width];
    out_of_bounds(
        compute::layer_norm_forward_f16(gpu, short.raw(), y.raw(), shape, 1e-5, &bufs),
        "layer_norm x",
    );
    out_of_bounds(
        compute::layer_norm_forward_f16(gpu, x.raw(), y.raw(), shape, 1e-5, &bufs16),
        "layer_norm stats",
    );
    let grads = LayerNormGrads {
        dx: short.raw(),
        gamma: dg.raw(),
        beta: db.raw(),
        scratch: [s0.raw(), s1.raw()],
    };
    out_of_bounds(
        compute::layer_norm_backward_f16(gpu, x.raw(), dy.raw(), shape, &bufs, &grads),
        "layer_norm_backward dx",
    );

    let dims = EmbeddingDims {
        rows: 2 * 19,
        seq: 19,
        width,
        vocab: 11,
    };
    let (ids, table, pos) = (f(dims.rows), f(11 * width), f(19 * width));
    let (out, small) = (h(dims.rows * width), h(dims.rows * width / 4));
    out_of_bounds(
        compute::embedding_forward_f16(
            gpu,
            dims,
            ids.raw(),
            table.raw(),
            Some(pos.raw()),
            small.raw(),
        ),
        "embedding_forward out",
    );
    out_of_bounds(
        compute::embedding_backward_table_f16(gpu, dims, ids.raw(), small.raw(), table.raw()),
        "embedding_backward dy",
    );
    out_of_bounds(
        compute::embedding_backward_positions_f16(gpu, dims, out.raw(), f(width).raw()),
        "embedding_backward pos_grad",
    );
    let mask = DropoutMask {
        seed: 1,
        step: 0,
        p: 0.1,
    };
    out_of_bounds(
        compute::dropout_f16(gpu, mask, x.raw(), short.raw(), n),
        "dropout y",
    );

    let dims = AttentionDims {
        batch: 2,
        seq: 19,
        heads: 2,
        head_dim: 32,
    };
    let (qkv, o, lse, delta) = (
        h(dims.qkv_len()),
        h(dims.o_len()),
        f(dims.rows_len()),
        f(dims.rows_len()),
    );
    let lse16 = h(dims.rows_len() / 4);
    out_of_bounds(
        compute::attention_forward_f16(gpu, dims, qkv.raw(), o.raw(), lse16.raw()),
        "attention_forward lse",
    );
    let saved = AttentionSaved {
        qkv: qkv.raw(),
        o: o.raw(),
        lse: lse.raw(),
    };
    let dqkv_short = h(dims.qkv_len() / 4);
    out_of_bounds(
        compute::attention_backward_f16(gpu, dims, &saved, o.raw(), dqkv_short.raw(), delta.raw()),
        "attention_backward dqkv",
    );
    // A head size past the kernels' limit is the same shape error as in f32.
    let wide = AttentionDims {
        head_dim: 65,
        ..dims
    };
    let err = compute::attention_forward_f16(gpu, wide, qkv.raw(), o.raw(), lse.raw()).unwrap_err();
    assert!(matches!(err, Error::InvalidArgument { .. }), "{err}");
    no_gpu_errors(&ctx);
}

#[test]
fn a_device_without_shader_f16_refuses_every_f16_twin() {
    let (device, queue) = own::own_device();
    assert!(!device.features().contains(wgpu::Features::SHADER_F16));
    let backend = WgpuBackend::from_device(device, queue, WgpuBackendOptions::default()).unwrap();
    let ctx = Context::new(Arc::new(backend), MemoryConfig::default()).unwrap();
    assert!(!ctx.gpu().supports_f16());
    let gpu = ctx.gpu();
    // f32 buffers of ample size: the refusal comes before any length check.
    let b = ctx.zeros(&[4096], tags::DATA).unwrap();
    let b = b.raw();
    let bufs = LayerNormBuffers {
        gamma: b,
        beta: b,
        stats: b,
    };
    let grads = LayerNormGrads {
        dx: b,
        gamma: b,
        beta: b,
        scratch: [b, b],
    };
    let edims = EmbeddingDims {
        rows: 4,
        seq: 2,
        width: 3,
        vocab: 5,
    };
    let adims = AttentionDims {
        batch: 1,
        seq: 3,
        heads: 1,
        head_dim: 16,
    };
    let saved = AttentionSaved {
        qkv: b,
        o: b,
        lse: b,
    };
    let mask = DropoutMask {
        seed: 1,
        step: 0,
        p: 0.1,
    };
    let results = [
        compute::layer_norm_forward_f16(gpu, b, b, [2, 3], 1e-5, &bufs),
        compute::layer_norm_backward_f16(gpu, b, b, [2, 3], &bufs, &grads),
        compute::embedding_forward_f16(gpu, edims, b, b, Some(b), b),
        compute::embedding_backward_table_f16(gpu, edims, b, b, b),
        compute::embedding_backward_positions_f16(gpu, edims, b, b),
        compute::dropout_f16(gpu, mask, b, b, 8),
        compute::attention_forward_f16(gpu, adims, b, b, b),
        compute::attention_backward_f16(gpu, adims, &saved, b, b, b),
    ];
    for (i, r) in results.into_iter().enumerate() {
        match r {
            Err(Error::UnsupportedDType {
                dtype: DType::F16,
                feature,
                ..
            }) => assert!(feature.contains("SHADER_F16"), "twin {i}: {feature}"),
            other => panic!("twin {i}: expected UnsupportedDType, got {other:?}"),
        }
    }
}
