//! The catalogue of bad inputs: each test gives the library something wrong and checks that
//! the answer is a typed error that says what was wrong (never a panic, never a silent wrong
//! result), and that the thing it was given to is still usable afterwards. GPU cases run on
//! lavapipe in CI.
//!
//! | #  | bad input                                                         | answer |
//! |----|-------------------------------------------------------------------|--------|
//! | 1  | allocation of 0 bytes (backend, manager)                          | `ZeroSize` |
//! | 2  | allocation over the device maximum; `u64::MAX` bytes              | `TooLarge` |
//! | 3  | tensor shape whose element or byte count overflows                | `InvalidArgument` |
//! | 4  | tensor larger than the device's largest buffer                    | `TooLarge` |
//! | 5  | write / copy misaligned, read / write / copy past the end         | `Misaligned`, `OutOfBounds` |
//! | 6  | copy of a buffer onto itself                                      | `SameBuffer` |
//! | 7  | matmul with mismatched inner dimensions                           | `Shape` |
//! | 8  | matmul into a buffer too small for the result                     | `OutOfBounds` |
//! | 9  | `Linear` given the wrong last dimension (2-D or 3-D input)        | `Shape` |
//! | 10 | `Linear` of 0 inputs or outputs                                   | `InvalidArgument` |
//! | 11 | tensor write of the wrong length; reshape to another count        | `Shape` |
//! | 12 | loss with fewer labels than rows                                  | `Shape` |
//! | 13 | labels out of range for the model (train and evaluate)            | `InvalidArgument` |
//! | 14 | NaN in an input sample, policy Stop                               | `NonFiniteInput { step, row, column }` |
//! | 15 | Inf in an input sample, policy Skip                               | step skipped, counted, parameters untouched |
//! | 16 | NaN learning rate (a NaN loss one step later)                     | `NonFiniteLoss { step: 1 }` |
//! | 17 | malformed CSV: text, ragged line, bad label, `nan`, no data        | `Csv { line, column }` |
//! | 18 | `Dataset::new` with mismatched lengths; split fraction out of range | `Shape`, `InvalidArgument` |
//! | 19 | invalid WGSL: syntax error, type error                            | `ShaderCompile` with the location |
//! | 20 | checkpoint budget of 0 (`budget:0`, in a trainer config), `every:0` | `InvalidArgument` |
//! | 21 | memory hard limit of 0 (config and setter); soft above hard; NaN reuse ratio | `InvalidArgument` |
//! | 22 | byte counts that are not numbers or overflow                      | `InvalidArgument` |
//! | 23 | trainer config: batch size 0, empty model, empty training set     | `InvalidArgument` |
//! | 24 | training data of the wrong width                                  | `Shape` |
//! | 25 | optimizer given another parameter list than the one it stepped    | `InvalidArgument` |
//! | 26 | unknown checkpoint policy text                                    | `InvalidArgument` |
//! | 27 | staging buffers used the wrong way: readback read or copied from, upload written or copied into | `InvalidArgument` |
//! | 28 | `Dataset::subset` with an index past the end                      | `InvalidArgument` naming it |
//! | 29 | `Dataset::new` whose rows x features product overflows            | `Shape` |
//! | 30 | `Dataset::from_csv_file` of a missing file                        | `File` naming the path |
//! | 31 | `Dataset::synthetic` of 0 rows, features or classes               | `InvalidArgument` |
//! | 32 | `Dataset::synthetic` larger than memory can address               | `InvalidArgument` |
//! | 33 | `TrainerState::load` of a missing file                            | `File` naming the path |
//! | 34 | `TrainerState::save` into a missing directory                     | `File` naming the path |
//! | 35 | a file that is not a state file                                   | `StateFile` (bad magic) |
//! | 36 | a state record whose shape overflows                              | `StateFile` naming the array |
//! | 37 | a CSV label beyond `u32`                                          | `Csv { line, column }` |
//! | 38 | `Sequential::forward_range` past the chain, or reversed           | `InvalidArgument` |
//! | 39 | `Sequential::backward_range` outside the chain                    | `InvalidArgument` |
//! | 40 | `CheckpointPlan::segments` with no boundaries                     | `InvalidArgument` |
//! | 41 | checkpoint boundaries out of order or past the chain              | `InvalidArgument` |
//! | 42 | `Linear::new` whose weight count overflows                        | `InvalidArgument` |
//! | 43 | `Linear::new` larger than the largest buffer                      | `TooLarge` |
//! | 44 | optimizer state restored into a model without parameters         | `InvalidArgument` |
//! | 45 | a state of another model (count, shape)                           | `InvalidArgument`, `Shape` |
//! | 46 | optimizer tensors that do not divide among the parameters         | `InvalidArgument` |
//! | 47 | state arrays named neither `param.*` nor `optim.*`                | `InvalidArgument` |
//! | 48 | `Trainer::load_state` of a missing file                           | `File`, training goes on |
//! | 49 | ZeRO-1 with an optimizer that is not Adam                         | `InvalidArgument` |
//!
//! 49 cases, each its own test (named `bad_NN_...`): 1–27 below, 28–37 (data and state
//! files, host only) in `tests/bad_input_data.rs`, 38–49 (layer chains, checkpoint plans,
//! layer sizes, restoring state) in `tests/bad_input_models.rs`. Random inputs to the state
//! loader and the CSV parser are in `tests/fuzz_inputs.rs`.

