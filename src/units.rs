//! Units for people: byte counts in binary units.
//!
//! A leaf module (it imports nothing from the crate), so every layer that prints a size
//! (memory's statistics, the profiler's reports, the trainer's report, errors) uses the same
//! formatting without looking up at the memory layer. [`crate::memory::human_bytes`] is the
//! same function, re-exported where users found it first.

/// Formats a byte count in binary units: `512 B`, `1.5 KiB`, `3.25 GiB`.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.2} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_bytes_uses_binary_units() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1536), "1.50 KiB");
        assert_eq!(human_bytes(3 << 30), "3.00 GiB");
        assert_eq!(human_bytes(u64::MAX), "16777216.00 TiB");
    }
}
