//! Finite-difference gradient checks for any [`Module`] and shape: for a random linear
//! functional `L = Σ w·y` of the output (evaluated in f64 on the host), the gradients from
//! `backward` are compared with central differences `(L(θ+h) − L(θ−h)) / 2h` through the GPU
//! forward pass.
//!
//! Tolerance: h = 1e-2 and outputs of order 1 in f32 give a difference quotient good to about
//! 1e-4 absolute; curvature adds O(h²). We accept |numeric − analytic| ≤ 2e-3 + 1e-2·|analytic|.

use super::Rng;
use std::sync::Arc;
use wgmem::Context;
use wgmem::nn::Module;

const H: f32 = 1e-2;

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

/// Checks `module`'s parameter gradients (and, with `input_fd`, its input gradient) at
/// `samples` evenly spread indices of each, on input `x` of `shape`.
pub fn grad_check(
    ctx: &Arc<Context>,
    module: &mut dyn Module,
    x: &[f32],
    shape: &[usize],
    input_fd: bool,
    samples: usize,
) {
    let mut rng = Rng::new(99);
    let input = Arc::new(ctx.from_slice(x, shape, "data").unwrap());
    let y = module.forward(Arc::clone(&input), true).unwrap();
    let w = rng.vec(y.len());
    let g = ctx.from_slice(&w, y.shape(), "activations").unwrap();
    drop(y);
    for p in module.parameters() {
        p.zero_grad().unwrap();
    }
    let dx = module.backward(g, input_fd).unwrap();
    let dx = dx.map(|t| t.to_vec().unwrap());
    let param_grads: Vec<Vec<f32>> = module
        .parameters()
        .iter()
        .map(|p| p.grad.to_vec().unwrap())
        .collect();
    let eval = |m: &mut dyn Module, xs: &[f32]| -> f64 {
        let t = Arc::new(ctx.from_slice(xs, shape, "data").unwrap());
        let y = m.forward(t, false).unwrap();
        functional(&y.to_vec().unwrap(), &w)
    };
    let step = |n: usize| (n / samples).max(1);
    if input_fd {
        let dx = dx.expect("input gradient");
        for j in (0..x.len()).step_by(step(x.len())) {
            let (mut plus, mut minus) = (x.to_vec(), x.to_vec());
            plus[j] += H;
            minus[j] -= H;
            let numeric = (eval(module, &plus) - eval(module, &minus)) / (2.0 * f64::from(H));
            close(numeric, dx[j], &format!("{} dx[{j}]", module.name()));
        }
    }
    for (p, grads) in param_grads.iter().enumerate() {
        let values = module.parameters()[p].value.to_vec().unwrap();
        for j in (0..values.len()).step_by(step(values.len())) {
            let f = |delta: f32, m: &mut dyn Module| {
                let mut v = values.clone();
                v[j] += delta;
                m.parameters()[p].value.write(&v).unwrap();
                eval(m, x)
            };
            let numeric = (f(H, module) - f(-H, module)) / (2.0 * f64::from(H));
            module.parameters()[p].value.write(&values).unwrap();
            let name = module.parameters()[p].name.clone();
            close(
                numeric,
                grads[j],
                &format!("{} {name} (param {p})[{j}]", module.name()),
            );
        }
    }
}
