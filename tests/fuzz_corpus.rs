//! Replays the cargo-fuzz corpora (fuzz/corpus/{checkpoint,inputs,torch,image}) through the same harnesses the
//! fuzz targets run (`vlm_connectors::internal::fuzzing`): every input must come back as `Ok` or `Err`, never a
//! panic. The corpora hold the golden seeds plus what fuzzing found interesting (minimised).

mod common;

use common::assert_refused_by_checks;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;

use vlm_connectors::internal::fuzzing;

fn corpus(target: &str) -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus").join(target);
    let mut files: Vec<PathBuf> =
        std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())).filter_map(|e| e.ok()).map(|e| e.path()).collect();
    files.sort();
    assert!(files.len() >= 5, "{target} corpus has only {} files", files.len());
    files
}

/// Runs `harness` on every file of the `target` corpus: (Ok count, Err count). A panic fails the
/// test naming the file; every error must come from the crate's own checks.
fn replay<T>(target: &str, what: &str, harness: impl Fn(&[u8]) -> vlm_connectors::Result<T>) -> (usize, usize) {
    let (mut ok, mut err) = (0, 0);
    for f in corpus(target) {
        let data = std::fs::read(&f).unwrap();
        match catch_unwind(AssertUnwindSafe(|| harness(&data))) {
            Ok(Ok(_)) => ok += 1,
            Ok(Err(e)) => {
                assert_refused_by_checks(&f.display().to_string(), &e);
                err += 1
            }
            Err(_) => panic!("{} panicked {what}", f.display()),
        }
    }
    (ok, err)
}

#[test]
fn checkpoint_corpus_never_panics() {
    let (ok, err) = replay("checkpoint", "the checkpoint loader", fuzzing::load_checkpoint_bytes);
    eprintln!("checkpoint corpus: {ok} loaded, {err} refused with an error");
    assert!(ok >= 5, "the golden seeds must load");
}

#[test]
fn inputs_corpus_never_panics() {
    let connectors = fuzzing::input_connectors(&common::data_dir());
    let (ok, err) = replay("inputs", "`vlmc run`'s input path", |data| fuzzing::run_inputs_bytes(connectors, data));
    eprintln!("inputs corpus: {ok} ran, {err} refused with an error");
    assert!(ok >= 5, "the golden seeds must run");
}

#[test]
fn the_input_harness_covers_every_registry_row_with_a_golden_case() {
    let connectors = fuzzing::input_connectors(&common::data_dir());
    for e in vlm_connectors::connectors::MODELS {
        // llava_next_video has no folder of its own: tests/golden.rs derives it from llava_tiny.
        if e.model_types == ["llava_next_video"] {
            continue;
        }
        assert!(connectors.iter().any(|c| c.entry().class == e.class && e.model_types.contains(&c.model_type())), "{:?}", e.model_types);
    }
}

#[test]
fn torch_corpus_never_panics() {
    let (ok, err) = replay("torch", "the PyTorch checkpoint loader", fuzzing::load_torch_bytes);
    eprintln!("torch corpus: {ok} loaded, {err} refused with an error");
    assert!(ok >= 1, "the released-checkpoint seed must load");
}

#[test]
fn split_and_join_are_inverse() {
    let joined = fuzzing::join_checkpoint(b"{\"model_type\": \"tome\"}", b"rest");
    assert_eq!(fuzzing::split_checkpoint(&joined), (&b"{\"model_type\": \"tome\"}"[..], &b"rest"[..]));
    assert_eq!(fuzzing::split_checkpoint(&[7]), (&[7u8][..], &[][..]));
}

#[test]
fn image_corpus_and_its_mutants_never_panic() {
    let (ok, err) = replay("image", "decoding and preprocessing an image", fuzzing::preprocess_image_bytes);
    eprintln!("image corpus: {ok} preprocessed, {err} refused with an error");
    assert!(ok >= 20, "the image seeds must preprocess");
    // A little fuzzing in every CI run: byte flips, truncations and splices of the seeds.
    let mut rng = vlm_connectors::util::Rng::new(2026);
    let seeds: Vec<Vec<u8>> = corpus("image").iter().map(|f| std::fs::read(f).unwrap()).filter(|d| d.len() >= 2).collect();
    let (mut ok, mut err) = (0, 0);
    for i in 0..2000 {
        let mut d = seeds[i % seeds.len()].clone();
        match rng.below(3) {
            0 => {
                for _ in 0..1 + rng.below(8) {
                    let at = 1 + rng.below(d.len() - 1);
                    d[at] = rng.next_u64() as u8;
                }
            }
            1 => d.truncate(1 + rng.below(d.len() - 1)),
            _ => {
                let other = &seeds[rng.below(seeds.len())];
                let at = 1 + rng.below(d.len() - 1);
                d.splice(at.., other[1 + rng.below(other.len() - 1)..].iter().copied());
            }
        }
        match catch_unwind(AssertUnwindSafe(|| fuzzing::preprocess_image_bytes(&d))) {
            Ok(Ok(_)) => ok += 1,
            Ok(Err(_)) => err += 1,
            Err(_) => panic!("mutant {i} panicked: {:?}", &d[..d.len().min(64)]),
        }
    }
    eprintln!("image mutants: {ok} preprocessed, {err} refused with an error");
    assert!(ok > 0 && err > 0);
}
