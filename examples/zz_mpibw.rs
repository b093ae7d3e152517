use mpi::collective::SystemOperation;
use mpi::traits::*;
use std::time::Instant;
fn main() {
    let u = mpi::initialize().unwrap();
    let w = u.world();
    for &mib in &[4usize, 16, 32, 64] {
        let n = mib << 18;
        let send = vec![1.0f32; n];
        let mut recv = vec![0.0f32; n];
        w.all_reduce_into(&send[..], &mut recv[..], SystemOperation::sum());
        let reps = 10;
        w.barrier();
        let t = Instant::now();
        for _ in 0..reps {
            w.all_reduce_into(&send[..], &mut recv[..], SystemOperation::sum());
        }
        let dt = t.elapsed().as_secs_f64() / reps as f64;
        let t2 = Instant::now();
        for _ in 0..reps {
            recv.copy_from_slice(&send);
        }
        let mc = t2.elapsed().as_secs_f64() / reps as f64;
        if w.rank() == 0 {
            println!(
                "{mib} MiB allreduce {:.2} ms = {:.2} GB/s; memcpy {:.2} GB/s",
                dt * 1e3,
                (n * 4) as f64 / dt / 1e9,
                (n * 4) as f64 / mc / 1e9
            );
        }
    }
}
