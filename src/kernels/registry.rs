//! The kernel registry: one constant per WGSL entry point, the one place that says which file and
//! entry it is, which dtypes it is built for, which adapter features it needs, and what it binds.
//!
//! A pipeline is compiled once per `Gpu` for each (kernel, dtype); [`compose`] builds its source as
//! the `enable` directives, then `alias elem = f32;` (or `f16`), then `common.wgsl`, then the file.
//! `Recorder::launch` checks every bound tensor's dtype against the kernel's declared bindings.
//!
//! Dtypes: every float binding is `array<elem>`; bodies load with `f32(…)`, compute and accumulate
//! in f32 (GEMM, attention scores and running max / sum, norm statistics) and store with
//! `elem(…)`. Every kernel lists `F32` and `F16`, except the benchmark ceilings and the u32-only
//! media mask (`F32` only); composition, the pipeline cache, the dtype checks at launch and the
//! shader tests (which check every float binding's width against the dtype) follow the list.
//! Adding a variant: a new constant here and an arm of its family's `Variant` enum.

use crate::runtime::DType;

/// What a binding holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Elem {
    /// The kernel's compute dtype (`elem` in WGSL): f32 or f16.
    Float,
    /// u32 (indices, ranges, packed masks), whatever the compute dtype.
    U32,
    /// f32 whatever the compute dtype (split-K's partial sums keep f32 precision in f16 runs).
    F32,
}

/// One storage binding of an entry point (binding 0 is always the params uniform).
#[derive(Clone, Copy, Debug)]
pub struct Binding {
    /// `@binding(slot)` in the WGSL file.
    pub slot: u32,
    /// The WGSL variable name (used in error messages).
    pub name: &'static str,
    /// Element kind.
    pub elem: Elem,
    /// Whether the launcher may leave it unbound (a shared dummy buffer is bound instead).
    pub optional: bool,
    /// Whether the kernel writes it (the tensor is then unreadable until the recorder submits).
    pub writes: bool,
}

const fn f(slot: u32, name: &'static str) -> Binding {
    Binding { slot, name, elem: Elem::Float, optional: false, writes: false }
}
const fn opt(slot: u32, name: &'static str) -> Binding {
    Binding { slot, name, elem: Elem::Float, optional: true, writes: false }
}
const fn u(slot: u32, name: &'static str) -> Binding {
    Binding { slot, name, elem: Elem::U32, optional: false, writes: false }
}
const fn out(slot: u32, name: &'static str) -> Binding {
    Binding { slot, name, elem: Elem::Float, optional: false, writes: true }
}
const fn uout(slot: u32, name: &'static str) -> Binding {
    Binding { slot, name, elem: Elem::U32, optional: false, writes: true }
}

/// One WGSL entry point as a launchable kernel.
#[derive(Debug)]
pub struct Kernel {
    /// Unique name: the pipeline-cache key (with the dtype) and the label in profiles.
    pub name: &'static str,
    /// The family whose variants the tuner chooses between (`gemm`, `attention`, ...).
    pub family: &'static str,
    /// File in `shaders/`.
    pub file: &'static str,
    /// Entry point in that file.
    pub entry: &'static str,
    /// Compute dtypes this kernel is built for.
    pub dtypes: &'static [DType],
    /// Adapter features it needs beyond those of its dtype (subgroups, cooperative matrices).
    pub features: wgpu::Features,
    /// Pipeline-overridable constants (`override` in WGSL) and their values for this variant.
    pub constants: &'static [(&'static str, f64)],
    /// Storage bindings in the order launchers pass tensors.
    pub bindings: &'static [Binding],
}

impl Kernel {
    /// Features the adapter needs to run this kernel in `dtype`.
    pub fn required_features(&self, dtype: DType) -> wgpu::Features {
        match dtype {
            DType::F16 => self.features | wgpu::Features::SHADER_F16,
            _ => self.features,
        }
    }
}

const F32: &[DType] = &[DType::F32];
const F32_F16: &[DType] = &[DType::F32, DType::F16];
const NONE: wgpu::Features = wgpu::Features::empty();

macro_rules! kernel {
    ($id:ident, $name:literal, $family:literal, $file:literal, $bindings:expr) => {
        kernel!($id, $name, $family, $file, $bindings, F32_F16);
    };
    ($id:ident, $name:literal, $family:literal, $file:literal, $bindings:expr, $dtypes:expr) => {
        #[doc = concat!("`", $name, "` in `", $file, "` (family `", $family, "`).")]
        pub const $id: Kernel = Kernel {
            name: $name,
            family: $family,
            file: $file,
            entry: $name,
            dtypes: $dtypes,
            features: NONE,
            constants: &[],
            bindings: $bindings,
        };
    };
}

