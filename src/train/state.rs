//! Saved training state: what a run needs to resume after a lost device or a stopped process.
//!
//! A [`TrainerState`] holds the parameters, the optimizer's state (tensors and counters) and the
//! position of the run (step, epoch, batch within the epoch, seed, micro-batch and the
//! adaptation counters), so a resumed run takes the same batches in the same order with the
//! same kernels and reaches bit-identical parameters. [`Trainer::save_state`] and
//! [`Trainer::load_state`] write and read it.
//!
//! # File format (version 1, all integers and floats little-endian)
//! ```text
//! magic     8 bytes  "WGMEMST\0"
//! version   u32      1
//! counters  u32 n, then n x u64      the run's position (see `RUN_COUNTERS`)
//! optimizer u32 n, then n x u64      optimizer counters (Adam's step)
//! arrays    u32 n, then n records:   u32 name length, UTF-8 name,
//!                                    u32 rank, rank x u64 dims, product(dims) x f32
//! checksum  u64      FNV-1a 64 of every byte before it
//! ```
//! A wrong magic, an unknown version, a truncated or inconsistent record, trailing bytes or a
//! checksum mismatch is [`Error::StateFile`] naming the file and the byte offset.

use super::Trainer;
use crate::error::{Error, Result};
use crate::nn::Module;
use crate::tensor::tags;
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 8] = b"WGMEMST\0";
const VERSION: u32 = 1;
/// Sanity bound on counts read from a file, so a corrupt count cannot ask for terabytes.
const MAX_COUNT: u64 = 1 << 32;

/// One named f32 array with its shape.
#[derive(Debug, Clone, PartialEq)]
pub struct NamedArray {
    /// `"param.3.weight"`, `"optim.5"`.
    pub name: String,
    /// The shape; the data holds `product(shape)` values.
    pub shape: Vec<usize>,
    /// Row-major values.
    pub data: Vec<f32>,
}

/// Everything a [`Trainer`] needs to resume. See the module docs for the file format.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TrainerState {
    /// Optimizer steps taken.
    pub steps: u64,
    /// The epoch in progress (0-based).
    pub epoch: u64,
    /// Batches of that epoch already done.
    pub batch_in_epoch: u64,
    /// The seed of the epoch shuffles.
    pub seed: u64,
    /// Micro-batch rows in use (the accumulation order depends on it).
    pub micro_batch: u64,
    /// Steps since the last pressure or out-of-memory adaptation.
    pub calm_steps: u64,
    /// The smallest micro-batch that ran out of memory, 0 for none.
    pub oom_ceiling: u64,
    /// Samples that contributed to an update.
    pub samples_seen: u64,
    /// Steps skipped for a non-finite loss.
    pub skipped_steps: u64,
    /// The optimizer's counters ([`crate::optim::Optimizer::state_counters`]).
    pub optimizer_counters: Vec<u64>,
    /// Mixed precision: the loss scale and the good steps counted toward its next growth;
    /// `None` for an f32 run. (Stored as two more run counters, so f32 files are unchanged.)
    pub loss_scale: Option<(f32, u64)>,
    /// Parameters (`param.*`), then optimizer tensors (`optim.*`).
    pub arrays: Vec<NamedArray>,
}

impl TrainerState {
    fn run_counters(&self) -> Vec<u64> {
        let mut counters = vec![
            self.steps,
            self.epoch,
            self.batch_in_epoch,
            self.seed,
            self.micro_batch,
            self.calm_steps,
            self.oom_ceiling,
            self.samples_seen,
            self.skipped_steps,
        ];
        if let Some((scale, good)) = self.loss_scale {
            counters.extend([u64::from(scale.to_bits()), good]);
        }
        counters
    }

    /// The encoded file contents.
    pub fn to_bytes(&self) -> Vec<u8> {
        let values: usize = self.arrays.iter().map(|a| a.data.len()).sum();
        let mut out = Vec::with_capacity(64 + values * 4);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        let counters = self.run_counters();
        for list in [&counters[..], &self.optimizer_counters[..]] {
            out.extend_from_slice(&(list.len() as u32).to_le_bytes());
            list.iter()
                .for_each(|c| out.extend_from_slice(&c.to_le_bytes()));
        }
        out.extend_from_slice(&(self.arrays.len() as u32).to_le_bytes());
        for a in &self.arrays {
            out.extend_from_slice(&(a.name.len() as u32).to_le_bytes());
            out.extend_from_slice(a.name.as_bytes());
            out.extend_from_slice(&(a.shape.len() as u32).to_le_bytes());
            a.shape
                .iter()
                .for_each(|d| out.extend_from_slice(&(*d as u64).to_le_bytes()));
            a.data
                .iter()
                .for_each(|v| out.extend_from_slice(&v.to_le_bytes()));
        }
        let sum = fnv1a(&out);
        out.extend_from_slice(&sum.to_le_bytes());
        out
    }

