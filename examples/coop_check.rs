//! The cooperative-matrix matmul against a CPU f64 reference, on a device that has cooperative
//! matrices (the H200; `benches/coop_check.sh` runs it there). Odd shapes (no multiple of a tile
//! or of 4), every transpose, every epilogue (bias, ReLU, GELU, accumulate), f32 and f16 output.
//!
//! Exit status: 0 when every case passed, 1 when one failed, 3 when the device has no
//! cooperative matrices: then it prints "SKIPPED: no cooperative matrices" and checks nothing
//! (lavapipe in CI), which is not a pass.
//!
//! Tolerance per element, from the arithmetic: products of f16 values are exact in f32, and a
//! K-term f32 sum errs by at most about K·2⁻²⁴·Σ|aᵢbᵢ| (doubled: tensor cores may truncate
//! rather than round); an f16 output adds half an f16 ulp, 2⁻¹¹·|c|; GELU computed in f32 adds
//! a few f32 ulps of its argument.
//!
//! Run: `cargo run --release --example coop_check` (`WGMEM_COOP=on` opts in on Metal).

use half::f16;
use std::sync::Arc;
use wgmem::DType;
use wgmem::compute::{Activation, MatmulOptions, SplitK, matmul_coop};
use wgmem::{Backend, BufferUsage, Gpu, WgpuBackend};

struct Rng(u64);
impl Rng {
    fn uniform(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
    }
    /// Values exactly representable in f16.
    fn halves(&mut self, n: usize) -> Vec<f16> {
        (0..n).map(|_| f16::from_f64(self.uniform())).collect()
    }
}

fn upload(b: &WgpuBackend, bytes: &[u8]) -> wgpu::Buffer {
    let buf = b
        .allocate(bytes.len().max(16) as u64, BufferUsage::Storage)
        .expect("allocate");
    let mut padded = bytes.to_vec();
    padded.resize(padded.len().next_multiple_of(4), 0);
    b.write(&buf, 0, &padded).expect("write");
    buf
}

fn download(b: &WgpuBackend, buf: &wgpu::Buffer, bytes: usize) -> Vec<u8> {
    let mut out = vec![0u8; bytes.next_multiple_of(4)];
    b.read(buf, 0, &mut out).expect("read");
    out.truncate(bytes);
    out
}

fn gelu(x: f64) -> f64 {
    let u = 0.797_884_560_802_865_4 * (x + 0.044715 * x * x * x);
    0.5 * x * (1.0 + u.tanh())
}

#[derive(Clone, Copy)]
struct Case {
    m: usize,
    k: usize,
    n: usize,
    trans_a: bool,
    trans_b: bool,
    bias: bool,
    act: Activation,
    accumulate: bool,
    out: DType,
    /// F32 runs Metal's simdgroup f32 kernel (inputs: the same f16-exact values, as f32).
    input: DType,
    /// K slices (split-K through a scratch buffer); 0 for none.
    split: u32,
}

/// Runs one case; returns the largest error as a fraction of its tolerance (pass: <= 1).
fn run(b: &WgpuBackend, gpu: &Gpu, case: Case, rng: &mut Rng) -> f64 {
    let Case { m, k, n, .. } = case;
    let a = rng.halves(m * k);
    let bm = rng.halves(k * n);
    let bias: Vec<f32> = (0..n).map(|_| rng.uniform() as f32).collect();
    let c0 = rng.halves(m * n);
    let af = |i: usize, kk: usize| {
        f64::from(if case.trans_a {
            a[kk * m + i]
        } else {
            a[i * k + kk]
        })
    };
    let bf = |kk: usize, j: usize| {
        f64::from(if case.trans_b {
            bm[j * k + kk]
        } else {
            bm[kk * n + j]
        })
    };
    let a_shape = if case.trans_a { [k, m] } else { [m, k] };
    let b_shape = if case.trans_b { [n, k] } else { [k, n] };
    let as_input = |v: &[f16]| -> Vec<u8> {
        if case.input == DType::F32 {
            let f: Vec<f32> = v.iter().map(|x| x.to_f32()).collect();
            bytemuck::cast_slice(&f).to_vec()
        } else {
            bytemuck::cast_slice(v).to_vec()
        }
    };
    let ga = upload(b, &as_input(&a));
    let gb = upload(b, &as_input(&bm));
    let gbias = upload(b, bytemuck::cast_slice(&bias));
    let half_out = case.out == DType::F16;
    let c_init: Vec<u8> = if half_out {
        bytemuck::cast_slice(&c0).to_vec()
    } else {
        let v: Vec<f32> = c0.iter().map(|x| x.to_f32()).collect();
        bytemuck::cast_slice(&v).to_vec()
    };
    let gc = upload(b, &c_init);
    let scratch = (case.split > 0).then(|| upload(b, &vec![0u8; case.split as usize * m * n * 4]));
    let opts = MatmulOptions {
        trans_a: case.trans_a,
        trans_b: case.trans_b,
        bias: case.bias.then_some(&gbias),
        activation: case.act,
        accumulate: case.accumulate,
        split_k: scratch.as_ref().map(|scratch| SplitK {
            slices: case.split,
            scratch,
        }),
        ..Default::default()
    };
    matmul_coop(
        gpu, case.input, &ga, a_shape, &gb, b_shape, &gc, case.out, &opts,
    )
    .expect("matmul_coop");
    let bytes = download(b, &gc, m * n * if half_out { 2 } else { 4 });
    let got: Vec<f64> = if half_out {
        bytemuck::cast_slice::<u8, f16>(&bytes)
            .iter()
            .map(|x| f64::from(*x))
            .collect()
    } else {
        bytemuck::cast_slice::<u8, f32>(&bytes)
            .iter()
            .map(|x| f64::from(*x))
            .collect()
    };
    let mut worst = 0f64;
    for i in 0..m {
        for j in 0..n {
            let (mut dot, mut mag) = (0f64, 0f64);
            for kk in 0..k {
                let p = af(i, kk) * bf(kk, j);
                dot += p;
                mag += p.abs();
            }
            let mut x = dot;
            if case.bias {
                x += f64::from(bias[j]);
                mag += f64::from(bias[j]).abs();
            }
            x = match case.act {
                Activation::Relu => x.max(0.0),
                Activation::Gelu => gelu(x),
                _ => x,
            };
            let prior = f64::from(c0[i * n + j]);
            if case.accumulate {
                x += prior;
            }
            let mut tol = 2.0 * (k as f64 + 2.0) * 2f64.powi(-24) * mag + 1e-6 * (1.0 + x.abs());
            if case.accumulate {
                tol += 2f64.powi(-24) * prior.abs();
            }
            if half_out {
                tol += 2f64.powi(-11) * x.abs() + 2f64.powi(-24);
            }
            worst = worst.max((got[i * n + j] - x).abs() / tol);
        }
    }
    worst
}

