//! Image decoding and preprocessing (issue "From pixels", part 2): the shipped photos
//! (`assets/images`) through each `pixels_*` case's `preprocessor_config.json` give transformers'
//! PIL-backend `pixel_values` (`expected.safetensors`, from `../shared/golden`) bit for bit; the
//! resampler against Pillow itself (tests/data/images); hostile files are errors, not panics.

mod common;
use common::data_dir;

use vlm_connectors::checkpoint::WeightSource;
use vlm_connectors::preprocess::{ImageLimits, ImageProcessor, RgbImage};

fn photo(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/images").join(name)
}

#[test]
fn photos_preprocess_to_the_references_pixel_values_exactly() {
    for (case, image) in [("pixels_llava_clip", "astronaut.png"), ("pixels_llava_next", "coffee.png"), ("pixels_blip2", "coffee.png")] {
        let dir = data_dir().join("pixels").join(case);
        let p = ImageProcessor::from_file(dir.join("preprocessor_config.json")).unwrap();
        let img = RgbImage::open(photo(image)).unwrap();
        let got = p.preprocess(&img).unwrap();
        let want = WeightSource::open_file(dir.join("expected.safetensors")).unwrap().get_any("pixel_values").unwrap();
        assert_eq!(got.shape, want.shape, "{case}");
        let max = got.pixel_values.iter().zip(&want.data).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        assert_eq!(max, 0.0, "{case}: pixel_values max |diff| {max}");
        assert_eq!(got.image_size, [img.height, img.width]);
    }
}

fn png(img: image::DynamicImage) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

fn jpeg(img: image::DynamicImage) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Jpeg).unwrap();
    out.into_inner()
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut c = !0u32;
    for &b in bytes {
        c ^= b as u32;
        for _ in 0..8 {
            c = if c & 1 != 0 { 0xEDB8_8320 ^ (c >> 1) } else { c >> 1 };
        }
    }
    !c
}

/// A valid PNG whose IHDR claims `w`×`h` (CRC fixed up): the decoder must refuse it from the header.
fn png_claiming(w: u32, h: u32) -> Vec<u8> {
    let mut b = png(image::DynamicImage::new_rgb8(1, 1));
    b[16..20].copy_from_slice(&w.to_be_bytes());
    b[20..24].copy_from_slice(&h.to_be_bytes());
    let crc = crc32(&b[12..29]);
    b[29..33].copy_from_slice(&crc.to_be_bytes());
    b
}

/// The same for a baseline JPEG's SOF0 (no checksum there).
fn jpeg_claiming(w: u16, h: u16) -> Vec<u8> {
    let mut b = jpeg(image::DynamicImage::new_rgb8(8, 8));
    let sof = b.windows(2).position(|w| w == [0xFF, 0xC0]).unwrap();
    b[sof + 5..sof + 7].copy_from_slice(&h.to_be_bytes());
    b[sof + 7..sof + 9].copy_from_slice(&w.to_be_bytes());
    b
}

