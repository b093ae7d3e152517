//! The training features of a GPT run against f64 CPU references: AdamW's decay mask (weights
//! decay, biases and norms do not), clipping by global norm (the GPU's squared-norm reduction
//! over ragged sizes, and the scaled update), and the warmup-cosine schedule; with their bad
//! input.

mod common;

use common::Rng;
use std::sync::Arc;
use wgmem::nn::Parameter;
use wgmem::optim::global_grad_norm;
use wgmem::optim::{Adam, ClipGradNorm, DecayMask, LrSchedule, Optimizer, Scheduled, Sgd};
use wgmem::tensor::tags;
use wgmem::{Context, Error, MemoryConfig};

fn ctx() -> Arc<Context> {
    Context::new(common::gpu_backend(), MemoryConfig::default()).unwrap()
}

fn param(
    ctx: &Arc<Context>,
    name: &str,
    value: &[f32],
    grad: &[f32],
    shape: &[usize],
) -> Parameter {
    Parameter {
        name: name.into(),
        value: ctx.from_slice(value, shape, tags::PARAMS).unwrap(),
        grad: ctx.from_slice(grad, shape, tags::GRADIENTS).unwrap(),
        working: None,
    }
}

fn close(got: &[f32], want: &[f64], tol: f64, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let err = (f64::from(*g) - w).abs();
        assert!(err <= tol * (1.0 + w.abs()), "{what}[{i}]: {g} vs {w}");
    }
}

#[test]
fn adamw_decays_matrices_but_not_biases_or_norms() {
    let ctx = ctx();
    let mut rng = Rng::new(5);
    let shapes: [&[usize]; 3] = [&[3, 5], &[7], &[2, 1, 3]];
    let (lr, wd, b1, b2, eps) = (0.01f64, 0.1f64, 0.9f64, 0.95f64, 1e-8f64);
    let p0: Vec<Vec<f32>> = shapes.iter().map(|s| rng.vec(s.iter().product())).collect();
    let mut params: Vec<Parameter> = shapes
        .iter()
        .zip(&p0)
        .map(|(s, v)| param(&ctx, "p", v, &vec![0.0; v.len()], s))
        .collect();
    let mut adam = Adam::adamw(lr as f32, wd as f32);
    let mut want: Vec<Vec<f64>> = p0
        .iter()
        .map(|v| v.iter().map(|&x| f64::from(x)).collect())
        .collect();
    let mut m: Vec<Vec<f64>> = want.iter().map(|v| vec![0.0; v.len()]).collect();
    let mut v2 = m.clone();
    for step in 1..=3 {
        let grads: Vec<Vec<f32>> = p0.iter().map(|v| rng.vec(v.len())).collect();
        for (p, g) in params.iter().zip(&grads) {
            p.grad.write(g).unwrap();
        }
        adam.step(params.iter_mut().collect()).unwrap();
        for (k, shape) in shapes.iter().enumerate() {
            // PyTorch's AdamW: p *= 1 - lr * wd (matrices only here), then the Adam update.
            let decay = if shape.len() >= 2 { wd } else { 0.0 };
            for i in 0..want[k].len() {
                let g = f64::from(grads[k][i]);
                want[k][i] *= 1.0 - lr * decay;
                m[k][i] = b1 * m[k][i] + (1.0 - b1) * g;
                v2[k][i] = b2 * v2[k][i] + (1.0 - b2) * g * g;
                let mh = m[k][i] / (1.0 - b1.powi(step));
                let vh = v2[k][i] / (1.0 - b2.powi(step));
                want[k][i] -= lr * mh / (vh.sqrt() + eps);
            }
        }
    }
    for (k, p) in params.iter().enumerate() {
        close(
            &p.value.to_vec().unwrap(),
            &want[k],
            1e-5,
            &format!("param {k}"),
        );
    }
    // The mask is what made the difference: a vector decays under DecayMask::All.
    assert!(DecayMask::Matrices.decays(&[3, 5]) && !DecayMask::Matrices.decays(&[7]));
    assert!(DecayMask::All.decays(&[7]));
}

#[test]
fn clipping_scales_gradients_to_the_global_norm() {
    let ctx = ctx();
    let mut rng = Rng::new(9);
    let sizes = [1usize, 257, 5003];
    for (limit, gain) in [(1.0f32, 10.0f32), (1e6, 1.0)] {
        let values: Vec<Vec<f32>> = sizes.iter().map(|&n| rng.vec(n)).collect();
        let grads: Vec<Vec<f32>> = sizes
            .iter()
            .map(|&n| rng.vec(n).iter().map(|g| g * gain).collect())
            .collect();
        let mut params: Vec<Parameter> = (0..3)
            .map(|k| param(&ctx, "p", &values[k], &grads[k], &[sizes[k]]))
            .collect();
        let norm: f64 = grads
            .iter()
            .flatten()
            .map(|&g| f64::from(g) * f64::from(g))
            .sum::<f64>()
            .sqrt();
        let gpu_norm = global_grad_norm(&params.iter_mut().collect::<Vec<_>>())
            .unwrap()
            .unwrap();
        assert!(
            (f64::from(gpu_norm) - norm).abs() <= 1e-5 * norm,
            "norm {gpu_norm} vs {norm}"
        );
        let lr = 0.5;
        let mut clip = ClipGradNorm::new(Box::new(Sgd::new(lr, 0.0)), limit).unwrap();
        clip.step(params.iter_mut().collect()).unwrap();
        assert_eq!(clip.last_norm(), Some(gpu_norm));
        let scale = (f64::from(limit) / norm).min(1.0);
        if gain > 1.0 {
            assert!(scale < 0.1, "the first case clips: scale {scale}");
        }
        for k in 0..3 {
            let want: Vec<f64> = (0..sizes[k])
                .map(|i| f64::from(values[k][i]) - f64::from(lr) * scale * f64::from(grads[k][i]))
                .collect();
            close(
                &params[k].value.to_vec().unwrap(),
                &want,
                1e-5,
                "clipped update",
            );
        }
    }
    for bad in [0.0, -1.0, f32::NAN, f32::INFINITY] {
        match ClipGradNorm::new(Box::new(Sgd::new(0.1, 0.0)), bad) {
            Err(Error::InvalidArgument { what, .. }) => assert_eq!(what, "max gradient norm"),
            Err(e) => panic!("{bad}: {e}"),
            Ok(_) => panic!("{bad}: accepted"),
        }
    }
    assert_eq!(global_grad_norm(&[]).unwrap(), None);
}