const GEMM_BINDINGS: [Binding; 5] = [f(1, "x"), f(2, "w"), opt(3, "bias"), opt(4, "res"), out(5, "y")];
const RANGES: Binding = Binding { slot: 5, name: "ranges", elem: Elem::U32, optional: true, writes: false };
const ATTN_BINDINGS: [Binding; 6] = [f(1, "q"), f(2, "k"), f(3, "v"), opt(4, "mask"), RANGES, out(6, "o")];

kernel!(GEMM_64, "gemm", "gemm", "gemm.wgsl", &GEMM_BINDINGS);
kernel!(GEMM_128, "gemm_128", "gemm", "gemm.wgsl", &GEMM_BINDINGS);
kernel!(GEMM_REG, "gemm_reg", "gemm", "gemm.wgsl", &GEMM_BINDINGS);
const PARTIAL_IN: Binding = Binding { slot: 6, name: "partial", elem: Elem::F32, optional: false, writes: false };
const PARTIAL_OUT: Binding = Binding { slot: 6, name: "partial", elem: Elem::F32, optional: false, writes: true };
kernel!(GEMM_SPLIT, "gemm_split", "gemm", "gemm.wgsl", &[f(1, "x"), f(2, "w"), PARTIAL_OUT]);
kernel!(GEMM_REDUCE, "gemm_reduce", "gemm", "gemm.wgsl", &[PARTIAL_IN, opt(3, "bias"), opt(4, "res"), out(5, "y")]);
const F16_ONLY: &[DType] = &[DType::F16];
/// `gemm_coop8` in `gemm_coop.wgsl` (family `gemm`): 8×8×8 f16 → f32 cooperative matrices, one
/// 8-lane subgroup per 8×8 output tile (Mesa ≥ 26 lavapipe).
pub const GEMM_COOP8: Kernel = Kernel {
    name: "gemm_coop8",
    family: "gemm",
    file: "gemm_coop.wgsl",
    entry: "gemm_coop8",
    dtypes: F16_ONLY,
    features: wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX,
    constants: &[],
    bindings: &GEMM_BINDINGS,
};
/// `gemm_coop16` in `gemm_coop.wgsl` (family `gemm`): 16×16×16 f16 → f32 cooperative matrices,
/// one 32-lane subgroup per 16×16 output tile (tensor cores on NVIDIA through Vulkan).
pub const GEMM_COOP16: Kernel = Kernel { name: "gemm_coop16", entry: "gemm_coop16", ..GEMM_COOP8 };
kernel!(ATTENTION, "attention", "attention", "attention.wgsl", &ATTN_BINDINGS);
kernel!(ATTENTION_Q8, "attention_q8", "attention", "attention.wgsl", &ATTN_BINDINGS);
kernel!(MEDIA_RANGES, "media_ranges", "media_ranges", "media_mask.wgsl", &[u(1, "locations"), uout(2, "out_ranges")], F32);
kernel!(ACTIVATION, "activation", "elementwise", "elementwise.wgsl", &[f(1, "src"), out(2, "dst")]);
kernel!(COPY_ROWS, "copy_rows", "elementwise", "elementwise.wgsl", &[f(1, "src"), out(2, "dst")]);
kernel!(ADD_ROWS, "add_rows", "elementwise", "elementwise.wgsl", &[f(1, "src"), out(2, "dst")]);
kernel!(GATHER_ROWS, "gather_rows", "elementwise", "elementwise.wgsl", &[f(1, "src"), out(2, "dst"), u(3, "ids")]);
kernel!(GATED_ACTIVATION, "gated_activation", "elementwise", "elementwise.wgsl", &[f(1, "src"), out(2, "dst"), opt(4, "row_scale")]);
kernel!(LAYERNORM, "layernorm", "layernorm", "layernorm.wgsl", &[f(1, "x"), opt(2, "res"), f(3, "gamma"), f(4, "beta"), out(5, "y")]);
kernel!(RMSNORM, "rmsnorm", "layernorm", "layernorm.wgsl", &[f(1, "x"), opt(2, "res"), f(3, "gamma"), out(5, "y")]);
/// `layernorm_sg` in `layernorm_sg.wgsl` (family `layernorm`): the statistics by subgroupAdd.
pub const LAYERNORM_SG: Kernel =
    Kernel { name: "layernorm_sg", file: "layernorm_sg.wgsl", entry: "layernorm_sg", features: wgpu::Features::SUBGROUP, ..LAYERNORM };
/// `rmsnorm_sg` in `layernorm_sg.wgsl` (family `layernorm`): the statistic by subgroupAdd.
pub const RMSNORM_SG: Kernel =
    Kernel { name: "rmsnorm_sg", file: "layernorm_sg.wgsl", entry: "rmsnorm_sg", features: wgpu::Features::SUBGROUP, ..RMSNORM };
