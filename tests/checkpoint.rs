//! Gradient checkpointing on the GPU: every policy gives the same gradients as no
//! checkpointing (bit for bit: the recomputation runs the same kernels on the same inputs in
//! the same order), `SqrtN` cuts the measured activation peak of a 32-layer MLP to about
//! 2·sqrt(n)/n of the plain peak plus one segment, and a `Budget(b)` plan keeps the measured
//! peak within `b`.

mod common;

use common::Rng;
use std::sync::Arc;
use wgmem::checkpoint::{CheckpointPolicy, GradientCheckpointer};
use wgmem::nn::{Linear, Module, Sequential, softmax_cross_entropy};
use wgmem::tensor::tags;
use wgmem::{Context, MemoryConfig};

fn mlp(
    ctx: &Arc<Context>,
    layers: usize,
    width: usize,
    inputs: usize,
    classes: usize,
) -> Sequential {
    let mut model = Sequential::new();
    let mut w = inputs;
    for i in 0..layers - 1 {
        model.push(Linear::new(ctx, w, width, i as u64).unwrap().with_relu());
        w = width;
    }
    model.push(Linear::new(ctx, w, classes, 999).unwrap());
    model
}

/// One forward+backward; returns the gradients and the measured activation peak.
fn step(
    ctx: &Arc<Context>,
    model: &mut Sequential,
    ck: &mut GradientCheckpointer,
    x: &[f32],
    labels: &[u32],
    rows: usize,
    inputs: usize,
) -> (Vec<Vec<f32>>, u64) {
    let xt = Arc::new(ctx.from_slice(x, &[rows, inputs], tags::DATA).unwrap());
    let lt = ctx.upload_u32(labels, tags::DATA).unwrap();
    ck.prepare(model, &xt).unwrap();
    ctx.memory().reset_peaks();
    ck.forward_backward(model, xt, |logits| {
        let out = softmax_cross_entropy(&logits, &lt, rows)?;
        Ok((out.grad, ()))
    })
    .unwrap();
    let peak = ctx.memory().stats().peak_for_tag(tags::ACTIVATIONS);
    let grads = model
        .parameters()
        .iter()
        .map(|p| p.grad.to_vec().unwrap())
        .collect();
    for p in model.parameters() {
        p.zero_grad().unwrap();
    }
    (grads, peak)
}

fn setup(rows: usize, inputs: usize, classes: usize) -> (Arc<Context>, Vec<f32>, Vec<u32>) {
    let ctx = Context::new(common::gpu_backend(), MemoryConfig::default()).unwrap();
    let mut rng = Rng::new(17);
    let x = rng.vec(rows * inputs);
    let labels = (0..rows)
        .map(|_| (rng.next_u64() % classes as u64) as u32)
        .collect();
    (ctx, x, labels)
}

#[test]
fn every_policy_gives_bit_identical_gradients() {
    let (rows, inputs, classes) = (13, 9, 5);
    let (ctx, x, labels) = setup(rows, inputs, classes);
    let mut model = mlp(&ctx, 8, 33, inputs, classes);
    let (reference, none_peak) = step(
        &ctx,
        &mut model,
        &mut GradientCheckpointer::new(CheckpointPolicy::None),
        &x,
        &labels,
        rows,
        inputs,
    );
    let mut probe = GradientCheckpointer::new(CheckpointPolicy::SqrtN);
    step(&ctx, &mut model, &mut probe, &x, &labels, rows, inputs);
    let smallest = wgmem::checkpoint::plan::smallest_feasible_budget(probe.profile());
    let policies = [
        CheckpointPolicy::EveryK(1),
        CheckpointPolicy::EveryK(3),
        CheckpointPolicy::SqrtN,
        CheckpointPolicy::Budget(smallest),
        CheckpointPolicy::Budget((smallest + none_peak) / 2),
    ];
    for policy in policies {
        let mut ck = GradientCheckpointer::new(policy);
        let (grads, _) = step(&ctx, &mut model, &mut ck, &x, &labels, rows, inputs);
        assert_eq!(grads.len(), reference.len());
        for (g, r) in grads.iter().zip(&reference) {
            let same = g.iter().zip(r).all(|(a, b)| a.to_bits() == b.to_bits());
            assert!(
                same,
                "{policy:?} (plan {:?}) changed a gradient",
                ck.plan().map(|p| &p.boundaries)
            );
        }
    }
}

