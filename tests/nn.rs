//! Layers against finite differences: for a random linear functional of the output,
//! `L = Σ w·y` (evaluated in f64 on the host), the gradients from `backward` match central
//! differences `(L(θ+h) − L(θ−h)) / 2h` taken through the GPU forward pass.
//!
//! Tolerance: with h = 1e-2 and outputs of order 1 computed in f32, each L carries a rounding
//! error near 1e-6·Σ|w·y|, so the difference quotient is good to about 1e-4 absolute;
//! curvature (GELU) adds O(h²) ≈ 1e-4. We accept |numeric − analytic| ≤ 2e-3 + 1e-2·|analytic|.
//! ReLU kinks: inputs within 2h of a kink are skipped (the difference quotient is undefined).

mod common;

use common::Rng;
use std::sync::Arc;
use wgmem::nn::{Gelu, Linear, Module, Relu, Sequential};
use wgmem::{Context, Error, MemoryConfig};

const H: f32 = 1e-2;

fn ctx() -> Arc<Context> {
    Context::new(common::gpu_backend(), MemoryConfig::default()).unwrap()
}

fn functional(y: &[f32], w: &[f32]) -> f64 {
    y.iter()
        .zip(w)
        .map(|(&a, &b)| f64::from(a) * f64::from(b))
        .sum()
}

fn close(numeric: f64, analytic: f32, what: &str) {
    let a = f64::from(analytic);
    assert!(
        (numeric - a).abs() <= 2e-3 + 1e-2 * a.abs(),
        "{what}: numeric {numeric} vs analytic {a}"
    );
}

/// Checks input and parameter gradients of `module` on input `x` of `shape`.
fn grad_check(
    ctx: &Arc<Context>,
    module: &mut dyn Module,
    x: Vec<f32>,
    shape: [usize; 2],
    kink_check: impl Fn(usize) -> bool,
) {
    let mut rng = Rng::new(99);
    let input = Arc::new(ctx.from_slice(&x, &shape, "data").unwrap());
    let y = module.forward(Arc::clone(&input), true).unwrap();
    let w = rng.vec(y.len());
    let g = ctx.from_slice(&w, y.shape(), "activations").unwrap();
    let y_shape = y.shape().to_vec();
    drop(y);
    let dx = module
        .backward(g, true)
        .unwrap()
        .expect("input gradient")
        .to_vec()
        .unwrap();
    let param_grads: Vec<Vec<f32>> = module
        .parameters()
        .iter()
        .map(|p| p.grad.to_vec().unwrap())
        .collect();
    let eval = |m: &mut dyn Module, xs: &[f32]| -> f64 {
        let t = Arc::new(ctx.from_slice(xs, &shape, "data").unwrap());
        let y = m.forward(t, false).unwrap();
        assert_eq!(y.shape(), &y_shape[..]);
        functional(&y.to_vec().unwrap(), &w)
    };
    for j in (0..x.len()).step_by((x.len() / 12).max(1)) {
        if !kink_check(j) {
            continue;
        }
        let (mut plus, mut minus) = (x.clone(), x.clone());
        plus[j] += H;
        minus[j] -= H;
        let numeric = (eval(module, &plus) - eval(module, &minus)) / (2.0 * f64::from(H));
        close(numeric, dx[j], &format!("{} dx[{j}]", module.name()));
    }
    for (p, grads) in param_grads.iter().enumerate() {
        let values = module.parameters()[p].value.to_vec().unwrap();
        for j in (0..values.len()).step_by((values.len() / 6).max(1)) {
            let f = |delta: f32, m: &mut dyn Module| {
                let mut v = values.clone();
                v[j] += delta;
                m.parameters()[p].value.write(&v).unwrap();
                eval(m, &x)
            };
            let numeric = (f(H, module) - f(-H, module)) / (2.0 * f64::from(H));
            module.parameters()[p].value.write(&values).unwrap();
            close(
                numeric,
                grads[j],
                &format!("{} param {p}[{j}]", module.name()),
            );
        }
    }
}

/// Inputs bounded away from 0 (so ReLU kinks are at least 2h away).
fn away_from_zero(rng: &mut Rng, n: usize) -> Vec<f32> {
    rng.vec(n)
        .into_iter()
        .map(|v| {
            if v.abs() < 0.05 {
                v.signum() * 0.05 + v
            } else {
                v
            }
        })
        .collect()
}