fn main() {
    let backend = Arc::new(WgpuBackend::new().expect("adapter"));
    let info = backend.adapter_info();
    println!(
        "adapter: {} ({:?}, driver {} {})",
        info.name, info.backend, info.driver, info.driver_info
    );
    let gpu = Gpu::new(backend.clone()).expect("gpu");
    let kernels = gpu.matmul_kernels();
    println!("{kernels}");
    if kernels.f16.kernel().is_none() {
        println!("SKIPPED: no cooperative matrices ({})", kernels.f16);
        std::process::exit(3);
    }
    // SAFETY: only this crate's kernels run on it (see `Gpu::new_unchecked`).
    let ugpu = unsafe { Gpu::new_unchecked(backend.clone()) }.expect("gpu");
    let shapes = [
        (1, 1, 1),
        (7, 5, 3),
        (17, 33, 9),
        (128, 128, 128),
        (129, 70, 131),
        (200, 257, 130),
        (256, 512, 384),
        (1000, 64, 37),
        (64, 1030, 128),
        (300, 784, 10),
    ];
    let plain = Case {
        m: 0,
        k: 0,
        n: 0,
        trans_a: false,
        trans_b: false,
        bias: false,
        act: Activation::None,
        accumulate: false,
        out: DType::F32,
        input: DType::F16,
        split: 0,
    };
    let mut cases = Vec::new();
    for &(m, k, n) in &shapes {
        for (trans_a, trans_b) in [(false, false), (true, false), (false, true), (true, true)] {
            cases.push(Case {
                m,
                k,
                n,
                trans_a,
                trans_b,
                ..plain
            });
        }
        let base = Case { m, k, n, ..plain };
        cases.push(Case {
            bias: true,
            act: Activation::Relu,
            ..base
        });
        cases.push(Case {
            bias: true,
            act: Activation::Gelu,
            trans_b: true,
            ..base
        });
        cases.push(Case {
            accumulate: true,
            trans_a: true,
            ..base
        });
        cases.push(Case {
            out: DType::F16,
            ..base
        });
        cases.push(Case {
            out: DType::F16,
            accumulate: true,
            bias: true,
            act: Activation::Gelu,
            trans_a: true,
            trans_b: true,
            ..base
        });
    }
    // Split-K (f32 output): slices of whole K steps (32), a last slice short, more slices
    // than steps, with every epilogue.
    for (m, k, n, split) in [
        (129, 1000, 70, 3),
        (64, 2049, 40, 5),
        (17, 33, 9, 4),
        (300, 784, 10, 4),
    ] {
        for (trans_a, trans_b) in [(false, false), (true, false), (false, true), (true, true)] {
            cases.push(Case {
                m,
                k,
                n,
                trans_a,
                trans_b,
                bias: trans_b,
                act: if trans_a {
                    Activation::Gelu
                } else {
                    Activation::None
                },
                accumulate: trans_a != trans_b,
                split,
                ..plain
            });
        }
    }
    if kernels.f32.kernel().is_some() {
        // Metal with WGMEM_COOP=on: the f32 simdgroup kernel on every f32-output case.
        let f32_cases: Vec<Case> = cases
            .iter()
            .filter(|c| c.out == DType::F32)
            .map(|&c| Case {
                input: DType::F32,
                ..c
            })
            .collect();
        cases.extend(f32_cases);
    }
    let mut rng = Rng(11);
    let (mut passed, mut failed) = (0, 0);
    for (label, g) in [("default checks", &gpu), ("unchecked", &ugpu)] {
        for &case in &cases {
            let worst = run(&backend, g, case, &mut rng);
            let ok = worst <= 1.0;
            if ok {
                passed += 1;
            } else {
                failed += 1;
            }
            if !ok || case.m == 200 || case.split > 0 {
                println!(
                    "{} {label} {:?} in {}x{}x{} ta {} tb {} bias {} {:?} acc {} out {:?} split {}: error/tolerance {worst:.3}",
                    if ok { "ok  " } else { "FAIL" },
                    case.input,
                    case.m,
                    case.k,
                    case.n,
                    case.trans_a,
                    case.trans_b,
                    case.bias,
                    case.act,
                    case.accumulate,
                    case.out,
                    case.split
                );
            }
        }
    }
    println!("coop_check: {passed} passed, {failed} failed ({kernels})");
    if failed > 0 {
        std::process::exit(1);
    }
}