#[test]
fn sqrt_n_and_budget_plans_bound_the_measured_activation_peak() {
    let (rows, inputs, classes, width, layers) = (32, 16, 10, 64, 32);
    let (ctx, x, labels) = setup(rows, inputs, classes);
    let mut model = mlp(&ctx, layers, width, inputs, classes);
    let (_, none_peak) = step(
        &ctx,
        &mut model,
        &mut GradientCheckpointer::new(CheckpointPolicy::None),
        &x,
        &labels,
        rows,
        inputs,
    );

    let mut sqrt = GradientCheckpointer::new(CheckpointPolicy::SqrtN);
    let (_, sqrt_peak) = step(&ctx, &mut model, &mut sqrt, &x, &labels, rows, inputs);
    let plan = sqrt.plan().unwrap().clone();
    let segment_bytes = plan
        .segments(layers)
        .unwrap()
        .iter()
        .map(|s| {
            sqrt.profile()[s.clone()]
                .iter()
                .map(|l| l.saved_bytes)
                .sum::<u64>()
        })
        .max()
        .unwrap();
    let n = layers as f64;
    let bound = 2.0 * n.sqrt() / n * none_peak as f64 + segment_bytes as f64;
    eprintln!(
        "none peak {none_peak}, sqrt peak {sqrt_peak} (predicted {}), bound {bound:.0}",
        plan.predicted_peak
    );
    assert!(
        (sqrt_peak as f64) <= bound,
        "sqrt peak {sqrt_peak} over {bound}"
    );
    assert!(
        sqrt_peak <= plan.predicted_peak,
        "the model's prediction is an upper bound"
    );

    for fraction in [0.35, 0.5, 0.8] {
        let budget = (none_peak as f64 * fraction) as u64;
        let mut ck = GradientCheckpointer::new(CheckpointPolicy::Budget(budget));
        let (_, peak) = step(&ctx, &mut model, &mut ck, &x, &labels, rows, inputs);
        let plan = ck.plan().unwrap();
        eprintln!(
            "budget {budget}: measured {peak}, predicted {}, recompute {} ns, boundaries {:?}",
            plan.predicted_peak, plan.predicted_recompute, plan.boundaries
        );
        assert!(
            peak <= budget,
            "measured activation peak {peak} over the budget {budget}"
        );
    }

    let mut impossible = GradientCheckpointer::new(CheckpointPolicy::Budget(1024));
    let xt = Arc::new(ctx.from_slice(&x, &[rows, inputs], tags::DATA).unwrap());
    let err = impossible.prepare(&mut model, &xt).unwrap_err().to_string();
    assert!(err.contains("smallest feasible budget"), "{err}");
}

#[test]
fn policies_parse_from_text() {
    assert_eq!(
        "none".parse::<CheckpointPolicy>().unwrap(),
        CheckpointPolicy::None
    );
    assert_eq!(
        "sqrt".parse::<CheckpointPolicy>().unwrap(),
        CheckpointPolicy::SqrtN
    );
    assert_eq!(
        "every:4".parse::<CheckpointPolicy>().unwrap(),
        CheckpointPolicy::EveryK(4)
    );
    assert_eq!(
        "budget:64M".parse::<CheckpointPolicy>().unwrap(),
        CheckpointPolicy::Budget(64 << 20)
    );
    for bad in [
        "every:0",
        "every:x",
        "budget:0",
        "budget:12Q",
        "sometimes",
        "",
    ] {
        assert!(bad.parse::<CheckpointPolicy>().is_err(), "{bad}");
    }
}