#[test]
fn hostile_files_are_errors_that_say_why() {
    let photo_png = std::fs::read(photo("coffee.png")).unwrap();
    let photo_jpg = std::fs::read(photo("coffee.jpg")).unwrap();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("empty", vec![], "not a PNG or JPEG"),
        ("text", b"hello, not an image".to_vec(), "not a PNG or JPEG"),
        ("truncated png", photo_png[..photo_png.len() / 3].to_vec(), ""),
        ("truncated jpeg", photo_jpg[..photo_jpg.len() / 3].to_vec(), ""),
        ("png header only", photo_png[..40].to_vec(), ""),
        ("30000x30000 png", png_claiming(30000, 30000), "limit"),
        ("30000x30000 jpeg", jpeg_claiming(30000, 30000), "limit"),
        ("zero-width png", png_claiming(0, 5), ""),
        ("gif", b"GIF89a\x01\x00\x01\x00\x00\x00\x00;".to_vec(), "not supported"),
        // Found by the image fuzz target: zune-jpeg 0.5.15 panics in its IDCT on this scan.
        ("decoder panic", std::fs::read(data_dir().join("images/jpeg_decoder_panic.jpg")).unwrap(), "corrupt"),
    ];
    for (what, bytes, says) in cases {
        let e = RgbImage::decode_with(&bytes, what, ImageLimits::default()).expect_err(what).to_string();
        assert!(e.starts_with(&format!("image {what}:")) && e.to_lowercase().contains(&says.to_lowercase()), "{what}: {e}");
    }
    // Bytes after the end-of-image marker (a phone's appended video, a trailer) are not read,
    // even when they hold marker-like bytes; a JPEG cut inside its scan is refused.
    let mut trailing = photo_jpg.clone();
    trailing.extend_from_slice(&[0xFF, 0xDA, 0x00, 0x08, 0xFF, 0xD8, 1, 2, 3]);
    assert!(RgbImage::decode(&trailing).is_ok());
    let e = RgbImage::decode(&photo_jpg[..photo_jpg.len() - 2]).unwrap_err().to_string();
    assert!(e.contains("truncated"), "{e}");
    // A file past the read limit is refused before it is decoded (`vlmc encode /dev/zero`).
    let limit = ImageLimits { max_file: 1000, ..Default::default() };
    let e = RgbImage::open_with(photo("coffee.jpg"), limit).unwrap_err().to_string();
    assert!(e.contains("file limit"), "{e}");
    #[cfg(unix)]
    assert!(RgbImage::open_with("/dev/zero", limit).unwrap_err().to_string().contains("file limit"));
    // A tight allocation limit refuses the real photo before decoding it.
    let tight = ImageLimits { max_alloc: 100_000, ..Default::default() };
    assert!(RgbImage::decode_with(&photo_png, "tight", tight).is_err());
    let small = ImageLimits { max_side: 512, ..Default::default() };
    assert!(RgbImage::decode_with(&photo_png, "small", small).is_err(), "600 wide > 512");
}

#[test]
fn grey_alpha_16_bit_and_jpeg_convert_to_rgb_like_pil() {
    let rgba = image::RgbaImage::from_fn(5, 3, |x, y| image::Rgba([x as u8 * 40, y as u8 * 70, 9, (x * y) as u8]));
    let got = RgbImage::decode(&png(rgba.clone().into())).unwrap();
    // convert("RGB") drops alpha without compositing.
    let want: Vec<u8> = rgba.pixels().flat_map(|p| [p[0], p[1], p[2]]).collect();
    assert_eq!((got.height, got.width, &got.data), (3, 5, &want));
    let grey = image::GrayImage::from_fn(4, 2, |x, y| image::Luma([(x * 60 + y) as u8]));
    let got = RgbImage::decode(&png(grey.clone().into())).unwrap();
    assert_eq!(got.data, grey.pixels().flat_map(|p| [p[0]; 3]).collect::<Vec<_>>());
    // 16-bit as Pillow reads it: RGB keeps the high byte (0x80FF → 128, where v/257 would give
    // 129); grey is I;16, which convert("RGB") clips at 255.
    let wide = image::ImageBuffer::<image::Rgb<u16>, _>::from_fn(2, 2, |x, _| image::Rgb([x as u16 * 65535, 0x80FF, 0]));
    let got = RgbImage::decode(&png(image::DynamicImage::ImageRgb16(wide))).unwrap();
    assert_eq!(&got.data[..6], &[0, 128, 0, 255, 128, 0]);
    let grey16 = image::ImageBuffer::<image::Luma<u16>, _>::from_fn(3, 1, |x, _| image::Luma([[100, 255, 300][x as usize]]));
    let got = RgbImage::decode(&png(image::DynamicImage::ImageLuma16(grey16))).unwrap();
    assert_eq!(got.data, [100, 100, 100, 255, 255, 255, 255, 255, 255]);
    let one = RgbImage::decode(&jpeg(image::DynamicImage::new_luma8(1, 1))).unwrap();
    assert_eq!((one.height, one.width, one.data.len()), (1, 1, 3));
    // A JPEG of the coffee photo decodes to the PNG's size, near its pixels (lossy, quality 90).
    let (j, p) = (RgbImage::open(photo("coffee.jpg")).unwrap(), RgbImage::open(photo("coffee.png")).unwrap());
    assert_eq!((j.height, j.width), (p.height, p.width));
    let mean = j.data.iter().zip(&p.data).map(|(a, b)| (*a as f64 - *b as f64).abs()).sum::<f64>() / j.data.len() as f64;
    assert!(mean < 4.0, "mean |jpeg − png| {mean} levels");
}