mod common;

use std::sync::Arc;
use wgmem::backend::parse_bytes;
use wgmem::checkpoint::CheckpointPolicy;
use wgmem::compute::{self, MatmulOptions};
use wgmem::data::Dataset;
use wgmem::nn::{Linear, Module, Sequential, softmax_cross_entropy};
use wgmem::optim::{Optimizer, Sgd};
use wgmem::tensor::tags;
use wgmem::train::NonFinitePolicy;
use wgmem::{
    Backend, BufferUsage, Context, Error, HostBackend, MemoryConfig, MemoryManager, Trainer,
    TrainerConfig,
};

fn ctx() -> Arc<Context> {
    Context::new(common::gpu_backend(), MemoryConfig::default()).unwrap()
}

fn host() -> (Arc<HostBackend>, MemoryManager<HostBackend>) {
    let backend = Arc::new(HostBackend::new().with_max_buffer_size(1 << 20));
    (Arc::clone(&backend), MemoryManager::new(backend))
}

fn small_model(ctx: &Arc<Context>, classes: usize) -> Sequential {
    Sequential::new()
        .with(Linear::new(ctx, 4, 8, 1).unwrap().with_relu())
        .with(Linear::new(ctx, 8, classes, 2).unwrap())
}

/// 32 samples of 4 features, labels 0..3, in a fixed pattern.
fn small_data() -> Dataset {
    let mut rng = common::Rng::new(5);
    let features = rng.vec(32 * 4);
    let labels = (0..32).map(|i| i % 3).collect();
    Dataset::new(features, labels, 4).unwrap()
}

fn trainer(ctx: &Arc<Context>, lr: f32, non_finite: NonFinitePolicy) -> Trainer {
    let config = TrainerConfig {
        epochs: 1,
        batch_size: 8,
        non_finite,
        ..TrainerConfig::default()
    };
    Trainer::new(
        Arc::clone(ctx),
        small_model(ctx, 3),
        Box::new(Sgd::new(lr, 0.0)),
        config,
    )
    .unwrap()
}

fn params(t: &mut Trainer) -> Vec<Vec<f32>> {
    t.model()
        .parameters()
        .iter()
        .map(|p| p.value.to_vec().unwrap())
        .collect()
}

#[test]
fn bad_01_zero_sized_allocations_are_zero_size() {
    let (backend, m) = host();
    assert!(matches!(
        backend.allocate(0, BufferUsage::Storage),
        Err(Error::ZeroSize)
    ));
    assert!(matches!(
        m.acquire(0, BufferUsage::Storage, "x"),
        Err(Error::ZeroSize)
    ));
    let gpu = common::gpu_backend();
    assert!(matches!(
        gpu.allocate(0, BufferUsage::Storage),
        Err(Error::ZeroSize)
    ));
    // A tensor with no elements is fine: it holds one value's worth of buffer.
    let t = ctx().zeros(&[0, 3], tags::DATA).unwrap();
    assert!(t.is_empty());
    assert_eq!(t.to_vec().unwrap(), Vec::<f32>::new());
    assert_eq!(m.stats().live_bytes, 0);
}

