//! Kernels against CPU f64 references on the GPU backend (lavapipe in CI).
//! Sizes include 1, odd sizes and sizes past one workgroup and past one dispatch row.

mod common;

use common::{Rng, download, gpu, upload};
use wgmem::Backend;
use wgmem::compute::{axpby, fill};

const SIZES: [usize; 7] = [1, 7, 63, 65, 257, 4099, 70_001];

#[test]
fn fill_writes_exactly_n_values() {
    let gpu = gpu();
    let b = gpu.backend();
    for n in SIZES {
        let buf = upload(&**b, &vec![-7.0f32; n + 3]);
        fill(&gpu, &buf, n, 2.5).unwrap();
        let out = download(&**b, &buf, n + 3);
        assert!(out[..n].iter().all(|&v| v == 2.5), "n={n}");
        assert!(
            out[n..].iter().all(|&v| v == -7.0),
            "n={n}: wrote past the end"
        );
        b.free(buf);
    }
}

#[test]
fn axpby_matches_f64_reference() {
    let gpu = gpu();
    let b = gpu.backend();
    let mut rng = Rng::new(11);
    for n in SIZES {
        let (x, y) = (rng.vec(n), rng.vec(n));
        let (a, c) = (rng.uniform() * 3.0, rng.uniform() * 3.0);
        let (xb, yb) = (upload(&**b, &x), upload(&**b, &y));
        axpby(&gpu, a, &xb, c, &yb, n).unwrap();
        let out = download(&**b, &yb, n);
        for i in 0..n {
            let want = f64::from(a) * f64::from(x[i]) + f64::from(c) * f64::from(y[i]);
            // Two products and a sum in f32 (or one fma): error under 2 ulp of the largest term, |terms| <= 3.
            assert!(
                (f64::from(out[i]) - want).abs() <= 3.0 * 2.0 * f64::from(f32::EPSILON),
                "n={n} i={i}: {} vs {want}",
                out[i]
            );
        }
        b.free(xb);
        b.free(yb);
    }
}

#[test]
fn kernels_reject_bad_lengths_and_aliasing() {
    let gpu = gpu();
    let b = gpu.backend();
    let buf = upload(&**b, &[0.0; 4]);
    assert!(matches!(
        fill(&gpu, &buf, 5, 1.0),
        Err(wgmem::Error::OutOfBounds { .. })
    ));
    assert!(matches!(
        axpby(&gpu, 1.0, &buf, 1.0, &buf, 4),
        Err(wgmem::Error::SameBuffer)
    ));
    b.free(buf);
}

#[test]
fn dispatch_creates_no_buffers() {
    // Its own backend, so buffers created by tests running in parallel are not counted.
    let gpu = wgmem::Gpu::new(common::fresh_gpu_backend()).unwrap();
    let b = gpu.backend();
    let buf = upload(&**b, &[0.0; 1024]);
    fill(&gpu, &buf, 1024, 1.0).unwrap(); // compile the pipeline first
    let before = b.buffers_created();
    for _ in 0..5000 {
        fill(&gpu, &buf, 1024, 1.0).unwrap();
    }
    b.wait_idle().unwrap();
    assert_eq!(
        b.buffers_created(),
        before,
        "kernels must not create buffers once warm"
    );
    b.free(buf);
}
