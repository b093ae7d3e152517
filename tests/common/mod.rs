//! Helpers shared by the integration tests: one GPU backend per test binary, deterministic
//! random data, and CPU references.
#![allow(dead_code)]

pub mod gradcheck;

use std::io::Read;
use std::sync::{Arc, OnceLock};
use wgmem::data::Dataset;
use wgmem::{Backend, Gpu, WgpuBackend};

/// The GPU backend for this test binary, created once (lavapipe in CI). Logs the adapter so
/// every run records what it ran on.
pub fn gpu_backend() -> Arc<WgpuBackend> {
    static BACKEND: OnceLock<Arc<WgpuBackend>> = OnceLock::new();
    Arc::clone(BACKEND.get_or_init(|| {
        let backend =
            WgpuBackend::new().unwrap_or_else(|e| panic!("the GPU tests need an adapter: {e}"));
        eprintln!("GPU tests run on: {}", backend.adapter());
        Arc::new(backend)
    }))
}

/// A GPU backend of its own, for tests whose counters must not see other tests' work.
pub fn fresh_gpu_backend() -> Arc<WgpuBackend> {
    let backend =
        WgpuBackend::new().unwrap_or_else(|e| panic!("the GPU tests need an adapter: {e}"));
    eprintln!("GPU test runs on: {}", backend.adapter());
    Arc::new(backend)
}

/// Kernel dispatch on [`gpu_backend`], created once.
pub fn gpu() -> Arc<Gpu> {
    static GPU: OnceLock<Arc<Gpu>> = OnceLock::new();
    Arc::clone(GPU.get_or_init(|| Arc::new(Gpu::new(gpu_backend()).expect("kernel setup"))))
}

/// A small deterministic generator (SplitMix64) so tests need no extra crate for data.
pub struct Rng(u64);

impl Rng {
    /// Seeds the generator.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [-1, 1).
    pub fn uniform(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }

    /// `n` values uniform in [-1, 1).
    pub fn vec(&mut self, n: usize) -> Vec<f32> {
        (0..n).map(|_| self.uniform()).collect()
    }
}

/// Writes f32s into a fresh buffer of `backend`.
pub fn upload<B: Backend>(backend: &B, data: &[f32]) -> B::Buffer {
    let buffer = backend
        .allocate((data.len().max(1) * 4) as u64, wgmem::BufferUsage::Storage)
        .expect("allocate");
    backend
        .write(&buffer, 0, bytemuck::cast_slice(data))
        .expect("write");
    buffer
}

/// Reads `n` f32s from `buffer`.
pub fn download<B: Backend>(backend: &B, buffer: &B::Buffer, n: usize) -> Vec<f32> {
    let mut out = vec![0f32; n];
    backend
        .read(buffer, 0, bytemuck::cast_slice_mut(&mut out))
        .expect("read");
    out
}

/// The embedded UCI digits (data/digits.csv.gz: 1,797 rows of 64 features, 10 classes),
/// scaled to [0, 1].
pub fn digits() -> Dataset {
    let gz = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/data/digits.csv.gz")).unwrap();
    let mut text = String::new();
    flate2::read::GzDecoder::new(&gz[..])
        .read_to_string(&mut text)
        .unwrap();
    let mut data = Dataset::from_csv(&text).unwrap();
    assert_eq!(
        (data.len(), data.n_features(), data.n_classes()),
        (1797, 64, 10)
    );
    data.normalize();
    data
}

/// [`digits`] split 80/20 with seed 0: (train, test).
pub fn digits_split() -> (Dataset, Dataset) {
    digits().split(0.2, 0).unwrap()
}
