//! Values of `WeightSource::random`: a deterministic function of (seed, tensor name, shape), drawn
//! with `rand`'s `StdRng` seeded from a hash of the seed and the name, so a weight's values do not
//! depend on which other weights were read before it.

use rand::{RngExt, SeedableRng};

/// FNV-1a of the name, mixed with the seed.
fn stream(seed: u64, name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325 ^ seed, |h, b| (h ^ b as u64).wrapping_mul(0x0100_0000_01b3))
}

/// Random values for tensor `name` of `shape`: U(±1/√fan_in) for rank ≥ 2 (torch's Linear init),
/// 1 ± 0.1 for a rank-1 `…weight` (LayerNorm gamma), U(±0.1) otherwise (biases, embeddings, gates).
pub fn values(seed: u64, name: &str, shape: &[usize]) -> Vec<f32> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(stream(seed, name));
    let n: usize = shape.iter().product();
    let (center, half) = match shape {
        [_, .., last] if shape.len() >= 2 => (0.0, 1.0 / (*last.max(&1) as f32).sqrt()),
        [_] if name.ends_with("weight") => (1.0, 0.1),
        _ => (0.0, 0.1),
    };
    (0..n).map(|_| center + rng.random_range(-half..half)).collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn values_depend_on_seed_and_name_only() {
        let a = super::values(1, "layers.0.weight", &[3, 4]);
        assert_eq!(a, super::values(1, "layers.0.weight", &[3, 4]));
        assert_ne!(a, super::values(2, "layers.0.weight", &[3, 4]));
        assert_ne!(a, super::values(1, "layers.1.weight", &[3, 4]));
        assert!(a.iter().all(|v| v.abs() <= 0.5));
        assert!(super::values(1, "norm.weight", &[8]).iter().all(|v| (0.9..=1.1).contains(v)));
    }
}
