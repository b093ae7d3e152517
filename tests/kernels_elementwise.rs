//! Elementwise kernels against f64 references: arithmetic (vec4 path plus the scalar tail),
//! activations forward and backward, in-place forms, fused bias + activation; errors for short
//! buffers and aliasing. Sizes cover 1, the tail lengths 1-3 after whole vec4s, and past one
//! workgroup.

mod common;

use common::{Rng, download, gpu, upload};
use wgmem::compute::{self, Activation};
use wgmem::{Backend, Error};

const SIZES: [usize; 7] = [1, 3, 7, 63, 65, 257, 4099];
const EPS: f64 = f32::EPSILON as f64;

fn gelu(x: f64) -> f64 {
    let c = (2.0 / std::f64::consts::PI).sqrt();
    0.5 * x * (1.0 + (c * (x + 0.044715 * x * x * x)).tanh())
}

fn gelu_grad(x: f64) -> f64 {
    let c = (2.0 / std::f64::consts::PI).sqrt();
    let t = (c * (x + 0.044715 * x * x * x)).tanh();
    0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * c * (1.0 + 3.0 * 0.044715 * x * x)
}

fn act(a: Activation, x: f64) -> f64 {
    match a {
        Activation::None => x,
        Activation::Relu => x.max(0.0),
        Activation::Gelu => gelu(x),
    }
}

fn act_grad(a: Activation, x: f64) -> f64 {
    match a {
        Activation::None => 1.0,
        Activation::Relu => f64::from(u8::from(x > 0.0)),
        Activation::Gelu => gelu_grad(x),
    }
}

fn assert_close(what: &str, got: &[f32], want: impl Fn(usize) -> f64, tol: impl Fn(f64) -> f64) {
    for (i, &g) in got.iter().enumerate() {
        let w = want(i);
        assert!(
            (f64::from(g) - w).abs() <= tol(w),
            "{what} n={} i={i}: {g} vs {w}",
            got.len()
        );
    }
}

/// One rounding of the result: half an ulp, taken as 1 eps relative.
fn one_rounding(w: f64) -> f64 {
    EPS * w.abs()
}

