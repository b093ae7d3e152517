//! The bad-input catalogue, continued (cases 38–49): layer chains, checkpoint plans, layer
//! sizes, trainer state given to the wrong trainer, ZeRO-1 without Adam. GPU cases run on lavapipe in CI. Each
//! test checks the typed error, what it says, and that the thing it was given to still works;
//! the catalogue's table is in `tests/bad_input.rs`.

mod common;

use std::sync::Arc;
use wgmem::checkpoint::CheckpointPlan;
use wgmem::nn::{Linear, Module, Relu, Sequential};
use wgmem::optim::{Adam, Sgd};
use wgmem::tensor::tags;
use wgmem::train::{NamedArray, TrainerState};
use wgmem::{Backend, Context, Error, MemoryConfig, Trainer, TrainerConfig};

fn ctx() -> Arc<Context> {
    Context::new(common::gpu_backend(), MemoryConfig::default()).unwrap()
}

fn chain(ctx: &Arc<Context>) -> Sequential {
    Sequential::new()
        .with(Linear::new(ctx, 3, 5, 1).unwrap().with_relu())
        .with(Linear::new(ctx, 5, 2, 2).unwrap())
}

fn input(ctx: &Arc<Context>) -> Arc<wgmem::Tensor> {
    let x = ctx
        .from_slice(&[0.5, -1.0, 2.0, 1.5, 0.25, -0.75], &[2, 3], tags::DATA)
        .unwrap();
    Arc::new(x)
}

fn trainer(ctx: &Arc<Context>, model: Sequential) -> Trainer {
    let config = TrainerConfig {
        epochs: 1,
        batch_size: 4,
        ..TrainerConfig::default()
    };
    Trainer::new(Arc::clone(ctx), model, Box::new(Adam::new(1e-3)), config).unwrap()
}

fn expect_invalid(e: Error, what_expected: &str, says: &[&str]) {
    match e {
        Error::InvalidArgument { what, reason } => {
            assert_eq!(what, what_expected);
            for s in says {
                assert!(reason.contains(s), "'{reason}' should mention '{s}'");
            }
        }
        other => panic!("expected InvalidArgument, got {other:?}"),
    }
}

/// A state of one epoch, one step, with the given arrays.
fn state_with(arrays: Vec<NamedArray>) -> TrainerState {
    TrainerState {
        steps: 1,
        micro_batch: 4,
        optimizer_counters: vec![1],
        arrays,
        ..TrainerState::default()
    }
}

fn array(name: &str, shape: &[usize]) -> NamedArray {
    NamedArray {
        name: name.into(),
        shape: shape.to_vec(),
        data: vec![0.25; shape.iter().product()],
    }
}

#[test]
fn bad_38_a_forward_range_past_the_chain_is_an_invalid_argument() {
    let ctx = ctx();
    let mut model = chain(&ctx);
    let e = model.forward_range(0..3, input(&ctx), false).unwrap_err();
    expect_invalid(e, "Sequential::forward_range", &["0..3", "chain of 2"]);
    #[allow(clippy::reversed_empty_ranges)]
    let e = model.forward_range(2..1, input(&ctx), false).unwrap_err();
    expect_invalid(e, "Sequential::forward_range", &["2..1"]);
    // The chain still runs, and an empty range at the end is the identity.
    let out = model.forward_range(0..2, input(&ctx), false).unwrap();
    assert_eq!(out.shape(), &[2, 2]);
    let same = model.forward_range(2..2, Arc::clone(&out), false).unwrap();
    assert!(Arc::ptr_eq(&same, &out));
}

#[test]
fn bad_39_a_backward_range_outside_the_chain_is_an_invalid_argument() {
    let ctx = ctx();
    let mut model = chain(&ctx);
    let out = model.forward(input(&ctx), true).unwrap();
    let grad = || ctx.zeros(out.shape(), tags::ACTIVATIONS).unwrap();
    #[allow(clippy::reversed_empty_ranges)]
    let e = model.backward_range(1..0, grad(), true).unwrap_err();
    expect_invalid(e, "Sequential::backward_range", &["1..0"]);
    let e = model.backward_range(0..7, grad(), true).unwrap_err();
    expect_invalid(e, "Sequential::backward_range", &["0..7", "chain of 2"]);
    // The saved activations were not consumed by the refused calls: backward still works.
    let dx = model.backward_range(0..2, grad(), true).unwrap().unwrap();
    assert_eq!(dx.shape(), &[2, 3]);
}

