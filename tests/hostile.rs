//! Hostile files, mutation-fuzzed: checkpoints (config.json + model.safetensors) and `vlmc run`
//! input files with flipped bytes, truncations and rewritten headers must load and run to an `Ok`
//! or a clear `Err`, never a panic. Deterministic seeds, so every run replays the same corpus;
//! VLMC_FUZZ_ITERS raises the count for a long local run.

mod common;
use common::*;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use vlm_connectors::checkpoint::WeightSource;
use vlm_connectors::connectors::Connector;
use vlm_connectors::util::Rng;

fn iters() -> usize {
    std::env::var("VLMC_FUZZ_ITERS").ok().and_then(|v| v.parse().ok()).unwrap_or(60)
}

/// One mutation of `bytes`: flip bytes, truncate, extend, or rewrite a header number.
fn mutate(bytes: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut b = bytes.to_vec();
    match rng.below(6) {
        0 => {
            for _ in 0..1 + rng.below(8) {
                let i = rng.below(b.len());
                b[i] ^= 1 << rng.below(8);
            }
        }
        1 => b.truncate(rng.below(b.len())),
        2 => b.extend((0..rng.below(64)).map(|_| rng.below(256) as u8)),
        3 => {
            // rewrite a digit run inside the (JSON) header to a large or negative number
            let head = b.len().min(4096);
            if let Some(i) = (0..head).map(|_| rng.below(head)).find(|&i| b[i].is_ascii_digit()) {
                let repl: &[u8] = [&b"4294967296"[..], b"-1", b"0", b"99999999999999999999", b"1e300"][rng.below(5)];
                b.splice(i..i + 1, repl.iter().copied());
            }
        }
        4 => {
            // the 8-byte header length
            let v = [0u64, 1, 7, u64::MAX, b.len() as u64, (b.len() as u64) * 2][rng.below(6)];
            if b.len() >= 8 {
                b[..8].copy_from_slice(&v.to_le_bytes());
            }
        }
        _ => {
            // swap a dtype name
            let s = String::from_utf8_lossy(&b).to_string();
            let from = ["\"F32\"", "\"U8\"", "\"I64\""][rng.below(3)];
            let to = ["\"F16\"", "\"BF16\"", "\"I32\"", "\"F64\"", "\"BOOL\"", "\"F8_E4M3\""][rng.below(6)];
            if let Some(i) = s.find(from) {
                b.splice(i..i + from.len(), to.bytes());
            }
        }
    }
    b
}

fn copy_case(case: &str, dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    for f in ["config.json", "model.safetensors", "inputs.safetensors"] {
        std::fs::copy(case_dir(case).join(f), dir.join(f)).unwrap();
    }
}

/// Loads and runs `dir` with its inputs; returns whether it panicked.
fn load_and_run(dir: &Path) -> Option<String> {
    let r = catch_unwind(AssertUnwindSafe(|| {
        let g = gpu();
        let c = match Connector::from_dir(g, dir) {
            Ok(c) => c,
            Err(e) => return assert_refused_by_checks(&dir.display().to_string(), &e),
        };
        if let Ok(inputs) = WeightSource::open_file(dir.join("inputs.safetensors")) {
            match c.run(g, &inputs) {
                Ok(outs) => assert_eq!(outs[0].name, "output"),
                Err(e) => assert_refused_by_checks(&dir.display().to_string(), &e),
            }
        }
    }));
    r.err().map(|e| e.downcast_ref::<String>().cloned().or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string())).unwrap_or_default())
}

