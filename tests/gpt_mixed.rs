//! Mixed-precision GPT training (lavapipe in CI): f16 activations, activation gradients and
//! working weights (the tied token table's included), f32 master weights, gradients, AdamW
//! state, layer-norm statistics and softmax rows.
//!
//! Covered: a tiny GPT in mixed precision follows the same model in f32 from the same seed
//! (losses of the first steps within a tolerance derived from f16's rounding); a tiny mixed GPT
//! overfits a paragraph; an injected NaN gradient skips exactly that step (the LR schedule does
//! not advance) and halves the loss scale; a resumed mixed run is bit-identical to the run it
//! was saved from; checkpointed and plain mixed gradients are bit-identical; the optimizer path of the example (AdamW with its decay mask, in
//! `ClipGradNorm`, in `Scheduled`) has a mixed step that clips on the true (unscaled) norm,
//! skips a non-finite one and decays matrices only, checked against host references; and bad
//! input (a device without f16, a head whose embedding is not mixed, naive attention in f16, an
//! f32 input to a mixed layer) is a typed error.

mod common;

#[path = "common/own_device.rs"]
mod own;

use common::Rng;
use std::sync::Arc;
use wgmem::checkpoint::{CheckpointPolicy, GradientCheckpointer};
use wgmem::nn::{
    AttentionKernel, Block, BlockConfig, CausalSelfAttention, DropoutSwitch, Embedding, GptConfig,
    LayerNorm, Module, Parameter, Sequential, softmax_cross_entropy_scaled,
};
use wgmem::optim::{Adam, ClipGradNorm, LrSchedule, Optimizer, Scheduled, Sgd};
use wgmem::tensor::tags;
use wgmem::text::{ByteTokenizer, TokenWindows};
use wgmem::train::{LossScaleConfig, Precision, Source};
use wgmem::{
    Context, DType, Error, MemoryConfig, Tensor, Trainer, TrainerConfig, WgpuBackend,
    WgpuBackendOptions,
};

const PARAGRAPH: &str = "In the beginning God created the heaven and the earth. And the earth \
was without form, and void; and darkness was upon the face of the deep. And the Spirit of God \
moved upon the face of the waters. And God said, Let there be light: and there was light.";

fn ctx() -> Arc<Context> {
    Context::new(common::gpu_backend(), MemoryConfig::default()).unwrap()
}

fn gpt_config(layers: usize, heads: usize, context: usize) -> GptConfig {
    GptConfig {
        vocab: 256,
        layers,
        heads,
        width: 32,
        context,
        dropout: 0.0,
        seed: 3,
    }
}

/// The example's optimizer: AdamW (decay on matrices only) in `ClipGradNorm` in `Scheduled`.
fn gpt_optimizer(lr: f32, warmup: u64, steps: u64) -> Box<dyn Optimizer> {
    let schedule = LrSchedule::warmup_cosine(lr, lr / 10.0, warmup, steps).unwrap();
    let clipped = ClipGradNorm::new(Box::new(Adam::adamw(lr, 0.1)), 1.0).unwrap();
    Box::new(Scheduled::new(Box::new(clipped), schedule))
}

fn gpt_trainer(
    ctx: &Arc<Context>,
    gpt: &GptConfig,
    optimizer: Box<dyn Optimizer>,
    config: TrainerConfig,
) -> Trainer {
    Trainer::new(Arc::clone(ctx), gpt.build(ctx).unwrap(), optimizer, config).unwrap()
}

fn paragraph_windows(context: usize) -> TokenWindows {
    TokenWindows::new(ByteTokenizer.encode(PARAGRAPH.as_bytes()), context, context).unwrap()
}