#[test]
fn every_processor_takes_tiny_and_extreme_images() {
    use vlm_connectors::checkpoint::Config;
    let siglip = r#"{"image_processor_type": "SiglipImageProcessor", "size": {"height": 30, "width": 30}}"#;
    let onevision = r#"{"image_processor_type": "LlavaOnevisionImageProcessor", "size": {"height": 14, "width": 14},
        "image_grid_pinpoints": [[14, 14], [14, 42], [42, 14], [28, 28]]}"#;
    let mut processors: Vec<(&str, ImageProcessor, Vec<usize>)> = ["pixels_llava_clip", "pixels_llava_next", "pixels_blip2"]
        .into_iter()
        .map(|case| {
            let p = ImageProcessor::from_file(data_dir().join("pixels").join(case).join("preprocessor_config.json")).unwrap();
            let want = WeightSource::open_file(data_dir().join("pixels").join(case).join("expected.safetensors")).unwrap();
            let shape = want.get_any("pixel_values").unwrap().shape;
            (case, p, shape[shape.len() - 3..].to_vec())
        })
        .collect();
    processors.push(("siglip", ImageProcessor::from_config(&Config::from_str(siglip).unwrap()).unwrap(), vec![3, 30, 30]));
    processors.push(("onevision", ImageProcessor::from_config(&Config::from_str(onevision).unwrap()).unwrap(), vec![3, 14, 14]));
    for (case, p, tail) in processors {
        for (h, w) in [(1, 1), (1, 7), (7, 1), (63, 65), (257, 3), (577, 577)] {
            let img = RgbImage::new(h, w, (0..h * w * 3).map(|i| (i * 37 % 251) as u8).collect()).unwrap();
            let out = p.preprocess(&img).unwrap_or_else(|e| panic!("{case} {h}x{w}: {e}"));
            assert_eq!(out.shape[out.shape.len() - 3..], tail[..], "{case} {h}x{w}");
            assert_eq!(out.pixel_values.len(), out.shape.iter().product::<usize>());
            assert!(out.pixel_values.iter().all(|v| v.is_finite() && v.abs() < 3.0), "{case} {h}x{w}");
            // What the web page draws is what preprocess did.
            let t = p.tiling([h, w]);
            assert_eq!(t.input[..], out.shape[out.shape.len() - 2..], "{case} {h}x{w}: tiling's input size");
            let tiles = t.grid.map_or(1, |[r, c]| r * c + 1);
            assert_eq!(tiles, out.shape.iter().rev().nth(3).copied().unwrap_or(1), "{case} {h}x{w}: tiles");
        }
        // A 1×30000 strip would resize to 56 × 1.68 M pixels for CLIP: refused, not allocated.
        if case == "pixels_llava_clip" {
            let strip = RgbImage::new(1, 30000, vec![7; 90000]).unwrap();
            let e = p.preprocess(&strip).unwrap_err().to_string();
            assert!(e.contains("2^26"), "{e}");
        }
    }
    assert!(RgbImage::new(0, 3, vec![]).unwrap_err().to_string().contains("0x3"));
    // The golden case's own AnyRes facts (case.json: coffee.png, 400×600).
    let p = ImageProcessor::from_file(data_dir().join("pixels/pixels_llava_next/preprocessor_config.json")).unwrap();
    let t = p.tiling([400, 600]);
    assert_eq!((t.pinpoint, t.resized, t.grid, t.tile, t.input), (Some([112, 140]), [94, 140], Some([4, 5]), Some(28), [28, 28]));
    let p = ImageProcessor::from_file(data_dir().join("pixels/pixels_llava_clip/preprocessor_config.json")).unwrap();
    let t = p.tiling([400, 600]);
    assert_eq!((t.pinpoint, t.resized, t.crop, t.input), (None, [56, 84], Some([56, 56]), [56, 56]));
}

