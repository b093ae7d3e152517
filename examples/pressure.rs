//! Memory pressure, end to end on the host backend: a workload caches 4 MiB buffers against a
//! 64 MiB budget; the budget source raises Warning at 80% and the workload gives back half its
//! cache (oldest first); a simulated OS source then goes Critical and the workload gives back
//! everything. The platform's own sources (PSI and cgroup v2 on Linux, libdispatch on macOS and
//! iOS) take part too; on a quiet machine they stay Normal. Every change is logged.
//!
//! ```text
//! cargo run --example pressure
//! ```

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::mpsc;
use wgmem::memory::human_bytes;
use wgmem::pressure::{
    BudgetSource, PressureChange, PressureLevel, PressureMonitor, SimulatedSource,
};
use wgmem::{Backend, BufferUsage, HostBackend};

const BUFFER: u64 = 4 << 20;

fn main() -> wgmem::Result<()> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let backend = Arc::new(HostBackend::new().with_budget(64 << 20));

    let mut monitor = PressureMonitor::new();
    add_platform_sources(&mut monitor)?;
    let reader = Arc::clone(&backend);
    monitor.add_source(BudgetSource::new(move || {
        (
            reader.allocated_bytes(),
            reader.capabilities().memory_budget,
        )
    }));
    let os = SimulatedSource::new("simulated-os");
    let os_pressure = os.handle();
    monitor.add_source(os);
    println!("sources: {:?}", monitor.source_names());

    // The responder only passes the change on: the workload owns the buffers and frees them
    // between steps, as a trainer would.
    let (tx, changes) = mpsc::channel::<PressureChange>();
    let tx = std::sync::Mutex::new(tx);
    monitor.add_responder(Arc::new(move |change: PressureChange| {
        let _ = tx.lock().map(|tx| tx.send(change));
    }));

    let mut cache: VecDeque<_> = VecDeque::new();
    for step in 0..40 {
        if step == 30 {
            os_pressure.set(PressureLevel::Critical);
        }
        if step == 32 {
            os_pressure.set(PressureLevel::Normal);
        }
        cache.push_back(backend.allocate(BUFFER, BufferUsage::Storage)?);
        monitor.poll();
        for change in changes.try_iter() {
            let give_back = match change.to {
                PressureLevel::Normal => 0,
                PressureLevel::Warning => cache.len() / 2,
                PressureLevel::Critical => cache.len(),
            };
            for buffer in cache.drain(..give_back) {
                backend.free(buffer);
            }
            println!(
                "step {step:2}: {change}; gave back {give_back} buffers, now holding {}",
                human_bytes(backend.allocated_bytes())
            );
        }
    }
    println!("{}", monitor.counts());
    for buffer in cache {
        backend.free(buffer);
    }
    Ok(())
}

#[cfg(target_os = "linux")]
fn add_platform_sources(monitor: &mut PressureMonitor) -> wgmem::Result<()> {
    use std::time::Duration;
    use wgmem::pressure::{CgroupSource, PsiSource};
    let psi = PsiSource::new().with_trigger(Duration::from_millis(150), Duration::from_secs(1));
    println!("PSI trigger armed: {}", psi.has_trigger());
    monitor.add_source(psi);
    monitor.add_source(CgroupSource::detect()?);
    Ok(())
}

#[cfg(target_vendor = "apple")]
fn add_platform_sources(monitor: &mut PressureMonitor) -> wgmem::Result<()> {
    if let Some(source) = wgmem::pressure::DispatchPressureSource::new() {
        monitor.add_source(source);
    }
    Ok(())
}

#[cfg(not(any(target_os = "linux", target_vendor = "apple")))]
fn add_platform_sources(_monitor: &mut PressureMonitor) -> wgmem::Result<()> {
    Ok(())
}
