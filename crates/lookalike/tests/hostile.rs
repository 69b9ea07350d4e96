//! A catalog that holds anything: a corpus generated here (no binary blobs in the repo)
//! of good images in unusual forms and files that only pretend to be images. Indexing
//! keeps every decodable image, skips the rest with a reason, never blocks on special
//! files; each bad file as a query is a clear error naming it.

mod common;

use std::collections::BTreeSet;
use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{at, dataset, json};
use image::{DynamicImage, ImageFormat, RgbImage};

fn encode(img: &DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, format).unwrap();
    out.into_inner()
}

/// A JPEG with an EXIF APP1 segment saying "rotate 90° clockwise to display" (orientation 6).
fn with_exif_orientation_6(jpeg: &[u8]) -> Vec<u8> {
    let mut tiff = b"MM\0\x2a\0\0\0\x08".to_vec();
    tiff.extend([0, 1]); // one IFD entry
    tiff.extend([0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, 6, 0, 0]); // Orientation, SHORT, 1, value 6
    tiff.extend([0, 0, 0, 0]); // no next IFD
    let mut app1 = vec![0xFF, 0xE1];
    app1.extend(((2 + 6 + tiff.len()) as u16).to_be_bytes());
    app1.extend(b"Exif\0\0");
    app1.extend(tiff);
    let mut out = jpeg[..2].to_vec(); // SOI
    out.extend(app1);
    out.extend(&jpeg[2..]);
    out
}

/// A PNG whose header claims 100000x100000 pixels (a decompression bomb's first step).
fn animated_gif(base: &RgbImage) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut enc = image::codecs::gif::GifEncoder::new(&mut out);
        let frame = |img: DynamicImage| image::Frame::new(img.to_rgba8());
        let base = DynamicImage::ImageRgb8(base.clone());
        enc.encode_frames([frame(base.clone()), frame(base.fliph())]).unwrap();
    }
    out
}

/// An indexed-colour PNG of the photo quantised to a 6x6x6 palette, and the same
/// quantised pixels as plain RGB.
fn palette_png(img: &RgbImage) -> (Vec<u8>, RgbImage) {
    let level = |c: u8| c / 43; // 0..=5
    let palette: Vec<u8> = (0..216u32).flat_map(|i| [i / 36, i / 6 % 6, i % 6].map(|l| (l * 51) as u8)).collect();
    let indices: Vec<u8> = img.pixels().map(|p| level(p[0]) * 36 + level(p[1]) * 6 + level(p[2])).collect();
    let mut out = Vec::new();
    let mut enc = png::Encoder::new(&mut out, img.width(), img.height());
    enc.set_color(png::ColorType::Indexed);
    enc.set_depth(png::BitDepth::Eight);
    enc.set_palette(palette.clone());
    let mut writer = enc.write_header().unwrap();
    writer.write_image_data(&indices).unwrap();
    writer.finish().unwrap();
    let rgb = RgbImage::from_fn(img.width(), img.height(), |x, y| {
        let i = indices[(y * img.width() + x) as usize] as usize;
        image::Rgb([palette[3 * i], palette[3 * i + 1], palette[3 * i + 2]])
    });
    (out, rgb)
}

/// A CMYK JPEG with an Adobe marker (the encoder stores the inks inverted, as Photoshop
/// does): cyan, magenta and yellow ink for the photo, no black.
fn cmyk_jpeg(img: &RgbImage) -> Vec<u8> {
    let data: Vec<u8> = img.pixels().flat_map(|p| [255 - p[0], 255 - p[1], 255 - p[2], 0]).collect();
    let mut out = Vec::new();
    jpeg_encoder::Encoder::new(&mut out, 92)
        .encode(&data, img.width() as u16, img.height() as u16, jpeg_encoder::ColorType::Cmyk)
        .unwrap();
    out
}

