//! [`ThreadWorld`]: ranks as threads of one test process, an in-process [`Collective`] with
//! the same shapes as MPI's (its sums are taken in f32 in rank order, as a reduction would).

use std::sync::{Arc, Barrier, Mutex};
use wgmem::Error;
use wgmem::distributed::Collective;

/// Ranks as threads: each collective publishes its input in a slot, waits for all ranks,
/// computes its result from all slots, and waits again before the slots can be reused.
pub struct ThreadWorld {
    rank: usize,
    world: usize,
    shared: Arc<(Barrier, Mutex<Vec<Vec<f64>>>)>,
}

impl ThreadWorld {
    /// `world` ranks sharing one rendezvous, rank order.
    pub fn new(world: usize) -> Vec<ThreadWorld> {
        let shared = Arc::new((Barrier::new(world), Mutex::new(vec![Vec::new(); world])));
        (0..world)
            .map(|rank| ThreadWorld {
                rank,
                world,
                shared: Arc::clone(&shared),
            })
            .collect()
    }

    /// Publishes `mine` and returns every rank's values.
    fn exchange(&self, mine: Vec<f64>) -> Vec<Vec<f64>> {
        self.shared.1.lock().unwrap()[self.rank] = mine;
        self.shared.0.wait();
        let all = self.shared.1.lock().unwrap().clone();
        self.shared.0.wait();
        all
    }

    fn sum(&self, data: &[f32]) -> Vec<f32> {
        let all = self.exchange(data.iter().map(|&v| f64::from(v)).collect());
        // Summed in f32 in rank order, as a reduction would.
        (0..data.len())
            .map(|i| all.iter().fold(0f32, |acc, r| acc + r[i] as f32))
            .collect()
    }
}

fn check(op: &'static str, whole: usize, block: usize, world: usize) -> wgmem::Result<()> {
    if block * world != whole {
        return Err(Error::Collective {
            op,
            reason: format!("{whole} != {world} x {block}"),
        });
    }
    Ok(())
}

impl Collective for ThreadWorld {
    fn rank(&self) -> usize {
        self.rank
    }
    fn world_size(&self) -> usize {
        self.world
    }
    fn all_reduce(&self, data: &mut [f32]) -> wgmem::Result<()> {
        let s = self.sum(data);
        data.copy_from_slice(&s);
        Ok(())
    }
    fn all_reduce_u64(&self, data: &mut [u64]) -> wgmem::Result<()> {
        let all = self.exchange(data.iter().map(|&v| v as f64).collect());
        for (i, d) in data.iter_mut().enumerate() {
            *d = all.iter().map(|r| r[i] as u64).sum();
        }
        Ok(())
    }
    fn broadcast(&self, data: &mut [f32], root: usize) -> wgmem::Result<()> {
        let all = self.exchange(data.iter().map(|&v| f64::from(v)).collect());
        for (d, v) in data.iter_mut().zip(&all[root]) {
            *d = *v as f32;
        }
        Ok(())
    }
    fn reduce_scatter(&self, send: &[f32], recv: &mut [f32]) -> wgmem::Result<()> {
        check("reduce_scatter", send.len(), recv.len(), self.world)?;
        let s = self.sum(send);
        let b = recv.len();
        recv.copy_from_slice(&s[self.rank * b..(self.rank + 1) * b]);
        Ok(())
    }
    fn all_gather(&self, send: &[f32], recv: &mut [f32]) -> wgmem::Result<()> {
        check("all_gather", recv.len(), send.len(), self.world)?;
        let all = self.exchange(send.iter().map(|&v| f64::from(v)).collect());
        for (r, values) in all.iter().enumerate() {
            for (i, v) in values.iter().enumerate() {
                recv[r * send.len() + i] = *v as f32;
            }
        }
        Ok(())
    }
    fn all_gather_u64(&self, send: &[u64], recv: &mut [u64]) -> wgmem::Result<()> {
        check("all_gather", recv.len(), send.len(), self.world)?;
        let all = self.exchange(send.iter().map(|&v| v as f64).collect());
        for (r, values) in all.iter().enumerate() {
            for (i, v) in values.iter().enumerate() {
                recv[r * send.len() + i] = *v as u64;
            }
        }
        Ok(())
    }
    fn barrier(&self) -> wgmem::Result<()> {
        self.shared.0.wait();
        Ok(())
    }
}
