//! The application's own WGSL kernels (`Gpu::register_kernel`, `Gpu::dispatch_kernel`) on a
//! device the test created: results against an f64 CPU reference, with `Tensor`s and
//! `ManagedBuffer`s bound, in the same batch as wgmem's kernels and timed by the same profiler;
//! every bad input is a typed error (a WGSL syntax error with its line and column, a binding
//! count that does not match, wrong parameters, too small or unusable bindings, a usage the
//! device cannot give). Every shader here also translates to MSL, SPIR-V and HLSL.

#[path = "common/own_device.rs"]
mod own;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use wgmem::compute::{self, Binding};
use wgmem::profile::EventKind;
use wgmem::{
    BufferUsage, Context, Error, Gpu, MemoryConfig, MemoryProfiler, ShaderPosition, UsageFlags,
    WgpuBackend,
};

/// `out[i] = alpha * x[i] * x[i] + y[i]` for `i < n`, with the workgroup size from wgmem.
const POLY: &str = "struct Params { n: u32, alpha: f32 }
override WG: u32 = 64u;
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> y: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(WG)
fn poly(@builtin(global_invocation_id) id: vec3<u32>) {
    let i = id.x;
    if (i >= p.n) { return; }
    out[i] = p.alpha * x[i] * x[i] + y[i];
}
";

/// No params: `data[i] = data[i] * 2 + 1` over the whole binding.
const NO_PARAMS: &str = "@group(0) @binding(0) var<storage, read_write> data: array<f32>;
@compute @workgroup_size(64)
fn twice_plus_one(@builtin(global_invocation_id) id: vec3<u32>) {
    if (id.x >= arrayLength(&data)) { return; }
    data[id.x] = data[id.x] * 2.0 + 1.0;
}
";

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct PolyParams {
    n: u32,
    alpha: f32,
}

/// A context on a device the test created itself, and a counter of uncaptured wgpu errors seen
/// by the application's own handler.
fn context() -> (Arc<Context>, Arc<AtomicU64>) {
    let (device, queue) = own::own_device();
    context_on(device, queue)
}

fn context_on(device: wgpu::Device, queue: wgpu::Queue) -> (Arc<Context>, Arc<AtomicU64>) {
    let uncaptured = Arc::new(AtomicU64::new(0));
    let seen = Arc::clone(&uncaptured);
    device.on_uncaptured_error(Arc::new(move |e| {
        eprintln!("uncaptured: {e}");
        seen.fetch_add(1, Ordering::SeqCst);
    }));
    let backend = WgpuBackend::from_device(device, queue, Default::default()).unwrap();
    eprintln!("runs on: {}", wgmem::Backend::adapter(&backend));
    let ctx = Context::new(Arc::new(backend), MemoryConfig::default()).unwrap();
    (ctx, uncaptured)
}

fn data(n: usize, seed: u32) -> Vec<f32> {
    (0..n)
        .map(|i| (((i as u32).wrapping_mul(2654435761) ^ seed) % 2000) as f32 / 1000.0 - 1.0)
        .collect()
}

