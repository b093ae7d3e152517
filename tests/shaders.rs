//! Every shader in `shaders/` is embedded, validates with naga, and translates to MSL (Metal),
//! SPIR-V (Vulkan) and HLSL (DX12). A shader that would not compile for Metal fails here,
//! on machines that have no Metal. The cooperative-matrix shaders translate to MSL and SPIR-V;
//! HLSL cannot express cooperative matrices, and naga refuses them with a validation error that
//! names the missing capability (DX12 adapters never select them).

use std::collections::BTreeSet;
use wgmem::compute::{SHADERS, ShaderSource, capabilities, validate_wgsl};

fn is_coop(shader: &ShaderSource) -> bool {
    capabilities(shader.source).contains(naga::valid::Capabilities::COOPERATIVE_MATRIX)
}

fn shader_files() -> BTreeSet<String> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/shaders");
    std::fs::read_dir(dir)
        .expect("shaders/ exists")
        .filter_map(|e| {
            let path = e.ok()?.path();
            (path.extension()? == "wgsl").then(|| path.file_stem()?.to_str().map(str::to_owned))?
        })
        .collect()
}

/// The modules joined from pieces in subfolders of `shaders/` (`compute::shaders`).
const JOINED: [&str; 20] = [
    "matmul",
    "matmul_sliced",
    "matmul_splitk",
    "colsum",
    "colsum_f16",
    "matmul_coop16_f16_f32",
    "matmul_coop16_f16_f16",
    "matmul_coop8_f16_f32",
    "matmul_coop8_f16_f16",
    "matmul_coop8_f32_f32",
    "embedding",
    "embedding_f16",
    "layernorm",
    "layernorm_f16",
    "dropout",
    "dropout_f16",
    "attention",
    "attention_f16",
    "attention_rows",
    "attention_rows_f16",
];

#[test]
fn every_shader_file_is_embedded() {
    let embedded: BTreeSet<String> = SHADERS
        .iter()
        .filter(|s| !JOINED.contains(&s.name))
        .map(|s| s.name.to_string())
        .collect();
    assert!(!embedded.is_empty());
    assert_eq!(
        shader_files(),
        embedded,
        "shaders/ and compute::SHADERS must list the same files"
    );
    for name in JOINED {
        assert!(SHADERS.iter().any(|s| s.name == name), "{name} is embedded");
    }
}

#[test]
fn every_shader_translates_to_msl_spirv_and_hlsl() {
    for shader in SHADERS {
        let (module, info) =
            validate_wgsl(shader.name, shader.source).unwrap_or_else(|e| panic!("{e}"));
        // Resolve override constants (workgroup sizes) the way a pipeline would.
        let mut constants = naga::back::PipelineConstants::default();
        for (_, o) in module.overrides.iter() {
            if let Some(name) = &o.name {
                if o.init.is_none() {
                    constants.insert(name.clone(), 64.0);
                }
            }
        }
        let (module, info) =
            naga::back::pipeline_constants::process_overrides(&module, &info, None, &constants)
                .unwrap_or_else(|e| panic!("{}: overrides: {e:?}", shader.name));
        let msl_options = naga::back::msl::Options {
            lang_version: (2, 4),
            ..Default::default()
        };
        naga::back::msl::write_string(&module, &info, &msl_options, &Default::default())
            .unwrap_or_else(|e| panic!("{}: MSL: {e:?}", shader.name));
        naga::back::spv::write_vec(&module, &info, &Default::default(), None)
            .unwrap_or_else(|e| panic!("{}: SPIR-V: {e:?}", shader.name));
        if is_coop(shader) {
            continue;
        }
        let mut hlsl = String::new();
        // f16 arithmetic in HLSL needs shader model 6.2 (DXC's `-enable-16bit-types`); naga
        // refuses `enable f16;` shaders below it. wgpu's DX12 backend asks for 6.2+ when the
        // device has SHADER_F16.
        let hlsl_options = naga::back::hlsl::Options {
            shader_model: if shader.source.contains("enable f16;") {
                naga::back::hlsl::ShaderModel::V6_2
            } else {
                naga::back::hlsl::Options::default().shader_model
            },
            ..Default::default()
        };
        let pipeline_options = naga::back::hlsl::PipelineOptions::default();
        naga::back::hlsl::Writer::new(&mut hlsl, &hlsl_options, &pipeline_options)
            .write(&module, &info, None)
            .unwrap_or_else(|e| panic!("{}: HLSL: {e:?}", shader.name));
        assert!(!hlsl.is_empty());
    }
}

#[test]
fn invalid_wgsl_is_a_typed_error_with_the_location() {
    let err = validate_wgsl(
        "broken",
        "@compute @workgroup_size(1) fn main() { let x: f32 = 1u; }",
    )
    .map(|_| ())
    .expect_err("a type error is caught");
    let msg = err.to_string();
    assert!(matches!(err, wgmem::Error::ShaderCompile { .. }));
    assert!(msg.contains("broken.wgsl"), "{msg}");
}

#[test]
fn cooperative_matrix_shaders_exist_and_hlsl_refuses_them_with_a_clear_error() {
    let coop: Vec<&ShaderSource> = SHADERS.iter().filter(|s| is_coop(s)).collect();
    assert!(
        coop.len() >= 5,
        "16x16 f16 -> f32/f16, 8x8 f16 -> f32/f16, 8x8 f32"
    );
    for shader in coop {
        let module = naga::front::wgsl::parse_str(shader.source).expect("parses");
        let err = naga::valid::Validator::new(
            naga::valid::ValidationFlags::all(),
            naga::back::hlsl::supported_capabilities(),
        )
        .validate(&module)
        .map(|_| ())
        .expect_err("HLSL's capabilities lack cooperative matrices");
        let msg = format!("{:?}", err.as_inner());
        assert!(
            msg.contains("COOPERATIVE_MATRIX"),
            "{}: the refusal names the capability: {msg}",
            shader.name
        );
    }
}

#[test]
fn every_piece_in_a_subfolder_is_part_of_an_embedded_shader() {
    for sub in [
        "coop",
        "matmul",
        "embedding",
        "layernorm",
        "dropout",
        "attention",
    ] {
        let dir = format!("{}/shaders/{sub}", env!("CARGO_MANIFEST_DIR"));
        for entry in std::fs::read_dir(&dir).expect("the folder exists") {
            let path = entry.expect("entry").path();
            let text = std::fs::read_to_string(&path).expect("readable");
            assert!(
                SHADERS.iter().any(|s| s.source.contains(text.as_str())),
                "{} is part of an embedded shader",
                path.display()
            );
        }
    }
}
