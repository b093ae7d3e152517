//! Every WGSL source of the crate, embedded at compile time, and their validation through naga.
//!
//! Validating with naga before handing a source to wgpu turns a bad shader into a typed
//! [`Error::ShaderCompile`] with naga's diagnostic, instead of wgpu's uncaptured-error path.

use crate::error::{Error, Result, ShaderPosition};

/// A WGSL source file from `shaders/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShaderSource {
    /// The file stem, e.g. `"elementwise"`.
    pub name: &'static str,
    /// The WGSL text.
    pub source: &'static str,
}

macro_rules! shaders {
    (files: [$($name:literal),* $(,)?], joined: [$($joined:literal = [$($piece:literal),*]),* $(,)?]) => {
        /// All shaders: one entry per file in `shaders/`, then the modules joined from pieces in
        /// its subfolders: the fp32 matmul (`shaders/matmul/`: shared parameters and epilogue,
        /// one file per tiling) and the cooperative-matrix matmuls (`shaders/coop/`: WGSL has
        /// no generics, so the pieces name the fragment size and the input and output types the
        /// shared body uses); likewise the transformer kernels (`shaders/{embedding,layernorm,
        /// dropout,attention}/`), whose header piece names the activations' storage type
        /// (`act`: f32, or f16 with f32 arithmetic) for one shared body.
        pub const SHADERS: &[ShaderSource] = &[
            $(ShaderSource { name: $name, source: include_str!(concat!("../../shaders/", $name, ".wgsl")) },)*
            $(ShaderSource {
                name: $joined,
                source: concat!($(include_str!(concat!("../../shaders/", $piece, ".wgsl"))),*),
            },)*
        ];
    };
}

shaders![
    files: [
        "elementwise",
        "elementwise_vec4",
        "elementwise_f16",
        "matmul_f16",
        "reduce",
        "softmax",
        "softmax_f16",
        "optim",
        "optim_mixed",
        "attention_naive",
        "compress",
    ],
    joined: [
        "matmul" = ["matmul/activate", "matmul/common", "matmul/whole", "matmul/tile64", "matmul/tile128k16", "matmul/tile128v4"],
        "matmul_sliced" = ["matmul/activate", "matmul/common", "matmul/sliced", "matmul/tile64", "matmul/tile128k16", "matmul/tile128v4"],
        "matmul_splitk" = ["matmul/activate", "matmul/splitk"],
        "colsum" = ["colsum/f32", "colsum/body"],
        "colsum_f16" = ["colsum/f16", "colsum/body"],
        "matmul_coop16_f16_f32" = ["coop/head_f16_16", "coop/out_f32", "coop/body", "matmul/sliced"],
        "matmul_coop16_f16_f16" = ["coop/head_f16_16", "coop/out_f16", "coop/body", "matmul/sliced"],
        "matmul_coop8_f16_f32" = ["coop/head_f16_8", "coop/out_f32", "coop/body", "matmul/sliced"],
        "matmul_coop8_f16_f16" = ["coop/head_f16_8", "coop/out_f16", "coop/body", "matmul/sliced"],
        "matmul_coop8_f32_f32" = ["coop/head_f32_8", "coop/out_f32", "coop/body", "matmul/sliced"],
        "embedding" = ["embedding/f32", "embedding/body"],
        "embedding_f16" = ["embedding/f16", "embedding/body"],
        "layernorm" = ["layernorm/f32", "layernorm/body"],
        "layernorm_f16" = ["layernorm/f16", "layernorm/body"],
        "dropout" = ["dropout/f32", "dropout/body"],
        "dropout_f16" = ["dropout/f16", "dropout/body"],
        "attention" = ["attention/f32", "attention/common", "attention/blocked"],
        "attention_rows" = ["attention/f32", "attention/common", "attention/rows"],
        "attention_f16" = ["attention/f16", "attention/common", "attention/blocked"],
        "attention_rows_f16" = ["attention/f16", "attention/common", "attention/rows"],
    ]
];

/// The naga capabilities a shader needs beyond the defaults, read from its `enable` directives
/// and builtins: f16 (`enable f16`), cooperative matrices (`enable wgpu_cooperative_matrix`)
/// and subgroups (the `subgroup_*` builtins).
pub fn capabilities(source: &str) -> naga::valid::Capabilities {
    use naga::valid::Capabilities as C;
    let mut caps = C::empty();
    if source.contains("enable f16;") {
        caps |= C::SHADER_FLOAT16;
    }
    if source.contains("enable wgpu_cooperative_matrix;") {
        caps |= C::COOPERATIVE_MATRIX;
    }
    if source.contains("@builtin(subgroup_") {
        caps |= C::SUBGROUP;
    }
    caps
}

/// Looks up an embedded shader by file stem.
pub fn shader(name: &str) -> Option<&'static ShaderSource> {
    SHADERS.iter().find(|s| s.name == name)
}

/// Parses and validates a WGSL source with naga, returning the module and its analysis.
pub fn validate_wgsl(name: &str, source: &str) -> Result<(naga::Module, naga::valid::ModuleInfo)> {
    let module = naga::front::wgsl::parse_str(source).map_err(|e| Error::ShaderCompile {
        name: name.to_string(),
        message: e.emit_to_string_with_path(source, &format!("{name}.wgsl")),
        position: e.location(source).map(position),
    })?;
    // f16 shaders (`enable f16;`) need SHADER_FLOAT16; the device's own check (SHADER_F16) runs
    // when wgpu compiles them, and the f16 entry points refuse devices without it first.
    let info = naga::valid::Validator::new(
        naga::valid::ValidationFlags::all(),
        naga::valid::Capabilities::default() | capabilities(source),
    )
    .validate(&module)
    .map_err(|e| Error::ShaderCompile {
        name: name.to_string(),
        message: e.emit_to_string_with_path(source, &format!("{name}.wgsl")),
        position: e.location(source).map(position),
    })?;
    Ok((module, info))
}

/// naga's source location as the error's line and column.
pub(super) fn position(at: naga::SourceLocation) -> ShaderPosition {
    ShaderPosition {
        line: at.line_number,
        column: at.line_position,
    }
}
