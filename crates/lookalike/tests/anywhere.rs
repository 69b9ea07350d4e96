//! The real binary started from a folder with no config.toml finds the weights that
//! `fetch-weights` put in the user's data folder, and the user's own config file.

mod common;

use std::path::Path;

use common::{dataset, json};

/// `lookalike` in `cwd` with its own XDG folders and no LOOKALIKE_* variables.
fn user_at(home: &Path, cwd: &Path) -> assert_cmd::Command {
    let mut cmd = assert_cmd::Command::cargo_bin("lookalike").unwrap();
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("LOOKALIKE_") {
            cmd.env_remove(key);
        }
    }
    cmd.env("HOME", home).env("XDG_DATA_HOME", home.join("data")).env("XDG_CONFIG_HOME", home.join("config"));
    cmd.current_dir(cwd);
    cmd
}

#[test]
fn fetched_weights_and_the_user_config_work_from_any_folder() {
    common::weights();
    let dir = tempfile::tempdir().unwrap();
    let (home, elsewhere, catalog) = (dir.path().join("home"), dir.path().join("elsewhere"), dir.path().join("shop"));
    std::fs::create_dir_all(&elsewhere).unwrap();
    let names = dataset().subset(6, 0, &catalog);

    // In the clone, fetch-weights finds the repo's weights valid and puts them where the
    // binary looks by default.
    let default = home.join("data/lookalike/weights/resnet50.safetensors");
    let out = user_at(&home, &common::root()).arg("fetch-weights").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("already present") && text.contains(&*default.to_string_lossy()), "{text}");
    assert!(default.is_file());
    let again = user_at(&home, &common::root()).arg("fetch-weights").output().unwrap();
    assert!(!String::from_utf8_lossy(&again.stdout).contains("also linked"), "linked twice");

    // Elsewhere, with no config file: default weights, default state folder.
    let info =
        json(&user_at(&home, &elsewhere).arg("--catalog").arg(&catalog).args(["info", "--json"]).output().unwrap());
    assert_eq!(info["weights"].as_str().map(Path::new), Some(default.as_path()), "{info}");
    assert_eq!(info["weights_present"], true);
    let state = info["state_dir"].as_str().unwrap().to_string();
    assert!(state.starts_with(&*home.join("data/lookalike").to_string_lossy()), "{state}");
    let report =
        json(&user_at(&home, &elsewhere).arg("--catalog").arg(&catalog).args(["index", "--json"]).output().unwrap());
    assert_eq!(report["embedded"], 6, "{report}");
    let image = catalog.join("images").join(&names[0]);
    let hits = json(
        &user_at(&home, &elsewhere)
            .arg("--catalog")
            .arg(&catalog)
            .arg("query")
            .arg(&image)
            .args(["--json"])
            .output()
            .unwrap(),
    );
    let rels: Vec<&str> = hits.as_array().unwrap().iter().filter_map(|h| h["rel"].as_str()).collect();
    assert!(rels.len() == 6 && rels.contains(&&*format!("images/{}", names[0])), "{hits}");

    // The user's config file is read when the working folder has none.
    let user_config = home.join("config/lookalike/config.toml");
    std::fs::create_dir_all(user_config.parent().unwrap()).unwrap();
    std::fs::write(&user_config, format!("[catalog]\ndir = {:?}\n\n[search]\nk = 3\n", catalog.to_string_lossy()))
        .unwrap();
    let hits = json(&user_at(&home, &elsewhere).arg("query").arg(&image).arg("--json").output().unwrap());
    assert_eq!(hits.as_array().map(Vec::len), Some(3), "{hits}");
    // ... and a config.toml in the working folder wins over it.
    std::fs::write(elsewhere.join("config.toml"), format!("[catalog]\ndir = {:?}\n", catalog.to_string_lossy()))
        .unwrap();
    let hits = json(&user_at(&home, &elsewhere).arg("query").arg(&image).arg("--json").output().unwrap());
    assert_eq!(hits.as_array().map(Vec::len), Some(6), "{hits}");
}