#[test]
fn bad_02_oversized_allocations_are_too_large() {
    let (backend, m) = host();
    for size in [(1 << 20) + 1, u64::MAX] {
        assert!(matches!(
            backend.allocate(size, BufferUsage::Storage),
            Err(Error::TooLarge { .. })
        ));
        assert!(matches!(
            m.acquire(size, BufferUsage::Storage, "x"),
            Err(Error::TooLarge { .. })
        ));
    }
    let gpu = common::gpu_backend();
    let max = gpu.capabilities().max_buffer_size;
    let e = gpu.allocate(max + 1, BufferUsage::Storage).unwrap_err();
    assert!(matches!(e, Error::TooLarge { requested, .. } if requested == max + 1));
    assert_eq!(m.stats().live_bytes, 0);
    m.acquire(1 << 20, BufferUsage::Storage, "fits").unwrap();
}

#[test]
fn bad_03_overflowing_tensor_shapes_are_invalid_arguments() {
    let ctx = ctx();
    for shape in [
        vec![usize::MAX, 2],
        vec![usize::MAX / 2],
        vec![1 << 40, 1 << 40],
    ] {
        let e = ctx.uninit(&shape, tags::DATA).unwrap_err();
        assert!(matches!(e, Error::InvalidArgument { .. }), "{shape:?}: {e}");
    }
    let t = ctx.zeros(&[4], tags::DATA).unwrap();
    assert!(matches!(
        t.reshape(&[usize::MAX, 3]),
        Err(Error::InvalidArgument { .. })
    ));
}

#[test]
fn bad_04_tensors_over_the_largest_buffer_are_too_large() {
    let ctx = ctx();
    let max = ctx.backend().capabilities().max_buffer_size as usize;
    let e = ctx.zeros(&[max / 4 + 1], tags::DATA).unwrap_err();
    assert!(matches!(e, Error::TooLarge { .. }), "{e}");
    assert_eq!(ctx.memory().stats().live_bytes, 0);
}

#[test]
fn bad_05_misaligned_and_out_of_bounds_transfers_are_typed() {
    let (backend, m) = host();
    let a = m.acquire(64, BufferUsage::Storage, "a").unwrap();
    let b = m.acquire(64, BufferUsage::Storage, "b").unwrap();
    let size = a.size();
    assert!(matches!(
        a.write(2, &[0; 4]),
        Err(Error::Misaligned { what: "offset", .. })
    ));
    assert!(matches!(
        a.write(0, &[0; 3]),
        Err(Error::Misaligned { what: "length", .. })
    ));
    assert!(matches!(
        a.write(size, &[0; 4]),
        Err(Error::OutOfBounds { op: "write", .. })
    ));
    assert!(matches!(
        a.read(size - 2, &mut [0; 4]),
        Err(Error::OutOfBounds { op: "read", .. })
    ));
    assert!(matches!(
        a.read(u64::MAX, &mut [0; 4]),
        Err(Error::OutOfBounds { .. })
    ));
    assert!(matches!(
        backend.copy(a.raw(), 0, b.raw(), 4, size),
        Err(Error::OutOfBounds { .. })
    ));
    assert!(matches!(
        backend.copy(a.raw(), 1, b.raw(), 0, 4),
        Err(Error::Misaligned { .. })
    ));
    // The same on the GPU.
    let gpu = ctx();
    let t = gpu.zeros(&[4], tags::DATA).unwrap();
    let raw = t.buffer();
    assert!(matches!(
        raw.write(1, &[0; 4]),
        Err(Error::Misaligned { .. })
    ));
    assert!(matches!(
        raw.read(raw.size(), &mut [0; 4]),
        Err(Error::OutOfBounds { .. })
    ));
    a.write(0, &[9; 64]).unwrap();
}