#[test]
fn arithmetic_matches_f64_reference() {
    let gpu = gpu();
    let b = gpu.backend();
    let mut rng = Rng::new(21);
    for n in SIZES {
        let (x, z) = (rng.vec(n), rng.vec(n));
        let a = rng.uniform() * 3.0;
        let (xb, zb) = (upload(&**b, &x), upload(&**b, &z));
        let yb = upload(&**b, &vec![f32::NAN; n]);
        let x64 = |i: usize| f64::from(x[i]);
        let z64 = |i: usize| f64::from(z[i]);

        compute::copy(&gpu, &xb, &yb, n).unwrap();
        assert_eq!(download(&**b, &yb, n), x, "copy n={n}");
        compute::add(&gpu, &xb, &zb, &yb, n).unwrap();
        assert_close(
            "add",
            &download(&**b, &yb, n),
            |i| x64(i) + z64(i),
            one_rounding,
        );
        compute::sub(&gpu, &xb, &zb, &yb, n).unwrap();
        assert_close(
            "sub",
            &download(&**b, &yb, n),
            |i| x64(i) - z64(i),
            one_rounding,
        );
        compute::mul(&gpu, &xb, &zb, &yb, n).unwrap();
        assert_close(
            "mul",
            &download(&**b, &yb, n),
            |i| x64(i) * z64(i),
            one_rounding,
        );
        compute::scale(&gpu, a, &xb, &yb, n).unwrap();
        assert_close(
            "scale",
            &download(&**b, &yb, n),
            |i| f64::from(a) * x64(i),
            one_rounding,
        );

        // In place, starting from y = z each time.
        compute::copy(&gpu, &zb, &yb, n).unwrap();
        compute::add_in_place(&gpu, &yb, &xb, n).unwrap();
        assert_close(
            "add_in_place",
            &download(&**b, &yb, n),
            |i| z64(i) + x64(i),
            one_rounding,
        );
        compute::copy(&gpu, &zb, &yb, n).unwrap();
        compute::sub_in_place(&gpu, &yb, &xb, n).unwrap();
        assert_close(
            "sub_in_place",
            &download(&**b, &yb, n),
            |i| z64(i) - x64(i),
            one_rounding,
        );
        compute::copy(&gpu, &zb, &yb, n).unwrap();
        compute::mul_in_place(&gpu, &yb, &xb, n).unwrap();
        assert_close(
            "mul_in_place",
            &download(&**b, &yb, n),
            |i| z64(i) * x64(i),
            one_rounding,
        );
        compute::copy(&gpu, &zb, &yb, n).unwrap();
        compute::scale_in_place(&gpu, a, &yb, n).unwrap();
        assert_close(
            "scale_in_place",
            &download(&**b, &yb, n),
            |i| f64::from(a) * z64(i),
            one_rounding,
        );
        compute::copy(&gpu, &zb, &yb, n).unwrap();
        compute::accumulate(&gpu, &xb, &yb, n).unwrap();
        compute::accumulate(&gpu, &xb, &yb, n).unwrap();
        // Two additions: two roundings of values up to 3 in magnitude.
        assert_close(
            "accumulate",
            &download(&**b, &yb, n),
            |i| z64(i) + 2.0 * x64(i),
            |_| 3.0 * 2.0 * EPS,
        );
        compute::copy(&gpu, &zb, &yb, n).unwrap();
        compute::axpby(&gpu, a, &xb, -0.5, &yb, n).unwrap();
        // Two products and a sum (or fmas): within 2 ulp of the largest term (|a x| <= 3).
        assert_close(
            "axpby",
            &download(&**b, &yb, n),
            |i| f64::from(a) * x64(i) - 0.5 * z64(i),
            |_| 3.0 * 2.0 * EPS,
        );
        // Nothing written past n.
        let tail = upload(&**b, &vec![9.0f32; n + 5]);
        compute::copy(&gpu, &xb, &tail, n).unwrap();
        assert!(
            download(&**b, &tail, n + 5)[n..].iter().all(|&v| v == 9.0),
            "copy wrote past n={n}"
        );
        for buf in [xb, zb, yb, tail] {
            b.free(buf);
        }
    }
}

// GELU goes through f32 exp (a few ulp; WGSL allows exp an error of 3 + 2|x| ulp, and |x| <= 2|u|
// is up to about 40 here, but exp(-2|u|) only matters where it is not tiny, |u| < 10) and a
// cubic: 1e-6 absolute (at |result| <= 6 that is a few ulp) plus 8 eps relative.
fn act_tol(w: f64) -> f64 {
    1e-6 + 8.0 * EPS * w.abs()
}

#[test]
fn activations_forward_and_backward_match_f64_reference() {
    let gpu = gpu();
    let b = gpu.backend();
    let mut rng = Rng::new(22);
    for n in SIZES {
        // Inputs over [-6, 6): both tails of GELU and the kink of ReLU.
        let x: Vec<f32> = rng.vec(n).iter().map(|v| v * 6.0).collect();
        let g = rng.vec(n);
        let (xb, gb) = (upload(&**b, &x), upload(&**b, &g));
        let yb = upload(&**b, &vec![f32::NAN; n]);
        for a in [Activation::None, Activation::Relu, Activation::Gelu] {
            compute::activation_forward(&gpu, a, &xb, &yb, n).unwrap();
            assert_close(
                &format!("{a:?} forward"),
                &download(&**b, &yb, n),
                |i| act(a, f64::from(x[i])),
                act_tol,
            );
            compute::copy(&gpu, &xb, &yb, n).unwrap();
            compute::activation_in_place(&gpu, a, &yb, n).unwrap();
            assert_close(
                &format!("{a:?} in place"),
                &download(&**b, &yb, n),
                |i| act(a, f64::from(x[i])),
                act_tol,
            );
            let want = |i: usize| f64::from(g[i]) * act_grad(a, f64::from(x[i]));
            compute::activation_backward(&gpu, a, &gb, &xb, &yb, n).unwrap();
            assert_close(
                &format!("{a:?} backward"),
                &download(&**b, &yb, n),
                want,
                act_tol,
            );
            compute::copy(&gpu, &gb, &yb, n).unwrap();
            compute::activation_backward_in_place(&gpu, a, &yb, &xb, n).unwrap();
            assert_close(
                &format!("{a:?} backward in place"),
                &download(&**b, &yb, n),
                want,
                act_tol,
            );
        }
        for buf in [xb, gb, yb] {
            b.free(buf);
        }
    }
}

