//! Every kernel in the registry, in every dtype it is built for, parses and validates with naga (as
//! the runtime composes it, with the capabilities its features grant) and translates to SPIR-V,
//! MSL, HLSL and GLSL, so Metal, DX12 and GL users are covered. The registry's declared bindings
//! match what each entry point really uses, and no shader carries dead functions or constants.

use std::collections::BTreeSet;
use std::path::PathBuf;

use naga::back::{glsl, hlsl, msl, spv};
use naga::valid::{Capabilities, ValidationFlags, Validator};
use vlm_connectors::kernels::registry::{compose, compose_file, Elem, Kernel, ALL, SHADER_FILES};
use vlm_connectors::DType;

fn shader_files() -> Vec<(String, String)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("shaders");
    let mut files: Vec<(String, String)> = std::fs::read_dir(&dir)
        .expect("shaders/")
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "wgsl"))
        .map(|p| (p.file_name().unwrap().to_string_lossy().to_string(), std::fs::read_to_string(&p).unwrap()))
        .collect();
    files.sort();
    assert!(files.len() >= 2, "no shaders found");
    files
}

fn capabilities(k: &Kernel, dtype: DType) -> Capabilities {
    let f = k.required_features(dtype);
    let mut c = Capabilities::empty();
    if f.contains(wgpu::Features::SHADER_F16) {
        c |= Capabilities::SHADER_FLOAT16;
    }
    if f.contains(wgpu::Features::SUBGROUP) {
        c |= Capabilities::SUBGROUP;
    }
    if f.contains(wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX) {
        c |= Capabilities::COOPERATIVE_MATRIX;
    }
    c
}

/// How a whole file composes for the per-file checks: the dtype its kernels share (f32 unless
/// they are f16-only, as the cooperative-matrix GEMM is), with the features and capabilities they need.
fn file_composition(file: &str) -> (String, Capabilities, wgpu::Features) {
    let kernels: Vec<&Kernel> = ALL.iter().copied().filter(|k| k.file == file).collect();
    let dtype = if kernels.iter().all(|k| !k.dtypes.contains(&DType::F32)) && !kernels.is_empty() { DType::F16 } else { DType::F32 };
    let features =
        kernels.iter().fold(wgpu::Features::empty(), |f, k| f | if k.dtypes.contains(&dtype) { k.required_features(dtype) } else { f });
    let caps = kernels.iter().fold(Capabilities::empty(), |c, k| c | if k.dtypes.contains(&dtype) { capabilities(k, dtype) } else { c });
    (compose_file(file, dtype, features).unwrap(), caps, features)
}

fn parse(what: &str, src: &str, caps: Capabilities) -> (naga::Module, naga::valid::ModuleInfo) {
    let module = naga::front::wgsl::parse_str(src).unwrap_or_else(|e| panic!("{what}: {}", e.emit_to_string(src)));
    let info = Validator::new(ValidationFlags::all(), caps)
        .validate(&module)
        .unwrap_or_else(|e| panic!("{what}: validation: {}", e.emit_to_string(src)));
    (module, info)
}

#[test]
fn every_shader_file_is_compiled_into_the_crate() {
    // The crate embeds its shaders; a file on disk that the crate does not ship would go untested at runtime.
    for (name, text) in shader_files() {
        let shipped = SHADER_FILES.iter().find(|(n, _)| *n == name);
        assert!(shipped.is_some(), "{name} is in shaders/ but not in kernels::registry::SHADER_FILES");
        assert_eq!(shipped.unwrap().1, text, "{name}: embedded copy differs");
    }
}

#[test]
fn every_entry_point_is_a_registered_kernel_with_a_unique_name() {
    let names: BTreeSet<&str> = ALL.iter().map(|k| k.name).collect();
    assert_eq!(names.len(), ALL.len(), "kernel names must be unique (they key the pipeline cache)");
    for (file, _) in shader_files().iter().filter(|(f, _)| f != "common.wgsl") {
        let (src, caps, _) = file_composition(file);
        let (module, _) = parse(file, &src, caps);
        for ep in &module.entry_points {
            assert!(
                ALL.iter().any(|k| k.file == file && k.entry == ep.name),
                "{file}: entry point `{}` is not in kernels::registry::ALL",
                ep.name
            );
        }
    }
}