struct Corpus {
    _dir: tempfile::TempDir,
    catalog: PathBuf,
    state: PathBuf,
    good: BTreeSet<String>,
    bad: BTreeSet<String>,
}

fn corpus() -> Corpus {
    let dir = tempfile::tempdir().unwrap();
    let (catalog, state) = (dir.path().join("catalog"), dir.path().join("state"));
    let source = dir.path().join("source");
    let names = dataset().subset(1, 0, &source);
    let base = image::open(source.join("images").join(&names[0])).unwrap().to_rgb8();
    let base_img = DynamicImage::ImageRgb8(base.clone());
    std::fs::create_dir_all(catalog.join("folder.jpg")).unwrap();
    let mut good = BTreeSet::new();
    let put = |name: &str, bytes: Vec<u8>, set: &mut BTreeSet<String>| {
        std::fs::write(catalog.join(name), bytes).unwrap();
        set.insert(name.to_string());
    };
    let png = encode(&base_img, ImageFormat::Png);
    let jpeg = encode(&base_img, ImageFormat::Jpeg);
    put("plain.png", png.clone(), &mut good);
    put("blue shirt ü.png", png.clone(), &mut good);
    put("UPPER.JPG", jpeg.clone(), &mut good);
    put("png-named.jpg", png.clone(), &mut good);
    put("folder.jpg/inside.png", png.clone(), &mut good);
    let rgba = DynamicImage::ImageRgba8(image::RgbaImage::from_fn(base.width(), base.height(), |x, y| {
        let [r, g, b] = base.get_pixel(x, y).0;
        image::Rgba([r, g, b, (x * 255 / base.width()) as u8])
    }));
    put("alpha.png", encode(&rgba, ImageFormat::Png), &mut good);
    put("sixteen-bit.png", encode(&DynamicImage::ImageRgb16(base_img.to_rgb16()), ImageFormat::Png), &mut good);
    put("gray.png", encode(&DynamicImage::ImageLuma8(base_img.to_luma8()), ImageFormat::Png), &mut good);
    let (palette, quantised) = palette_png(&base);
    put("palette.png", palette, &mut good);
    put("quantised-rgb.png", encode(&DynamicImage::ImageRgb8(quantised), ImageFormat::Png), &mut good);
    put("cmyk.jpg", cmyk_jpeg(&base), &mut good);
    put("animated.gif", animated_gif(&base), &mut good);
    put("one-pixel.png", encode(&DynamicImage::new_rgb8(1, 1), ImageFormat::Png), &mut good);
    put("strip.png", encode(&DynamicImage::ImageRgb8(RgbImage::new(19_000, 1)), ImageFormat::Png), &mut good);
    put("photo.webp", encode(&base_img, ImageFormat::WebP), &mut good);
    put("photo.bmp", encode(&base_img, ImageFormat::Bmp), &mut good);
    put("photo.tiff", encode(&base_img, ImageFormat::Tiff), &mut good);
    let sideways = encode(&base_img.rotate270(), ImageFormat::Jpeg);
    put("sideways.jpg", sideways.clone(), &mut good);
    put("exif-rotated.jpg", with_exif_orientation_6(&sideways), &mut good);

    let mut bad = BTreeSet::new();
    put("zero.jpg", Vec::new(), &mut bad);
    put("truncated.png", png[..png.len() / 2].to_vec(), &mut bad);
    put("truncated.jpg", jpeg[..jpeg.len() / 2].to_vec(), &mut bad);
    put("text.jpg", b"not a photo, just text\n".to_vec(), &mut bad);
    put("page.png", b"<!doctype html><html><body>404</body></html>".to_vec(), &mut bad);
    put("huge-header.png", common::png_claiming_huge_size(), &mut bad);
    // Not images by name: never looked at.
    std::fs::write(catalog.join("no-extension"), &png).unwrap();
    std::fs::write(catalog.join("notes.txt"), "hello").unwrap();
    // Links: a loop back to the catalog and a dangling one; a named pipe with an image name.
    std::os::unix::fs::symlink(&catalog, catalog.join("loop")).unwrap();
    std::os::unix::fs::symlink(catalog.join("gone.jpg"), catalog.join("dangling.jpg")).unwrap();
    bad.insert("dangling.jpg".into());
    let fifo = catalog.join("pipe.jpg");
    let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0, "mkfifo failed");
    bad.insert("pipe.jpg".into());
    // A socket with an image name: another special file.
    std::mem::forget(std::os::unix::net::UnixListener::bind(catalog.join("socket.png")).unwrap());
    bad.insert("socket.png".into());
    Corpus { _dir: dir, catalog, state, good, bad }
}

