//! `compute::matmul` against an f64 CPU product: every transpose, every tiling, sizes that are
//! not multiples of any tile (1, 7, 63, 65, 129, 257), with and without the fused bias,
//! activation and accumulation; and the typed errors for bad shapes and short buffers.

mod common;

use common::{Rng, download, gpu, gpu_backend, upload};
use wgmem::compute::{Activation, MatmulOptions, MatmulTile, SplitK, matmul};
use wgmem::{Backend, BufferUsage, DType, Error, Gpu, KernelChecks};

fn gelu(x: f64) -> f64 {
    0.5 * x * (1.0 + ((2.0 / std::f64::consts::PI).sqrt() * (x + 0.044715 * x * x * x)).tanh())
}

struct Case {
    m: usize,
    n: usize,
    k: usize,
    trans_a: bool,
    trans_b: bool,
    bias: bool,
    act: Activation,
    accumulate: bool,
    tile: MatmulTile,
    /// K slices (`SplitK`); 0 for none.
    split: u32,
}

fn check(case: &Case, rng: &mut Rng) {
    check_on(&gpu(), case, rng);
}

fn check_on(gpu: &Gpu, case: &Case, rng: &mut Rng) {
    let backend = gpu.backend();
    let Case { m, n, k, .. } = *case;
    let a = rng.vec(m * k);
    let b = rng.vec(k * n);
    let bias = rng.vec(n);
    let c_old = if case.accumulate {
        rng.vec(m * n)
    } else {
        vec![f32::NAN; m * n] // poison: every element must be written
    };
    let a_shape = if case.trans_a { [k, m] } else { [m, k] };
    let b_shape = if case.trans_b { [n, k] } else { [k, n] };
    let (ab, bb, cb, biasb) = (
        upload(&**backend, &a),
        upload(&**backend, &b),
        upload(&**backend, &c_old),
        upload(&**backend, &bias),
    );
    let opts = MatmulOptions {
        trans_a: case.trans_a,
        trans_b: case.trans_b,
        bias: case.bias.then_some(&biasb),
        activation: case.act,
        accumulate: case.accumulate,
        tile: case.tile,
        split_k: None,
    };
    let scratch = (case.split > 0).then(|| {
        backend
            .allocate(
                (case.split as usize * m * n * 4).max(4) as u64,
                BufferUsage::Storage,
            )
            .unwrap()
    });
    let opts = MatmulOptions {
        split_k: scratch.as_ref().map(|scratch| SplitK {
            slices: case.split,
            scratch,
        }),
        ..opts
    };
    matmul(gpu, &ab, a_shape, &bb, b_shape, &cb, &opts).unwrap();
    if let Some(s) = scratch {
        backend.free(s);
    }
    let out = download(&**backend, &cb, m * n);
    let at = |i: usize, p: usize| {
        f64::from(if case.trans_a {
            a[p * m + i]
        } else {
            a[i * k + p]
        })
    };
    let bt = |p: usize, j: usize| {
        f64::from(if case.trans_b {
            b[j * k + p]
        } else {
            b[p * n + j]
        })
    };
    for i in 0..m {
        for j in 0..n {
            let (mut dot, mut mag) = (0.0f64, 0.0f64);
            for p in 0..k {
                dot += at(i, p) * bt(p, j);
                mag += (at(i, p) * bt(p, j)).abs();
            }
            if case.bias {
                dot += f64::from(bias[j]);
                mag += f64::from(bias[j]).abs();
            }
            let mut want = match case.act {
                Activation::None => dot,
                Activation::Relu => dot.max(0.0),
                Activation::Gelu => gelu(dot),
            };
            if case.accumulate {
                want += f64::from(c_old[i * n + j]);
                mag += f64::from(c_old[i * n + j]).abs();
            }
            // Recursive f32 summation of k products, the bias and the old value errs by at most
            // (k + 2) eps times the sum of the magnitudes (Higham's gamma bound); the activation
            // scales that by its slope (<= 1.13 for GELU), and GELU's f32 tanh adds a few ulp
            // of its result.
            let tol = 1.2 * (k as f64 + 2.0) * f64::from(f32::EPSILON) * mag
                + 4.0 * f64::from(f32::EPSILON) * (1.0 + want.abs());
            let got = f64::from(out[i * n + j]);
            assert!(
                (got - want).abs() <= tol,
                "m={m} n={n} k={k} ta={} tb={} bias={} act={:?} acc={} tile={:?}: C[{i},{j}] = {got}, want {want} (tol {tol})",
                case.trans_a,
                case.trans_b,
                case.bias,
                case.act,
                case.accumulate,
                case.tile
            );
        }
    }
    for buf in [ab, bb, cb, biasb] {
        backend.free(buf);
    }
}