kernel!(POOL2D, "pool2d", "pool", "pool.wgsl", &[f(1, "x"), out(2, "y")]);
kernel!(RESIZE_BILINEAR, "resize_bilinear", "pool", "pool.wgsl", &[f(1, "x"), out(2, "y")]);
kernel!(SPACE_TO_DEPTH, "space_to_depth", "pool", "pool.wgsl", &[f(1, "x"), out(2, "y")]);
kernel!(PATCHIFY, "patchify", "pool", "pool.wgsl", &[f(1, "x"), out(2, "y")]);
kernel!(ANYRES_PACK, "anyres_pack", "anyres", "anyres.wgsl", &[f(1, "tiles"), f(2, "newline"), out(3, "y")]);
kernel!(ANYRES_RESIZE_PACK, "anyres_resize_pack", "anyres", "anyres.wgsl", &[f(1, "tiles"), f(2, "newline"), out(3, "y")]);
kernel!(TOME_MATCH, "tome_match", "tome", "tome.wgsl", &[f(1, "metric"), uout(4, "info")]);
kernel!(TOME_RANK, "tome_rank", "tome", "tome.wgsl", &[uout(4, "info")]);
kernel!(TOME_SLOTS, "tome_slots", "tome", "tome.wgsl", &[u(4, "info"), uout(5, "slot_src")]);
kernel!(
    TOME_MERGE,
    "tome_merge",
    "tome",
    "tome.wgsl",
    &[f(2, "x"), f(3, "size"), u(4, "info"), u(5, "slot_src"), out(6, "out"), out(7, "out_size")]
);
kernel!(FMA_PEAK, "fma_peak", "ceiling", "ceiling.wgsl", &[out(2, "dst")], F32);
kernel!(COPY_BW, "copy_bw", "ceiling", "ceiling.wgsl", &[f(1, "src"), out(2, "dst")], F32);

/// Every kernel, for the shader tests and `vlmc info`.
pub const ALL: &[&Kernel] = &[
    &GEMM_64,
    &GEMM_128,
    &GEMM_REG,
    &GEMM_SPLIT,
    &GEMM_REDUCE,
    &GEMM_COOP8,
    &GEMM_COOP16,
    &ATTENTION,
    &ATTENTION_Q8,
    &MEDIA_RANGES,
    &ACTIVATION,
    &COPY_ROWS,
    &ADD_ROWS,
    &GATHER_ROWS,
    &GATED_ACTIVATION,
    &LAYERNORM,
    &RMSNORM,
    &LAYERNORM_SG,
    &RMSNORM_SG,
    &POOL2D,
    &RESIZE_BILINEAR,
    &SPACE_TO_DEPTH,
    &PATCHIFY,
    &ANYRES_PACK,
    &ANYRES_RESIZE_PACK,
    &TOME_MATCH,
    &TOME_RANK,
    &TOME_SLOTS,
    &TOME_MERGE,
    &FMA_PEAK,
    &COPY_BW,
];

/// WGSL sources, by file name, as shipped in `shaders/`.
pub const SHADER_FILES: &[(&str, &str)] = &[
    ("common.wgsl", include_str!("../../shaders/common.wgsl")),
    ("gemm.wgsl", include_str!("../../shaders/gemm.wgsl")),
    ("gemm_coop.wgsl", include_str!("../../shaders/gemm_coop.wgsl")),
    ("elementwise.wgsl", include_str!("../../shaders/elementwise.wgsl")),
    ("layernorm.wgsl", include_str!("../../shaders/layernorm.wgsl")),
    ("layernorm_sg.wgsl", include_str!("../../shaders/layernorm_sg.wgsl")),
    ("attention.wgsl", include_str!("../../shaders/attention.wgsl")),
    ("media_mask.wgsl", include_str!("../../shaders/media_mask.wgsl")),
    ("pool.wgsl", include_str!("../../shaders/pool.wgsl")),
    ("anyres.wgsl", include_str!("../../shaders/anyres.wgsl")),
    ("tome.wgsl", include_str!("../../shaders/tome.wgsl")),
    ("ceiling.wgsl", include_str!("../../shaders/ceiling.wgsl")),
];

/// The source `kernel` is compiled from in `dtype`: `enable` directives first (WGSL requires
/// them before any declaration), then the `elem` alias, then `common.wgsl`, then the kernel's file.
/// `None` when the file is not shipped.
pub fn compose(kernel: &Kernel, dtype: DType) -> Option<String> {
    compose_file(kernel.file, dtype, kernel.required_features(dtype))
}

/// [`compose`] for a whole file, with the `enable` directives `features` ask for.
pub fn compose_file(file: &str, dtype: DType, features: wgpu::Features) -> Option<String> {
    let body = SHADER_FILES.iter().find(|(n, _)| *n == file)?.1;
    let common = SHADER_FILES[0].1;
    let mut s = String::new();
    if dtype == DType::F16 || features.contains(wgpu::Features::SHADER_F16) {
        s += "enable f16;\n";
    }
    if features.contains(wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX) {
        s += "enable wgpu_cooperative_matrix;\n";
    }
    s += &format!("alias elem = {};\n", dtype.wgsl());
    if file != "common.wgsl" {
        s += common;
        s.push('\n');
    }
    s += body;
    Some(s)
}