#[test]
fn a_user_kernel_matches_its_cpu_reference_next_to_a_wgmem_kernel() {
    let (ctx, uncaptured) = context();
    let gpu = ctx.gpu();
    let kernel = gpu.register_kernel("poly", POLY, "poly").unwrap();
    assert_eq!(kernel.binding_count(), 3);
    assert_eq!(kernel.params_size(), Some(8));
    assert_eq!(
        kernel.workgroup_size(),
        Some([gpu.workgroup_size(), 1, 1]),
        "WG from wgmem"
    );
    let n = 1000; // not a multiple of the workgroup size
    let (xs, ys) = (data(n, 1), data(n, 7));
    let x = ctx.from_slice(&xs, &[n], "data").unwrap();
    // y as a plain pooled buffer, bound as a ManagedBuffer.
    let y = ctx
        .memory()
        .acquire((n * 4) as u64, BufferUsage::Storage, "app")
        .unwrap();
    y.write(0, bytemuck::cast_slice(&ys)).unwrap();
    let out = ctx.uninit(&[n], "activations").unwrap();
    let params = PolyParams {
        n: n as u32,
        alpha: -0.75,
    };
    let groups = gpu.groups_for_kernel(&kernel, n as u64).unwrap();
    let submitted = ctx.backend().flush().unwrap();
    gpu.dispatch_kernel(
        &kernel,
        &params,
        &[(&x).into(), (&y).into(), (&out).into()],
        groups,
    )
    .unwrap();
    // A wgmem kernel on the user kernel's output, in the same batch.
    let scaled = ctx.uninit(&[n], "activations").unwrap();
    compute::scale(gpu, 2.0, out.raw(), scaled.raw(), n).unwrap();
    assert_eq!(
        wgmem::Backend::last_submission(&**ctx.backend()),
        submitted + 1,
        "both dispatches wait in one pending batch; nothing was submitted yet"
    );
    let (got, got_scaled) = (out.to_vec().unwrap(), scaled.to_vec().unwrap());
    for i in 0..n {
        let (xi, yi) = (f64::from(xs[i]), f64::from(ys[i]));
        let want = -0.75 * xi * xi + yi;
        // Two roundings of at most 2^-24 relative each on values under 2 in magnitude.
        assert!(
            (f64::from(got[i]) - want).abs() <= 4e-7,
            "{i}: {} vs {want}",
            got[i]
        );
        assert!((f64::from(got_scaled[i]) - 2.0 * want).abs() <= 8e-7, "{i}");
    }
    assert_eq!(uncaptured.load(Ordering::SeqCst), 0);
}

#[test]
fn a_kernel_without_params_binds_from_zero_and_registration_is_cached() {
    let (ctx, uncaptured) = context();
    let gpu = ctx.gpu();
    let kernel = gpu
        .register_kernel("twice", NO_PARAMS, "twice_plus_one")
        .unwrap();
    assert_eq!(kernel.params_size(), None);
    assert_eq!(kernel.workgroup_size(), Some([64, 1, 1]));
    let again = gpu
        .register_kernel("twice", NO_PARAMS, "twice_plus_one")
        .unwrap();
    assert_eq!(
        format!("{kernel:?}"),
        format!("{again:?}"),
        "the cached kernel"
    );
    let n = 333;
    let xs = data(n, 3);
    let t = ctx.from_slice(&xs, &[n], "data").unwrap();
    gpu.dispatch_kernel(
        &kernel,
        &(),
        &[(&t).into()],
        gpu.groups_for_kernel(&kernel, n as u64).unwrap(),
    )
    .unwrap();
    let got = t.to_vec().unwrap();
    for i in 0..n {
        let want = f64::from(xs[i]) * 2.0 + 1.0;
        assert!((f64::from(got[i]) - want).abs() <= 2e-7, "{i}");
    }
    assert_eq!(uncaptured.load(Ordering::SeqCst), 0);
}

#[test]
fn a_user_kernel_is_timed_into_the_profiler_where_the_device_has_timestamps() {
    let (ctx, _) = context();
    let gpu = ctx.gpu();
    let profiler = Arc::new(MemoryProfiler::full());
    if !gpu.set_profiler(Some(Arc::clone(&profiler))).unwrap() {
        eprintln!("NOT RUN: this device has no timestamp queries");
        return;
    }
    let kernel = gpu
        .register_kernel("twice", NO_PARAMS, "twice_plus_one")
        .unwrap();
    let t = ctx.from_slice(&[1.0; 100], &[100], "data").unwrap();
    gpu.dispatch_kernel(&kernel, &(), &[(&t).into()], [2, 1, 1])
        .unwrap();
    assert_eq!(gpu.collect_kernel_times().unwrap(), 1);
    let names: Vec<String> = profiler
        .events()
        .into_iter()
        .filter_map(|e| match e.kind {
            EventKind::Kernel { name, .. } => Some(name),
            _ => None,
        })
        .collect();
    assert_eq!(names, ["twice"]);
}