#[test]
fn a_mixed_gpt_follows_the_f32_gpt_from_the_same_seed() {
    const STEPS: u64 = 6;
    let context = 19;
    let gpt = gpt_config(2, 4, context);
    let windows = paragraph_windows(context);
    let n = windows.len();
    assert_eq!(n, 13);
    let config = |precision| TrainerConfig {
        batch_size: 5,
        precision,
        ..TrainerConfig::default()
    };
    let (ctx32, ctx16) = (ctx(), ctx());
    let mut f32_run = gpt_trainer(
        &ctx32,
        &gpt,
        gpt_optimizer(3e-3, 2, STEPS),
        config(Precision::F32),
    );
    let mut mixed = gpt_trainer(
        &ctx16,
        &gpt,
        gpt_optimizer(3e-3, 2, STEPS),
        config(Precision::Mixed),
    );
    let mut worst = 0f32;
    for step in 0..STEPS as usize {
        let rows: Vec<usize> = (0..5).map(|i| (step * 5 + i * 3) % n).collect();
        let batch = windows.select(&rows).unwrap();
        let (l32, _) = f32_run.train_step(&batch).unwrap();
        let (l16, _) = mixed.train_step(&batch).unwrap();
        eprintln!("step {step}: f32 {l32:.5}, mixed {l16:.5}");
        // f16 keeps 11 significant bits (relative rounding u = 2^-11 = 4.9e-4). At this size
        // the logits are about 0.1 (unit layer-norm outputs times a table of std 0.02 over 32
        // features), and about 10 f16 roundings lie between the embedding and a logit (each
        // layer's output, each residual join), so a logit is off by about 10 u * 0.1 = 5e-4;
        // the mean cross-entropy moves by at most twice a row's largest logit error (its
        // gradient in a row sums to 2 in absolute value): 1e-3 at step 0. Each update then
        // differs by about as much relatively (AdamW's step lr * m / sqrt(v) carries the
        // gradients' f16 error), adding about that again per step. A kernel reading the wrong
        // type or a lost loss scale is off by far more (a loss near ln 256 = 5.5 stuck, or NaN).
        let tol = 1e-3 * (step as f32 + 1.0);
        assert!(
            (l16 - l32).abs() <= tol,
            "step {step}: mixed loss {l16} vs f32 {l32} (tolerance {tol})"
        );
        worst = worst.max((l16 - l32).abs());
    }
    eprintln!("largest loss difference over {STEPS} steps: {worst:.2e}");
    assert_eq!(mixed.report().steps, STEPS);
    assert_eq!(mixed.report().overflow_skipped_steps, 0);
    // The model really ran in f16: every matrix the kernels multiply by has an f16 working
    // copy (the tied token table too), equal to its rounded master after the fused update.
    let params = mixed.model().parameters();
    let token = &params[0];
    assert_eq!(token.name, "token");
    assert!(token.working.is_some(), "the tied table has a working copy");
    let mut copies = 0;
    for p in params {
        assert_eq!((p.value.dtype(), p.grad.dtype()), (DType::F32, DType::F32));
        if let Some(w) = &p.working {
            copies += 1;
            assert_eq!(w.dtype(), DType::F16);
            let (m, h) = (p.value.to_vec().unwrap(), w.to_vec().unwrap());
            assert!(
                m.iter()
                    .zip(&h)
                    .all(|(a, b)| *b == half::f16::from_f32(*a).to_f32()),
                "{}: working copy is the rounded master",
                p.name
            );
        }
    }
    // The token table and, per block, the four Linear weights.
    assert_eq!(copies, 1 + 2 * 4);
}

#[test]
fn a_tiny_mixed_gpt_overfits_a_paragraph() {
    const STEPS: u64 = 60;
    let ctx = ctx();
    let context = 21; // not a multiple of any tile
    let windows = paragraph_windows(context);
    let held = windows.first(4);
    let config = TrainerConfig {
        batch_size: 11,
        seed: 1,
        precision: Precision::Mixed,
        ..TrainerConfig::default()
    };
    let optimizer = ClipGradNorm::new(Box::new(Adam::adamw(1e-2, 0.0)), 1.0).unwrap();
    let mut trainer = gpt_trainer(
        &ctx,
        &gpt_config(1, 2, context),
        Box::new(optimizer),
        config,
    );
    let mut losses = Vec::new();
    let evals = trainer
        .train_steps_evaluating(&windows, &held, STEPS, 30, |s| losses.push(s.loss), |_| {})
        .unwrap();
    eprintln!(
        "mixed: loss {:.3} -> {:.3}; evaluations {:?}; {}",
        losses[0],
        losses.last().unwrap(),
        evals,
        trainer.report()
    );
    assert!(
        (losses[0] - 256f32.ln()).abs() < 0.5,
        "first loss {}",
        losses[0]
    );
    // As the f32 test (gpt_train.rs) states: 0.5 nats per byte is far below any model of
    // English at this scale, so reaching it means the paragraph was memorised.
    let last = evals.last().unwrap();
    assert!(last.loss < 0.6, "held-out (memorised) loss {}", last.loss);
    assert!(
        *losses.last().unwrap() < 0.5,
        "train loss {:?}",
        losses.last()
    );
    assert!(last.accuracy > 0.8, "accuracy {}", last.accuracy);
    assert_eq!(trainer.report().steps, STEPS);
}