#[test]
fn bad_40_a_checkpoint_plan_without_boundaries_is_an_invalid_argument() {
    let plan = CheckpointPlan {
        boundaries: Vec::new(),
        predicted_peak: 0,
        predicted_recompute: 0,
    };
    expect_invalid(
        plan.segments(4).unwrap_err(),
        "checkpoint boundaries",
        &["[]", "start at 0"],
    );
    let whole = CheckpointPlan {
        boundaries: vec![0],
        ..plan
    };
    assert_eq!(whole.segments(4).unwrap(), vec![0..4]);
}

#[test]
fn bad_41_checkpoint_boundaries_out_of_order_or_past_the_chain_are_invalid_arguments() {
    for boundaries in [
        vec![1, 2],
        vec![0, 2, 2],
        vec![0, 3, 1],
        vec![0, 4],
        vec![0, 9],
    ] {
        let plan = CheckpointPlan {
            boundaries: boundaries.clone(),
            predicted_peak: 0,
            predicted_recompute: 0,
        };
        expect_invalid(
            plan.segments(4).unwrap_err(),
            "checkpoint boundaries",
            &["below 4"],
        );
    }
    let plan = CheckpointPlan {
        boundaries: vec![0, 1, 3],
        predicted_peak: 0,
        predicted_recompute: 0,
    };
    assert_eq!(plan.segments(4).unwrap(), vec![0..1, 1..3, 3..4]);
}

#[test]
fn bad_42_a_linear_layer_whose_weight_count_overflows_is_an_invalid_argument() {
    let ctx = ctx();
    let e = Linear::new(&ctx, usize::MAX / 2, 3, 0).err().unwrap();
    expect_invalid(e, "Linear size", &["64 bits"]);
    let e = Linear::new(&ctx, usize::MAX / 4, 2, 0).err().unwrap();
    expect_invalid(e, "Linear size", &["64 bits"]);
    assert_eq!(ctx.memory().stats().live_bytes, 0, "nothing was allocated");
}

#[test]
fn bad_43_a_linear_layer_larger_than_the_largest_buffer_is_too_large() {
    let ctx = ctx();
    let max = ctx.backend().capabilities().max_buffer_size;
    // One row more than the largest buffer holds: refused before 4 * rows * 1024 host bytes
    // of weights are drawn.
    let rows = (max / 4 / 1024 + 1) as usize;
    match Linear::new(&ctx, rows, 1024, 0) {
        Err(Error::TooLarge { requested, max: m }) => {
            assert_eq!(m, max);
            assert_eq!(requested, rows as u64 * 1024 * 4);
        }
        Err(other) => panic!("expected TooLarge, got {other:?}"),
        Ok(_) => panic!("expected TooLarge, got a layer"),
    }
    assert!(Linear::new(&ctx, 8, 4, 0).is_ok());
}

#[test]
fn bad_44_optimizer_state_for_a_model_without_parameters_is_an_invalid_argument() {
    // The model has one layer and no parameters: `optim.len() % 0` panicked here.
    let ctx = ctx();
    let mut t = trainer(&ctx, Sequential::new().with(Relu::new()));
    let state = state_with(vec![array("optim.0", &[3]), array("optim.1", &[3])]);
    let e = t.restore(state).unwrap_err();
    expect_invalid(
        e,
        "trainer state",
        &["2 optimizer tensors", "no parameters"],
    );
    assert_eq!(t.report().steps, 0, "nothing restored");
}

