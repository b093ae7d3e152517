//! The cooperative-matrix matmul where CI runs (lavapipe: no cooperative matrices): the device
//! reports the plain kernels with the reason, a call of `matmul_coop` is a typed error that says
//! which kernel runs instead, and `CoopMode::Off` is honoured. The kernels themselves are checked
//! against a CPU f64 reference on the H200 by `examples/coop_check.rs` (benches/coop_check.sh);
//! this file does not stand in for that.

mod common;

use std::sync::Arc;
use wgmem::compute::{MatmulOptions, matmul_coop};
use wgmem::{Backend, BufferUsage, CoopMode, DType, Error, Gpu, WgpuBackend, WgpuBackendOptions};

#[test]
fn without_cooperative_matrices_the_choice_says_plain_and_why() {
    let gpu = common::gpu();
    let features = gpu.backend().device().features();
    if features.contains(wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX) {
        // Not CI's adapter: the H200 check covers this device.
        return;
    }
    let kernels = gpu.matmul_kernels();
    assert!(kernels.f16.kernel().is_none());
    assert!(kernels.f32.kernel().is_none());
    let shown = kernels.to_string();
    assert!(
        shown.contains("f16 matmul: plain (the device has no cooperative matrices)"),
        "{shown}"
    );
    let b = gpu.backend();
    let buf = |bytes: u64| b.allocate(bytes, BufferUsage::Storage).expect("allocate");
    let (a, bm, c) = (buf(64), buf(64), buf(64));
    let err = matmul_coop(
        &gpu,
        DType::F16,
        &a,
        [3, 5],
        &bm,
        [5, 2],
        &c,
        DType::F32,
        &MatmulOptions::default(),
    )
    .expect_err("no cooperative kernel here");
    let msg = err.to_string();
    assert!(matches!(err, Error::InvalidArgument { .. }), "{err:?}");
    assert!(
        msg.contains("plain (the device has no cooperative matrices)"),
        "{msg}"
    );
}

#[test]
fn coop_mode_off_keeps_the_plain_kernels_and_says_so() {
    let backend = WgpuBackend::with_options(WgpuBackendOptions {
        cooperative_matrix: Some(CoopMode::Off),
        ..Default::default()
    })
    .expect("adapter");
    assert_eq!(backend.coop_mode(), CoopMode::Off);
    assert!(
        !backend
            .device()
            .features()
            .contains(wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX),
        "Off does not request the experimental feature"
    );
    let gpu = Gpu::new(Arc::new(backend)).expect("gpu");
    assert_eq!(
        gpu.matmul_kernels().f16.to_string(),
        "plain (cooperative matrices turned off)"
    );
}
