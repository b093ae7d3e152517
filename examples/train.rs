//! The main job. Until the layers and training loop land (see the issues), this example runs
//! gradient descent on the GPU for a simple objective with the kernels that exist:
//! minimise ||w - t||² over a million parameters, where each step w ← w − lr·2(w − t) is one
//! `axpby` dispatch pair on the GPU, and the loss is read back each epoch.

use std::sync::Arc;
use std::time::Instant;
use wgmem::compute::{axpby, fill};
use wgmem::{Backend, BufferUsage, Gpu, WgpuBackend};

fn main() -> wgmem::Result<()> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let backend = Arc::new(WgpuBackend::new()?);
    println!("adapter: {}", backend.adapter());
    let caps = backend.capabilities();
    println!(
        "budget: {} ({:?}), unified memory: {}",
        wgmem::memory::human_bytes(caps.memory_budget),
        caps.budget_source,
        caps.unified_memory
    );
    let gpu = Gpu::new(Arc::clone(&backend))?;

    let n = 1 << 20;
    let target: Vec<f32> = (0..n).map(|i| ((i % 97) as f32 / 97.0) - 0.5).collect();
    let w = backend.allocate(n as u64 * 4, BufferUsage::Storage)?;
    let t = backend.allocate(n as u64 * 4, BufferUsage::Storage)?;
    let diff = backend.allocate(n as u64 * 4, BufferUsage::Storage)?;
    backend.write(&t, 0, bytemuck::cast_slice(&target))?;
    fill(&gpu, &w, n, 0.0)?;

    let lr = 0.1f32;
    let start = Instant::now();
    for epoch in 0..10 {
        for _ in 0..10 {
            // w = (1 - 2 lr) w + 2 lr t
            axpby(&gpu, 2.0 * lr, &t, 1.0 - 2.0 * lr, &w, n)?;
        }
        // diff = w - t, then the loss on the host.
        backend.copy(&w, 0, &diff, 0, n as u64 * 4)?;
        axpby(&gpu, -1.0, &t, 1.0, &diff, n)?;
        let mut d = vec![0f32; n];
        backend.read(&diff, 0, bytemuck::cast_slice_mut(&mut d))?;
        let loss: f64 = d.iter().map(|&x| f64::from(x) * f64::from(x)).sum::<f64>() / n as f64;
        println!("epoch {epoch:2}: loss {loss:.3e}");
    }
    backend.wait_idle()?;
    println!(
        "110 GPU dispatches over {n} parameters in {:.1} ms; buffers created: {}",
        start.elapsed().as_secs_f64() * 1e3,
        backend.buffers_created()
    );
    for b in [w, t, diff] {
        backend.free(b);
    }
    Ok(())
}