#[test]
fn warmup_then_cosine_sets_each_steps_rate() {
    let (peak, min, warmup, total) = (3e-3f64, 3e-4f64, 4u64, 20u64);
    let s = LrSchedule::warmup_cosine(peak as f32, min as f32, warmup, total).unwrap();
    let reference = |t: u64| -> f64 {
        if t < warmup {
            peak * (t + 1) as f64 / warmup as f64
        } else if t >= total {
            min
        } else {
            let p = (t - warmup) as f64 / (total - warmup) as f64;
            min + (peak - min) * 0.5 * (1.0 + (std::f64::consts::PI * p).cos())
        }
    };
    for t in 0..25 {
        let got = f64::from(s.at(t));
        assert!((got - reference(t)).abs() <= 1e-7 * peak, "step {t}: {got}");
    }
    assert!((f64::from(s.at(warmup)) - peak).abs() < 1e-9);
    // Through an optimizer: plain SGD with a gradient of ones moves each value by the rate.
    let ctx = ctx();
    let mut p = [param(&ctx, "p", &[0.0; 3], &[1.0; 3], &[3])];
    let mut opt = Scheduled::new(Box::new(Sgd::new(1.0, 0.0)), s);
    let mut expected = 0.0f64;
    for t in 0..6 {
        assert!((f64::from(opt.learning_rate()) - reference(t)).abs() < 1e-9);
        p[0].grad.write(&[1.0; 3]).unwrap();
        opt.step(p.iter_mut().collect()).unwrap();
        expected -= reference(t);
        close(
            &p[0].value.to_vec().unwrap(),
            &[expected; 3],
            1e-6,
            "scheduled SGD",
        );
    }
    // The schedule's step is saved with the optimizer's counters and restored.
    assert_eq!(opt.state_counters(), vec![6]);
    let mut resumed = Scheduled::new(Box::new(Sgd::new(1.0, 0.0)), s);
    resumed.load_state(Vec::new(), &[6]).unwrap();
    assert_eq!(resumed.learning_rate(), opt.learning_rate());
    assert!(resumed.load_state(Vec::new(), &[]).is_err());
    for (peak, min, warmup, total) in [
        (1e-3, 1e-2, 1, 10),
        (1e-3, -1.0, 1, 10),
        (1e-3, 0.0, 11, 10),
    ] {
        assert!(
            matches!(
                LrSchedule::warmup_cosine(peak, min, warmup, total),
                Err(Error::InvalidArgument { .. })
            ),
            "{peak} {min} {warmup} {total}"
        );
    }
}

#[test]
fn zero1_refuses_what_its_sharded_adam_would_drop() {
    let ctx = ctx();
    let model =
        || wgmem::nn::Sequential::new().with(wgmem::nn::Linear::new(&ctx, 5, 3, 1).unwrap());
    let config = wgmem::TrainerConfig {
        zero1: true,
        ..wgmem::TrainerConfig::default()
    };
    let schedule = LrSchedule::warmup_cosine(1e-3, 1e-4, 1, 10).unwrap();
    let refused: [Box<dyn Optimizer>; 3] = [
        Box::new(Scheduled::new(Box::new(Adam::new(1e-3)), schedule)),
        Box::new(ClipGradNorm::new(Box::new(Adam::new(1e-3)), 1.0).unwrap()),
        Box::new(Adam::adamw(1e-3, 0.1)),
    ];
    for optimizer in refused {
        match wgmem::Trainer::new(Arc::clone(&ctx), model(), optimizer, config.clone()) {
            Err(Error::InvalidArgument { what, .. }) => assert_eq!(what, "zero1"),
            Err(e) => panic!("{e}"),
            Ok(_) => panic!("ZeRO-1 accepted an optimizer it would change"),
        }
    }
    // Plain Adam, and AdamW decaying everything, shard as before.
    for optimizer in [Adam::new(1e-3), Adam::new(1e-3).decoupled(0.1)] {
        wgmem::Trainer::new(
            Arc::clone(&ctx),
            model(),
            Box::new(optimizer),
            config.clone(),
        )
        .unwrap();
    }
}