fn peak_child_rss_mib() -> u64 {
    // SAFETY: getrusage only writes the struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    assert_eq!(unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) }, 0);
    usage.ru_maxrss as u64 / 1024
}

#[test]
fn hostile_catalog_indexes_what_decodes_and_reports_the_rest() {
    let c = corpus();
    let report_file = c.catalog.parent().unwrap().join("report.json");
    let out = at(&c.catalog, &c.state)
        .args(["index", "--json", "--report"])
        .arg(&report_file)
        .timeout(Duration::from_secs(300))
        .output()
        .unwrap();
    let report = json(&out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    let added: BTreeSet<String> =
        report["added"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect();
    assert_eq!(added, c.good, "indexed files");
    let skipped: BTreeSet<String> =
        report["skipped"].as_array().unwrap().iter().map(|s| s["path"].as_str().unwrap().to_string()).collect();
    assert_eq!(skipped, c.bad, "skipped files");
    for s in report["skipped"].as_array().unwrap() {
        assert!(s["reason"].as_str().is_some_and(|r| r.len() > 5), "no reason given: {s}");
    }
    let huge = report["skipped"].as_array().unwrap().iter().find(|s| s["path"] == "huge-header.png").unwrap();
    assert!(huge["reason"].as_str().unwrap().contains("limit"), "{huge}");
    // The same summary, written atomically to the report file.
    let written: serde_json::Value = serde_json::from_slice(&std::fs::read(&report_file).unwrap()).unwrap();
    assert_eq!(written["skipped"], report["skipped"]);
    assert_eq!(written["added"], report["added"]);
    // Headers and shapes never made memory explode (the model itself needs about 1 GiB).
    let peak = peak_child_rss_mib();
    assert!(peak < 2500, "peak memory of a child process: {peak} MiB");

    // EXIF orientation is applied: the rotated file's embedding matches the upright
    // photo's, the same pixels without the EXIF tag do not (layer4 features, cosine).
    let store = lookalike_core::store::Store::open(&c.state.join("store.lks")).unwrap();
    let layer4 = |name: &str| &store.vector(store.find(name).unwrap())[..lookalike_core::model::LAYER4_DIMS];
    let cosine = |name: &str| lookalike_core::index::exact::dot(layer4("UPPER.JPG"), layer4(name));
    assert!(cosine("exif-rotated.jpg") > 0.98, "upright copy scores {}", cosine("exif-rotated.jpg"));
    assert!(cosine("exif-rotated.jpg") > cosine("sideways.jpg") + 0.01, "EXIF orientation ignored");
    // A palette PNG decodes to exactly its RGB pixels; a CMYK JPEG to the photo, not to a
    // negative or noise.
    let palette = lookalike_core::index::exact::dot(layer4("palette.png"), layer4("quantised-rgb.png"));
    assert!(palette > 0.9999, "palette.png differs from its RGB pixels: cosine {palette}");
    assert!(cosine("cmyk.jpg") > 0.95, "cmyk.jpg embeds unlike its source: cosine {}", cosine("cmyk.jpg"));
}

#[test]
fn bad_files_as_queries_are_clear_errors() {
    let c = corpus();
    // A tiny valid store so queries get as far as decoding.
    // Its own state folder: the other test indexes the hostile catalog meanwhile.
    let ok = c.catalog.parent().unwrap().join("ok");
    let state = c.catalog.parent().unwrap().join("ok-state");
    dataset().subset(2, 1, &ok);
    at(&ok, &state).arg("index").timeout(Duration::from_secs(120)).assert().success();
    for name in &c.bad {
        let path: &Path = &c.catalog.join(name);
        let out = at(&ok, &state).arg("query").arg(path).timeout(Duration::from_secs(60)).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{name}: {stderr}");
        assert!(stderr.starts_with("error: ") && !stderr.contains("panicked"), "{name}: {stderr}");
        assert!(stderr.contains(&*path.to_string_lossy()), "{name}: the error does not name the file: {stderr}");
    }
}

#[test]
fn unreadable_files_are_skipped_and_refused_as_queries() {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    // Root reads everything, so as root the runs drop to `nobody`, for whom the file is
    // unreadable; as any other user the file's mode alone does it.
    let dir = tempfile::tempdir().unwrap();
    let (catalog, state) = (dir.path().join("catalog"), dir.path().join("state"));
    let names = dataset().subset(3, 5, &catalog);
    let locked = catalog.join("images").join(&names[0]);
    // Copies `nobody` can reach: the build folder may sit in root's home.
    let weights = dir.path().join("weights.safetensors");
    std::fs::copy(common::weights(), &weights).unwrap();
    let bin = dir.path().join("lookalike");
    std::fs::copy(assert_cmd::cargo::cargo_bin("lookalike"), &bin).unwrap();
    std::fs::create_dir(&state).unwrap();
    for (path, mode) in [(dir.path(), 0o755), (&state, 0o777), (&weights, 0o644), (&bin, 0o755), (&locked, 0o000)] {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    let run_at = |state: &Path, args: &[&std::ffi::OsStr]| {
        let mut cmd = std::process::Command::new(&bin);
        cmd.current_dir(dir.path())
            .env("LOOKALIKE_WEIGHTS", &weights)
            .arg("--catalog")
            .arg(&catalog)
            .arg("--state-dir")
            .arg(state)
            .args(args);
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                if libc::geteuid() == 0 && (libc::setgid(65534) != 0 || libc::setuid(65534) != 0) {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        cmd.output().unwrap()
    };
    let run = |args: &[&std::ffi::OsStr]| run_at(&state, args);
    let out = run(&["index".as_ref(), "--json".as_ref()]);
    let report = json(&out);
    assert_eq!(report["items"], 2, "{report}");
    let skipped = &report["skipped"][0];
    assert_eq!(skipped["path"], format!("images/{}", names[0]));
    assert!(skipped["reason"].as_str().unwrap().contains("ermission denied"), "{skipped}");
    let out = run(&["query".as_ref(), locked.as_os_str()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains(&*locked.to_string_lossy()) && err.contains("ermission denied"), "{err}");

    // A state folder the user cannot write: a clear error naming it, and the store its
    // owner made keeps answering.
    let owned = dir.path().join("owned-state");
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o644)).unwrap();
    at(&catalog, &owned).arg("index").assert().success();
    std::fs::set_permissions(&owned, std::fs::Permissions::from_mode(0o555)).unwrap();
    std::fs::write(catalog.join("images/copy.jpg"), std::fs::read(&locked).unwrap()).unwrap();
    let out = run_at(&owned, &["index".as_ref()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains(&*owned.to_string_lossy()) && err.contains("ermission denied"), "{err}");
    let item = names[1].split('.').next().unwrap();
    let hits = json(&at(&catalog, &owned).args(["query", "--item", item, "--json"]).output().unwrap());
    assert_eq!(hits.as_array().unwrap().len(), 2);
    std::fs::set_permissions(&owned, std::fs::Permissions::from_mode(0o755)).unwrap();
}