const SHAPES: [(usize, usize, usize); 6] = [
    (1, 1, 1),
    (7, 65, 33),
    (63, 7, 65),
    (129, 63, 257),
    (65, 257, 7),
    (257, 129, 1),
];

#[test]
fn every_transpose_and_tile_matches_f64_reference() {
    let mut rng = Rng::new(1);
    // The K-16 tile needs 33 KiB of workgroup memory: lavapipe and Metal have 32 KiB, so there
    // it is checked for the error (and the H200 benchmark checks its results).
    let k16 = gpu().limits().max_compute_workgroup_storage_size >= 33_792;
    let mut tiles = vec![MatmulTile::T64, MatmulTile::T128P, MatmulTile::T128S];
    if k16 {
        tiles.push(MatmulTile::T128K16);
    } else {
        eprintln!("T128K16 not tested: the device has too little workgroup memory");
    }
    for tile in tiles {
        for (m, n, k) in SHAPES {
            for (trans_a, trans_b) in [(false, false), (true, false), (false, true), (true, true)] {
                check(
                    &Case {
                        m,
                        n,
                        k,
                        trans_a,
                        trans_b,
                        bias: false,
                        act: Activation::None,
                        accumulate: false,
                        tile,
                        split: 0,
                    },
                    &mut rng,
                );
            }
        }
    }
}

#[test]
fn fused_bias_activation_and_accumulate_match_f64_reference() {
    let mut rng = Rng::new(2);
    for tile in [
        MatmulTile::Auto,
        MatmulTile::T64,
        MatmulTile::T128P,
        MatmulTile::T128S,
    ] {
        for (m, n, k) in [(7, 65, 33), (129, 63, 257)] {
            for act in [Activation::None, Activation::Relu, Activation::Gelu] {
                for (bias, accumulate) in [(true, false), (false, true), (true, true)] {
                    check(
                        &Case {
                            m,
                            n,
                            k,
                            trans_a: m == 7,
                            trans_b: false,
                            bias,
                            act,
                            accumulate,
                            tile,
                            split: 0,
                        },
                        &mut rng,
                    );
                }
            }
        }
    }
}

#[test]
fn auto_tile_handles_a_large_ragged_product() {
    // 1100 x 1300 is 9 x 11 = 99 tiles of 128, past the threshold for the 128 tile.
    let mut rng = Rng::new(3);
    check(
        &Case {
            m: 1100,
            n: 1300,
            k: 20,
            trans_a: false,
            trans_b: true,
            bias: true,
            act: Activation::Relu,
            accumulate: false,
            tile: MatmulTile::Auto,
            split: 0,
        },
        &mut rng,
    );
}

