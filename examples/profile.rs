//! The memory profiler on a simulated training loop (host memory, no GPU needed): three
//! layers' activations and gradients per step inside scopes, a workspace, a deliberate leak,
//! and a hard limit that forces evictions. Prints the reports and writes the trace and plots.
//!
//! `cargo run --example profile -- [out-prefix]` (default `profile`): writes
//! `<prefix>.json` (open in ui.perfetto.dev or chrome://tracing), `<prefix>_timeline.svg` and
//! `<prefix>_classes.svg`.

use std::sync::Arc;
use wgmem::memory::{MemoryConfig, Workspace};
use wgmem::profile::MemoryProfiler;
use wgmem::{BufferUsage, HostBackend, MemoryManager};

const MIB: u64 = 1 << 20;

fn main() -> wgmem::Result<()> {
    let prefix = std::env::args().nth(1).unwrap_or_else(|| "profile".into());
    let manager = MemoryManager::with_config(
        Arc::new(HostBackend::new()),
        MemoryConfig::default().with_hard_limit(96 * MIB),
    )?;
    let profiler = Arc::new(MemoryProfiler::full());
    manager.set_profiler(Some(Arc::clone(&profiler)));

    let widths = [4 * MIB, 8 * MIB, 2 * MIB];
    let weights: Vec<_> = widths
        .iter()
        .map(|w| manager.acquire(*w, BufferUsage::Storage, "weights"))
        .collect::<wgmem::Result<_>>()?;
    let mut workspace = Workspace::new(&manager, "workspace");
    let mut leaked = Vec::new();
    let mark = profiler.mark();
    for step in 0..20u64 {
        let _step = profiler.scope("step");
        let batch = 1 + step % 4; // the batch size varies, so classes change
        let mut activations = Vec::new();
        {
            let _f = profiler.scope("forward");
            for (i, w) in widths.iter().enumerate() {
                let _l = profiler.scope(["layer0", "layer1", "layer2"][i]);
                activations.push(manager.acquire(
                    w * batch,
                    BufferUsage::Storage,
                    "activations",
                )?);
                workspace.buffer("matmul", w / 2)?;
            }
        }
        {
            let _b = profiler.scope("backward");
            for w in widths.iter().rev() {
                let grad = manager.acquire(*w, BufferUsage::Storage, "gradients")?;
                activations.pop();
                drop(grad);
            }
        }
        if step % 5 == 0 {
            // A forgotten buffer: the leak report names this line.
            leaked.push(manager.acquire(MIB, BufferUsage::Storage, "metrics")?);
        }
    }
    println!("{}\n", manager.stats());
    println!("by source:\n{}", profiler.by_source());
    println!("by scope:\n{}", profiler.by_scope());
    println!(
        "leaks since the first step: {}\n",
        profiler.leaks_since(mark)
    );
    let files = profiler.write_all(&prefix)?;
    println!(
        "wrote {}, {}, {}",
        files.trace.display(),
        files.timeline.display(),
        files.classes.display()
    );
    drop((weights, leaked));
    Ok(())
}
