//! `DType` on `Tensor`: f16 tensors round-trip through the host conversion, are accounted in
//! their real bytes (half of f32's, rounded to whole words and to the pool's size class), and
//! keep their type through `zeros_of`, `duplicate` and `reshape`. Runs on the CI adapter
//! (lavapipe offers SHADER_F16); a device without it is checked to refuse f16 with a typed error.

mod common;

use std::sync::Arc;
use wgmem::tensor::tags;
use wgmem::{Context, DType, Error, MemoryConfig};

fn ctx() -> Arc<Context> {
    let ctx = Context::new(common::gpu_backend(), MemoryConfig::default()).unwrap();
    assert!(
        ctx.gpu().supports_f16(),
        "the f16 tests need SHADER_F16 (lavapipe has it); adapter: {:?}",
        ctx.gpu()
    );
    ctx
}

#[test]
fn f16_tensor_round_trips_through_the_nearest_f16() {
    let ctx = ctx();
    // Odd length: the last word is half padding. Values span f16's range, with ones that are
    // not representable (rounded to nearest even) and ones past 65504 (infinity).
    let data: Vec<f32> = (0..37)
        .map(|i| (i as f32 - 18.0) * 0.3137 * 10f32.powi(i % 5 - 2))
        .chain([65504.0, 70000.0, -1e-8, 6.1e-5])
        .collect();
    let t = ctx
        .from_slice_of(&data, &[data.len()], DType::F16, tags::DATA)
        .unwrap();
    assert_eq!(t.dtype(), DType::F16);
    let back = t.to_vec().unwrap();
    for (&v, &b) in data.iter().zip(&back) {
        let expected = half::f16::from_f32(v).to_f32();
        assert_eq!(b.to_bits(), expected.to_bits(), "{v} came back as {b}");
        if v.abs() <= 65504.0 && v.abs() >= 6.2e-5 {
            // Normal range: relative error at most f16's unit roundoff 2^-11.
            assert!(f64::from((b - v).abs()) <= DType::F16.unit_roundoff() * f64::from(v.abs()));
        }
    }
    assert_eq!(back[data.len() - 3], f32::INFINITY);
}

#[test]
fn f16_tensors_are_accounted_in_half_the_bytes() {
    let ctx = ctx();
    let before = ctx.memory().stats();
    let classes = ctx.memory().size_classes();
    // 1001 x 3 f16 = 6006 bytes, a whole number of words already; f32 would be 12012.
    let t16 = ctx
        .uninit_of(&[1001, 3], DType::F16, tags::SCRATCH)
        .unwrap();
    assert_eq!(t16.bytes(), 6006);
    assert_eq!(t16.buffer().size(), classes.class_of(6008));
    let mid = ctx.memory().stats();
    assert_eq!(mid.requested_live_bytes - before.requested_live_bytes, 6008);
    let t32 = ctx.uninit(&[1001, 3], tags::SCRATCH).unwrap();
    let after = ctx.memory().stats();
    assert_eq!(after.requested_live_bytes - mid.requested_live_bytes, 12012);
    drop((t16, t32));
}

#[test]
fn zeros_duplicate_and_reshape_keep_the_type() {
    let ctx = ctx();
    let z = ctx.zeros_of(&[5, 3], DType::F16, tags::SCRATCH).unwrap();
    z.write(&[7.0; 15]).unwrap();
    let z = ctx.zeros_of(&[5, 3], DType::F16, tags::SCRATCH).unwrap();
    assert_eq!(z.to_vec().unwrap(), vec![0.0; 15]);
    // Values whose f16 pairs would read as f32 NaNs: a bit copy must keep them.
    let data: Vec<f32> = (0..15).map(|i| -60000.0 + 977.0 * i as f32).collect();
    let t = ctx
        .from_slice_of(&data, &[5, 3], DType::F16, tags::SCRATCH)
        .unwrap();
    let d = t.duplicate(tags::SCRATCH).unwrap();
    assert_eq!(d.dtype(), DType::F16);
    assert_eq!(d.to_vec().unwrap(), t.to_vec().unwrap());
    let r = d.reshape(&[15]).unwrap();
    assert_eq!(r.dtype(), DType::F16);
    assert_eq!(r.shape(), &[15]);
}

#[test]
fn expect_dtype_names_the_operand_and_both_types() {
    let ctx = ctx();
    let t = ctx.zeros(&[2], tags::SCRATCH).unwrap();
    let err = t.expect_dtype("op", "input", DType::F16).unwrap_err();
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
    assert!(err.to_string().contains("input is f32"), "{err}");
}
