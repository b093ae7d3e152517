//! Reductions against f64 references: column sums (bias gradient) for ragged shapes, in one
//! pass and in chunks, full sum,
//! mean and max across one and many first-pass workgroups; softmax cross-entropy forward and
//! backward with the loss and correct count reduced on the GPU.

mod common;

use common::{Rng, download, gpu, upload};
use wgmem::compute::{self, CrossEntropyOutputs, column_sums, softmax_cross_entropy};
use wgmem::{Backend, DType, Error};

const EPS: f64 = f32::EPSILON as f64;

#[test]
fn chunked_column_sums_match_f64_reference() {
    // 1000 rows in chunks of 256 (the last 232), summed side by side, then the chunk sums; with
    // and without accumulating into what `out` holds. A short partials buffer is refused.
    let gpu = gpu();
    let b = gpu.backend();
    let mut rng = Rng::new(32);
    let (rows, cols) = (1000, 37);
    let len = compute::column_sum_partials(rows, cols).expect("1000 rows are chunked");
    assert_eq!(len, 4 * cols);
    assert_eq!(compute::column_sum_partials(512, cols), None);
    let x = rng.vec(rows * cols);
    let xb = upload(&**b, &x);
    let partials = upload(&**b, &vec![f32::NAN; len]);
    for accumulate in [false, true] {
        let start = rng.vec(cols);
        let out = upload(&**b, &start);
        compute::column_sums_of(
            &gpu,
            &xb,
            DType::F32,
            [rows, cols],
            &out,
            accumulate,
            Some(&partials),
        )
        .unwrap();
        let got = download(&**b, &out, cols);
        for c in 0..cols {
            let base = if accumulate { f64::from(start[c]) } else { 0.0 };
            let (want, mag): (f64, f64) = (0..rows)
                .map(|r| f64::from(x[r * cols + c]))
                .fold((base, base.abs()), |(s, m), v| (s + v, m + v.abs()));
            let tol = (rows as f64 + 2.0) * EPS * mag;
            assert!(
                (f64::from(got[c]) - want).abs() <= tol,
                "acc {accumulate} col {c}: {} vs {want}",
                got[c]
            );
        }
        b.free(out);
    }
    let out = upload(&**b, &vec![0.0; cols]);
    let short = upload(&**b, &vec![0.0; len - 1]);
    assert!(matches!(
        compute::column_sums_of(
            &gpu,
            &xb,
            DType::F32,
            [rows, cols],
            &out,
            false,
            Some(&short)
        ),
        Err(Error::OutOfBounds { .. })
    ));
    for buf in [xb, partials, out, short] {
        b.free(buf);
    }
}

#[test]
fn column_sums_match_f64_reference() {
    let gpu = gpu();
    let b = gpu.backend();
    let mut rng = Rng::new(31);
    for (rows, cols) in [(1, 1), (7, 65), (63, 7), (257, 33), (1, 257), (1000, 3)] {
        let x = rng.vec(rows * cols);
        let xb = upload(&**b, &x);
        let out = upload(&**b, &vec![f32::NAN; cols + 2]);
        column_sums(&gpu, &xb, rows, cols, &out).unwrap();
        let got = download(&**b, &out, cols + 2);
        for c in 0..cols {
            let (want, mag): (f64, f64) = (0..rows)
                .map(|r| f64::from(x[r * cols + c]))
                .fold((0.0, 0.0), |(s, m), v| (s + v, m + v.abs()));
            // f32 summation of `rows` terms: at most (rows - 1) eps times the sum of magnitudes.
            let tol = rows as f64 * EPS * mag;
            assert!(
                (f64::from(got[c]) - want).abs() <= tol,
                "{rows}x{cols} col {c}: {} vs {want}",
                got[c]
            );
        }
        assert!(got[cols..].iter().all(|v| v.is_nan()), "wrote past cols");
        b.free(xb);
        b.free(out);
    }
}

#[test]
fn sum_mean_max_match_f64_reference() {
    let gpu = gpu();
    let b = gpu.backend();
    let mut rng = Rng::new(32);
    // 300_001 needs many first-pass workgroups; the others one.
    for n in [1, 7, 63, 65, 257, 4099, 300_001] {
        let x = rng.vec(n);
        let xb = upload(&**b, &x);
        let out = upload(&**b, &[f32::NAN]);
        let want_sum: f64 = x.iter().map(|&v| f64::from(v)).sum();
        let mag: f64 = x.iter().map(|&v| f64::from(v).abs()).sum();
        // Pairwise-ish tree summation in f32: well within n eps times the magnitudes.
        let tol = n as f64 * EPS * mag;
        compute::sum(&gpu, &xb, n, &out).unwrap();
        let got = f64::from(download(&**b, &out, 1)[0]);
        assert!(
            (got - want_sum).abs() <= tol,
            "sum n={n}: {got} vs {want_sum}"
        );
        compute::mean(&gpu, &xb, n, &out).unwrap();
        let got = f64::from(download(&**b, &out, 1)[0]);
        assert!(
            (got - want_sum / n as f64).abs() <= tol / n as f64 + EPS,
            "mean n={n}: {got}"
        );
        compute::max(&gpu, &xb, n, &out).unwrap();
        let want_max = x.iter().copied().fold(f32::MIN, f32::max);
        assert_eq!(download(&**b, &out, 1)[0], want_max, "max n={n} (exact)");
        b.free(xb);
        b.free(out);
    }
}

