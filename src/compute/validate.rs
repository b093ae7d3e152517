//! Argument checks shared by the kernel entry points: a kernel must never see a range past a
//! buffer's end (wgpu would report it on the uncaptured-error path and skip the dispatch), nor
//! the same buffer bound for writing and reading at once.

use super::Gpu;
use crate::error::{Error, Result};

/// Checks that `buffer` holds `n` 4-byte values and that the range fits one storage binding;
/// returns `n` as the kernels' `u32`.
pub(crate) fn elements(
    gpu: &Gpu,
    op: &'static str,
    buffer: &wgpu::Buffer,
    n: usize,
) -> Result<u32> {
    let needed = (n as u64).checked_mul(4).ok_or_else(|| {
        Error::invalid(
            "element count",
            format!("{op}: {n} elements overflow a byte count"),
        )
    })?;
    if needed > buffer.size() {
        return Err(Error::OutOfBounds {
            op,
            offset: 0,
            len: needed,
            size: buffer.size(),
        });
    }
    let max = gpu.max_binding_bytes();
    if needed > max {
        return Err(Error::invalid(
            "element count",
            format!(
                "{op}: {n} elements ({needed} bytes) exceed the device's largest storage binding of {max} bytes"
            ),
        ));
    }
    u32::try_from(n)
        .map_err(|_| Error::invalid("element count", format!("{op}: {n} exceeds u32::MAX")))
}

/// As [`elements`], for `n` values of `dtype` (f16 buffers hold two values per word).
pub(crate) fn elements_of(
    gpu: &Gpu,
    op: &'static str,
    buffer: &wgpu::Buffer,
    n: usize,
    dtype: crate::DType,
) -> Result<u32> {
    if dtype == crate::DType::F32 {
        return elements(gpu, op, buffer, n);
    }
    let needed = dtype.buffer_bytes(n).ok_or_else(|| {
        Error::invalid(
            "element count",
            format!("{op}: {n} elements overflow a byte count"),
        )
    })?;
    if needed > buffer.size() {
        return Err(Error::OutOfBounds {
            op,
            offset: 0,
            len: needed,
            size: buffer.size(),
        });
    }
    let max = gpu.max_binding_bytes();
    if needed > max {
        return Err(Error::invalid(
            "element count",
            format!(
                "{op}: {n} {dtype} elements ({needed} bytes) exceed the device's largest storage binding of {max} bytes"
            ),
        ));
    }
    u32::try_from(n)
        .map_err(|_| Error::invalid("element count", format!("{op}: {n} exceeds u32::MAX")))
}

/// `rows * cols`, or an error naming the operation when it overflows.
pub(crate) fn product(op: &'static str, rows: usize, cols: usize) -> Result<usize> {
    rows.checked_mul(cols)
        .ok_or_else(|| Error::invalid("shape", format!("{op}: {rows} x {cols} overflows")))
}

/// Fails with [`Error::SameBuffer`] when the written buffer is also one of the read ones.
pub(crate) fn distinct(written: &wgpu::Buffer, read: &[&wgpu::Buffer]) -> Result<()> {
    if read.contains(&written) {
        return Err(Error::SameBuffer);
    }
    Ok(())
}

/// Fails when any two of the written buffers are the same.
pub(crate) fn distinct_written(written: &[&wgpu::Buffer]) -> Result<()> {
    for (i, w) in written.iter().enumerate() {
        if written[i + 1..].contains(w) {
            return Err(Error::SameBuffer);
        }
    }
    Ok(())
}