#[test]
fn bad_wgsl_is_a_shader_compile_error_naming_line_and_column() {
    let (ctx, _) = context();
    let syntax = "@group(0) @binding(0) var<storage, read_write> d: array<f32>;\n\
                  @compute @workgroup_size(64)\n\
                  fn main(@builtin(global_invocation_id) id: vec3<u32>) {\n    d[id.x] = 1.0 +;\n}\n";
    match ctx
        .gpu()
        .register_kernel("broken", syntax, "main")
        .unwrap_err()
    {
        Error::ShaderCompile {
            name,
            position,
            message,
        } => {
            assert_eq!(name, "broken");
            assert_eq!(
                position,
                Some(ShaderPosition {
                    line: 4,
                    column: 20
                }),
                "{message}"
            );
        }
        other => panic!("expected ShaderCompile, got {other}"),
    }
    let types = "@group(0) @binding(0) var<storage, read_write> d: array<f32>;\n\
                 @compute @workgroup_size(64)\n\
                 fn main(@builtin(global_invocation_id) id: vec3<u32>) {\n    d[id.x] = id.x;\n}\n";
    let e = ctx
        .gpu()
        .register_kernel("types", types, "main")
        .unwrap_err();
    assert!(
        matches!(&e, Error::ShaderCompile { position: Some(p), .. } if p.line == 4),
        "{e}"
    );
    assert!(e.to_string().contains("at line 4"), "{e}");
}

#[test]
fn kernels_outside_the_binding_convention_are_refused_at_registration() {
    let (ctx, _) = context();
    let gpu = ctx.gpu();
    let missing = gpu.register_kernel("poly", POLY, "nope").unwrap_err();
    assert!(missing.to_string().contains("[\"poly\"]"), "{missing}");
    let group1 = "@group(1) @binding(0) var<storage, read_write> d: array<f32>;\n\
                  @compute @workgroup_size(1) fn main() { d[0] = 1.0; }";
    assert!(matches!(
        gpu.register_kernel("g1", group1, "main"),
        Err(Error::InvalidArgument { .. })
    ));
    let gap = "@group(0) @binding(0) var<storage, read_write> a: array<f32>;\n\
               @group(0) @binding(2) var<storage, read_write> b: array<f32>;\n\
               @compute @workgroup_size(1) fn main() { a[0] = b[0]; }";
    let e = gpu.register_kernel("gap", gap, "main").unwrap_err();
    assert!(e.to_string().contains("[0, 2]"), "{e}");
}