#[test]
fn kernels_validate_and_translate_to_every_backend_in_every_dtype() {
    for k in ALL {
        for &dtype in k.dtypes {
            let what = format!("{} ({dtype:?})", k.name);
            let src = compose(k, dtype).unwrap_or_else(|| panic!("{what}: file {} not shipped", k.file));
            assert!(src.starts_with(if dtype == DType::F16 { "enable f16;" } else { "alias elem" }), "{what}: directives must come first");
            // Cooperative matrices exist on Vulkan (SPIR-V) and Metal (MSL) only: DX12 and GL
            // adapters never offer the feature, so those kernels are not built for them.
            let coop = k.features.contains(wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX);
            let (module, info) = parse(&what, &src, capabilities(k, dtype));
            let ep =
                module.entry_points.iter().position(|e| e.name == k.entry).unwrap_or_else(|| panic!("{what}: no entry point {}", k.entry));

            // SPIR-V (Vulkan)
            let words = spv::write_vec(&module, &info, &spv::Options::default(), None).unwrap_or_else(|e| panic!("{what}: spv: {e}"));
            assert!(words.len() > 5, "{what}: SPIR-V has no body");
            // MSL (Metal)
            // (simdgroup matrices need MSL 2.3, which wgpu's Metal backend targets on Apple GPUs that have them)
            let mopts = if coop { msl::Options { lang_version: (2, 3), ..Default::default() } } else { msl::Options::default() };
            let (msl_src, _) =
                msl::write_string(&module, &info, &mopts, &msl::PipelineOptions::default()).unwrap_or_else(|e| panic!("{what}: msl: {e}"));
            assert!(msl_src.contains(k.entry), "{what}: MSL lacks the entry point");
            if coop {
                assert!(msl_src.contains("simdgroup_multiply_accumulate"), "{what}: MSL without simdgroup matrices");
                check_bindings(&what, k, dtype, &module, &info, ep);
                continue;
            }
            // HLSL (DX12; f16 needs shader model 6.2, which wgpu asks for when SHADER_F16 is on;
            // wave intrinsics need 6.0)
            let mut hlsl_src = String::new();
            let subgroups = k.features.contains(wgpu::Features::SUBGROUP);
            let hopts = match (dtype, subgroups) {
                (DType::F16, _) => hlsl::Options { shader_model: hlsl::ShaderModel::V6_2, ..Default::default() },
                (_, true) => hlsl::Options { shader_model: hlsl::ShaderModel::V6_0, ..Default::default() },
                _ => hlsl::Options::default(),
            };
            let hpopts = hlsl::PipelineOptions::default();
            hlsl::Writer::new(&mut hlsl_src, &hopts, &hpopts).write(&module, &info, None).unwrap_or_else(|e| panic!("{what}: hlsl: {e}"));
            assert!(hlsl_src.contains(k.entry), "{what}: HLSL lacks the entry point");
            // GLSL (GL / GLES 3.1 compute). GL has no 16-bit storage and wgpu's GL backend never
            // offers SHADER_F16, so f16 variants are not built for it.
            // Subgroup kernels likewise: wgpu's GL backend does not offer SUBGROUP.
            if dtype != DType::F16 && !subgroups {
                let mut glsl_src = String::new();
                let opts = glsl::Options { version: glsl::Version::Embedded { version: 310, is_webgl: false }, ..Default::default() };
                let popts =
                    glsl::PipelineOptions { shader_stage: naga::ShaderStage::Compute, entry_point: k.entry.to_string(), multiview: None };
                glsl::Writer::new(&mut glsl_src, &module, &info, &opts, &popts, naga::proc::BoundsCheckPolicies::default())
                    .unwrap_or_else(|e| panic!("{what}: glsl: {e}"))
                    .write()
                    .unwrap_or_else(|e| panic!("{what}: glsl: {e}"));
            }

            check_bindings(&what, k, dtype, &module, &info, ep);
        }
    }
}