#[test]
fn unchecked_kernels_match_f64_reference() {
    // Gpu::new_unchecked: Auto picks other tilings there (T128S / T128K16 for large outputs),
    // and the kernels' own bounds checks are the only ones.
    // SAFETY: only this crate's kernels run on it.
    let ugpu = unsafe { Gpu::new_unchecked(gpu_backend()) }.expect("kernel setup");
    let mut rng = Rng::new(4);
    for (trans_a, trans_b) in [(false, false), (true, false), (false, true)] {
        check_on(
            &ugpu,
            &Case {
                m: 1100,
                n: 1300,
                k: 20,
                trans_a,
                trans_b,
                bias: true,
                act: Activation::Gelu,
                accumulate: trans_a,
                tile: MatmulTile::Auto,
                split: 0,
            },
            &mut rng,
        );
    }
    for tile in [MatmulTile::T128P, MatmulTile::T128S] {
        for (m, n, k) in [(129, 63, 257), (65, 257, 7)] {
            check_on(
                &ugpu,
                &Case {
                    m,
                    n,
                    k,
                    trans_a: m == 65,
                    trans_b: m == 129,
                    bias: false,
                    act: Activation::None,
                    accumulate: false,
                    tile,
                    split: 0,
                },
                &mut rng,
            );
        }
    }
}

#[test]
fn mismatched_inner_dimensions_name_both_shapes() {
    let gpu = gpu();
    let b = gpu.backend();
    let x = upload(&**b, &[0.0; 64]);
    let y = upload(&**b, &[0.0; 64]);
    let c = upload(&**b, &[0.0; 64]);
    let err = matmul(&gpu, &x, [4, 3], &y, [4, 4], &c, &MatmulOptions::default()).unwrap_err();
    match err {
        Error::Shape { left, right, .. } => {
            assert_eq!(left, vec![4, 3]);
            assert_eq!(right, vec![4, 4]);
        }
        e => panic!("expected a shape error, got {e}"),
    }
    // With trans_a the same shapes fit: A^T is [3, 4].
    let opts = MatmulOptions {
        trans_a: true,
        ..Default::default()
    };
    matmul(&gpu, &x, [4, 3], &y, [4, 4], &c, &opts).unwrap();
    for buf in [x, y, c] {
        b.free(buf);
    }
}

#[test]
fn short_buffers_and_aliasing_are_errors() {
    let gpu = gpu();
    let b = gpu.backend();
    let small = upload(&**b, &[0.0; 8]);
    let big = upload(&**b, &[0.0; 64]);
    let c = upload(&**b, &[0.0; 64]);
    let opts = MatmulOptions::default();
    assert!(matches!(
        matmul(&gpu, &small, [4, 4], &big, [4, 4], &c, &opts),
        Err(Error::OutOfBounds { .. })
    ));
    assert!(matches!(
        matmul(&gpu, &big, [8, 8], &big, [8, 8], &small, &opts),
        Err(Error::OutOfBounds { .. })
    ));
    let with_short_bias = MatmulOptions {
        bias: Some(&small),
        ..Default::default()
    };
    assert!(matches!(
        matmul(&gpu, &big, [4, 16], &big, [16, 16], &c, &with_short_bias),
        Err(Error::OutOfBounds { .. })
    ));
    assert!(matches!(
        matmul(&gpu, &big, [8, 8], &c, [8, 8], &c, &opts),
        Err(Error::SameBuffer)
    ));
    if gpu.limits().max_compute_workgroup_storage_size < 33_792 {
        let k16 = MatmulOptions {
            tile: MatmulTile::T128K16,
            ..Default::default()
        };
        assert!(matches!(
            matmul(&gpu, &big, [8, 8], &big, [8, 8], &c, &k16),
            Err(Error::InvalidArgument { .. })
        ));
    }
    for buf in [small, big, c] {
        b.free(buf);
    }
}

#[test]
fn split_k_matches_f64_reference() {
    // Slices that do not divide K (1000 = 3 x 334 - 2), more slices than k's (7 k's, 8 slices:
    // clamped to 7), a slice count that leaves the last slice short, on both tiles and with
    // every epilogue: the slices' partials are summed in order before bias, activation and
    // accumulation.
    let mut rng = Rng::new(5);
    for (m, n, k, split) in [
        (37, 70, 1000, 3),
        (5, 9, 7, 8),
        (129, 63, 2049, 5),
        (1, 1, 600, 2),
    ] {
        for tile in [MatmulTile::Auto, MatmulTile::T64, MatmulTile::T128P] {
            for (trans_a, trans_b) in [(false, false), (true, false), (false, true), (true, true)] {
                check(
                    &Case {
                        m,
                        n,
                        k,
                        trans_a,
                        trans_b,
                        bias: trans_b,
                        act: if trans_a {
                            Activation::Gelu
                        } else {
                            Activation::None
                        },
                        accumulate: trans_a != trans_b,
                        tile,
                        split,
                    },
                    &mut rng,
                );
            }
        }
    }
}

