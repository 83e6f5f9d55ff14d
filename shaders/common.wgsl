// common.wgsl: helpers prepended to every kernel file (WGSL has no #include).
// Activations follow transformers' ACT2FN; ids mirror `kernels::Activation` in Rust.

const ACT_IDENTITY: u32 = 0u;
const ACT_GELU: u32 = 1u;        // exact: 0.5·x·(1 + erf(x/√2))
const ACT_GELU_TANH: u32 = 2u;   // gelu_pytorch_tanh / gelu_new
const ACT_QUICK_GELU: u32 = 3u;  // x·σ(1.702x)
const ACT_RELU: u32 = 4u;
const ACT_SILU: u32 = 5u;
const ACT_GELU_10: u32 = 6u;     // gelu clipped to [-10, 10]
const ACT_RELU6: u32 = 7u;
const ACT_RELU2: u32 = 8u;       // relu(x)²
const ACT_SIGMOID: u32 = 9u;
const ACT_TANH: u32 = 10u;
const ACT_LEAKY_RELU: u32 = 11u; // nn.LeakyReLU(0.01)
const ACT_MISH: u32 = 12u;       // x·tanh(softplus(x)), softplus linear past 20 as in torch

// Complementary error function, relative error < 1.2e-7 for all x (Chebyshev fit, Numerical
// Recipes `erfcc`). Working with erfc keeps GELU accurate for negative x, where 1 + erf(x) cancels.
fn erfc_approx(x: f32) -> f32 {
    let z = abs(x);
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806
        + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277))))))));
    let r = t * exp(-z * z + poly);
    return select(2.0 - r, r, x >= 0.0);
}

// tanh with the argument clamped: some backends build tanh from exp and overflow past ~±44, and
// lose small arguments to (e^2x − 1) cancelling, so |x| < 0.1 takes the series (error < 3e-11).
fn tanh_safe(x: f32) -> f32 {
    let x2 = x * x;
    let series = x * (1.0 + x2 * (-0.33333333 + x2 * (0.13333333 + x2 * -0.053968254)));
    return select(tanh(clamp(x, -15.0, 15.0)), series, abs(x) < 0.1);
}

fn sigmoid(x: f32) -> f32 {
    return 1.0 / (1.0 + exp(-x));
}

// log(1 + exp(x)), linear past 20 as torch's softplus; log1p by Goldberg's trick (WGSL has no
// log1p): log(u)·y / (u − 1) with u = 1 + y keeps tiny y accurate.
fn softplus(x: f32) -> f32 {
    let y = exp(min(x, 20.0));
    let u = 1.0 + y;
    let l = select(log(u) * y / (u - 1.0), y, u == 1.0);
    return select(l, x, x > 20.0);
}

fn activate(x: f32, act: u32) -> f32 {
    switch act {
        case ACT_GELU: { return 0.5 * x * erfc_approx(-x * 0.70710678118654752); }
        case ACT_GELU_TANH: {
            let inner = 0.7978845608028654 * (x + 0.044715 * x * x * x);
            return 0.5 * x * (1.0 + tanh_safe(inner));
        }
        case ACT_QUICK_GELU: { return x * sigmoid(1.702 * x); }
        case ACT_RELU: { return max(x, 0.0); }
        case ACT_SILU: { return x * sigmoid(x); }
        case ACT_GELU_10: { return clamp(0.5 * x * erfc_approx(-x * 0.70710678118654752), -10.0, 10.0); }
        case ACT_RELU6: { return clamp(x, 0.0, 6.0); }
        case ACT_RELU2: { let r = max(x, 0.0); return r * r; }
        case ACT_SIGMOID: { return sigmoid(x); }
        case ACT_TANH: { return tanh_safe(x); }
        case ACT_LEAKY_RELU: { return select(0.01 * x, x, x >= 0.0); }
        case ACT_MISH: { return x * tanh_safe(softplus(x)); }
        case ACT_IDENTITY, default: { return x; }
    }
}

// Linear index of a workgroup in a 2-D grid (grids past 65535 groups wrap into y).
fn group_index(wid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return wid.y * nwg.x + wid.x;
}

// PyTorch's upsample_bilinear2d source taps along one axis (align_corners=False, no antialias):
// output o reads source (o + 0.5)·scale − 0.5 clamped at 0 (scale = in / out); i1 = floor of it,
// i2 = i1 + 1 unless i1 is the last index, and l the weight of i2.
struct Taps {
    i1: u32,
    i2: u32,
    l: f32,
};

fn bilinear_taps(o: u32, scale: f32, n: u32) -> Taps {
    let last = max(n, 1u) - 1u;   // launchers refuse empty axes; this keeps reads in bounds anyway
    let s = max((f32(o) + 0.5) * scale - 0.5, 0.0);
    let i1 = min(u32(s), last);
    return Taps(i1, i1 + select(0u, 1u, i1 < last), s - f32(i1));
}