/// The declared bindings are exactly the storage bindings the entry point uses, with the declared
/// element kind and write access.
fn check_bindings(what: &str, k: &Kernel, dtype: DType, module: &naga::Module, info: &naga::valid::ModuleInfo, ep: usize) {
    {
        {
            let fi = info.get_entry_point(ep);
            let mut used = BTreeSet::new();
            for (h, var) in module.global_variables.iter() {
                let (Some(rb), false) = (&var.binding, fi[h].is_empty()) else { continue };
                if rb.binding == 0 {
                    continue; // params uniform
                }
                used.insert(rb.binding);
                let decl = k
                    .bindings
                    .iter()
                    .find(|b| b.slot == rb.binding)
                    .unwrap_or_else(|| panic!("{what}: binding {} is used but not declared", rb.binding));
                let scalar = scalar_of(module, var.ty).map(|s| (s.kind, s.width as usize));
                let want = match decl.elem {
                    Elem::Float => (naga::ScalarKind::Float, dtype.size()),
                    Elem::U32 => (naga::ScalarKind::Uint, 4),
                    Elem::F32 => (naga::ScalarKind::Float, 4),
                };
                assert_eq!(scalar, Some(want), "{what}: binding {} (`{}`) element kind and width", rb.binding, decl.name);
                let writes = fi[h].contains(naga::valid::GlobalUse::WRITE);
                assert_eq!(writes, decl.writes, "{what}: binding {} (`{}`) written by the kernel vs declared", rb.binding, decl.name);
            }
            let declared: BTreeSet<u32> = k.bindings.iter().map(|b| b.slot).collect();
            assert_eq!(used, declared, "{what}: declared bindings vs used");
        }
    }
}

fn scalar_of(module: &naga::Module, ty: naga::Handle<naga::Type>) -> Option<naga::Scalar> {
    match &module.types[ty].inner {
        naga::TypeInner::Scalar(s) | naga::TypeInner::Vector { scalar: s, .. } => Some(*s),
        naga::TypeInner::Array { base, .. } => scalar_of(module, *base),
        _ => None,
    }
}

#[test]
fn no_shader_declares_unused_functions_or_constants() {
    // Functions: what naga's compaction keeps in some file is used; one dropped everywhere is dead.
    // Constants (compaction keeps named ones): used when their name appears past its declaration.
    let functions = |m: &naga::Module| -> BTreeSet<String> { m.functions.iter().filter_map(|(_, f)| f.name.clone()).collect() };
    let (mut declared, mut kept) = (BTreeSet::new(), BTreeSet::new());
    for (file, _) in shader_files().iter().filter(|(f, _)| f != "common.wgsl") {
        let (src, caps, _) = file_composition(file);
        let (mut module, _) = parse(file, &src, caps);
        let code: String = src.lines().map(|l| l.split("//").next().unwrap_or("")).collect::<Vec<_>>().join("\n");
        let words: Vec<&str> = code.split(|c: char| !(c.is_alphanumeric() || c == '_')).filter(|w| !w.is_empty()).collect();
        for (_, c) in module.constants.iter() {
            let name = c.name.clone().unwrap_or_default();
            declared.insert(name.clone());
            if words.iter().filter(|w| **w == name).count() > 1 {
                kept.insert(name);
            }
        }
        declared.extend(functions(&module));
        naga::compact::compact(&mut module, naga::compact::KeepUnused::No);
        kept.extend(functions(&module));
    }
    let dead: Vec<_> = declared.difference(&kept).collect();
    assert!(dead.is_empty(), "declared but never used by any kernel: {dead:?}");
}

#[test]
fn f16_composition_puts_enable_first_and_validates() {
    // What adding F16 to a kernel's dtypes compiles: `enable f16;` before the alias and the code.
    for (file, _) in shader_files() {
        let (_, caps, features) = file_composition(&file);
        let src = compose_file(&file, DType::F16, features).unwrap();
        assert!(src.starts_with("enable f16;\n") && src.contains("alias elem = f16;\n"), "{file}");
        let code = src.find("alias elem").unwrap();
        assert!(src[..code].lines().all(|l| l.starts_with("enable ")), "{file}: directives must come first");
        parse(&format!("{file} (f16)"), &src, Capabilities::SHADER_FLOAT16 | caps);
    }
}