#[test]
fn an_injected_nan_gradient_skips_the_gpt_step_and_halves_the_scale() {
    let ctx = ctx();
    let context = 19;
    let windows = paragraph_windows(context);
    let batch = windows.first(5);
    let config = TrainerConfig {
        batch_size: 5,
        precision: Precision::Mixed,
        loss_scale: LossScaleConfig {
            initial: 1024.0,
            growth_interval: 3,
            ..LossScaleConfig::default()
        },
        ..TrainerConfig::default()
    };
    let mut t = gpt_trainer(
        &ctx,
        &gpt_config(1, 2, context),
        gpt_optimizer(3e-3, 2, 10),
        config,
    );
    let (first, _) = t.train_step(&batch).unwrap();
    assert_eq!(t.report().steps, 1);
    // Adam's step and the schedule's step.
    assert_eq!(t.optimizer().state_counters(), [1, 1]);
    let lr = t.optimizer().learning_rate();
    let snapshot = |t: &mut Trainer| -> Vec<Vec<f32>> {
        let mut all = Vec::new();
        for p in t.model().parameters() {
            all.push(p.value.to_vec().unwrap());
            all.extend(p.working.as_ref().map(|w| w.to_vec().unwrap()));
        }
        all
    };
    let before = snapshot(&mut t);
    // Poison one entry of the first block's attention projection weight's gradient.
    {
        let params = t.model().parameters();
        let g = &params
            .iter()
            .find(|p| p.value.shape() == [32, 96])
            .expect("the packed qkv weight")
            .grad;
        let mut poison = vec![0.0; g.len()];
        poison[g.len() / 3] = f32::NAN;
        g.write(&poison).unwrap();
    }
    t.train_step(&batch).unwrap();
    assert_eq!(t.report().overflow_skipped_steps, 1, "the step was skipped");
    assert_eq!(t.report().steps, 1, "no update counted");
    assert_eq!(t.loss_scale(), Some(512.0), "the scale halved");
    assert_eq!(
        t.optimizer().state_counters(),
        [1, 1],
        "neither Adam nor the schedule advanced"
    );
    assert_eq!(t.optimizer().learning_rate(), lr);
    assert!(
        before == snapshot(&mut t),
        "no weight or working copy changed"
    );
    // Training goes on: three good steps grow the scale back and the loss falls.
    let mut last = first;
    for _ in 0..3 {
        last = t.train_step(&batch).unwrap().0;
    }
    assert_eq!(t.report().steps, 4);
    assert_eq!(t.loss_scale(), Some(1024.0), "grown after 3 good steps");
    assert!(last < first, "loss {first} -> {last}");
}

/// Every master weight and working copy, as bits.
fn weight_bits(t: &mut Trainer) -> Vec<Vec<u32>> {
    let mut all = Vec::new();
    for p in t.model().parameters() {
        let bits = |x: &Tensor| x.to_vec().unwrap().iter().map(|v| v.to_bits()).collect();
        all.push(bits(&p.value));
        all.extend(p.working.as_ref().map(bits));
    }
    all
}

#[test]
fn a_resumed_mixed_gpt_run_is_bit_identical() {
    let context = 19;
    let gpt = gpt_config(1, 2, context);
    let windows = paragraph_windows(context);
    let batches: Vec<_> = (0..5)
        .map(|b| windows.select(&[b, b + 5, (b + 9) % 13]).unwrap())
        .collect();
    let config = || TrainerConfig {
        batch_size: 3,
        precision: Precision::Mixed,
        ..TrainerConfig::default()
    };
    let ctx = ctx();
    let mut a = gpt_trainer(&ctx, &gpt, gpt_optimizer(3e-3, 2, 5), config());
    for b in &batches[..2] {
        a.train_step(b).unwrap();
    }
    let state = a.state().unwrap();
    // A fresh trainer from another seed: everything that matters comes from the state,
    // the tied table's working copy (rewritten from the loaded master) included.
    let other = GptConfig {
        seed: 99,
        ..gpt.clone()
    };
    let mut b = gpt_trainer(&ctx, &other, gpt_optimizer(3e-3, 2, 5), config());
    b.restore(state).unwrap();
    assert!(
        weight_bits(&mut a) == weight_bits(&mut b),
        "restored weights"
    );
    for batch in &batches[2..] {
        let (la, _) = a.train_step(batch).unwrap();
        let (lb, _) = b.train_step(batch).unwrap();
        assert_eq!(la.to_bits(), lb.to_bits(), "loss");
    }
    assert_eq!(
        a.optimizer().state_counters(),
        b.optimizer().state_counters()
    );
    assert!(
        weight_bits(&mut a) == weight_bits(&mut b),
        "weights after resuming"
    );
}