    /// Decodes file contents; `path` only names the source in errors.
    pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<Self> {
        decode(bytes).map_err(|reason| Error::StateFile {
            path: path.to_path_buf(),
            reason,
        })
    }

    /// Writes the state to `path` (through a temporary file renamed into place, so a crash
    /// mid-write leaves the previous file whole).
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        std::fs::write(&tmp, self.to_bytes())?;
        std::fs::rename(&tmp, path)?;
        Ok(())
    }

    /// Reads a state written by [`Self::save`].
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        Self::from_bytes(&std::fs::read(path)?, path)
    }
}

/// FNV-1a, 64 bits: enough to catch a flipped or missing byte, with no dependency.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: u64, what: &str) -> std::result::Result<&[u8], String> {
        let left = (self.bytes.len() - self.at) as u64;
        if n > left {
            return Err(format!(
                "truncated at byte {}: {what} needs {n} bytes, {left} left",
                self.at
            ));
        }
        let out = &self.bytes[self.at..self.at + n as usize];
        self.at += n as usize;
        Ok(out)
    }

    fn u32(&mut self, what: &str) -> std::result::Result<u32, String> {
        let b = self.take(4, what)?;
        Ok(u32::from_le_bytes(b.try_into().expect("4 bytes")))
    }

    fn u64(&mut self, what: &str) -> std::result::Result<u64, String> {
        let b = self.take(8, what)?;
        Ok(u64::from_le_bytes(b.try_into().expect("8 bytes")))
    }

    fn u64s(&mut self, what: &str) -> std::result::Result<Vec<u64>, String> {
        let n = self.u32(what)?;
        (0..n).map(|_| self.u64(what)).collect()
    }
}

fn decode(bytes: &[u8]) -> std::result::Result<TrainerState, String> {
    if bytes.len() < MAGIC.len() || &bytes[..MAGIC.len()] != MAGIC {
        return Err("not a wgmem state file (bad magic)".into());
    }
    if bytes.len() < MAGIC.len() + 4 + 8 {
        return Err(format!("truncated: only {} bytes", bytes.len()));
    }
    let (body, trailer) = bytes.split_at(bytes.len() - 8);
    let mut r = Reader {
        bytes: body,
        at: MAGIC.len(),
    };
    let version = r.u32("version")?;
    if version != VERSION {
        return Err(format!(
            "version {version}; this build reads version {VERSION}"
        ));
    }
    let stored = u64::from_le_bytes(trailer.try_into().expect("8 bytes"));
    if stored != fnv1a(body) {
        return Err("checksum mismatch: the file is corrupt or truncated".into());
    }
    let counters = r.u64s("run counters")?;
    let (base, mixed) = counters.split_at(counters.len().min(9));
    let [
        steps,
        epoch,
        batch_in_epoch,
        seed,
        micro_batch,
        calm_steps,
        oom_ceiling,
        samples_seen,
        skipped_steps,
    ] = base[..]
    else {
        return Err(format!(
            "{} run counters at byte 12; version 1 has 9 (11 for a mixed-precision run)",
            counters.len()
        ));
    };
    let loss_scale = match *mixed {
        [] => None,
        [bits, good] => {
            let scale = u32::try_from(bits)
                .map(f32::from_bits)
                .ok()
                .filter(|s| s.is_finite() && *s > 0.0)
                .ok_or_else(|| format!("loss scale counter {bits:#x} is not a positive f32"))?;
            Some((scale, good))
        }
        _ => {
            return Err(format!(
                "{} run counters at byte 12; version 1 has 9 (11 for a mixed-precision run)",
                counters.len()
            ));
        }
    };
    let optimizer_counters = r.u64s("optimizer counters")?;
    let count = r.u32("array count")?;
    let mut arrays = Vec::new();
    for i in 0..count {
        let at = r.at;
        let len = r.u32("name length")?;
        let name = std::str::from_utf8(r.take(u64::from(len), "name")?)
            .map_err(|_| format!("array {i} at byte {at}: the name is not UTF-8"))?
            .to_owned();
        let rank = r.u32("rank")?;
        let dims = (0..rank)
            .map(|_| r.u64("dimension"))
            .collect::<std::result::Result<Vec<u64>, String>>()?;
        let values = dims
            .iter()
            .try_fold(1u64, |acc, d| acc.checked_mul(*d))
            .filter(|n| *n <= MAX_COUNT)
            .ok_or_else(|| format!("array '{name}' at byte {at}: shape {dims:?} is too large"))?;
        let data = r
            .take(values * 4, &format!("array '{name}'"))?
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")))
            .collect();
        arrays.push(NamedArray {
            name,
            shape: dims.iter().map(|d| *d as usize).collect(),
            data,
        });
    }
    if r.at != body.len() {
        return Err(format!(
            "{} unexpected bytes after the last array at byte {}",
            body.len() - r.at,
            r.at
        ));
    }
    Ok(TrainerState {
        steps,
        epoch,
        batch_in_epoch,
        seed,
        micro_batch,
        calm_steps,
        oom_ceiling,
        samples_seen,
        skipped_steps,
        optimizer_counters,
        loss_scale,
        arrays,
    })
}