#[test]
fn empty_reductions() {
    let gpu = gpu();
    let b = gpu.backend();
    let x = upload(&**b, &[1.0]);
    let out = upload(&**b, &[f32::NAN]);
    compute::sum(&gpu, &x, 0, &out).unwrap();
    assert_eq!(download(&**b, &out, 1)[0], 0.0);
    assert!(matches!(
        compute::max(&gpu, &x, 0, &out),
        Err(Error::InvalidArgument { .. })
    ));
    assert!(matches!(
        compute::mean(&gpu, &x, 2, &out),
        Err(Error::OutOfBounds { .. })
    ));
    assert!(matches!(
        compute::sum(&gpu, &x, 1, &x),
        Err(Error::SameBuffer)
    ));
    b.free(x);
    b.free(out);
}

#[test]
fn softmax_cross_entropy_matches_f64_reference() {
    let gpu = gpu();
    let b = gpu.backend();
    let mut rng = Rng::new(33);
    for (batch, classes) in [
        (1, 1),
        (1, 7),
        (7, 10),
        (65, 3),
        (63, 257),
        (257, 65),
        (1500, 10),
    ] {
        let logits: Vec<f32> = rng.vec(batch * classes).iter().map(|v| v * 8.0).collect();
        let labels: Vec<u32> = (0..batch)
            .map(|_| (rng.next_u64() % classes as u64) as u32)
            .collect();
        let lb = upload(&**b, &logits);
        let labb = upload(&**b, bytemuck::cast_slice(&labels));
        let grad = upload(&**b, &vec![f32::NAN; batch * classes]);
        let loss = upload(&**b, &[f32::NAN]);
        let correct = upload(&**b, &[f32::NAN]);
        softmax_cross_entropy(
            &gpu,
            &lb,
            &labb,
            batch,
            classes,
            &CrossEntropyOutputs {
                grad_logits: &grad,
                loss: &loss,
                correct: &correct,
            },
        )
        .unwrap();
        let got_grad = download(&**b, &grad, batch * classes);
        let got_loss = f64::from(download(&**b, &loss, 1)[0]);
        let mut got_correct = [0u32];
        b.read(&correct, 0, bytemuck::cast_slice_mut(&mut got_correct))
            .unwrap();

        let (mut want_loss, mut want_correct) = (0f64, 0u32);
        for r in 0..batch {
            let row: Vec<f64> = logits[r * classes..(r + 1) * classes]
                .iter()
                .map(|&v| f64::from(v))
                .collect();
            let mx = row.iter().copied().fold(f64::MIN, f64::max);
            let argmax = row.iter().position(|&v| v == mx).unwrap();
            let z: f64 = row.iter().map(|v| (v - mx).exp()).sum();
            let label = labels[r] as usize;
            want_loss += z.ln() + mx - row[label];
            want_correct += u32::from(argmax == label);
            for c in 0..classes {
                let p = (row[c] - mx).exp() / z;
                let want = (p - f64::from(u8::from(c == label))) / batch as f64;
                // exp and the division in f32 (a few ulp each, exp's argument up to 16 in
                // magnitude adds 16 eps relative), so 1e-6 / batch absolute covers it.
                let g = f64::from(got_grad[r * classes + c]);
                assert!(
                    (g - want).abs() <= 1e-6 / batch as f64 + 32.0 * EPS * want.abs(),
                    "{batch}x{classes} grad[{r},{c}]: {g} vs {want}"
                );
            }
        }
        want_loss /= batch as f64;
        // Per-row loss: log and exp of f32 over logits up to 8 in magnitude: about 1e-6
        // absolute each; the mean keeps that bound.
        assert!(
            (got_loss - want_loss).abs() <= 2e-6 * (1.0 + want_loss.abs()),
            "{batch}x{classes} loss {got_loss} vs {want_loss}"
        );
        assert_eq!(
            got_correct[0], want_correct,
            "{batch}x{classes} correct count"
        );
        for buf in [lb, labb, grad, loss, correct] {
            b.free(buf);
        }
    }
}

#[test]
fn softmax_cross_entropy_rejects_bad_shapes() {
    let gpu = gpu();
    let b = gpu.backend();
    let logits = upload(&**b, &[0.0; 12]);
    let labels = upload(&**b, &[0.0; 2]);
    let grad = upload(&**b, &[0.0; 12]);
    let loss = upload(&**b, &[0.0]);
    let correct = upload(&**b, &[0.0]);
    // 3 labels needed, 2 given.
    assert!(matches!(
        softmax_cross_entropy(
            &gpu,
            &logits,
            &labels,
            3,
            4,
            &CrossEntropyOutputs {
                grad_logits: &grad,
                loss: &loss,
                correct: &correct
            }
        ),
        Err(Error::OutOfBounds { .. })
    ));
    assert!(matches!(
        softmax_cross_entropy(
            &gpu,
            &logits,
            &labels,
            0,
            4,
            &CrossEntropyOutputs {
                grad_logits: &grad,
                loss: &loss,
                correct: &correct
            }
        ),
        Err(Error::Shape { .. })
    ));
    assert!(matches!(
        softmax_cross_entropy(
            &gpu,
            &logits,
            &labels,
            2,
            4,
            &CrossEntropyOutputs {
                grad_logits: &grad,
                loss: &loss,
                correct: &loss
            }
        ),
        Err(Error::SameBuffer)
    ));
    for buf in [logits, labels, grad, loss, correct] {
        b.free(buf);
    }
}
