//! Which fused attention kernel runs each pass: one row per thread
//! (`shaders/attention/rows.wgsl`) or register-blocked (`shaders/attention/blocked.wgsl`).
//!
//! Both variants compute the same sums (in different orders) from the same buffers, so the
//! forward, dq and dkdv passes can each use either. Which is faster depends on the device and
//! is a question for the benchmarks: `WGMEM_ATTENTION_ROWS` overrides the default for a whole
//! process (as `WGMEM_MATMUL_TILE` does for the matmul tiling), so that `benches/attention.rs`
//! and a training step can be timed with each.

/// One pass's kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FusedKernel {
    /// `attn_*_rows`: each thread one query (or key) row, 64 rows per workgroup.
    Rows,
    /// `attn_*`: each thread a 4-row block from tiles in workgroup memory, 32 rows per
    /// workgroup; needs up to 30.5 KiB of workgroup memory.
    Blocked,
}

impl FusedKernel {
    /// Rows one workgroup owns.
    pub(super) fn rows(self) -> usize {
        match self {
            FusedKernel::Rows => 64,
            FusedKernel::Blocked => 32,
        }
    }

    /// The entry point of `pass` (`"attn_forward"`, `"attn_dq"`, `"attn_dkdv"`).
    pub(super) fn entry(self, pass: &'static str) -> &'static str {
        match (self, pass) {
            (FusedKernel::Rows, "attn_forward") => "attn_forward_rows",
            (FusedKernel::Rows, "attn_dq") => "attn_dq_rows",
            (FusedKernel::Rows, "attn_dkdv") => "attn_dkdv_rows",
            _ => pass,
        }
    }
}

/// The kernel of each pass of the fused attention.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FusedKernels {
    /// `o` and `lse`.
    pub forward: FusedKernel,
    /// `dq` and `delta`.
    pub dq: FusedKernel,
    /// `dk` and `dv`.
    pub dkdv: FusedKernel,
}

impl FusedKernels {
    /// Every pass one row per thread.
    pub const ROWS: FusedKernels = FusedKernels {
        forward: FusedKernel::Rows,
        dq: FusedKernel::Rows,
        dkdv: FusedKernel::Rows,
    };

    /// Every pass register-blocked.
    pub const BLOCKED: FusedKernels = FusedKernels {
        forward: FusedKernel::Blocked,
        dq: FusedKernel::Blocked,
        dkdv: FusedKernel::Blocked,
    };

    /// What the attention entry points run without `WGMEM_ATTENTION_ROWS`: one row per thread
    /// in every pass. On the H200 (BENCHMARKS.md, 2026-12-01, one call) at the default GPT's
    /// shape (batch 64, 6 heads, T 256, head 64) forward + backward took 2.60 ms all rows, 2.93
    /// with the blocked backward and 3.27 all blocked, and the GPT step 79.0 / 81.4 / 83.3 ms;
    /// the blocked backward wins only at long contexts (T 1024: 3.58 against 3.99 ms; T 2048:
    /// 12.18 against 11.54, a loss).
    pub const DEFAULT: FusedKernels = FusedKernels::ROWS;

    /// [`FusedKernels::DEFAULT`], or as `WGMEM_ATTENTION_ROWS` says (read once): a
    /// comma-separated list of the passes that run one row per thread (`forward`, `dq`,
    /// `dkdv`, or `all`, or `none`), the others register-blocked. An unknown name logs a
    /// warning that lists the valid ones, and the default is used.
    pub fn current() -> FusedKernels {
        static KERNELS: std::sync::OnceLock<FusedKernels> = std::sync::OnceLock::new();
        *KERNELS.get_or_init(|| match std::env::var("WGMEM_ATTENTION_ROWS") {
            Ok(list) => parse(&list).unwrap_or_else(|msg| {
                log::warn!("{msg}");
                FusedKernels::DEFAULT
            }),
            Err(_) => FusedKernels::DEFAULT,
        })
    }
}

/// `WGMEM_ATTENTION_ROWS`'s list: the passes named run [`FusedKernel::Rows`].
fn parse(list: &str) -> Result<FusedKernels, String> {
    let mut kernels = FusedKernels::BLOCKED;
    for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        match name {
            "forward" => kernels.forward = FusedKernel::Rows,
            "dq" => kernels.dq = FusedKernel::Rows,
            "dkdv" => kernels.dkdv = FusedKernel::Rows,
            "all" => kernels = FusedKernels::ROWS,
            "none" => {}
            _ => {
                return Err(format!(
                    "WGMEM_ATTENTION_ROWS={list:?}: unknown pass {name:?}; expected a \
                     comma-separated list of forward, dq, dkdv, all or none"
                ));
            }
        }
    }
    Ok(kernels)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_names_the_passes_that_run_one_row_per_thread() {
        let k = parse("forward, dkdv").unwrap();
        assert_eq!(k.forward, FusedKernel::Rows);
        assert_eq!(k.dq, FusedKernel::Blocked);
        assert_eq!(k.dkdv, FusedKernel::Rows);
        assert_eq!(parse("all").unwrap(), FusedKernels::ROWS);
        assert_eq!(parse("none").unwrap(), FusedKernels::BLOCKED);
        assert_eq!(parse("").unwrap(), FusedKernels::BLOCKED);
        let err = parse("forward,dv").unwrap_err();
        assert!(err.contains("\"dv\"") && err.contains("dkdv"), "{err}");
    }

    #[test]
    fn each_pass_names_its_entry_point() {
        assert_eq!(FusedKernel::Rows.entry("attn_dq"), "attn_dq_rows");
        assert_eq!(FusedKernel::Blocked.entry("attn_dq"), "attn_dq");
        assert_eq!(FusedKernel::Rows.rows(), 64);
        assert_eq!(FusedKernel::Blocked.rows(), 32);
    }
}