#[test]
fn bad_45_a_state_of_another_model_is_refused_and_changes_nothing() {
    let ctx = ctx();
    let mut t = trainer(&ctx, chain(&ctx));
    let before: Vec<Vec<f32>> = t
        .model()
        .parameters()
        .iter()
        .map(|p| p.value.to_vec().unwrap())
        .collect();
    // One parameter too few.
    let e = t
        .restore(state_with(vec![array("param.0.weight", &[3, 5])]))
        .unwrap_err();
    expect_invalid(e, "trainer state", &["1 parameters saved", "has 4"]);
    // The right count, one wrong shape.
    let arrays = vec![
        array("param.0.weight", &[3, 5]),
        array("param.1.bias", &[5]),
        array("param.2.weight", &[5, 3]),
        array("param.3.bias", &[2]),
    ];
    let e = t.restore(state_with(arrays)).unwrap_err();
    assert!(
        matches!(&e, Error::Shape { op: "Trainer::load_state", left, right, .. }
            if left == &vec![5, 3] && right == &vec![5, 2]),
        "{e:?}"
    );
    let after: Vec<Vec<f32>> = t
        .model()
        .parameters()
        .iter()
        .map(|p| p.value.to_vec().unwrap())
        .collect();
    assert_eq!(before, after, "parameters untouched");
}

#[test]
fn bad_46_optimizer_tensors_that_do_not_divide_among_the_parameters_are_refused() {
    let ctx = ctx();
    let mut t = trainer(&ctx, chain(&ctx));
    let mut arrays = vec![
        array("param.0.weight", &[3, 5]),
        array("param.1.bias", &[5]),
        array("param.2.weight", &[5, 2]),
        array("param.3.bias", &[2]),
    ];
    // Three optimizer tensors for four parameters.
    arrays.extend((0..3).map(|i| array(&format!("optim.{i}"), &[3, 5])));
    let e = t.restore(state_with(arrays)).unwrap_err();
    expect_invalid(
        e,
        "trainer state",
        &["3 optimizer tensors for 4 parameters"],
    );
}

#[test]
fn bad_47_state_arrays_named_neither_param_nor_optim_are_refused() {
    let ctx = ctx();
    let mut t = trainer(&ctx, chain(&ctx));
    let e = t
        .restore(state_with(vec![array("weights", &[3, 5])]))
        .unwrap_err();
    expect_invalid(e, "trainer state", &["param.*", "optim.*"]);
}

#[test]
fn bad_48_loading_a_missing_state_into_a_trainer_is_a_file_error_and_training_goes_on() {
    let ctx = ctx();
    let mut t = Trainer::new(
        Arc::clone(&ctx),
        chain(&ctx),
        Box::new(Sgd::new(0.1, 0.0)),
        TrainerConfig {
            epochs: 1,
            batch_size: 2,
            ..TrainerConfig::default()
        },
    )
    .unwrap();
    let path = std::env::temp_dir().join("wgmem-no-such-run.state");
    let e = t.load_state(&path).unwrap_err();
    assert!(matches!(&e, Error::File { op: "read", .. }), "{e:?}");
    assert!(e.to_string().contains("wgmem-no-such-run.state"), "{e}");
    let data = wgmem::data::Dataset::from_csv("1,2,3,0\n3,2,1,1\n0,1,0,0\n").unwrap();
    let report = t.fit(&data, None, |_| {}).unwrap();
    assert_eq!(report.steps, 2);
}

#[test]
fn bad_49_zero1_with_an_optimizer_that_is_not_adam_is_an_invalid_argument() {
    // ZeRO-1 finds Adam by type (the optimizer trait has no Adam-only method).
    let ctx = ctx();
    let config = TrainerConfig {
        epochs: 1,
        batch_size: 4,
        zero1: true,
        ..TrainerConfig::default()
    };
    let sgd = Box::new(Sgd::new(0.1, 0.0));
    let e = Trainer::new(Arc::clone(&ctx), chain(&ctx), sgd, config.clone())
        .err()
        .unwrap();
    expect_invalid(e, "zero1", &["must be a plain Adam"]);
    let adam = Box::new(Adam::new(1e-3));
    let mut t = Trainer::new(Arc::clone(&ctx), chain(&ctx), adam, config).unwrap();
    let data = wgmem::data::Dataset::from_csv("1,2,3,0\n3,2,1,1\n0,1,0,0\n").unwrap();
    assert_eq!(t.fit(&data, None, |_| {}).unwrap().steps, 1);
}