#[test]
fn bad_dispatches_are_typed_errors_and_record_nothing() {
    let (ctx, uncaptured) = context();
    let gpu = ctx.gpu();
    let kernel = gpu.register_kernel("poly", POLY, "poly").unwrap();
    let n = 100;
    let a = ctx.from_slice(&data(n, 1), &[n], "data").unwrap();
    let b = ctx.from_slice(&data(n, 2), &[n], "data").unwrap();
    let out = ctx.uninit(&[n], "data").unwrap();
    let params = PolyParams {
        n: n as u32,
        alpha: 1.0,
    };
    let g = [2, 1, 1];
    let before = wgmem::Backend::last_submission(&**ctx.backend());

    // Binding count mismatch.
    let e = gpu
        .dispatch_kernel(&kernel, &params, &[(&a).into(), (&out).into()], g)
        .unwrap_err();
    assert!(
        matches!(
            &e,
            Error::InvalidArgument {
                what: "kernel bindings",
                ..
            }
        ) && e.to_string().contains("declares 3 buffer bindings")
            && e.to_string().contains("2 given"),
        "{e}"
    );
    // Parameters of the wrong size.
    let e = gpu
        .dispatch_kernel(
            &kernel,
            &[1u32; 3],
            &[(&a).into(), (&b).into(), (&out).into()],
            g,
        )
        .unwrap_err();
    assert!(
        e.to_string().contains("12 bytes given") && e.to_string().contains("8 bytes"),
        "{e}"
    );
    // The output bound as an input too.
    let e = gpu
        .dispatch_kernel(
            &kernel,
            &params,
            &[(&out).into(), (&b).into(), (&out).into()],
            g,
        )
        .unwrap_err();
    assert!(matches!(e, Error::SameBuffer), "{e}");
    // A range past the buffer's end.
    let past = Binding {
        buffer: out.raw(),
        offset: 0,
        size: out.raw().size() + 4,
    };
    let e = gpu
        .dispatch_kernel(&kernel, &params, &[(&a).into(), (&b).into(), past], g)
        .unwrap_err();
    assert!(matches!(e, Error::OutOfBounds { .. }), "{e}");
    // A buffer that cannot be bound as storage.
    let vertex = ctx
        .memory()
        .acquire(
            400,
            BufferUsage::from(wgpu::BufferUsages::VERTEX | wgpu::BufferUsages::COPY_DST),
            "mesh",
        )
        .unwrap();
    let e = gpu
        .dispatch_kernel(
            &kernel,
            &params,
            &[(&a).into(), (&vertex).into(), (&out).into()],
            g,
        )
        .unwrap_err();
    assert!(e.to_string().contains("VERTEX lack STORAGE"), "{e}");
    // A binding smaller than one element of the shader's type.
    let tiny = Binding {
        buffer: a.raw(),
        offset: 0,
        size: 0,
    };
    let struct_kernel = gpu
        .register_kernel(
            "vec4s",
            "struct S { v: vec4<f32>, w: vec4<f32> }\n\
             @group(0) @binding(0) var<storage, read_write> s: S;\n\
             @compute @workgroup_size(1) fn main() { s.v = s.w; }",
            "main",
        )
        .unwrap();
    let e = gpu
        .dispatch_kernel(&struct_kernel, &(), &[tiny], [1, 1, 1])
        .unwrap_err();
    assert!(e.to_string().contains("at least 32"), "{e}");
    // Too many workgroups.
    let e = gpu
        .dispatch_kernel(
            &kernel,
            &params,
            &[(&a).into(), (&b).into(), (&out).into()],
            [u32::MAX, 1, 1],
        )
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::InvalidArgument {
                what: "dispatch size",
                ..
            }
        ),
        "{e}"
    );
    // A kernel registered on another device.
    let (other, _) = context();
    let foreign = other.gpu().register_kernel("poly", POLY, "poly").unwrap();
    let e = gpu
        .dispatch_kernel(
            &foreign,
            &params,
            &[(&a).into(), (&b).into(), (&out).into()],
            g,
        )
        .unwrap_err();
    assert!(e.to_string().contains("another Gpu"), "{e}");

    assert_eq!(
        wgmem::Backend::last_submission(&**ctx.backend()),
        before,
        "nothing was recorded"
    );
    wgmem::Backend::wait_idle(&**ctx.backend()).unwrap();
    assert_eq!(
        uncaptured.load(Ordering::SeqCst),
        0,
        "no error reached wgpu"
    );
}