#[test]
fn linear_gradients_match_finite_differences() {
    let ctx = ctx();
    let mut rng = Rng::new(1);
    let mut layer = Linear::new(&ctx, 7, 9, 3).unwrap();
    grad_check(&ctx, &mut layer, rng.vec(5 * 7), [5, 7], |_| true);
}

/// The fused ReLU is checked against the composition Linear → Relu, whose parts are each
/// checked against finite differences above and below (finite differences across 195
/// pre-activations would straddle a kink for any h large enough to be accurate in f32).
#[test]
fn fused_relu_linear_equals_linear_then_relu() {
    let ctx = ctx();
    let mut rng = Rng::new(2);
    let x = rng.vec(3 * 6);
    let run = |model: &mut dyn Module| {
        let input = Arc::new(ctx.from_slice(&x, &[3, 6], "data").unwrap());
        let y = model.forward(input, true).unwrap();
        let out = y.to_vec().unwrap();
        let g = ctx
            .from_slice(&Rng::new(5).vec(y.len()), y.shape(), "activations")
            .unwrap();
        drop(y);
        let dx = model.backward(g, true).unwrap().unwrap().to_vec().unwrap();
        let grads: Vec<Vec<f32>> = model
            .parameters()
            .iter()
            .map(|p| p.grad.to_vec().unwrap())
            .collect();
        (out, dx, grads)
    };
    let fused = run(&mut Linear::new(&ctx, 6, 65, 4).unwrap().with_relu());
    let composed = run(&mut Sequential::new()
        .with(Linear::new(&ctx, 6, 65, 4).unwrap())
        .with(Relu::new()));
    assert_eq!(fused.0, composed.0, "forward");
    assert_eq!(fused.1, composed.1, "input gradient");
    assert_eq!(fused.2, composed.2, "parameter gradients");
}

#[test]
fn relu_and_gelu_gradients_match_finite_differences() {
    let ctx = ctx();
    let mut rng = Rng::new(3);
    let x = away_from_zero(&mut rng, 4 * 63);
    grad_check(&ctx, &mut Relu::new(), x.clone(), [4, 63], |_| true);
    grad_check(&ctx, &mut Gelu::new(), x, [4, 63], |_| true);
}

#[test]
fn sequential_gradients_match_finite_differences() {
    let ctx = ctx();
    let mut rng = Rng::new(4);
    let mut model = Sequential::new()
        .with(Linear::new(&ctx, 5, 8, 10).unwrap())
        .with(Gelu::new())
        .with(Linear::new(&ctx, 8, 3, 11).unwrap());
    grad_check(&ctx, &mut model, rng.vec(7 * 5), [7, 5], |_| true);
}

#[test]
fn shape_mismatches_name_both_shapes() {
    let ctx = ctx();
    let mut layer = Linear::new(&ctx, 7, 9, 0).unwrap();
    let x = Arc::new(ctx.zeros(&[4, 8], "data").unwrap());
    match layer.forward(x, true) {
        Err(Error::Shape { left, right, .. }) => {
            assert_eq!(left, vec![4, 8]);
            assert_eq!(right, vec![7, 9]);
        }
        other => panic!("expected a shape error, got {other:?}"),
    }
    let t = ctx.zeros(&[2, 3], "data").unwrap();
    assert!(matches!(t.write(&[1.0; 5]), Err(Error::Shape { .. })));
    assert!(matches!(t.reshape(&[4, 2]), Err(Error::Shape { .. })));
    let g = ctx.zeros(&[4, 9], "data").unwrap();
    assert!(
        matches!(layer.backward(g, true), Err(Error::InvalidArgument { .. })),
        "backward without a saving forward"
    );
    assert!(Linear::new(&ctx, 0, 3, 0).is_err());
}

#[test]
fn weight_init_is_seeded_and_reproducible() {
    let ctx = ctx();
    let a = Linear::new(&ctx, 33, 17, 42).unwrap();
    let b = Linear::new(&ctx, 33, 17, 42).unwrap();
    let c = Linear::new(&ctx, 33, 17, 43).unwrap();
    let (wa, wb, wc) = (
        a.weight().value.to_vec().unwrap(),
        b.weight().value.to_vec().unwrap(),
        c.weight().value.to_vec().unwrap(),
    );
    assert_eq!(wa, wb);
    assert_ne!(wa, wc);
    let bound = 1.0 / 33f32.sqrt();
    assert!(wa.iter().all(|v| v.abs() <= bound));
}