const VOCAB: usize = 13;
const WIDTH: usize = 32;
const SEQ: usize = 11;
const BATCH: usize = 3;

/// A GPT of blocks with dropout (as tests/block.rs), switched to f16.
fn mixed_gpt(ctx: &Arc<Context>, blocks: usize) -> Sequential {
    let emb = Embedding::new(ctx, VOCAB, WIDTH, 1)
        .unwrap()
        .with_positions(16, 2)
        .unwrap();
    let head = emb.tied_head();
    let mut model = Sequential::new().with(emb);
    let mut config = BlockConfig::new(WIDTH, 4);
    config.dropout = 0.1;
    config.switch = DropoutSwitch::new();
    for i in 0..blocks {
        model.push(Block::new(ctx, &config, 10 * (i as u64 + 1)).unwrap());
    }
    let mut model = model.with(LayerNorm::new(ctx, WIDTH).unwrap()).with(head);
    model.set_precision(DType::F16).unwrap();
    model
}

/// One mixed forward and backward (loss scale 1024): the loss and every f32 gradient.
fn mixed_step(
    ctx: &Arc<Context>,
    policy: CheckpointPolicy,
    ids: &[u32],
    targets: &[u32],
) -> (f32, Vec<Vec<f32>>) {
    let mut model = mixed_gpt(ctx, 4);
    let mut ck = GradientCheckpointer::new(policy);
    let tokens = Arc::new(wgmem::nn::token_tensor(ctx, ids, [BATCH, SEQ], VOCAB).unwrap());
    let labels = ctx.upload_u32(targets, tags::DATA).unwrap();
    if policy != CheckpointPolicy::None {
        let plan = ck.prepare(&mut model, &tokens).unwrap();
        assert!(
            plan.boundaries.len() > 1,
            "{policy:?} checkpoints something"
        );
    }
    let loss = ck
        .forward_backward(&mut model, tokens, |logits: Arc<Tensor>| {
            assert_eq!(logits.dtype(), DType::F16, "f16 logits");
            let logits = Arc::try_unwrap(logits)
                .expect("the head keeps its input, not its output")
                .reshape(&[BATCH * SEQ, VOCAB])?;
            let out = softmax_cross_entropy_scaled(&logits, &labels, BATCH * SEQ, 1024.0)?;
            let loss = out.read()?.0;
            Ok((out.grad.reshape(&[BATCH, SEQ, VOCAB])?, loss))
        })
        .unwrap();
    let grads = model
        .parameters()
        .iter()
        .map(|p| p.grad.to_vec().unwrap())
        .collect();
    (loss, grads)
}

#[test]
fn checkpointed_and_plain_mixed_gradients_are_bit_identical() {
    let ctx = ctx();
    let mut rng = Rng::new(21);
    let ids: Vec<u32> = (0..BATCH * SEQ)
        .map(|_| (rng.next_u64() % VOCAB as u64) as u32)
        .collect();
    let targets: Vec<u32> = ids[1..].iter().copied().chain([0]).collect();
    let (loss, plain) = mixed_step(&ctx, CheckpointPolicy::None, &ids, &targets);
    assert!(loss.is_finite() && loss > 1.0, "loss {loss}");
    assert!(
        plain
            .iter()
            .all(|g| g.iter().all(|v| v.is_finite()) && g.iter().any(|&v| v != 0.0)),
        "every parameter gets a finite gradient"
    );
    for policy in [
        CheckpointPolicy::EveryK(1),
        CheckpointPolicy::EveryK(2),
        CheckpointPolicy::SqrtN,
    ] {
        let (l, grads) = mixed_step(&ctx, policy, &ids, &targets);
        assert_eq!(l.to_bits(), loss.to_bits(), "{policy:?}: loss");
        assert_eq!(grads.len(), plain.len());
        for (k, (a, b)) in grads.iter().zip(&plain).enumerate() {
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert!(bits(a) == bits(b), "{policy:?}: parameter {k} differs");
        }
    }
}