impl Trainer {
    /// The run's state now: parameters, optimizer state and position. Waits for the GPU.
    pub fn state(&mut self) -> Result<TrainerState> {
        self.check_state_supported()?;
        let mut arrays = Vec::new();
        for (i, p) in self.model.parameters().into_iter().enumerate() {
            arrays.push(NamedArray {
                name: format!("param.{i}.{}", p.name),
                shape: p.value.shape().to_vec(),
                data: p.value.to_vec()?,
            });
        }
        for (i, t) in self.optimizer.state_tensors().into_iter().enumerate() {
            arrays.push(NamedArray {
                name: format!("optim.{i}"),
                shape: t.shape().to_vec(),
                data: t.to_vec()?,
            });
        }
        Ok(TrainerState {
            steps: self.report.steps,
            epoch: self.epoch as u64,
            batch_in_epoch: self.batch_in_epoch as u64,
            seed: self.config.seed,
            micro_batch: self.micro_batch as u64,
            calm_steps: self.calm_steps,
            oom_ceiling: self.oom_ceiling.unwrap_or(0) as u64,
            samples_seen: self.report.samples_seen as u64,
            skipped_steps: self.report.skipped_steps,
            optimizer_counters: self.optimizer.state_counters(),
            loss_scale: self.scaler.as_ref().map(|s| s.state()),
            arrays,
        })
    }

    /// Saves [`Self::state`] to `path` (see the module docs for the format).
    pub fn save_state(&mut self, path: impl AsRef<Path>) -> Result<()> {
        self.state()?.save(path)
    }

    /// Loads a state saved by [`Self::save_state`] into this trainer, whose model must have
    /// the same parameters (count and shapes) and whose optimizer the same kind. The next
    /// step continues where the saved run stopped.
    pub fn load_state(&mut self, path: impl AsRef<Path>) -> Result<()> {
        let state = TrainerState::load(path)?;
        self.restore(state)
    }

