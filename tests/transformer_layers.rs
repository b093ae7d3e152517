//! The transformer layers other than attention (`tests/attention.rs`): `Embedding` with
//! positions and its tied head, `LayerNorm`, `Dropout`, against f64 CPU references and finite
//! differences, and their typed errors on bad input.
//!
//! Shapes are odd (vocab 11, width 37 or 70, sequences of 5-9 tokens) so that no kernel's
//! tile divides them. Tolerance against f64: the outputs are sums of at most a few hundred f32
//! terms of O(1), so 1e-5 + 1e-5·|ref| bounds their rounding.

mod common;

use common::Rng;
use common::gradcheck::grad_check;
use std::sync::Arc;
use wgmem::compute::DropoutMask;
use wgmem::nn::{Dropout, DropoutSwitch, Embedding, LayerNorm, Module, token_tensor};
use wgmem::{Context, Error, MemoryConfig};

fn ctx() -> Arc<Context> {
    Context::new(common::gpu_backend(), MemoryConfig::default()).unwrap()
}

fn assert_close(got: &[f32], want: &[f64], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!(
            (f64::from(g) - w).abs() <= 1e-5 + 1e-5 * w.abs(),
            "{what}[{i}]: {g} vs {w}"
        );
    }
}

#[test]
fn embedding_forward_and_backward_match_a_cpu_lookup_and_scatter_add() {
    let ctx = ctx();
    let (vocab, width, context, batch, seq) = (11, 70, 9, 3, 7);
    let mut emb = Embedding::new(&ctx, vocab, width, 1)
        .unwrap()
        .with_positions(context, 2)
        .unwrap();
    let mut rng = Rng::new(3);
    // Repeated ids (so rows of the table gather several contributions) and unused ones.
    let ids: Vec<u32> = (0..batch * seq)
        .map(|_| (rng.next_u64() % 7) as u32)
        .collect();
    let table = emb.table().value.to_vec().unwrap();
    let pos = emb.positions().unwrap().value.to_vec().unwrap();
    let x = Arc::new(emb.tokens(&ids, batch, seq).unwrap());
    let y = emb.forward(x, true).unwrap();
    assert_eq!(y.shape(), &[batch, seq, width]);
    let mut want = Vec::new();
    for (r, &id) in ids.iter().enumerate() {
        for c in 0..width {
            want.push(
                f64::from(table[id as usize * width + c]) + f64::from(pos[(r % seq) * width + c]),
            );
        }
    }
    assert_close(&y.to_vec().unwrap(), &want, "embedding forward");
    drop(y);
    let dy = rng.vec(batch * seq * width);
    let g = ctx
        .from_slice(&dy, &[batch, seq, width], "activations")
        .unwrap();
    assert!(
        emb.backward(g, false).unwrap().is_none(),
        "ids have no gradient"
    );
    let mut dtable = vec![0.0; vocab * width];
    let mut dpos = vec![0.0; context * width];
    for (r, &id) in ids.iter().enumerate() {
        for c in 0..width {
            dtable[id as usize * width + c] += f64::from(dy[r * width + c]);
            dpos[(r % seq) * width + c] += f64::from(dy[r * width + c]);
        }
    }
    assert_close(&emb.table().grad.to_vec().unwrap(), &dtable, "table grad");
    assert_close(
        &emb.positions().unwrap().grad.to_vec().unwrap(),
        &dpos,
        "position grad",
    );
}

#[test]
fn embedding_backward_is_bit_for_bit_repeatable() {
    let ctx = ctx();
    let mut emb = Embedding::new(&ctx, 5, 37, 1).unwrap();
    let ids: Vec<u32> = (0..4 * 33).map(|i| (i * 7 % 5) as u32).collect();
    let dy = Rng::new(4).vec(4 * 33 * 37);
    let mut run = || {
        emb.table().zero_grad().unwrap();
        let x = Arc::new(emb.tokens(&ids, 4, 33).unwrap());
        drop(emb.forward(x, true).unwrap());
        let g = ctx.from_slice(&dy, &[4, 33, 37], "activations").unwrap();
        emb.backward(g, false).unwrap();
        emb.table().grad.to_vec().unwrap()
    };
    let (a, b) = (run(), run());
    assert_eq!(a, b);
}

