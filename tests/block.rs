//! The pre-norm transformer `Block` and a small GPT built from it: the block against finite
//! differences, and checkpointed gradients bit-identical to plain ones for a model of
//! embedding, blocks (with dropout on), a final layer norm and a tied head, under every
//! policy. Each block is one layer of the `Sequential`, so one segment unit for the planner.

mod common;

use common::Rng;
use std::sync::Arc;
use wgmem::checkpoint::{CheckpointPolicy, GradientCheckpointer};
use wgmem::nn::{
    AttentionKernel, Block, BlockConfig, DropoutSwitch, Embedding, LayerNorm, Module, Sequential,
    softmax_cross_entropy,
};
use wgmem::tensor::tags;
use wgmem::{Context, MemoryConfig, Tensor};

fn ctx() -> Arc<Context> {
    Context::new(common::gpu_backend(), MemoryConfig::default()).unwrap()
}

#[test]
fn block_gradients_match_finite_differences() {
    let ctx = ctx();
    for kernel in [AttentionKernel::Fused, AttentionKernel::Naive] {
        let mut config = BlockConfig::new(32, 2);
        config.kernel = kernel;
        let mut block = Block::new(&ctx, &config, 3).unwrap();
        let x = Rng::new(4).vec(2 * 5 * 32);
        common::gradcheck::grad_check(&ctx, &mut block, &x, &[2, 5, 32], true, 8);
    }
}

const VOCAB: usize = 13;
const WIDTH: usize = 32;
const SEQ: usize = 11;
const BATCH: usize = 3;

fn gpt(ctx: &Arc<Context>, blocks: usize, dropout: f32) -> Sequential {
    let emb = Embedding::new(ctx, VOCAB, WIDTH, 1)
        .unwrap()
        .with_positions(16, 2)
        .unwrap();
    let head = emb.tied_head();
    let mut model = Sequential::new().with(emb);
    let mut config = BlockConfig::new(WIDTH, 4);
    config.dropout = dropout;
    config.switch = DropoutSwitch::new();
    for i in 0..blocks {
        model.push(Block::new(ctx, &config, 10 * (i as u64 + 1)).unwrap());
    }
    model.with(LayerNorm::new(ctx, WIDTH).unwrap()).with(head)
}

/// One step: returns the loss and every parameter gradient.
fn step(
    ctx: &Arc<Context>,
    policy: CheckpointPolicy,
    ids: &[u32],
    targets: &[u32],
) -> (f32, Vec<Vec<f32>>) {
    let mut model = gpt(ctx, 4, 0.1);
    let mut ck = GradientCheckpointer::new(policy);
    let tokens = Arc::new(wgmem::nn::token_tensor(ctx, ids, [BATCH, SEQ], VOCAB).unwrap());
    let labels = ctx.upload_u32(targets, tags::DATA).unwrap();
    if policy != CheckpointPolicy::None {
        let plan = ck.prepare(&mut model, &tokens).unwrap();
        assert!(
            plan.boundaries.len() > 1,
            "{policy:?} checkpoints something"
        );
        assert_eq!(
            ck.profile().len(),
            7,
            "embedding, 4 blocks, norm, head: one unit each"
        );
    }
    let loss = ck
        .forward_backward(&mut model, tokens, |logits: Arc<Tensor>| {
            let logits = Arc::try_unwrap(logits)
                .expect("the head keeps its input, not its output")
                .reshape(&[BATCH * SEQ, VOCAB])?;
            let out = softmax_cross_entropy(&logits, &labels, BATCH * SEQ)?;
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
fn checkpointed_and_plain_gradients_are_bit_identical_for_a_gpt_of_blocks() {
    let ctx = ctx();
    let mut rng = Rng::new(21);
    let ids: Vec<u32> = (0..BATCH * SEQ)
        .map(|_| (rng.next_u64() % VOCAB as u64) as u32)
        .collect();
    let targets: Vec<u32> = ids[1..].iter().copied().chain([0]).collect();
    let (loss, plain) = step(&ctx, CheckpointPolicy::None, &ids, &targets);
    assert!(loss.is_finite() && loss > 1.0, "loss {loss}");
    assert!(
        plain.iter().all(|g| g.iter().any(|&v| v != 0.0)),
        "every parameter gets a gradient"
    );
    for policy in [
        CheckpointPolicy::EveryK(1),
        CheckpointPolicy::EveryK(2),
        CheckpointPolicy::SqrtN,
    ] {
        let (l, grads) = step(&ctx, policy, &ids, &targets);
        assert_eq!(l.to_bits(), loss.to_bits(), "{policy:?}: loss");
        assert_eq!(grads.len(), plain.len());
        for (k, (a, b)) in grads.iter().zip(&plain).enumerate() {
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert!(bits(a) == bits(b), "{policy:?}: parameter {k} differs");
        }
    }
}