#[test]
fn bad_06_a_copy_onto_itself_is_same_buffer() {
    let (backend, m) = host();
    let a = m.acquire(64, BufferUsage::Storage, "a").unwrap();
    assert!(matches!(
        backend.copy(a.raw(), 0, a.raw(), 32, 32),
        Err(Error::SameBuffer)
    ));
    let gpu = common::gpu_backend();
    let buf = gpu.allocate(64, BufferUsage::Storage).unwrap();
    assert!(matches!(
        gpu.copy(&buf, 0, &buf, 32, 32),
        Err(Error::SameBuffer)
    ));
    gpu.free(buf);
}

#[test]
fn bad_07_matmul_with_mismatched_inner_dimensions_is_a_shape_error() {
    let ctx = ctx();
    let a = ctx.zeros(&[2, 3], tags::DATA).unwrap();
    let b = ctx.zeros(&[4, 5], tags::DATA).unwrap();
    let c = ctx.zeros(&[2, 5], tags::DATA).unwrap();
    let e = compute::matmul(
        ctx.gpu(),
        a.raw(),
        [2, 3],
        b.raw(),
        [4, 5],
        c.raw(),
        &MatmulOptions::default(),
    )
    .unwrap_err();
    assert!(matches!(e, Error::Shape { op: "matmul", .. }), "{e}");
    assert!(e.to_string().contains("inner dimensions"), "{e}");
}

#[test]
fn bad_08_matmul_into_a_too_small_output_is_out_of_bounds() {
    let ctx = ctx();
    let a = ctx.zeros(&[64, 64], tags::DATA).unwrap();
    let b = ctx.zeros(&[64, 64], tags::DATA).unwrap();
    let c = ctx.zeros(&[8], tags::DATA).unwrap();
    let e = compute::matmul(
        ctx.gpu(),
        a.raw(),
        [64, 64],
        b.raw(),
        [64, 64],
        c.raw(),
        &MatmulOptions::default(),
    )
    .unwrap_err();
    assert!(matches!(e, Error::OutOfBounds { .. }), "{e}");
}

#[test]
fn bad_09_linear_with_the_wrong_input_is_a_shape_error() {
    let ctx = ctx();
    let mut layer = Linear::new(&ctx, 4, 8, 1).unwrap();
    let wide = Arc::new(ctx.zeros(&[2, 5], tags::DATA).unwrap());
    assert!(matches!(
        layer.forward(wide, true),
        Err(Error::Shape {
            op: "Linear::forward",
            ..
        })
    ));
    // A 3-D input maps its last dimension, which must be the layer's input width.
    let cube = Arc::new(ctx.zeros(&[2, 4, 2], tags::DATA).unwrap());
    assert!(matches!(
        layer.forward(cube, true),
        Err(Error::Shape { .. })
    ));
    let tokens = Arc::new(ctx.zeros(&[2, 3, 4], tags::DATA).unwrap());
    assert_eq!(layer.forward(tokens, false).unwrap().shape(), &[2, 3, 8]);
    // Backward without a saving forward is refused too.
    let g = ctx.zeros(&[2, 8], tags::DATA).unwrap();
    assert!(matches!(
        layer.backward(g, true),
        Err(Error::InvalidArgument { .. })
    ));
    let ok = Arc::new(ctx.zeros(&[2, 4], tags::DATA).unwrap());
    assert_eq!(layer.forward(ok, false).unwrap().shape(), &[2, 8]);
}

#[test]
fn bad_10_linear_of_zero_width_is_an_invalid_argument() {
    let ctx = ctx();
    assert!(matches!(
        Linear::new(&ctx, 0, 8, 1),
        Err(Error::InvalidArgument { .. })
    ));
    assert!(matches!(
        Linear::new(&ctx, 8, 0, 1),
        Err(Error::InvalidArgument { .. })
    ));
}

