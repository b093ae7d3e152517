//! The long soak, outside CI: the trainer's `fit` for about 10^4 steps (435 epochs of the
//! digits' training split at batch 64) on the real `WgpuBackend` under injected faults
//! (allocations, writes, reads, lost devices), random pressure levels and random hard limits,
//! against a fault-free run of the same epochs. The driver is `tests/support/soak.rs`, the one
//! the bounded CI soak (`tests/soak.rs`) runs. Prints one table: steps done and asked,
//! samples lost, faults injected and recovered, live bytes against the baseline, and the loss
//! against the fault-free run.
//!
//! ```text
//! cargo bench --bench soak                 # 435 epochs = 10,005 steps
//! cargo bench --bench soak -- --epochs 44  # 1,012 steps (a software adapter's version)
//! cargo bench --bench soak -- --no-faults  # pressure and limits only (or --no-pressure)
//! ```
//! Exits non-zero when a figure is off (steps or samples missing, live bytes off the
//! baseline, the loss further than `LOSS_TOLERANCE` from the fault-free run).

#[path = "../tests/support/soak.rs"]
mod soak;

use soak::{SoakConfig, reference, soak};
use std::io::Read;
use wgmem::data::Dataset;

/// Relative difference allowed between the loss with and without faults (the same bound as
/// the CI soak; see there why the runs differ at all).
const LOSS_TOLERANCE: f64 = 1e-2;

/// Embedded, so the stripped binary runs from any directory (the device machine's copy).
const DIGITS: &[u8] = include_bytes!("../data/digits.csv.gz");

fn digits_train() -> Dataset {
    let mut text = String::new();
    flate2::read::GzDecoder::new(DIGITS)
        .read_to_string(&mut text)
        .expect("gzip");
    let mut data = Dataset::from_csv(&text).expect("digits");
    data.normalize();
    data.split(0.2, 0).expect("split").0
}

fn main() {
    let mut epochs = 435;
    let (mut faults, mut pressure) = (true, true);
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--epochs" => {
                epochs = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .filter(|&e: &usize| e > 0)
                    .unwrap_or_else(|| {
                        eprintln!("--epochs needs a whole number of at least 1");
                        std::process::exit(2)
                    })
            }
            // For finding which of the two costs what.
            "--no-faults" => faults = false,
            "--no-pressure" => pressure = false,
            // cargo bench passes --bench; nothing else is understood.
            "--bench" => {}
            other => {
                eprintln!(
                    "unknown argument '{other}'; expected --epochs N, --no-faults, --no-pressure"
                );
                std::process::exit(2)
            }
        }
    }
    let data = digits_train();
    let adapter = wgmem::WgpuBackend::new()
        .map(|b| wgmem::Backend::adapter(&b).to_string())
        .unwrap_or_else(|e| panic!("the soak needs an adapter: {e}"));
    println!(
        "long soak on {adapter}: {epochs} epochs of {} samples, batch {}",
        data.len(),
        soak::BATCH
    );
    let (ref_loss, working_set, ref_seconds) = reference(&data, epochs);
    let on = |x: f64| if faults { x } else { 0.0 };
    let cfg = SoakConfig {
        epochs,
        seed: 10_000,
        allocation_rate: on(0.05),
        write_rate: on(0.0002),
        read_rate: on(0.0002),
        loss_rate: on(0.00002),
        first_loss_at_submit: faults.then_some(400),
        first_write_failure_at: faults.then_some(300),
        first_read_failure_at: faults.then_some(200),
        pressure_and_limits: pressure,
    };
    println!(
        "faults: allocation {} / write {} / read {} / device loss per submit {}; {}",
        cfg.allocation_rate,
        cfg.write_rate,
        cfg.read_rate,
        cfg.loss_rate,
        if pressure {
            "random pressure and hard limits every step"
        } else {
            "no pressure, no hard limits"
        }
    );
    let mut fig = soak(&data, &cfg, working_set).unwrap_or_else(|e| panic!("the soak failed: {e}"));
    fig.reference_loss = ref_loss;
    fig.reference_seconds = ref_seconds;
    print!("{fig}");
    println!("loss tolerance: relative {LOSS_TOLERANCE:.0e}");
    let ok = fig.steps_done == fig.steps_asked
        && fig.samples_seen == fig.samples_asked
        && fig.live_at_end == fig.baseline
        && fig.live_after_drop == 0
        && fig.relative_loss_difference() <= LOSS_TOLERANCE;
    if !ok {
        eprintln!("a figure is off: see the table");
        std::process::exit(1);
    }
}