    /// Restores a state (see [`Self::load_state`]). Nothing is changed when it does not fit.
    pub fn restore(&mut self, state: TrainerState) -> Result<()> {
        self.check_state_supported()?;
        if state.loss_scale.is_some() != self.scaler.is_some() {
            return Err(Error::invalid(
                "trainer state",
                format!(
                    "the state is from a {} run and this trainer runs {}; use the same Precision",
                    if state.loss_scale.is_some() {
                        "mixed-precision"
                    } else {
                        "f32"
                    },
                    if self.scaler.is_some() {
                        "mixed precision"
                    } else {
                        "f32"
                    },
                ),
            ));
        }
        let (params, optim): (Vec<_>, Vec<_>) = state
            .arrays
            .into_iter()
            .partition(|a| a.name.starts_with("param."));
        if optim.iter().any(|a| !a.name.starts_with("optim.")) {
            return Err(Error::invalid(
                "trainer state",
                "arrays must be named param.* or optim.*",
            ));
        }
        let mut model_params = self.model.parameters();
        if params.len() != model_params.len() {
            return Err(Error::invalid(
                "trainer state",
                format!(
                    "{} parameters saved, the model has {}",
                    params.len(),
                    model_params.len()
                ),
            ));
        }
        for (saved, p) in params.iter().zip(&model_params) {
            if saved.shape != p.value.shape() || saved.data.len() != p.value.len() {
                return Err(Error::Shape {
                    op: "Trainer::load_state",
                    left: saved.shape.clone(),
                    right: p.value.shape().to_vec(),
                    reason: format!("saved '{}' does not fit the model's parameter", saved.name),
                });
            }
        }
        // Optimizer tensors come in parameter order, `per` of them for each parameter.
        if !optim.is_empty() {
            let n = model_params.len();
            if optim.len() % n != 0 {
                return Err(Error::invalid(
                    "trainer state",
                    format!("{} optimizer tensors for {n} parameters", optim.len()),
                ));
            }
            let per = optim.len() / n;
            for (i, a) in optim.iter().enumerate() {
                if a.shape != model_params[i / per].value.shape() {
                    return Err(Error::Shape {
                        op: "Trainer::load_state",
                        left: a.shape.clone(),
                        right: model_params[i / per].value.shape().to_vec(),
                        reason: format!("optimizer tensor '{}' does not fit its parameter", a.name),
                    });
                }
            }
        }
        let tensors = optim
            .iter()
            .map(|a| self.ctx.from_slice(&a.data, &a.shape, tags::OPTIMIZER))
            .collect::<Result<Vec<_>>>()?;
        self.optimizer
            .load_state(tensors, &state.optimizer_counters)?;
        for (saved, p) in params.iter().zip(&mut model_params) {
            p.value.write(&saved.data)?;
            p.refresh_working()?;
            p.zero_grad()?;
        }
        drop(model_params);
        self.model.clear_saved();
        if state.seed != self.config.seed {
            log::warn!(
                "resuming with the saved shuffle seed {} (the configuration says {})",
                state.seed,
                self.config.seed
            );
            self.config.seed = state.seed;
        }
        self.epoch = state.epoch as usize;
        self.batch_in_epoch = state.batch_in_epoch as usize;
        self.order = None;
        self.micro_batch = (state.micro_batch as usize).clamp(1, self.config.batch_size);
        self.calm_steps = state.calm_steps;
        self.oom_ceiling = (state.oom_ceiling > 0).then_some(state.oom_ceiling as usize);
        self.report.steps = state.steps;
        self.report.samples_seen = state.samples_seen as usize;
        self.report.skipped_steps = state.skipped_steps;
        if let (Some(scaler), Some(saved)) = (self.scaler.as_mut(), state.loss_scale) {
            scaler.restore(saved);
            self.report.loss_scale = Some(saved.0);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> TrainerState {
        TrainerState {
            steps: 7,
            epoch: 1,
            batch_in_epoch: 3,
            seed: 42,
            micro_batch: 16,
            optimizer_counters: vec![7],
            arrays: vec![
                NamedArray {
                    name: "param.0.weight".into(),
                    shape: vec![2, 3],
                    data: vec![1.0, -2.0, 3.5, f32::MIN_POSITIVE, 0.0, -0.0],
                },
                NamedArray {
                    name: "optim.0".into(),
                    shape: vec![],
                    data: vec![9.0],
                },
            ],
            ..TrainerState::default()
        }
    }

    #[test]
    fn a_state_round_trips_bit_for_bit() {
        let s = sample();
        let back = TrainerState::from_bytes(&s.to_bytes(), Path::new("x")).unwrap();
        assert_eq!(back, s);
        assert_eq!(back.arrays[0].data[5].to_bits(), (-0.0f32).to_bits());
    }

    #[test]
    fn every_truncation_and_every_flipped_byte_is_a_state_file_error() {
        let bytes = sample().to_bytes();
        for len in 0..bytes.len() {
            let e = TrainerState::from_bytes(&bytes[..len], Path::new("t")).unwrap_err();
            assert!(matches!(e, Error::StateFile { .. }), "{len}: {e}");
        }
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x40;
            let e = TrainerState::from_bytes(&b, Path::new("t")).unwrap_err();
            assert!(matches!(e, Error::StateFile { .. }), "{i}: {e}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(TrainerState::from_bytes(&longer, Path::new("t")).is_err());
    }

    #[test]
    fn a_wrong_version_is_named() {
        let mut b = sample().to_bytes();
        b[8] = 2;
        let e = TrainerState::from_bytes(&b, Path::new("run.state")).unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("run.state") && text.contains("version 2"),
            "{text}"
        );
    }
}