#[test]
fn tied_head_gradients_accumulate_into_the_embedding_table() {
    let ctx = ctx();
    let (vocab, width) = (11, 37);
    let mut emb = Embedding::new(&ctx, vocab, width, 5).unwrap();
    let mut head = emb.tied_head();
    // The head alone: logits = x · tableᵀ, checked by finite differences on x; its table
    // gradient is checked through the embedding's parameter below.
    let x = Rng::new(6).vec(2 * 3 * width);
    grad_check(&ctx, &mut head, &x, &[2, 3, width], true, 12);
    // Both uses: embedding then head, L = Σ w · logits. d table = gather part + head part.
    emb.table().zero_grad().unwrap();
    let table: Vec<f64> = emb
        .table()
        .value
        .to_vec()
        .unwrap()
        .iter()
        .map(|&v| f64::from(v))
        .collect();
    let ids = [3u32, 0, 3, 10, 7];
    let tokens = Arc::new(emb.tokens(&ids, 1, 5).unwrap());
    let h = emb.forward(tokens, true).unwrap();
    let logits = head.forward(h, true).unwrap();
    assert_eq!(logits.shape(), &[1, 5, vocab]);
    let w = Rng::new(7).vec(5 * vocab);
    let g = ctx.from_slice(&w, logits.shape(), "activations").unwrap();
    drop(logits);
    let dh = head.backward(g, true).unwrap().unwrap();
    emb.backward(dh, false).unwrap();
    let mut want = vec![0.0; vocab * width];
    for (r, &id) in ids.iter().enumerate() {
        for v in 0..vocab {
            let wv = f64::from(w[r * vocab + v]);
            for c in 0..width {
                // logits[r, v] = Σ_c table[id, c] table[v, c]
                want[v * width + c] += wv * table[id as usize * width + c];
                want[id as usize * width + c] += wv * table[v * width + c];
            }
        }
    }
    assert_close(
        &emb.table().grad.to_vec().unwrap(),
        &want,
        "tied table grad",
    );
    assert_eq!(emb.parameters().len(), 1, "one parameter for both uses");
    drop(emb);
    let x = Arc::new(ctx.zeros(&[1, width], "data").unwrap());
    assert!(matches!(
        head.forward(x, false),
        Err(Error::InvalidArgument { .. })
    ));
}

#[test]
fn embedding_tables_get_finite_difference_gradients() {
    let ctx = ctx();
    let mut emb = Embedding::new(&ctx, 6, 9, 1)
        .unwrap()
        .with_positions(4, 2)
        .unwrap();
    let ids = [5.0, 0.0, 5.0, 2.0, 1.0, 1.0, 1.0, 3.0];
    grad_check(&ctx, &mut emb, &ids, &[2, 4], false, 20);
}

