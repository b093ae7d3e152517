//! The trainer's data sources and objective against f64 CPU references: token windows upload
//! as `[n, context]` ids with their next tokens as targets, and softmax cross-entropy over an
//! `[n, context, vocab]` output gives the mean over every position and a gradient of the
//! output's shape, scaled as asked; with bad shapes and labels.

mod common;

use common::Rng;
use std::sync::Arc;
use wgmem::data::Dataset;
use wgmem::tensor::tags;
use wgmem::text::TokenWindows;
use wgmem::train::{Objective, SoftmaxCrossEntropy, Source};
use wgmem::{Context, Error, MemoryConfig};

fn ctx() -> Arc<Context> {
    Context::new(common::gpu_backend(), MemoryConfig::default()).unwrap()
}

#[test]
fn token_windows_upload_ids_and_next_tokens() {
    let ctx = ctx();
    let tokens: Vec<u32> = (0..40).map(|i| (i * 7 % 13) as u32).collect();
    let w = TokenWindows::new(tokens.clone(), 5, 3).unwrap();
    let picked = w.select(&[4, 0, 9]).unwrap();
    let (x, targets) = picked.upload(&ctx, 1..3, wgmem::DType::F32).unwrap();
    assert_eq!(x.shape(), &[2, 5]);
    let want_x: Vec<f32> = tokens[0..5].iter().map(|&t| t as f32).collect();
    let want_x: Vec<f32> = want_x
        .into_iter()
        .chain(tokens[27..32].iter().map(|&t| t as f32))
        .collect();
    assert_eq!(x.to_vec().unwrap(), want_x);
    let want_t: Vec<u32> = tokens[1..6]
        .iter()
        .chain(&tokens[28..33])
        .copied()
        .collect();
    assert_eq!(targets.host, want_t);
    assert_eq!(ctx.read_u32(&targets.buffer, 10).unwrap(), want_t);
    assert_eq!(picked.targets_per_sample(), 5);
    // The digits' rows keep one label each and report non-finite inputs by row and column.
    let d = Dataset::new(vec![1.0, 2.0, f32::NAN, 4.0], vec![0, 1], 2).unwrap();
    assert_eq!(d.targets_per_sample(), 1);
    assert!(matches!(d.first_non_finite(), Some((1, 0, v)) if v.is_nan()));
}

#[test]
fn cross_entropy_over_positions_matches_f64() {
    let ctx = ctx();
    let mut rng = Rng::new(17);
    let (n, t, v) = (3usize, 7usize, 11usize);
    let logits: Vec<f32> = rng.vec(n * t * v).iter().map(|x| 3.0 * x).collect();
    let labels: Vec<u32> = (0..n * t).map(|i| (i * 5 % v) as u32).collect();
    let output = Arc::new(
        ctx.from_slice(&logits, &[n, t, v], tags::ACTIVATIONS)
            .unwrap(),
    );
    let targets = wgmem::train::Targets {
        buffer: ctx.upload_u32(&labels, tags::DATA).unwrap(),
        host: labels.clone(),
    };
    let out = SoftmaxCrossEntropy.loss(output, &targets, 0.5).unwrap();
    assert_eq!(out.grad.shape(), &[n, t, v]);
    let (loss, correct) = out.read().unwrap();
    let grad = out.grad.to_vec().unwrap();
    let rows = (n * t) as f64;
    let (mut want_loss, mut want_correct) = (0f64, 0u32);
    for r in 0..n * t {
        let row: Vec<f64> = logits[r * v..(r + 1) * v]
            .iter()
            .map(|&x| f64::from(x))
            .collect();
        let max = row.iter().cloned().fold(f64::MIN, f64::max);
        let sum: f64 = row.iter().map(|x| (x - max).exp()).sum();
        let label = labels[r] as usize;
        want_loss += (sum.ln() + max - row[label]) / rows;
        let argmax = (0..v).max_by(|&a, &b| row[a].total_cmp(&row[b])).unwrap();
        want_correct += u32::from(argmax == label);
        for c in 0..v {
            let p = (row[c] - max).exp() / sum;
            let want = 0.5 * (p - f64::from(u8::from(c == label))) / rows;
            let got = f64::from(grad[r * v + c]);
            assert!((got - want).abs() < 1e-6, "grad[{r}, {c}]: {got} vs {want}");
        }
    }
    assert!(
        (f64::from(loss) - want_loss).abs() < 1e-5 * want_loss,
        "{loss} vs {want_loss}"
    );
    assert_eq!(correct, want_correct);
}

#[test]
fn outputs_and_targets_that_do_not_fit_are_typed_errors() {
    let ctx = ctx();
    let targets = |labels: Vec<u32>| wgmem::train::Targets {
        buffer: ctx.upload_u32(&labels, tags::DATA).unwrap(),
        host: labels,
    };
    let output = || Arc::new(ctx.zeros(&[2, 3, 4], tags::ACTIVATIONS).unwrap());
    // 6 rows of 4 classes, but 5 targets.
    assert!(matches!(
        SoftmaxCrossEntropy.loss(output(), &targets(vec![0; 5]), 1.0),
        Err(Error::Shape { .. })
    ));
    match SoftmaxCrossEntropy.loss(output(), &targets(vec![0, 1, 2, 3, 4, 0]), 1.0) {
        Err(Error::InvalidArgument { what, reason }) => {
            assert_eq!(what, "label");
            assert!(
                reason.contains("label 4") && reason.contains("4 outputs"),
                "{reason}"
            );
        }
        Err(e) => panic!("label 4 of 4 classes: {e}"),
        Ok(_) => panic!("label 4 of 4 classes accepted"),
    }
}
