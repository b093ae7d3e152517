//! Every WGSL source of the crate, embedded at compile time, and their validation through naga.
//!
//! Validating with naga before handing a source to wgpu turns a bad shader into a typed
//! [`Error::ShaderCompile`] with naga's diagnostic, instead of wgpu's uncaptured-error path.

use crate::error::{Error, Result};

/// A WGSL source file from `shaders/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShaderSource {
    /// The file stem, e.g. `"elementwise"`.
    pub name: &'static str,
    /// The WGSL text.
    pub source: &'static str,
}

macro_rules! shaders {
    ($($name:literal),* $(,)?) => {
        /// All shaders in `shaders/`, one entry per file.
        pub const SHADERS: &[ShaderSource] = &[
            $(ShaderSource { name: $name, source: include_str!(concat!("../../shaders/", $name, ".wgsl")) },)*
        ];
    };
}

shaders![
    "elementwise",
    "elementwise_vec4",
    "matmul",
    "reduce",
    "softmax",
    "optim",
    "compress"
];

/// Looks up an embedded shader by file stem.
pub fn shader(name: &str) -> Option<&'static ShaderSource> {
    SHADERS.iter().find(|s| s.name == name)
}

/// Parses and validates a WGSL source with naga, returning the module and its analysis.
pub fn validate_wgsl(name: &str, source: &str) -> Result<(naga::Module, naga::valid::ModuleInfo)> {
    let module = naga::front::wgsl::parse_str(source).map_err(|e| Error::ShaderCompile {
        name: name.to_string(),
        message: e.emit_to_string_with_path(source, &format!("{name}.wgsl")),
    })?;
    let info = naga::valid::Validator::new(
        naga::valid::ValidationFlags::all(),
        naga::valid::Capabilities::default(),
    )
    .validate(&module)
    .map_err(|e| Error::ShaderCompile {
        name: name.to_string(),
        message: e.emit_to_string_with_path(source, &format!("{name}.wgsl")),
    })?;
    Ok((module, info))
}