#[test]
fn bad_token_ids_and_sequences_longer_than_the_position_table_are_typed_errors() {
    let ctx = ctx();
    let mut emb = Embedding::new(&ctx, 11, 8, 1)
        .unwrap()
        .with_positions(6, 2)
        .unwrap();
    match emb.tokens(&[1, 2, 11, 0], 1, 4) {
        Err(Error::InvalidArgument {
            what: "token id",
            reason,
        }) => {
            assert!(
                reason.contains("11") && reason.contains("position 2"),
                "{reason}"
            )
        }
        other => panic!("id 11 of vocab 11: {other:?}"),
    }
    assert!(matches!(
        token_tensor(&ctx, &[1, 2, 3], [2, 2], 11),
        Err(Error::Shape { .. })
    ));
    match emb.tokens(&[0; 7], 1, 7) {
        Err(Error::InvalidArgument {
            what: "sequence length",
            ..
        }) => {}
        other => panic!("7 tokens with 6 positions: {other:?}"),
    }
    let long = Arc::new(ctx.zeros(&[1, 7], "data").unwrap());
    assert!(matches!(
        emb.forward(long, true),
        Err(Error::InvalidArgument {
            what: "sequence length",
            ..
        })
    ));
    // An id that bypassed the host check shows as NaN, not as another row.
    let bad = Arc::new(
        ctx.from_slice(&[1.0, 11.0, -1.0, 2.5], &[1, 4], "data")
            .unwrap(),
    );
    let y = emb.forward(bad, false).unwrap().to_vec().unwrap();
    assert!(y[..8].iter().all(|v| v.is_finite()));
    assert!(y[8..].iter().all(|v| v.is_nan()));
    assert!(Embedding::new(&ctx, 0, 8, 1).is_err());
}

fn layer_norm_reference(
    x: &[f32],
    width: usize,
    gamma: &[f32],
    beta: &[f32],
    dy: &[f32],
) -> [Vec<f64>; 4] {
    let eps = 1e-5;
    let (mut y, mut dx) = (vec![], vec![]);
    let (mut dg, mut db) = (vec![0.0; width], vec![0.0; width]);
    for (row, g_row) in x.chunks(width).zip(dy.chunks(width)) {
        let r: Vec<f64> = row.iter().map(|&v| f64::from(v)).collect();
        let mean = r.iter().sum::<f64>() / width as f64;
        let var = r.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / width as f64;
        let rstd = 1.0 / (var + eps).sqrt();
        let xhat: Vec<f64> = r.iter().map(|v| (v - mean) * rstd).collect();
        let g: Vec<f64> = (0..width)
            .map(|c| f64::from(gamma[c]) * f64::from(g_row[c]))
            .collect();
        let mg = g.iter().sum::<f64>() / width as f64;
        let mgx = g.iter().zip(&xhat).map(|(a, b)| a * b).sum::<f64>() / width as f64;
        for c in 0..width {
            y.push(xhat[c] * f64::from(gamma[c]) + f64::from(beta[c]));
            dx.push(rstd * (g[c] - mg - xhat[c] * mgx));
            dg[c] += f64::from(g_row[c]) * xhat[c];
            db[c] += f64::from(g_row[c]);
        }
    }
    [y, dx, dg, db]
}

#[test]
fn layer_norm_matches_an_f64_reference_and_finite_differences() {
    let ctx = ctx();
    let (rows, width) = (13, 70);
    let mut ln = LayerNorm::new(&ctx, width).unwrap();
    let mut rng = Rng::new(11);
    let gamma: Vec<f32> = rng.vec(width).iter().map(|v| 1.0 + 0.5 * v).collect();
    let beta = rng.vec(width);
    ln.gamma().value.write(&gamma).unwrap();
    ln.beta().value.write(&beta).unwrap();
    let x: Vec<f32> = rng
        .vec(rows * width)
        .iter()
        .map(|v| 3.0 * v + 0.5)
        .collect();
    let dy = rng.vec(rows * width);
    let [y, dx, dg, db] = layer_norm_reference(&x, width, &gamma, &beta, &dy);
    let input = Arc::new(ctx.from_slice(&x, &[1, rows, width], "data").unwrap());
    let out = ln.forward(input, true).unwrap();
    assert_eq!(out.shape(), &[1, rows, width]);
    assert_close(&out.to_vec().unwrap(), &y, "y");
    drop(out);
    let g = ctx
        .from_slice(&dy, &[1, rows, width], "activations")
        .unwrap();
    let got_dx = ln.backward(g, true).unwrap().unwrap().to_vec().unwrap();
    // dx subtracts nearly equal terms; its scale is rstd ≈ 1/1.7, so an absolute 1e-5 holds.
    assert_close(&got_dx, &dx, "dx");
    assert_close(&ln.gamma().grad.to_vec().unwrap(), &dg, "dgamma");
    assert_close(&ln.beta().grad.to_vec().unwrap(), &db, "dbeta");
    let mut small = LayerNorm::new(&ctx, 37).unwrap();
    let xs = Rng::new(12).vec(5 * 37);
    grad_check(&ctx, &mut small, &xs, &[5, 37], true, 16);
}