/// Max and mean |a − b| in levels over the bytes of two equal-sized images.
fn level_diff(a: &RgbImage, b: &RgbImage) -> (u8, f64) {
    assert_eq!((a.height, a.width), (b.height, b.width));
    let d: Vec<u8> = a.data.iter().zip(&b.data).map(|(x, y)| x.abs_diff(*y)).collect();
    (*d.iter().max().unwrap(), d.iter().map(|&v| v as f64).sum::<f64>() / d.len() as f64)
}

/// JPEG decoding against Pillow 13 / libjpeg-turbo (`tests/data/images`, made by
/// `tests/data/tools/make_image_fixtures.py`): the shipped coffee.jpg (4:2:0) and a CMYK JPEG
/// (Adobe-inverted, as Pillow writes it) converted to RGB. The decoders' upsampling and colour
/// conversion differ a little: measured max 3 levels / mean 0.20 (coffee.jpg crop) and max 1 / mean
/// 0.016 (CMYK); the bounds are those, barely rounded.
#[test]
fn jpeg_decodes_near_pillow_including_cmyk() {
    let dir = data_dir().join("images");
    let ours = RgbImage::open(photo("coffee.jpg")).unwrap();
    let crop =
        RgbImage::new(96, 96, (150..246).flat_map(|y| ours.data[(y * 600 + 250) * 3..(y * 600 + 346) * 3].to_vec()).collect()).unwrap();
    let (max, mean) = level_diff(&crop, &RgbImage::open(dir.join("coffee_jpg_pil_crop.png")).unwrap());
    eprintln!("coffee.jpg vs Pillow: max {max} levels, mean {mean:.3}");
    assert!(max <= 3 && mean <= 0.25, "coffee.jpg: max {max}, mean {mean}");
    let (max, mean) = level_diff(&RgbImage::open(dir.join("cmyk.jpg")).unwrap(), &RgbImage::open(dir.join("cmyk_pil_rgb.png")).unwrap());
    eprintln!("CMYK JPEG vs Pillow's convert(\"RGB\"): max {max} levels, mean {mean:.3}");
    assert!(max <= 1 && mean <= 0.05, "cmyk: max {max}, mean {mean}");
}