#[test]
fn bad_11_tensor_writes_and_reshapes_of_the_wrong_count_are_shape_errors() {
    let ctx = ctx();
    let t = ctx.zeros(&[2, 3], tags::DATA).unwrap();
    assert!(matches!(t.write(&[1.0; 5]), Err(Error::Shape { .. })));
    assert!(matches!(t.write(&[1.0; 7]), Err(Error::Shape { .. })));
    assert!(matches!(
        ctx.from_slice(&[1.0; 3], &[2, 2], tags::DATA),
        Err(Error::Shape { .. })
    ));
    t.write(&[1.0; 6]).unwrap();
    assert!(matches!(t.reshape(&[4, 2]), Err(Error::Shape { .. })));
}

#[test]
fn bad_12_a_loss_with_fewer_labels_than_rows_is_a_shape_error() {
    let ctx = ctx();
    let logits = ctx.zeros(&[4, 3], tags::DATA).unwrap();
    let labels = ctx.upload_u32(&[0, 1, 2], tags::DATA).unwrap();
    assert!(matches!(
        softmax_cross_entropy(&logits, &labels, 3),
        Err(Error::Shape {
            op: "softmax_cross_entropy",
            ..
        })
    ));
    let flat = ctx.zeros(&[12], tags::DATA).unwrap();
    assert!(matches!(
        softmax_cross_entropy(&flat, &labels, 3),
        Err(Error::Shape { .. })
    ));
}

#[test]
fn bad_13_labels_out_of_range_are_invalid_arguments_not_a_nan_loss() {
    let ctx = ctx();
    let mut t = trainer(&ctx, 0.1, NonFinitePolicy::Stop);
    let good = small_data();
    let mut labels = good.labels().to_vec();
    labels[9] = 3; // the model has 3 outputs
    let data = Dataset::new(good.features().to_vec(), labels, 4).unwrap();
    let before = params(&mut t);
    let e = t
        .train_step(&data.subset(&[8, 9, 10]).unwrap())
        .unwrap_err();
    assert!(
        matches!(e, Error::InvalidArgument { what: "label", .. }),
        "{e}"
    );
    assert!(e.to_string().contains("label 3"), "{e}");
    assert_eq!(params(&mut t), before, "no update from the bad batch");
    assert_eq!(t.report().steps, 0);
    assert!(matches!(
        t.fit(&data, None, |_| {}),
        Err(Error::InvalidArgument { what: "label", .. })
    ));
    assert!(matches!(
        t.evaluate(&data),
        Err(Error::InvalidArgument { what: "label", .. })
    ));
    // The trainer still works on good data.
    t.train_step(&good).unwrap();
}

#[test]
fn bad_14_nan_in_an_input_stops_with_the_step() {
    let ctx = ctx();
    let mut t = trainer(&ctx, 0.1, NonFinitePolicy::Stop);
    let data = small_data();
    let mut features = data.features().to_vec();
    features[2] = f32::NAN;
    let data = Dataset::new(features, data.labels().to_vec(), 4).unwrap();
    // Sample 0 is in some batch of the shuffled epoch: the error names that step.
    let mut steps_before = 0;
    let e = t.fit(&data, None, |s| steps_before = s.step).unwrap_err();
    match e {
        Error::NonFiniteInput {
            step,
            column,
            value,
            ..
        } => {
            assert!(value.is_nan());
            assert_eq!(column, 2);
            assert_eq!(step, steps_before, "the step of the bad batch");
            assert_eq!(t.report().steps, step);
        }
        other => panic!("expected NonFiniteInput, got {other}"),
    }
    // With the NaN there, a NaN loss would have been the only other sign (or none: a ReLU
    // can turn NaN into 0).
}