#[test]
fn layer_norm_rejects_the_wrong_width_and_a_bad_eps() {
    let ctx = ctx();
    let mut ln = LayerNorm::new(&ctx, 8).unwrap();
    let x = Arc::new(ctx.zeros(&[3, 7], "data").unwrap());
    assert!(matches!(ln.forward(x, true), Err(Error::Shape { .. })));
    assert!(LayerNorm::new(&ctx, 8).unwrap().with_eps(0.0).is_err());
    assert!(LayerNorm::new(&ctx, 0).is_err());
}

/// The CPU twin of `shaders/dropout/body.wgsl`'s mask.
fn lowbias32(mut x: u32) -> u32 {
    x ^= x >> 16;
    x = x.wrapping_mul(0x7feb_352d);
    x ^= x >> 15;
    x = x.wrapping_mul(0x846c_a68b);
    x ^ (x >> 16)
}

fn kept(mask: DropoutMask, i: u32) -> bool {
    let key =
        lowbias32(mask.seed as u32 ^ lowbias32((mask.seed >> 32) as u32 ^ lowbias32(mask.step)));
    lowbias32(i ^ key) >= mask.threshold()
}

#[test]
fn dropout_masks_match_the_cpu_hash_forward_and_backward_and_change_per_step() {
    let ctx = ctx();
    let n = 4099;
    let p = 0.3;
    let mut drop = Dropout::new(p, 0x1234_5678_9abc).unwrap();
    let x: Vec<f32> = Rng::new(13).vec(n).iter().map(|v| v + 2.0).collect();
    let mut masks = Vec::new();
    for step in 0..2 {
        let mask = drop.mask();
        assert_eq!(mask.step, step);
        let input = Arc::new(ctx.from_slice(&x, &[n], "data").unwrap());
        let y = drop.forward(input, true).unwrap().to_vec().unwrap();
        let scale = 1.0 / (1.0 - p);
        let mut dropped = 0;
        for i in 0..n {
            let want = if kept(mask, i as u32) {
                x[i] * scale
            } else {
                0.0
            };
            assert_eq!(y[i], want, "step {step} element {i}");
            dropped += usize::from(y[i] == 0.0);
        }
        // 4099 draws at p = 0.3: the count is 1230 ± 29 (1 sd); 5 sd either side.
        assert!((1085..1375).contains(&dropped), "dropped {dropped} of {n}");
        let g = ctx.from_slice(&vec![1.0; n], &[n], "activations").unwrap();
        let dx = drop.backward(g, true).unwrap().unwrap().to_vec().unwrap();
        for i in 0..n {
            assert_eq!(
                dx[i] == 0.0,
                y[i] == 0.0,
                "backward uses the forward's mask"
            );
        }
        masks.push(y.iter().map(|&v| v == 0.0).collect::<Vec<_>>());
    }
    assert_ne!(masks[0], masks[1], "a new step draws a new mask");
    let switch = DropoutSwitch::new();
    let mut off = Dropout::new(p, 1).unwrap().with_switch(switch.clone());
    switch.set(false);
    let input = Arc::new(ctx.from_slice(&x, &[n], "data").unwrap());
    assert_eq!(off.forward(input, true).unwrap().to_vec().unwrap(), x);
    assert!(matches!(
        Dropout::new(1.0, 0),
        Err(Error::InvalidArgument { .. })
    ));
    assert!(Dropout::new(-0.1, 0).is_err());
}