/// Configs that would make the processor allocate without bound, or divide by zero, are refused
/// when read, naming the field.
#[test]
fn hostile_processor_configs_are_config_errors() {
    use vlm_connectors::checkpoint::Config;
    let cases = [
        (r#"{"image_processor_type": "CLIPImageProcessor", "crop_size": 100000}"#, "crop_size"),
        (r#"{"image_processor_type": "CLIPImageProcessor", "size": {"shortest_edge": 2147483648}}"#, "size.shortest_edge"),
        (r#"{"image_processor_type": "BlipImageProcessor", "size": {"height": 65536, "width": 65536}}"#, "size"),
        (
            r#"{"image_processor_type": "LlavaNextImageProcessor", "crop_size": 14, "image_grid_pinpoints": [[140000, 140000]]}"#,
            "image_grid_pinpoints",
        ),
        (
            r#"{"image_processor_type": "LlavaNextImageProcessor", "crop_size": 14, "image_grid_pinpoints": [[14, 15]]}"#,
            "image_grid_pinpoints",
        ),
        (r#"{"image_processor_type": "LlavaNextImageProcessor", "image_grid_pinpoints": []}"#, "image_grid_pinpoints"),
        (r#"{"image_processor_type": "CLIPImageProcessor", "size": {"shortest_edge": 0}}"#, "shortest_edge"),
        (r#"{"image_processor_type": "CLIPImageProcessor", "image_std": [0.5, 0, 0.5]}"#, "image_std"),
        (r#"{"image_processor_type": "CLIPImageProcessor", "image_mean": [0.5, 0.5]}"#, "image_mean"),
        (r#"{"image_processor_type": "CLIPImageProcessor", "resample": 1}"#, "resample"),
        (r#"{"image_processor_type": "ConvNextImageProcessor"}"#, "image_processor_type"),
        (r#"{"image_processor_type": "CLIPImageProcessor", "do_resize": "yes"}"#, "do_resize"),
        // Each view within bounds, but 2^24 tiles of them (found in review).
        (
            r#"{"image_processor_type": "LlavaNextImageProcessor", "size": {"shortest_edge": 4096}, "crop_size": {"height": 1, "width": 4096}, "image_grid_pinpoints": [[4096, 4096]]}"#,
            "image_grid_pinpoints",
        ),
        (
            r#"{"image_processor_type": "LlavaOnevisionImageProcessor", "size": {"height": 1, "width": 4096}, "image_grid_pinpoints": [[4096, 4096]]}"#,
            "image_grid_pinpoints",
        ),
        (r#"{"size": 224}"#, "image_processor_type"),
    ];
    for (json, field) in cases {
        let e = ImageProcessor::from_config(&Config::from_str(json).unwrap()).expect_err(json).to_string();
        assert!(e.contains(field), "{json}: {e}");
    }
    // An old folder's feature_extractor_type names the class.
    let old = r#"{"feature_extractor_type": "CLIPFeatureExtractor", "size": 28, "crop_size": 28}"#;
    assert_eq!(ImageProcessor::from_config(&Config::from_str(old).unwrap()).unwrap().kind, "CLIPImageProcessor");
    // Everything at the bound still builds: a 4096² BLIP view.
    let ok = r#"{"image_processor_type": "BlipImageProcessor", "size": {"height": 4096, "width": 4096}}"#;
    assert!(ImageProcessor::from_config(&Config::from_str(ok).unwrap()).is_ok());
}

/// The resize port against Pillow 13 itself (`tests/data/images/resize_*.png`, made by
/// `tests/data/tools/make_image_fixtures.py`): a tall image (vertical pass first), bilinear,
/// upscaling, and one axis down with the other up — bit for bit.
#[test]
fn resizes_match_pillow_bit_for_bit() {
    use vlm_connectors::checkpoint::Config;
    let coffee = RgbImage::open(photo("coffee.png")).unwrap();
    let mut n = 0;
    for entry in std::fs::read_dir(data_dir().join("images")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let Some(spec) = name.strip_prefix("resize_").and_then(|s| s.strip_suffix(".png")) else { continue };
        // resize_{top}_{left}_{h}x{w}_to_{oh}x{ow}_{filter}
        let parts: Vec<&str> = spec.split('_').collect();
        let num = |s: &str| s.parse::<usize>().unwrap();
        let [top, left] = [num(parts[0]), num(parts[1])];
        let hw = |s: &str| s.split_once('x').map(|(a, b)| (num(a), num(b))).unwrap();
        let ((h, w), (oh, ow)) = (hw(parts[2]), hw(parts[4]));
        let crop = RgbImage::new(
            h,
            w,
            (top..top + h).flat_map(|y| coffee.data[(y * 600 + left) * 3..(y * 600 + left + w) * 3].to_vec()).collect(),
        )
        .unwrap();
        // A processor that only resizes: BLIP's (or SigLIP's for bilinear), no rescale or normalise.
        let kind = if parts[5] == "bilinear" { "SiglipImageProcessor" } else { "BlipImageProcessor" };
        let cfg = format!(
            r#"{{"image_processor_type": "{kind}", "size": {{"height": {oh}, "width": {ow}}}, "do_rescale": false, "do_normalize": false}}"#
        );
        let p = ImageProcessor::from_config(&Config::from_str(&cfg).unwrap()).unwrap().preprocess(&crop).unwrap();
        let want = RgbImage::open(&path).unwrap();
        let got: Vec<u8> =
            (0..oh * ow).flat_map(|i| (0..3).map(move |c| (i, c))).map(|(i, c)| p.pixel_values[c * oh * ow + i] as u8).collect();
        assert_eq!(got, want.data, "{name}");
        n += 1;
    }
    assert_eq!(n, 4, "the four resize fixtures");
}
