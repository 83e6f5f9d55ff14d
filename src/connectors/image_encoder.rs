//! Image in → LLM embeddings out: a model folder's image processor (`preprocessor_config.json`),
//! vision tower and connector, as the model's `get_image_features` runs them (transformers
//! `LlavaModel`, `LlavaNextModel`, `LlavaOnevisionModel`, `Blip2Model`).
//!
//! ```text
//! RgbImage → ImageProcessor (CPU, bit-exact PIL) → pixel_values [1, 3, S, S] | [1, tiles, 3, S, S]
//!          → tower → connector (→ AnyRes packing)  — one recording, one submit per image
//!          → output per image: LLaVA [1, N, C_text], BLIP-2 [1, Q, C_text], LLaVA-NeXT and
//!            OneVision [T, C_text] (tiles packed, newlines included)
//! ```

use std::path::Path;

use super::{Connector, Inputs, LoadOptions, Outputs};
use crate::preprocess::{ImageProcessor, Processed, RgbImage};
use crate::runtime::{Error, Gpu, Result, Tensor};

/// One image's encoding.
#[derive(Clone, Debug)]
pub struct Encoded {
    /// What the processor made of the image (`pixel_values`, their shape, the photo's size).
    pub processed: Processed,
    /// The model's outputs by name: `output` (the LLM-ready embeddings) first, then
    /// `vision_features` and the connector's intermediates (`projected`, `qformer_output`).
    pub outputs: Outputs,
}

/// A model's image path, built from a Hugging Face folder: `config.json` (a `llava`,
/// `llava_next`, `llava_onevision` or `blip-2` model with its vision tower), `preprocessor_config.json`, and the
/// weights. See the module docs for the data flow.
#[derive(Debug)]
pub struct ImageEncoder {
    connector: Connector,
    processor: ImageProcessor,
}

impl ImageEncoder {
    /// Loads the folder in f32. Errors: as [`Connector::from_dir_opts`] (an [`Error::Config`] for
    /// a `model_type` without a vision tower), and [`Error::Io`] / [`Error::Config`] for
    /// `preprocessor_config.json`.
    pub fn from_dir(gpu: &Gpu, dir: impl AsRef<Path>) -> Result<ImageEncoder> {
        Self::from_dir_opts(gpu, dir, &LoadOptions::default())
    }

    /// [`ImageEncoder::from_dir`] with config overrides and a compute dtype; `load_vision_tower`
    /// is set to true unless the overrides set it.
    pub fn from_dir_opts(gpu: &Gpu, dir: impl AsRef<Path>, opts: &LoadOptions) -> Result<ImageEncoder> {
        let dir = dir.as_ref();
        // The model type first: a folder whose tower is not here needs no processor to be refused.
        check_tower(&crate::checkpoint::Config::from_file(dir.join("config.json"))?)?;
        let processor = ImageProcessor::from_file(dir.join("preprocessor_config.json"))?;
        Self::new(Connector::from_dir_opts(gpu, dir, &with_tower(opts))?, processor)
    }

    /// From bytes in memory (the web build's `fetch`ed files): `config.json`'s and
    /// `preprocessor_config.json`'s text and the weights (one safetensors file or PyTorch
    /// checkpoint). Errors as [`ImageEncoder::from_dir_opts`].
    pub fn from_bytes(gpu: &Gpu, config_json: &str, preprocessor_json: &str, weights: Vec<u8>, opts: &LoadOptions) -> Result<ImageEncoder> {
        check_tower(&crate::checkpoint::Config::from_str(config_json)?)?;
        let processor = ImageProcessor::from_config(&crate::checkpoint::Config::from_str(preprocessor_json)?)?;
        Self::new(Connector::from_bytes(gpu, config_json, Some(weights), &with_tower(opts))?, processor)
    }