/// A parameter with `value`, gradient `grad` and, when `working`, an f16 working copy.
fn parameter(ctx: &Arc<Context>, value: &[f32], grad: &[f32], shape: &[usize]) -> Parameter {
    Parameter {
        name: format!("{shape:?}"),
        value: ctx.from_slice(value, shape, tags::PARAMS).unwrap(),
        grad: ctx.from_slice(grad, shape, tags::GRADIENTS).unwrap(),
        working: (shape.len() > 1).then(|| ctx.zeros_of(shape, DType::F16, tags::PARAMS).unwrap()),
    }
}

#[test]
fn mixed_clipping_clips_on_the_unscaled_norm_and_skips_a_non_finite_one() {
    let ctx = ctx();
    let mut rng = Rng::new(5);
    let shapes: [&[usize]; 2] = [&[5, 3], &[7]];
    let values: Vec<Vec<f32>> = shapes.iter().map(|s| rng.vec(s.iter().product())).collect();
    // True gradients in [-1, 1): a norm of about 2.7, clipped at 0.5; not at 100.
    let grads: Vec<Vec<f32>> = shapes.iter().map(|s| rng.vec(s.iter().product())).collect();
    let norm = grads
        .iter()
        .flatten()
        .map(|&g| f64::from(g).powi(2))
        .sum::<f64>()
        .sqrt();
    const SCALE: f32 = 1024.0; // a power of two: the scaled gradients are exact
    for max_norm in [0.5f32, 100.0] {
        let mut params: Vec<Parameter> = shapes
            .iter()
            .zip(&values)
            .zip(&grads)
            .map(|((s, v), g)| {
                let scaled: Vec<f32> = g.iter().map(|x| x * SCALE).collect();
                parameter(&ctx, v, &scaled, s)
            })
            .collect();
        // SGD at learning rate 1 makes the update the (clipped) gradient itself.
        let mut clip = ClipGradNorm::new(Box::new(Sgd::new(1.0, 0.0)), max_norm).unwrap();
        clip.step_mixed(params.iter_mut().collect(), 1.0 / SCALE)
            .unwrap();
        let seen = f64::from(clip.last_norm().unwrap());
        assert!(
            (seen - norm).abs() <= 1e-5 * norm,
            "the norm compared is the true one: {seen} vs {norm}"
        );
        let factor = (f64::from(max_norm) / norm).min(1.0);
        for ((p, v), g) in params.iter().zip(&values).zip(&grads) {
            let got = p.value.to_vec().unwrap();
            for ((&a, &v), &g) in got.iter().zip(v).zip(g) {
                let want = f64::from(v) - factor * f64::from(g);
                assert!(
                    (f64::from(a) - want).abs() <= 1e-6 * (1.0 + want.abs()),
                    "max norm {max_norm}: {a} vs {want}"
                );
            }
            assert!(p.grad.to_vec().unwrap().iter().all(|&g| g == 0.0));
            if let Some(w) = &p.working {
                let h = w.to_vec().unwrap();
                assert!(
                    got.iter()
                        .zip(&h)
                        .all(|(a, b)| *b == half::f16::from_f32(*a).to_f32())
                );
            }
        }
    }
    // An overflowed gradient: nothing is updated, the gradients are cleared.
    let mut poisoned = grads.clone();
    poisoned[1][2] = f32::INFINITY;
    let mut params: Vec<Parameter> = shapes
        .iter()
        .zip(&values)
        .zip(&poisoned)
        .map(|((s, v), g)| parameter(&ctx, v, g, s))
        .collect();
    let mut clip = ClipGradNorm::new(Box::new(Sgd::new(1.0, 0.0)), 0.5).unwrap();
    clip.step_mixed(params.iter_mut().collect(), 1.0 / SCALE)
        .unwrap();
    assert!(!clip.last_norm().unwrap().is_finite());
    for (p, v) in params.iter().zip(&values) {
        assert_eq!(&p.value.to_vec().unwrap(), v, "skipped, not clipped");
        assert!(p.grad.to_vec().unwrap().iter().all(|&g| g == 0.0));
    }
}