#[test]
fn bad_15_inf_in_an_input_is_skipped_when_configured_and_changes_nothing() {
    let ctx = ctx();
    let mut t = trainer(&ctx, 0.1, NonFinitePolicy::Skip);
    let data = small_data();
    let mut features = data.features().to_vec();
    features[5] = f32::INFINITY;
    // One sample per batch: 4 batches of 8 over 4 samples with a batch of 1 sample each.
    let bad = Dataset::new(features[..4 * 4].to_vec(), data.labels()[..4].to_vec(), 4).unwrap();
    let cfg = TrainerConfig {
        epochs: 1,
        batch_size: 1,
        non_finite: NonFinitePolicy::Skip,
        ..TrainerConfig::default()
    };
    let mut one = Trainer::new(
        Arc::clone(&ctx),
        small_model(&ctx, 3),
        Box::new(Sgd::new(0.1, 0.0)),
        cfg,
    )
    .unwrap();
    let mut losses = Vec::new();
    let report = one.fit(&bad, None, |s| losses.push(s.loss)).unwrap();
    assert_eq!(report.skipped_steps, 1, "{losses:?}");
    assert_eq!(report.steps, 3);
    assert_eq!(losses.iter().filter(|l| !l.is_finite()).count(), 1);
    // A skipped step leaves the parameters as they were.
    let before = params(&mut t);
    let only_bad = bad.subset(&[1]).unwrap();
    let (loss, _) = t.train_step(&only_bad).unwrap();
    assert!(!loss.is_finite());
    assert_eq!(params(&mut t), before);
    assert_eq!(t.report().skipped_steps, 1);
}

#[test]
fn bad_16_a_nan_learning_rate_is_caught_at_the_next_step() {
    let ctx = ctx();
    let mut t = trainer(&ctx, f32::NAN, NonFinitePolicy::Stop);
    let e = t.fit(&small_data(), None, |_| {}).unwrap_err();
    assert!(
        matches!(e, Error::NonFiniteLoss { step: 1, .. }),
        "the first update makes the weights NaN, the second loss shows it: {e}"
    );
}

#[test]
fn bad_17_malformed_csv_names_the_line_and_column() {
    let cases = [
        ("1,2,0\n3,four,1\n", 2, 2, "not a number"),
        ("1,2,0\n\n# c\n3,4,5,1\n", 4, 4, "fields"),
        ("1,2,0\n3,4,-1\n", 2, 3, "label"),
        ("1,2,0\n3,4,1.5\n", 2, 3, "label"),
        ("nan,2,0\n", 1, 1, "not finite"),
        ("1,-inf,0\n", 1, 2, "not finite"),
        ("# only a comment\n\n", 1, 1, "no data"),
        ("5\n", 1, 1, "at least one feature"),
    ];
    for (text, line, column, words) in cases {
        match Dataset::from_csv(text) {
            Err(e @ Error::Csv { .. }) => {
                let Error::Csv {
                    line: l, column: c, ..
                } = e
                else {
                    unreachable!()
                };
                assert_eq!((l, c), (line, column), "{text:?}");
                assert!(e.to_string().contains(words), "{text:?}: {e}");
                assert!(e.to_string().contains(&format!("line {line}")), "{e}");
            }
            other => panic!("{text:?}: expected a CSV error, got {other:?}"),
        }
    }
}

#[test]
fn bad_18_inconsistent_datasets_and_splits_are_typed() {
    assert!(matches!(
        Dataset::new(vec![0.0; 7], vec![0, 1], 4),
        Err(Error::Shape { .. })
    ));
    assert!(matches!(
        Dataset::new(vec![], vec![], 0),
        Err(Error::Shape { .. })
    ));
    let d = small_data();
    for f in [1.0, -0.1, f64::NAN] {
        assert!(
            matches!(d.split(f, 0), Err(Error::InvalidArgument { .. })),
            "{f}"
        );
    }
}

#[test]
fn bad_19_invalid_wgsl_is_a_shader_compile_error_with_the_location() {
    let syntax = "@compute @workgroup_size(64)\nfn main( {\n}\n";
    let e = compute::validate_wgsl("broken", syntax).unwrap_err();
    match &e {
        Error::ShaderCompile { name, message, .. } => {
            assert_eq!(name, "broken");
            assert!(message.contains("broken.wgsl:2"), "{message}");
        }
        other => panic!("expected ShaderCompile, got {other}"),
    }
    let types = "@group(0) @binding(0) var<storage, read_write> x: array<f32>;\n\
                 @compute @workgroup_size(64)\n\
                 fn main(@builtin(global_invocation_id) id: vec3<u32>) {\n\
                     x[id.x] = id.x;\n\
                 }\n";
    assert!(matches!(
        compute::validate_wgsl("types", types),
        Err(Error::ShaderCompile { .. })
    ));
    assert!(
        compute::validate_wgsl("empty", "").is_ok(),
        "an empty module is valid"
    );
}