#[test]
fn bias_activation_broadcasts_over_rows() {
    let gpu = gpu();
    let b = gpu.backend();
    let mut rng = Rng::new(23);
    for (rows, cols) in [(1, 1), (7, 65), (63, 7), (257, 33)] {
        let y = rng.vec(rows * cols);
        let bias = rng.vec(cols);
        let bb = upload(&**b, &bias);
        for a in [Activation::None, Activation::Relu, Activation::Gelu] {
            let yb = upload(&**b, &y);
            compute::bias_activation(&gpu, &yb, &bb, rows, cols, a).unwrap();
            assert_close(
                &format!("bias {a:?} {rows}x{cols}"),
                &download(&**b, &yb, rows * cols),
                |i| act(a, f64::from(y[i]) + f64::from(bias[i % cols])),
                // The sum rounds once (|y + bias| < 2), then the activation as above.
                |w| act_tol(w) + 2.0 * 1.13 * EPS,
            );
            b.free(yb);
        }
        b.free(bb);
    }
}

#[test]
fn short_buffers_and_aliasing_are_errors() {
    let gpu = gpu();
    let b = gpu.backend();
    let small = upload(&**b, &[0.0; 4]);
    let big = upload(&**b, &[0.0; 16]);
    let out = upload(&**b, &[0.0; 16]);
    let oob = |r: wgmem::Result<()>| matches!(r, Err(Error::OutOfBounds { .. }));
    assert!(oob(compute::copy(&gpu, &small, &big, 8)));
    assert!(oob(compute::add(&gpu, &big, &small, &out, 8)));
    assert!(oob(compute::add_in_place(&gpu, &small, &big, 8)));
    assert!(oob(compute::activation_backward(
        &gpu,
        Activation::Gelu,
        &big,
        &small,
        &out,
        8
    )));
    assert!(oob(compute::bias_activation(
        &gpu,
        &big,
        &small,
        2,
        8,
        Activation::Relu
    )));
    assert!(oob(compute::bias_activation(
        &gpu,
        &small,
        &big,
        2,
        8,
        Activation::Relu
    )));
    assert!(matches!(
        compute::copy(&gpu, &big, &big, 8),
        Err(Error::SameBuffer)
    ));
    assert!(matches!(
        compute::add(&gpu, &big, &small, &big, 4),
        Err(Error::SameBuffer)
    ));
    assert!(matches!(
        compute::bias_activation(&gpu, &big, &big, 2, 8, Activation::Relu),
        Err(Error::SameBuffer)
    ));
    for buf in [small, big, out] {
        b.free(buf);
    }
}

#[test]
fn eight_vec4s_per_thread_give_the_same_results() {
    // A Gpu of its own: the setting would otherwise change the kernels other tests run.
    let gpu = wgmem::Gpu::new(common::gpu_backend()).unwrap();
    gpu.set_vec4_per_thread(8).unwrap();
    assert!(gpu.set_vec4_per_thread(5).is_err());
    let b = gpu.backend();
    let mut rng = Rng::new(24);
    for n in [1, 7, 4099, 8 * 256 * 4 + 13] {
        let (x, y) = (rng.vec(n), rng.vec(n));
        let (xb, yb) = (upload(&**b, &x), upload(&**b, &y));
        compute::axpby(&gpu, 2.0, &xb, -1.0, &yb, n).unwrap();
        assert_close(
            "axpby8",
            &download(&**b, &yb, n),
            |i| 2.0 * f64::from(x[i]) - f64::from(y[i]),
            |_| 3.0 * 2.0 * EPS,
        );
        compute::copy(&gpu, &xb, &yb, n).unwrap();
        assert_eq!(download(&**b, &yb, n), x, "copy8 n={n}");
        b.free(xb);
        b.free(yb);
    }
}