#[test]
fn mixed_adamw_decays_matrices_only_like_the_f32_step() {
    let ctx = ctx();
    let mut rng = Rng::new(9);
    let shapes: [&[usize]; 2] = [&[4, 6], &[6]];
    let values: Vec<Vec<f32>> = shapes.iter().map(|s| rng.vec(s.iter().product())).collect();
    // Zero gradients: Adam's own update is 0, so only the decoupled decay moves a weight,
    // p *= 1 - lr * wd, and only where the mask decays.
    let (lr, wd) = (0.1f32, 0.5f32);
    let run = |mixed: bool| -> Vec<Vec<f32>> {
        let mut params: Vec<Parameter> = shapes
            .iter()
            .zip(&values)
            .map(|(s, v)| parameter(&ctx, v, &vec![0.0; v.len()], s))
            .collect();
        let mut adam = Adam::adamw(lr, wd);
        let list = params.iter_mut().collect();
        if mixed {
            adam.step_mixed(list, 1.0 / 64.0).unwrap();
        } else {
            adam.step(list).unwrap();
        }
        params.iter().map(|p| p.value.to_vec().unwrap()).collect()
    };
    let (mixed, plain) = (run(true), run(false));
    let decayed: Vec<f64> = values[0]
        .iter()
        .map(|&v| f64::from(v) * (1.0 - f64::from(lr * wd)))
        .collect();
    for (got, want) in [&mixed[0], &plain[0]].into_iter().zip([&decayed, &decayed]) {
        for (&a, &b) in got.iter().zip(want) {
            assert!(
                (f64::from(a) - b).abs() <= 1e-6,
                "matrix decayed: {a} vs {b}"
            );
        }
    }
    assert_eq!(
        mixed[1], values[1],
        "the mixed step does not decay a vector"
    );
    assert_eq!(plain[1], values[1], "nor does the f32 step");
}

#[test]
fn bad_mixed_gpt_input_is_a_typed_error() {
    // A device without SHADER_F16 (one created without it, as an application may).
    let (device, queue) = own::own_device();
    let backend = WgpuBackend::from_device(device, queue, WgpuBackendOptions::default()).unwrap();
    let plain = Context::new(Arc::new(backend), MemoryConfig::default()).unwrap();
    assert!(!plain.gpu().supports_f16());
    let gpt = gpt_config(1, 2, 8);
    let Err(err) = Trainer::new(
        Arc::clone(&plain),
        gpt.build(&plain).unwrap(),
        gpt_optimizer(1e-3, 1, 10),
        TrainerConfig {
            precision: Precision::Mixed,
            ..TrainerConfig::default()
        },
    ) else {
        panic!("mixed precision on a device without f16 was accepted");
    };
    assert!(
        matches!(
            err,
            Error::UnsupportedDType {
                dtype: DType::F16,
                ..
            }
        ),
        "{err}"
    );
    let err = gpt
        .build(&plain)
        .unwrap()
        .set_precision(DType::F16)
        .unwrap_err();
    assert!(
        matches!(err, Error::UnsupportedDType { .. }),
        "the model alone refuses too: {err}"
    );

    let ctx = ctx();
    // A tied head whose embedding is still f32 says what to do.
    let emb = Embedding::new(&ctx, VOCAB, WIDTH, 1).unwrap();
    let mut head = emb.tied_head();
    let err = head.set_precision(DType::F16).unwrap_err();
    assert!(
        matches!(
            err,
            Error::InvalidArgument {
                what: "TiedHead precision",
                ..
            }
        ),
        "{err}"
    );
    // The naive reference attention has no f16 kernels.
    let mut naive = CausalSelfAttention::new(&ctx, WIDTH, 4, 0)
        .unwrap()
        .with_kernel(AttentionKernel::Naive);
    let err = naive.set_precision(DType::F16).unwrap_err();
    assert!(
        matches!(
            err,
            Error::InvalidArgument {
                what: "attention precision",
                ..
            }
        ),
        "{err}"
    );
    // A mixed layer norm given f32 activations names the type it needs.
    let mut ln = LayerNorm::new(&ctx, WIDTH).unwrap();
    ln.set_precision(DType::F16).unwrap();
    let x = Arc::new(ctx.zeros(&[2, WIDTH], tags::DATA).unwrap());
    let err = ln.forward(x, false).unwrap_err();
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
    // A mixed GPT still takes f32 token ids, and a bad id is still refused on the host.
    let mut model = gpt_config(1, 2, 8).build(&ctx).unwrap();
    model.set_precision(DType::F16).unwrap();
    let err = wgmem::nn::token_tensor(&ctx, &[1, 256], [1, 2], 256).unwrap_err();
    assert!(
        matches!(
            err,
            Error::InvalidArgument {
                what: "token id",
                ..
            }
        ),
        "{err}"
    );
    let ids = Arc::new(wgmem::nn::token_tensor(&ctx, &[1, 2, 3], [1, 3], 256).unwrap());
    let logits = model.forward(ids, false).unwrap();
    assert_eq!(
        (logits.dtype(), logits.shape()),
        (DType::F16, &[1, 3, 256][..])
    );
}
