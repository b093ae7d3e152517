//! What a user kernel's WGSL declares, read with naga: the buffer bindings of its entry point
//! (checked against the binding convention of `user_kernel.rs`), its workgroup size, and the
//! validation itself, with the capabilities the device really has (so a shader using `f16` on a
//! device with `SHADER_F16` validates, and one using it elsewhere is refused with its line).

use super::shaders::position;
use crate::error::{Error, Result};

/// How a shader declares one buffer binding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Access {
    Uniform,
    ReadOnly,
    ReadWrite,
}

/// One buffer binding of a user kernel, from naga's reflection.
#[derive(Debug, Clone)]
pub(super) struct Slot {
    pub(super) binding: u32,
    pub(super) access: Access,
    /// The smallest byte size the shader's type allows (one element of a runtime array).
    pub(super) min_size: u64,
    pub(super) name: String,
}

/// The entry point's workgroup size with `override WG` set to `wg`; `None` when another
/// override decides a dimension.
pub(super) fn workgroup_size(module: &naga::Module, entry: &str, wg: u32) -> Option<[u32; 3]> {
    let ep = module.entry_points.iter().find(|e| e.name == entry)?;
    let Some(overrides) = &ep.workgroup_size_overrides else {
        return Some(ep.workgroup_size);
    };
    let mut size = ep.workgroup_size;
    for (dim, expr) in overrides.iter().enumerate() {
        let Some(expr) = expr else { continue };
        match module.global_expressions[*expr] {
            naga::Expression::Override(o) if module.overrides[o].name.as_deref() == Some("WG") => {
                size[dim] = wg;
            }
            _ => return None,
        }
    }
    Some(size)
}

/// The params size and the buffer slots of `entry`, checked against the binding convention.
pub(super) fn reflect(
    name: &str,
    entry: &str,
    module: &naga::Module,
    info: &naga::valid::ModuleInfo,
) -> Result<(Option<u64>, Vec<Slot>)> {
    let bad = |reason: String| Error::invalid("kernel", format!("'{name}': {reason}"));
    let index = module
        .entry_points
        .iter()
        .position(|e| e.name == entry && e.stage == naga::ShaderStage::Compute)
        .ok_or_else(|| {
            let found: Vec<&str> = module
                .entry_points
                .iter()
                .filter(|e| e.stage == naga::ShaderStage::Compute)
                .map(|e| e.name.as_str())
                .collect();
            bad(format!(
                "no compute entry point '{entry}'; the shader has {found:?}"
            ))
        })?;
    let uses = info.get_entry_point(index);
    let mut slots = Vec::new();
    for (handle, var) in module.global_variables.iter() {
        let Some(binding) = &var.binding else {
            continue;
        };
        if uses[handle].is_empty() {
            continue;
        }
        let var_name = var.name.clone().unwrap_or_default();
        if binding.group != 0 {
            return Err(bad(format!(
                "'{var_name}' is in @group({}); user kernels use @group(0) only",
                binding.group
            )));
        }
        let access = match var.space {
            naga::AddressSpace::Uniform => Access::Uniform,
            naga::AddressSpace::Storage { access } => {
                if access.contains(naga::StorageAccess::STORE) {
                    Access::ReadWrite
                } else {
                    Access::ReadOnly
                }
            }
            _ => {
                return Err(bad(format!(
                    "'{var_name}' at @binding({}) is not a buffer; user kernels bind \
                     var<uniform> and var<storage> only",
                    binding.binding
                )));
            }
        };
        slots.push(Slot {
            binding: binding.binding,
            access,
            min_size: u64::from(module.types[var.ty].inner.size(module.to_ctx())),
            name: var_name,
        });
    }
    slots.sort_by_key(|s| s.binding);
    let params = match slots.first() {
        Some(s) if s.binding == 0 && s.access == Access::Uniform => Some(slots.remove(0).min_size),
        _ => None,
    };
    let first = u32::from(params.is_some());
    for (i, s) in slots.iter().enumerate() {
        if s.binding != first + i as u32 {
            let found: Vec<u32> = slots.iter().map(|s| s.binding).collect();
            return Err(bad(format!(
                "buffer bindings {found:?} are not numbered {first}, {}, ... without gaps",
                first + 1
            )));
        }
    }
    Ok((params, slots))
}

/// Parses and validates `source` as [`super::validate_wgsl`] does, with the naga capabilities
/// that `features` give (f16, f64, i64, subgroups).
pub(super) fn validate_for_device(
    name: &str,
    source: &str,
    features: wgpu::Features,
) -> Result<(naga::Module, naga::valid::ModuleInfo)> {
    use naga::valid::Capabilities as C;
    let mut caps = C::default();
    for (feature, cap) in [
        (wgpu::Features::SHADER_F16, C::SHADER_FLOAT16),
        (wgpu::Features::SHADER_F64, C::FLOAT64),
        (wgpu::Features::SHADER_INT64, C::SHADER_INT64),
        (wgpu::Features::SUBGROUP, C::SUBGROUP),
        (wgpu::Features::SUBGROUP_BARRIER, C::SUBGROUP_BARRIER),
    ] {
        if features.contains(feature) {
            caps |= cap;
        }
    }
    let path = format!("{name}.wgsl");
    let module = naga::front::wgsl::parse_str(source).map_err(|e| Error::ShaderCompile {
        name: name.to_string(),
        message: e.emit_to_string_with_path(source, &path),
        position: e.location(source).map(position),
    })?;
    let mut validator = naga::valid::Validator::new(naga::valid::ValidationFlags::all(), caps);
    if features.contains(wgpu::Features::SUBGROUP) {
        validator
            .subgroup_stages(naga::valid::ShaderStages::COMPUTE)
            .subgroup_operations(naga::valid::SubgroupOperationSet::all());
    }
    let info = validator
        .validate(&module)
        .map_err(|e| Error::ShaderCompile {
            name: name.to_string(),
            message: e.emit_to_string_with_path(source, &path),
            position: e.location(source).map(position),
        })?;
    Ok((module, info))
}