    /// From a loaded model (with its tower: `load_vision_tower` true) and a processor, e.g. a
    /// config built in code with random weights (`vlmc demo`). Errors: [`Error::Config`] when the
    /// model takes no `pixel_values` or the processor's tiling does not fit it.
    pub fn new(connector: Connector, processor: ImageProcessor) -> Result<ImageEncoder> {
        if !connector.input_names().contains(&"pixel_values") {
            return Err(Error::config("load_vision_tower", format!("`{}` was loaded without its vision tower", connector.model_type())));
        }
        if processor.is_anyres() != connector.input_names().contains(&"image_sizes") {
            let (needs, has) = match processor.is_anyres() {
                true => ("a processor without AnyRes tiles (CLIPImageProcessor, BlipImageProcessor, SiglipImageProcessor)", "tiles"),
                false => ("an AnyRes processor (LlavaNextImageProcessor, LlavaOnevisionImageProcessor)", "does not tile"),
            };
            return Err(Error::config(
                "image_processor_type",
                format!("`{}` {has}, but `{}` needs {needs}", processor.kind, connector.model_type()),
            ));
        }
        Ok(ImageEncoder { connector, processor })
    }

    /// The model (tower + connector).
    pub fn connector(&self) -> &Connector {
        &self.connector
    }

    /// The image processor.
    pub fn processor(&self) -> &ImageProcessor {
        &self.processor
    }

    /// Encodes each image: preprocess on the CPU, then tower and connector in one submit per
    /// image (so GPU memory holds one image's activations at a time). Errors: [`Error::Image`]
    /// from preprocessing; [`Error::Shape`] naming `pixel_values` when the processor's size is not
    /// the tower's `image_size`.
    pub fn encode(&self, gpu: &Gpu, images: &[RgbImage]) -> Result<Vec<Encoded>> {
        crate::runtime::block_on(self.encode_async(gpu, images), "ImageEncoder::encode", "ImageEncoder::encode_async")
    }

    /// [`Self::encode`] as a future, image by image (what the web build awaits).
    pub async fn encode_async(&self, gpu: &Gpu, images: &[RgbImage]) -> Result<Vec<Encoded>> {
        let mut out = Vec::new();
        for img in images {
            let processed = self.processor.preprocess(img)?;
            let outputs = self.run_async(gpu, &processed).await?;
            out.push(Encoded { processed, outputs });
        }
        Ok(out)
    }

    /// Runs the model on one image's processed pixels (blocking; native only).
    pub fn run(&self, gpu: &Gpu, p: &Processed) -> Result<Outputs> {
        crate::runtime::block_on(self.run_async(gpu, p), "ImageEncoder::run", "ImageEncoder::run_async")
    }

    /// [`Self::run`] as a future.
    pub async fn run_async(&self, gpu: &Gpu, p: &Processed) -> Result<Outputs> {
        self.connector.run_inputs_async(gpu, &self.inputs(gpu, p)?).await
    }

    /// `pixel_values` (and AnyRes's `image_sizes`) of one image, uploaded in the model's dtype.
    /// Errors: those of [`Tensor::from_host`] (a shape that does not match the data).
    pub fn inputs(&self, gpu: &Gpu, p: &Processed) -> Result<Inputs> {
        let px = Tensor::from_host(gpu, &p.pixel_values, &p.shape, self.connector.dtype())?;
        let mut inputs = Inputs::new().with_tensor("pixel_values", px);
        if self.processor.is_anyres() {
            inputs = inputs.with_ints("image_sizes", &[1, 2], vec![p.image_size[0] as i64, p.image_size[1] as i64]);
        }
        Ok(inputs)
    }
}

/// An [`Error::Config`] for a `model_type` whose vision tower is not in this crate.
fn check_tower(config: &crate::checkpoint::Config) -> Result<()> {
    let model_type = config.str("model_type")?;
    if !super::models::TOWER_MODEL_TYPES.contains(&model_type.as_str()) {
        let known = super::models::TOWER_MODEL_TYPES.join(", ");
        return Err(Error::config(
            "model_type",
            format!("`{model_type}` cannot encode images here: its vision tower is not in this crate (towers: {known})"),
        ));
    }
    Ok(())
}

/// `opts` with `load_vision_tower` set to true unless the overrides set it.
fn with_tower(opts: &LoadOptions) -> LoadOptions {
    let mut opts = opts.clone();
    if !opts.overrides.iter().any(|(k, _)| k == "load_vision_tower") {
        opts.overrides.push(("load_vision_tower".into(), serde_json::Value::Bool(true)));
    }
    opts
}
