//! The kernels compiled without naga's runtime checks (`Gpu::new_unchecked`) compute what the
//! checked ones compute, on ragged sizes where an index past a tile or an array would show:
//! matmul in every transpose and tiling, the vec4 elementwise path with its tail, the two-pass
//! reductions and softmax cross-entropy. Each output is poisoned first.

mod common;

use common::{Rng, download, gpu, gpu_backend, upload};
use wgmem::compute::{self, CrossEntropyOutputs, MatmulOptions, MatmulTile};
use wgmem::{Backend, Gpu};

fn unchecked() -> Gpu {
    // SAFETY: only this crate's kernels run on it.
    unsafe { Gpu::new_unchecked(gpu_backend()) }.unwrap()
}

/// Results of checked and unchecked kernels may differ by rounding only (the driver may contract
/// or reorder differently): 1e-5 relative to the larger magnitude, or 1e-6 absolute.
fn assert_same(what: &str, checked: &[f32], unchecked: &[f32]) {
    for (i, (c, u)) in checked.iter().zip(unchecked).enumerate() {
        let tol = 1e-5 * c.abs().max(u.abs()) + 1e-6;
        assert!(
            (c - u).abs() <= tol,
            "{what}[{i}]: checked {c}, unchecked {u}"
        );
    }
}

#[test]
fn unchecked_kernels_match_checked_kernels() {
    let (checked, unchecked) = (gpu(), unchecked());
    let b = gpu_backend();
    let mut rng = Rng::new(51);
    for (m, n, k) in [(7, 65, 33), (129, 63, 257)] {
        let a = upload(&*b, &rng.vec(m * k));
        let bm = upload(&*b, &rng.vec(k * n));
        // Each (tile, transpose) is its own entry point, compiled on first use (seconds on
        // lavapipe), so a sample: both tiles, every transpose.
        for (tile, ta, tb) in [
            (MatmulTile::T64, false, false),
            (MatmulTile::T64, true, false),
            (MatmulTile::T128P, false, true),
            (MatmulTile::T128P, false, false),
        ] {
            let opts = MatmulOptions {
                trans_a: ta,
                trans_b: tb,
                tile,
                ..Default::default()
            };
            let a_shape = if ta { [k, m] } else { [m, k] };
            let b_shape = if tb { [n, k] } else { [k, n] };
            let mut outs = Vec::new();
            for g in [&*checked, &unchecked] {
                let c = upload(&*b, &vec![f32::NAN; m * n]);
                compute::matmul(g, &a, a_shape, &bm, b_shape, &c, &opts).unwrap();
                outs.push(download(&*b, &c, m * n));
                b.free(c);
            }
            assert_same(
                &format!("matmul {m}x{n}x{k} {tile:?} ta={ta} tb={tb}"),
                &outs[0],
                &outs[1],
            );
        }
        b.free(a);
        b.free(bm);
    }

    for n in [3, 257, 4099] {
        let x = upload(&*b, &rng.vec(n));
        let mut outs = Vec::new();
        for g in [&*checked, &unchecked] {
            let y = upload(&*b, &vec![f32::NAN; n]);
            compute::copy(g, &x, &y, n).unwrap();
            compute::axpby(g, 0.5, &x, 2.0, &y, n).unwrap();
            compute::activation_in_place(g, compute::Activation::Gelu, &y, n).unwrap();
            let s = upload(&*b, &[f32::NAN]);
            compute::sum(g, &y, n, &s).unwrap();
            let mut out = download(&*b, &y, n);
            out.extend(download(&*b, &s, 1));
            outs.push(out);
            b.free(y);
            b.free(s);
        }
        assert_same(&format!("elementwise and sum n={n}"), &outs[0], &outs[1]);
        b.free(x);
    }

    let (batch, classes) = (65, 33);
    let logits = upload(&*b, &rng.vec(batch * classes));
    let labels: Vec<u32> = (0..batch).map(|i| (i * 7 % classes) as u32).collect();
    let labels = upload(&*b, bytemuck::cast_slice(&labels));
    let mut outs = Vec::new();
    for g in [&*checked, &unchecked] {
        let grad = upload(&*b, &vec![f32::NAN; batch * classes]);
        let loss = upload(&*b, &[f32::NAN]);
        let correct = upload(&*b, &[f32::NAN]);
        let out = CrossEntropyOutputs {
            grad_logits: &grad,
            loss: &loss,
            correct: &correct,
        };
        compute::softmax_cross_entropy(g, &logits, &labels, batch, classes, &out).unwrap();
        let mut v = download(&*b, &grad, batch * classes);
        v.extend(download(&*b, &loss, 1));
        v.extend(download(&*b, &correct, 1)); // u32 bits: equal bits compare equal as f32
        outs.push(v);
        for buf in [grad, loss, correct] {
            b.free(buf);
        }
    }
    assert_same("softmax cross-entropy", &outs[0], &outs[1]);
    b.free(logits);
    b.free(labels);
}