fn fuzz_file(case: &str, file: &str, seed: u64) {
    let dir: PathBuf = std::env::temp_dir().join(format!("vlmc-fuzz-{}-{case}-{}", std::process::id(), file.replace('.', "_")));
    copy_case(case, &dir);
    let original = std::fs::read(case_dir(case).join(file)).unwrap();
    let mut rng = Rng::new(seed);
    for i in 0..iters() {
        let m = mutate(&original, &mut rng);
        std::fs::write(dir.join(file), &m).unwrap();
        if let Some(msg) = load_and_run(&dir) {
            let keep = std::env::temp_dir().join(format!("vlmc-fuzz-crash-{case}-{file}-{i}"));
            std::fs::write(&keep, &m).ok();
            panic!("{case}/{file} mutation {i} panicked: {msg} (input kept at {})", keep.display());
        }
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn mutated_checkpoints_never_panic() {
    for (i, case) in
        ["llava_original", "blip2_tiny", "perceiver_video", "gated_xattn_all_previous", "llava_next_wide", "tome_cls"].iter().enumerate()
    {
        fuzz_file(case, "model.safetensors", 100 + i as u64);
        fuzz_file(case, "config.json", 200 + i as u64);
    }
}

#[test]
fn mutated_inputs_never_panic() {
    for (i, case) in
        ["llava_tiny", "blip2_tiny", "perceiver_tiny", "gated_xattn_tiny", "llava_next_square", "pool_odd", "tome_tiny"].iter().enumerate()
    {
        fuzz_file(case, "inputs.safetensors", 300 + i as u64);
    }
}

#[test]
fn mutated_pytorch_checkpoints_never_panic() {
    // A released OpenFlamingo checkpoint.pt (zip + pickle), mutated: the reader, the inferred config
    // and the loaders must refuse with an error, never panic or reach the driver.
    let original = std::fs::read(case_dir("openflamingo_pt_llama_xattn").join("checkpoint.pt")).unwrap();
    let mut rng = Rng::new(400);
    let (mut ok, mut err) = (0, 0);
    for i in 0..iters() {
        // Half the rounds flip bytes inside the pickle and fix its zip checksum, so the mutation
        // reaches the pickle parser, the inferred config and the loaders; the others mutate anywhere.
        let m = if i % 2 == 0 { flip_pickle(&original, &mut rng) } else { mutate(&original, &mut rng) };
        match catch_unwind(AssertUnwindSafe(|| vlm_connectors::internal::fuzzing::load_torch_bytes(&m))) {
            Ok(Ok(_)) => ok += 1,
            Ok(Err(e)) => {
                assert_refused_by_checks(&format!("checkpoint.pt mutation {i}"), &e);
                err += 1
            }
            Err(_) => {
                let keep = std::env::temp_dir().join(format!("vlmc-fuzz-crash-checkpoint-pt-{i}"));
                std::fs::write(&keep, &m).ok();
                panic!("checkpoint.pt mutation {i} panicked (input kept at {})", keep.display());
            }
        }
    }
    eprintln!("checkpoint.pt mutations: {ok} loaded, {err} refused");
}

fn crc32(data: &[u8]) -> u32 {
    let mut c = !0u32;
    for &b in data {
        c ^= b as u32;
        for _ in 0..8 {
            c = if c & 1 != 0 { (c >> 1) ^ 0xEDB8_8320 } else { c >> 1 };
        }
    }
    !c
}

/// `zip` with 1..6 bits flipped inside its stored `…/data.pkl` entry and that entry's CRC-32
/// rewritten in the local header and the central directory.
fn flip_pickle(zip: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut z = zip.to_vec();
    let u16_at = |z: &[u8], i: usize| u16::from_le_bytes([z[i], z[i + 1]]) as usize;
    let u32_at = |z: &[u8], i: usize| u32::from_le_bytes([z[i], z[i + 1], z[i + 2], z[i + 3]]) as usize;
    let is_pkl = |z: &[u8], at: usize, len: usize| z.get(at..at + len).is_some_and(|n| n.ends_with(b"data.pkl"));
    let Some(local) = (0..z.len() - 30).find(|&i| z[i..i + 4] == *b"PK\x03\x04" && is_pkl(&z, i + 30, u16_at(&z, i + 26))) else {
        return z;
    };
    let start = local + 30 + u16_at(&z, local + 26) + u16_at(&z, local + 28);
    let len = u32_at(&z, local + 18);
    if len == 0 || start + len > z.len() {
        return z;
    }
    for _ in 0..1 + rng.below(6) {
        let j = start + rng.below(len);
        z[j] ^= 1 << rng.below(8);
    }
    let crc = crc32(&z[start..start + len]).to_le_bytes();
    z[local + 14..local + 18].copy_from_slice(&crc);
    if let Some(central) = (0..z.len() - 46).find(|&i| z[i..i + 4] == *b"PK\x01\x02" && is_pkl(&z, i + 46, u16_at(&z, i + 28))) {
        z[central + 16..central + 20].copy_from_slice(&crc);
    }
    z
}