#[test]
fn bad_20_a_checkpoint_budget_of_zero_is_an_invalid_argument() {
    assert!(matches!(
        "budget:0".parse::<CheckpointPolicy>(),
        Err(Error::InvalidArgument { .. })
    ));
    assert!(matches!(
        "every:0".parse::<CheckpointPolicy>(),
        Err(Error::InvalidArgument { .. })
    ));
    let ctx = ctx();
    for policy in [CheckpointPolicy::Budget(0), CheckpointPolicy::EveryK(0)] {
        let config = TrainerConfig {
            checkpoint: policy,
            ..TrainerConfig::default()
        };
        let e = Trainer::new(
            Arc::clone(&ctx),
            small_model(&ctx, 3),
            Box::new(Sgd::new(0.1, 0.0)),
            config,
        )
        .unwrap_err();
        assert!(
            matches!(e, Error::InvalidArgument { .. }),
            "{policy:?}: {e}"
        );
    }
    // A budget too small for any plan fails at the first step, typed, naming what would fit.
    let config = TrainerConfig {
        checkpoint: CheckpointPolicy::Budget(1),
        batch_size: 8,
        ..TrainerConfig::default()
    };
    let mut t = Trainer::new(
        Arc::clone(&ctx),
        small_model(&ctx, 3),
        Box::new(Sgd::new(0.1, 0.0)),
        config,
    )
    .unwrap();
    let e = t.train_steps(&small_data(), 1, |_| {}).unwrap_err();
    assert!(matches!(e, Error::InvalidArgument { .. }), "{e}");
}

#[test]
fn bad_21_a_memory_limit_of_zero_and_inconsistent_limits_are_invalid_arguments() {
    let backend = Arc::new(HostBackend::new());
    for config in [
        MemoryConfig::default().with_hard_limit(0),
        MemoryConfig::default()
            .with_hard_limit(1024)
            .with_soft_limit(2048),
        MemoryConfig {
            max_reuse_ratio: f64::NAN,
            ..MemoryConfig::default()
        },
        MemoryConfig {
            max_reuse_ratio: 0.5,
            ..MemoryConfig::default()
        },
    ] {
        assert!(matches!(
            MemoryManager::with_config(Arc::clone(&backend), config.clone()),
            Err(Error::InvalidArgument { .. })
        ));
    }
    let m = MemoryManager::new(backend);
    assert!(matches!(
        m.set_hard_limit(Some(0)),
        Err(Error::InvalidArgument { .. })
    ));
    assert_eq!(m.hard_limit(), None, "the old limit stays");
    assert!(matches!(
        Context::new(
            common::gpu_backend(),
            MemoryConfig::default().with_hard_limit(0)
        ),
        Err(Error::InvalidArgument { .. })
    ));
}

#[test]
fn bad_22_byte_counts_that_are_not_numbers_are_invalid_arguments() {
    for text in [
        "",
        "M",
        "12X",
        "-5",
        "1.5G",
        "99999999999999999999T",
        "18446744073709551615K",
    ] {
        assert!(
            matches!(parse_bytes(text), Err(Error::InvalidArgument { .. })),
            "{text:?}"
        );
    }
}