#[test]
fn a_usage_the_device_cannot_give_is_a_typed_error() {
    let (ctx, uncaptured) = context();
    let memory = ctx.memory();
    assert!(
        !ctx.backend()
            .device()
            .features()
            .contains(wgpu::Features::MAPPABLE_PRIMARY_BUFFERS),
        "the test's device was created without mappable primary buffers"
    );
    let mappable_storage =
        BufferUsage::from(wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::STORAGE);
    let e = memory.acquire(256, mappable_storage, "x").unwrap_err();
    assert!(
        matches!(
            &e,
            Error::InvalidArgument {
                what: "buffer usage",
                ..
            }
        ) && e.to_string().contains("MAPPABLE_PRIMARY_BUFFERS"),
        "{e}"
    );
    let e = memory
        .acquire(256, BufferUsage::Custom(UsageFlags::empty()), "x")
        .unwrap_err();
    assert!(e.to_string().contains("empty usage set"), "{e}");
    let ray = BufferUsage::from(wgpu::BufferUsages::BLAS_INPUT);
    let e = memory.acquire(256, ray, "x").unwrap_err();
    assert!(e.to_string().contains("name no usage"), "{e}");
    assert_eq!(
        memory.stats().live_bytes,
        0,
        "refused requests reserve nothing"
    );
    assert_eq!(
        uncaptured.load(Ordering::SeqCst),
        0,
        "refused before wgpu saw them"
    );
}

#[test]
fn every_user_shader_here_translates_to_msl_spirv_and_hlsl() {
    for (name, source) in [("poly", POLY), ("twice", NO_PARAMS)] {
        let (module, info) = compute::validate_wgsl(name, source).unwrap();
        let mut constants = naga::back::PipelineConstants::default();
        if module
            .overrides
            .iter()
            .any(|(_, o)| o.name.as_deref() == Some("WG"))
        {
            constants.insert("WG".into(), 64.0);
        }
        let (module, info) =
            naga::back::pipeline_constants::process_overrides(&module, &info, None, &constants)
                .unwrap();
        let msl = naga::back::msl::Options {
            lang_version: (2, 4),
            ..Default::default()
        };
        naga::back::msl::write_string(&module, &info, &msl, &Default::default())
            .unwrap_or_else(|e| panic!("{name}: MSL: {e:?}"));
        naga::back::spv::write_vec(&module, &info, &Default::default(), None)
            .unwrap_or_else(|e| panic!("{name}: SPIR-V: {e:?}"));
        let mut hlsl = String::new();
        naga::back::hlsl::Writer::new(&mut hlsl, &Default::default(), &Default::default())
            .write(&module, &info, None)
            .unwrap_or_else(|e| panic!("{name}: HLSL: {e:?}"));
        assert!(!hlsl.is_empty());
    }
}

#[test]
fn user_kernels_on_an_unchecked_gpu_still_compute_correctly() {
    let (ctx, _) = context();
    // SAFETY: only this crate's kernels are compiled unchecked; user kernels keep naga's checks.
    let gpu = unsafe { Gpu::new_unchecked(Arc::clone(ctx.backend())) }.unwrap();
    let kernel = gpu
        .register_kernel("twice", NO_PARAMS, "twice_plus_one")
        .unwrap();
    let n = 77;
    let t = ctx.from_slice(&vec![0.5; n], &[n], "data").unwrap();
    gpu.dispatch_kernel(
        &kernel,
        &(),
        &[(&t).into()],
        gpu.groups_for_kernel(&kernel, n as u64).unwrap(),
    )
    .unwrap();
    assert_eq!(t.to_vec().unwrap(), vec![2.0f32; n]);
}

/// `out[i] = f32(h * h)` with `h = f16(x[i])`: needs the device's `SHADER_F16`.
const HALF_SQUARE: &str = "enable f16;
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@compute @workgroup_size(32)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    if (id.x >= arrayLength(&out)) { return; }
    let h = f16(x[id.x]);
    out[id.x] = f32(h * h);
}
";