#[test]
fn split_k_is_chosen_for_small_outputs_with_long_k() {
    let gpu = gpu();
    // One 128 tile and K = 2048: four slices of 512.
    assert_eq!(
        wgmem::compute::split_k_slices(&gpu, DType::F32, 100, 100, 2048),
        4
    );
    // A short K or an output that fills the GPU: no split.
    assert_eq!(
        wgmem::compute::split_k_slices(&gpu, DType::F32, 100, 100, 700),
        1
    );
    assert_eq!(
        wgmem::compute::split_k_slices(&gpu, DType::F32, 2048, 2048, 4096),
        1
    );
    assert_eq!(
        wgmem::compute::split_k_slices(&gpu, DType::F32, 0, 100, 4096),
        1
    );
    // f16 splits only on the cooperative-matrix kernels (not on lavapipe, say).
    let coop = gpu.matmul_kernels().f16.kernel().is_some();
    let f16_slices = wgmem::compute::split_k_slices(&gpu, DType::F16, 100, 100, 2048);
    assert_eq!(f16_slices, if coop { 4 } else { 1 });
}

#[test]
fn split_k_bad_input_is_refused() {
    let gpu = gpu();
    let b = gpu.backend();
    let x = upload(&**b, &[0.5; 64]);
    let c = upload(&**b, &[0.0; 16]);
    let short = upload(&**b, &[0.0; 16]);
    let scratch = upload(&**b, &[0.0; 32]);
    let with = |slices, scratch| MatmulOptions {
        split_k: Some(SplitK { slices, scratch }),
        ..Default::default()
    };
    // [4, 16] · [16, 4] in 2 slices needs 2 x 16 scratch values.
    assert!(matches!(
        matmul(&gpu, &x, [4, 16], &x, [16, 4], &c, &with(0, &scratch)),
        Err(Error::InvalidArgument { .. })
    ));
    assert!(matches!(
        matmul(&gpu, &x, [4, 16], &x, [16, 4], &c, &with(2, &short)),
        Err(Error::OutOfBounds { .. })
    ));
    assert!(matches!(
        matmul(&gpu, &x, [4, 16], &x, [16, 4], &c, &with(1, &c)),
        Err(Error::SameBuffer)
    ));
    matmul(&gpu, &x, [4, 16], &x, [16, 4], &c, &with(2, &scratch)).unwrap();
    assert_eq!(download(&**b, &c, 16), vec![4.0; 16]);
    for buf in [x, c, short, scratch] {
        b.free(buf);
    }
}

#[test]
fn fully_checked_kernels_match_f64_reference_and_checks_parse() {
    // Gpu::new drops naga's loop counters (KernelChecks::NoLoopBounding); every other test here
    // runs that. The fully checked build of the same kernels must agree with f64 as well.
    let full = Gpu::with_checks(gpu_backend(), KernelChecks::Full).expect("kernel setup");
    assert_eq!(full.checks_label(), "full");
    assert_eq!(gpu().checks_label(), "no-loop-bounding");
    let mut rng = Rng::new(6);
    for (tile, split) in [(MatmulTile::T64, 0), (MatmulTile::T128P, 3)] {
        check_on(
            &full,
            &Case {
                m: 65,
                n: 129,
                k: 700,
                trans_a: true,
                trans_b: false,
                bias: true,
                act: Activation::Gelu,
                accumulate: true,
                tile,
                split,
            },
            &mut rng,
        );
    }
    assert_eq!("full".parse::<KernelChecks>().unwrap(), KernelChecks::Full);
    let err = "none".parse::<KernelChecks>().unwrap_err().to_string();
    assert!(err.contains("full, no-loop-bounding"), "{err}");
}
