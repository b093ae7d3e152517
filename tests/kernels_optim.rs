//! Optimizer updates against f64 references of PyTorch's SGD and Adam/AdamW, over several
//! steps (so state carried between steps and Adam's bias correction by step are checked), on
//! ragged sizes; and their argument errors.

mod common;

use common::{Rng, download, gpu, upload};
use wgmem::compute::{AdamParams, SgdParams, adam, sgd};
use wgmem::{Backend, Error};

const SIZES: [usize; 5] = [1, 7, 65, 257, 4099];
const STEPS: usize = 3;

#[test]
fn sgd_matches_f64_reference() {
    let gpu = gpu();
    let b = gpu.backend();
    let mut rng = Rng::new(41);
    for n in SIZES {
        for hp in [
            SgdParams {
                lr: 0.1,
                momentum: 0.0,
                weight_decay: 0.0,
                nesterov: false,
            },
            SgdParams {
                lr: 0.05,
                momentum: 0.9,
                weight_decay: 1e-2,
                nesterov: false,
            },
            SgdParams {
                lr: 0.05,
                momentum: 0.9,
                weight_decay: 0.0,
                nesterov: true,
            },
        ] {
            let p0 = rng.vec(n);
            let pb = upload(&**b, &p0);
            let vb = upload(&**b, &vec![0.0; n]);
            let mut p: Vec<f64> = p0.iter().map(|&v| f64::from(v)).collect();
            let mut v = vec![0f64; n];
            for _ in 0..STEPS {
                let g = rng.vec(n);
                let gb = upload(&**b, &g);
                sgd(&gpu, &pb, &gb, Some(&vb), n, &hp).unwrap();
                for i in 0..n {
                    let gi = f64::from(g[i]) + f64::from(hp.weight_decay) * p[i];
                    let m = f64::from(hp.momentum);
                    let step = if m == 0.0 {
                        gi
                    } else {
                        v[i] = m * v[i] + gi;
                        if hp.nesterov { gi + m * v[i] } else { v[i] }
                    };
                    p[i] -= f64::from(hp.lr) * step;
                }
                // The update is only recorded; submit it before the gradient buffer is destroyed.
                gpu.flush().unwrap();
                b.free(gb);
            }
            let got = download(&**b, &pb, n);
            for i in 0..n {
                // A few f32 roundings per step on values of order 1: 1e-6 absolute over 3 steps.
                assert!(
                    (f64::from(got[i]) - p[i]).abs() <= 1e-6,
                    "{hp:?} n={n} i={i}: {} vs {}",
                    got[i],
                    p[i]
                );
            }
            b.free(pb);
            b.free(vb);
        }
    }
}

#[test]
fn adam_and_adamw_match_f64_reference() {
    let gpu = gpu();
    let b = gpu.backend();
    let mut rng = Rng::new(42);
    for n in SIZES {
        for hp in [
            AdamParams::default(),
            AdamParams {
                lr: 1e-2,
                weight_decay: 0.1,
                ..Default::default()
            },
            AdamParams {
                lr: 1e-2,
                weight_decay: 0.1,
                decoupled: true,
                ..Default::default()
            },
        ] {
            let p0 = rng.vec(n);
            let pb = upload(&**b, &p0);
            let (mb, vb) = (upload(&**b, &vec![0.0; n]), upload(&**b, &vec![0.0; n]));
            let mut p: Vec<f64> = p0.iter().map(|&v| f64::from(v)).collect();
            let (mut m, mut v) = (vec![0f64; n], vec![0f64; n]);
            let (lr, b1, b2, eps, wd) = (
                f64::from(hp.lr),
                f64::from(hp.beta1),
                f64::from(hp.beta2),
                f64::from(hp.eps),
                f64::from(hp.weight_decay),
            );
            for step in 1..=STEPS {
                let g = rng.vec(n);
                let gb = upload(&**b, &g);
                adam(&gpu, &pb, &gb, &mb, &vb, n, step as u32, &hp).unwrap();
                for i in 0..n {
                    let mut gi = f64::from(g[i]);
                    if hp.decoupled {
                        p[i] *= 1.0 - lr * wd;
                    } else {
                        gi += wd * p[i];
                    }
                    m[i] = b1 * m[i] + (1.0 - b1) * gi;
                    v[i] = b2 * v[i] + (1.0 - b2) * gi * gi;
                    let mhat = m[i] / (1.0 - b1.powi(step as i32));
                    let vhat = v[i] / (1.0 - b2.powi(step as i32));
                    p[i] -= lr * mhat / (vhat.sqrt() + eps);
                }
                // The update is only recorded; submit it before the gradient buffer is destroyed.
                gpu.flush().unwrap();
                b.free(gb);
            }
            let got = download(&**b, &pb, n);
            for i in 0..n {
                // Each step moves p by about lr; its f32 evaluation (moments, sqrt, division)
                // errs by a few ulp relative, far under 1e-4 lr, plus p's own rounding.
                let tol = 1e-4 * lr * STEPS as f64 + 8.0 * f64::from(f32::EPSILON) * p[i].abs();
                assert!(
                    (f64::from(got[i]) - p[i]).abs() <= tol,
                    "{hp:?} n={n} i={i}: {} vs {}",
                    got[i],
                    p[i]
                );
            }
            for buf in [pb, mb, vb] {
                b.free(buf);
            }
        }
    }
}

#[test]
fn optimizer_argument_errors() {
    let gpu = gpu();
    let b = gpu.backend();
    let p = upload(&**b, &[0.0; 8]);
    let g = upload(&**b, &[0.0; 4]);
    let s = upload(&**b, &[0.0; 8]);
    let s2 = upload(&**b, &[0.0; 8]);
    let hp = SgdParams {
        lr: 0.1,
        momentum: 0.9,
        weight_decay: 0.0,
        nesterov: false,
    };
    assert!(matches!(
        sgd(&gpu, &p, &g, Some(&s), 8, &hp),
        Err(Error::OutOfBounds { .. })
    ));
    assert!(matches!(
        sgd(&gpu, &p, &s, None, 8, &hp),
        Err(Error::InvalidArgument { .. })
    ));
    assert!(matches!(
        sgd(&gpu, &p, &s, Some(&p), 8, &hp),
        Err(Error::SameBuffer)
    ));
    let ap = AdamParams::default();
    assert!(matches!(
        adam(&gpu, &p, &s, &s2, &s2, 8, 1, &ap),
        Err(Error::SameBuffer)
    ));
    assert!(matches!(
        adam(&gpu, &p, &s, &s2, &g, 8, 1, &ap),
        Err(Error::OutOfBounds { .. })
    ));
    assert!(matches!(
        adam(&gpu, &p, &g, &s, &s2, 4, 0, &ap),
        Err(Error::InvalidArgument { .. })
    ));
    for buf in [p, g, s, s2] {
        b.free(buf);
    }
}
