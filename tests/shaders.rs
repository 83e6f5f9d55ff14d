//! Every file in shaders/ parses and validates with naga (as the runtime composes it) and translates
//! to SPIR-V, MSL, HLSL and GLSL, so Metal, DX12 and GL users are covered.

use std::path::PathBuf;

use naga::back::{glsl, hlsl, msl, spv};
use naga::valid::{Capabilities, ValidationFlags, Validator};

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

#[test]
fn every_shader_file_is_compiled_into_the_crate() {
    // The crate embeds its shaders; a file on disk that the crate does not ship would go untested at runtime.
    for (name, text) in shader_files() {
        let shipped = vlm_connectors::kernels::SHADER_FILES.iter().find(|(n, _)| *n == name);
        assert!(shipped.is_some(), "{name} is in shaders/ but not in kernels::SHADER_FILES");
        assert_eq!(shipped.unwrap().1, text, "{name}: embedded copy differs");
    }
}

#[test]
fn shaders_validate_and_translate_to_every_backend() {
    for (name, _) in shader_files() {
        let src = vlm_connectors::kernels::compose(&name);
        let module = naga::front::wgsl::parse_str(&src).unwrap_or_else(|e| panic!("{name}: {}", e.emit_to_string(&src)));
        let info = Validator::new(ValidationFlags::all(), Capabilities::empty())
            .validate(&module)
            .unwrap_or_else(|e| panic!("{name}: validation: {}", e.emit_to_string(&src)));

        // SPIR-V (Vulkan)
        let words = spv::write_vec(&module, &info, &spv::Options::default(), None).unwrap_or_else(|e| panic!("{name}: spv: {e}"));
        assert!(!words.is_empty());

        // MSL (Metal)
        let (msl_src, _) = msl::write_string(&module, &info, &msl::Options::default(), &msl::PipelineOptions::default()).unwrap_or_else(|e| panic!("{name}: msl: {e}"));
        assert!(!msl_src.is_empty());

        // HLSL (DX12)
        let mut hlsl_src = String::new();
        let (hopts, hpopts) = (hlsl::Options::default(), hlsl::PipelineOptions::default());
        let mut w = hlsl::Writer::new(&mut hlsl_src, &hopts, &hpopts);
        w.write(&module, &info, None).unwrap_or_else(|e| panic!("{name}: hlsl: {e}"));

        // GLSL (GL / GLES 3.1 compute), one entry point at a time
        for ep in &module.entry_points {
            let mut glsl_src = String::new();
            let opts = glsl::Options { version: glsl::Version::Embedded { version: 310, is_webgl: false }, ..Default::default() };
            let popts = glsl::PipelineOptions { shader_stage: ep.stage, entry_point: ep.name.clone(), multiview: None };
            let mut w = glsl::Writer::new(&mut glsl_src, &module, &info, &opts, &popts, naga::proc::BoundsCheckPolicies::default())
                .unwrap_or_else(|e| panic!("{name}/{}: glsl: {e}", ep.name));
            w.write().unwrap_or_else(|e| panic!("{name}/{}: glsl: {e}", ep.name));
        }
    }
}