#[test]
fn bad_23_bad_trainer_configs_are_invalid_arguments() {
    let ctx = ctx();
    let zero_batch = TrainerConfig {
        batch_size: 0,
        ..TrainerConfig::default()
    };
    assert!(matches!(
        Trainer::new(
            Arc::clone(&ctx),
            small_model(&ctx, 3),
            Box::new(Sgd::new(0.1, 0.0)),
            zero_batch
        ),
        Err(Error::InvalidArgument { .. })
    ));
    assert!(matches!(
        Trainer::new(
            Arc::clone(&ctx),
            Sequential::new(),
            Box::new(Sgd::new(0.1, 0.0)),
            TrainerConfig::default()
        ),
        Err(Error::InvalidArgument { .. })
    ));
    let mut t = trainer(&ctx, 0.1, NonFinitePolicy::Stop);
    let empty = small_data().subset(&[]).unwrap();
    assert!(matches!(
        t.fit(&empty, None, |_| {}),
        Err(Error::InvalidArgument { .. })
    ));
    assert!(matches!(
        t.train_steps(&empty, 3, |_| {}),
        Err(Error::InvalidArgument { .. })
    ));
}

#[test]
fn bad_24_training_data_of_the_wrong_width_is_a_shape_error() {
    let ctx = ctx();
    let mut t = trainer(&ctx, 0.1, NonFinitePolicy::Stop);
    let wide = Dataset::new(vec![0.5; 8 * 5], vec![0; 8], 5).unwrap();
    assert!(matches!(
        t.fit(&wide, None, |_| {}),
        Err(Error::Shape { .. })
    ));
    assert!(matches!(t.evaluate(&wide), Err(Error::Shape { .. })));
    assert_eq!(t.report().steps, 0);
    t.train_steps(&small_data(), 1, |_| {}).unwrap();
    assert_eq!(t.report().steps, 1);
}

#[test]
fn bad_25_an_optimizer_given_another_parameter_list_is_an_invalid_argument() {
    let ctx = ctx();
    let mut a = small_model(&ctx, 3);
    let mut b = Sequential::new().with(Linear::new(&ctx, 4, 3, 9).unwrap());
    let mut opt = Sgd::new(0.1, 0.9);
    opt.step(a.parameters()).unwrap();
    assert!(matches!(
        opt.step(b.parameters()),
        Err(Error::InvalidArgument { .. })
    ));
    opt.step(a.parameters()).unwrap();
}

#[test]
fn bad_26_unknown_checkpoint_policies_are_invalid_arguments() {
    for text in ["", "sqrtn", "every:x", "every:-1", "budget:lots", "none:1"] {
        assert!(
            matches!(
                text.parse::<CheckpointPolicy>(),
                Err(Error::InvalidArgument { .. })
            ),
            "{text:?}"
        );
    }
}

#[test]
fn bad_27_staging_buffers_used_the_wrong_way_are_invalid_arguments() {
    // Its own device, so the count of uncaptured errors below is this test's alone.
    let backend = common::fresh_gpu_backend();
    let storage = backend.allocate(256, BufferUsage::Storage).unwrap();
    let mut out = [0u8; 16];
    // A readback buffer is only ever a copy destination (then mapped): reading it through the
    // backend, or copying out of it, is refused with the usage that is missing.
    let readback = backend.allocate(256, BufferUsage::Readback).unwrap();
    let refused = [
        ("read readback", backend.read(&readback, 0, &mut out)),
        (
            "copy from readback",
            backend.copy(&readback, 0, &storage, 0, 16),
        ),
    ];
    backend.copy(&storage, 0, &readback, 0, 16).unwrap();
    // An upload buffer is only ever a copy source (after being mapped and filled).
    let upload = backend.allocate(256, BufferUsage::Upload).unwrap();
    let refused2 = [
        ("write upload", backend.write(&upload, 0, &[0u8; 16])),
        (
            "copy into upload",
            backend.copy(&storage, 0, &upload, 0, 16),
        ),
    ];
    backend.copy(&upload, 0, &storage, 0, 16).unwrap();
    for (what, r) in refused.into_iter().chain(refused2) {
        match r {
            Err(Error::InvalidArgument { reason, .. }) => {
                assert!(reason.contains("lacks"), "{what}: {reason}")
            }
            other => panic!("{what}: expected InvalidArgument, got {other:?}"),
        }
    }
    backend.wait_idle().unwrap();
    assert_eq!(backend.uncaptured_errors(), 0);
    for b in [readback, upload, storage] {
        backend.free(b);
    }
}