#[test]
fn a_shader_is_validated_with_the_capabilities_the_device_was_created_with() {
    // Without SHADER_F16 on the device: refused by naga at the first f16 value (line 7).
    let (plain, _) = context();
    let e = plain
        .gpu()
        .register_kernel("half", HALF_SQUARE, "main")
        .unwrap_err();
    assert!(
        matches!(&e, Error::ShaderCompile { position: Some(p), .. } if p.line == 7),
        "{e}"
    );
    let Some((device, queue)) = own::own_device_with(wgpu::Features::SHADER_F16) else {
        eprintln!("NOT RUN (second half): this adapter has no SHADER_F16");
        return;
    };
    let (ctx, uncaptured) = context_on(device, queue);
    let kernel = ctx
        .gpu()
        .register_kernel("half", HALF_SQUARE, "main")
        .unwrap();
    let n = 45;
    let xs = data(n, 5);
    let x = ctx.from_slice(&xs, &[n], "data").unwrap();
    let out = ctx.uninit(&[n], "data").unwrap();
    let groups = ctx.gpu().groups_for_kernel(&kernel, n as u64).unwrap();
    ctx.gpu()
        .dispatch_kernel(&kernel, &(), &[(&x).into(), (&out).into()], groups)
        .unwrap();
    let got = out.to_vec().unwrap();
    for i in 0..n {
        let want = f64::from(xs[i]).powi(2);
        // f16 keeps 11 significant bits: x rounds with relative error 2^-11, the square with
        // about 2 * 2^-11 + 2^-11 (values below 1, so never subnormal trouble above 2^-14).
        let tolerance = 3.0 * want * 2f64.powi(-11) + 2f64.powi(-24);
        assert!(
            (f64::from(got[i]) - want).abs() <= tolerance,
            "{i}: {} vs {want}",
            got[i]
        );
    }
    assert_eq!(uncaptured.load(Ordering::SeqCst), 0);
}

#[test]
fn an_applications_uniform_buffer_binds_after_the_params() {
    let (ctx, uncaptured) = context();
    let gpu = ctx.gpu();
    let source = "struct P { n: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<uniform> c: vec4<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@compute @workgroup_size(16)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    if (id.x < p.n) { out[id.x] = c.x + c.y * f32(id.x) + c.z * f32(id.x * id.x); }
}";
    let kernel = gpu.register_kernel("quadratic", source, "main").unwrap();
    assert_eq!(kernel.binding_count(), 2);
    let coeffs = ctx
        .memory()
        .acquire(
            16,
            BufferUsage::Custom(UsageFlags::UNIFORM | UsageFlags::COPY_DST),
            "uniforms",
        )
        .unwrap();
    coeffs
        .write(0, bytemuck::cast_slice(&[0.5f32, -0.25, 0.125, 0.0]))
        .unwrap();
    let n = 37;
    let out = ctx.uninit(&[n], "data").unwrap();
    let groups = gpu.groups_for_kernel(&kernel, n as u64).unwrap();
    gpu.dispatch_kernel(
        &kernel,
        &(n as u32),
        &[(&coeffs).into(), (&out).into()],
        groups,
    )
    .unwrap();
    let got = out.to_vec().unwrap();
    for (i, g) in got.iter().enumerate() {
        let x = i as f64;
        let want = 0.5 - 0.25 * x + 0.125 * x * x;
        assert!(
            (f64::from(*g) - want).abs() <= want.abs() * 2e-7 + 1e-7,
            "{i}"
        );
    }
    // The storage buffer where the uniform goes, and a misaligned offset, are typed errors.
    let e = gpu
        .dispatch_kernel(
            &kernel,
            &(n as u32),
            &[(&out).into(), (&out).into()],
            groups,
        )
        .unwrap_err();
    assert!(e.to_string().contains("lack UNIFORM"), "{e}");
    let alignment = u64::from(gpu.limits().min_storage_buffer_offset_alignment);
    let shifted = Binding {
        buffer: out.raw(),
        offset: alignment / 2,
        size: 64,
    };
    let e = gpu
        .dispatch_kernel(&kernel, &(n as u32), &[(&coeffs).into(), shifted], groups)
        .unwrap_err();
    assert!(e.to_string().contains("not a multiple of"), "{e}");
    assert_eq!(uncaptured.load(Ordering::SeqCst), 0);
}
