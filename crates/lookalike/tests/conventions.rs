//! Command-line conventions: many queries in one run (files, --from, stdin, items) as JSON
//! Lines with per-query errors, exit statuses, one-line errors, completions, the man page,
//! --quiet. On the 70-image v1 fixture catalog with the real weights.

mod common;

use common::at;

fn ids_and_scores(hits: &serde_json::Value) -> Vec<(String, f64)> {
    hits.as_array()
        .unwrap()
        .iter()
        .map(|h| (h["id"].as_str().unwrap().to_string(), h["score"].as_f64().unwrap()))
        .collect()
}

#[test]
fn many_queries_in_one_run_answer_like_single_runs_and_fail_alone() {
    let dir = tempfile::tempdir().unwrap();
    let (catalog, state) = common::fixture_v1_copy(dir.path());
    let images = catalog.join("images");
    let (a, b) = (images.join("3.png"), images.join("41.png"));
    let missing = dir.path().join("missing.png");
    let list = dir.path().join("list.txt");
    std::fs::write(&list, format!("{}\n\n{}\n", b.display(), missing.display())).unwrap();
    let out = at(&catalog, &state)
        .arg("query")
        .arg(&a)
        .arg("-")
        .args(["--from"])
        .arg(&list)
        .args(["--item", "5", "-k", "4", "--json"])
        .write_stdin(std::fs::read(&b).unwrap())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "a failed query makes the exit status 1");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("1 of 5 queries failed"), "{stderr}");
    let lines: Vec<serde_json::Value> =
        String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let names: Vec<&str> = lines.iter().map(|l| l["query"].as_str().unwrap()).collect();
    let (a_name, b_name, missing_name) =
        (a.display().to_string(), b.display().to_string(), missing.display().to_string());
    assert_eq!(names, [a_name.as_str(), "stdin", b_name.as_str(), missing_name.as_str(), "item 5"]);
    assert_eq!(lines[3]["error"]["kind"], "BadImage", "{}", lines[3]);
    assert!(lines[3]["error"]["message"].as_str().unwrap().contains("No such file"), "{}", lines[3]);
    // Each answer equals the single query's (batched embedding, same vectors).
    for (line, single) in [(&lines[0], vec![a.display().to_string()]), (&lines[2], vec![b.display().to_string()])] {
        let alone = common::json(
            &at(&catalog, &state).arg("query").args(&single).args(["-k", "4", "--json"]).output().unwrap(),
        );
        let (batched, alone) = (ids_and_scores(&line["hits"]), ids_and_scores(&alone));
        assert_eq!(batched.iter().map(|h| &h.0).collect::<Vec<_>>(), alone.iter().map(|h| &h.0).collect::<Vec<_>>());
        assert!(batched.iter().zip(&alone).all(|(x, y)| (x.1 - y.1).abs() < 1e-4), "{batched:?} vs {alone:?}");
    }
    assert_eq!(ids_and_scores(&lines[1]["hits"]), ids_and_scores(&lines[2]["hits"]), "stdin and the file differ");
    let item =
        common::json(&at(&catalog, &state).args(["query", "--item", "5", "-k", "4", "--json"]).output().unwrap());
    assert_eq!(ids_and_scores(&lines[4]["hits"]), ids_and_scores(&item));
}

#[test]
fn errors_are_one_line_with_each_cause_once_and_exit_statuses_are_documented() {
    let dir = tempfile::tempdir().unwrap();
    let (catalog, state) = common::fixture_v1_copy(dir.path());
    let missing = dir.path().join("10100.jpg");
    let out = at(&catalog, &state).arg("query").arg(&missing).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with(&format!("error: {}: ", missing.display())), "{stderr}");
    assert_eq!(stderr.matches("No such file or directory").count(), 1, "{stderr}");

    // Usage errors exit 2; --help names the statuses.
    assert_eq!(at(&catalog, &state).arg("query").output().unwrap().status.code(), Some(2));
    assert_eq!(at(&catalog, &state).arg("--no-such-flag").output().unwrap().status.code(), Some(2));
    let help = at(&catalog, &state).arg("--help").output().unwrap();
    assert_eq!(help.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&help.stdout).contains("Exit status: 0 success, 1 an error"));
}

#[test]
fn completions_man_page_and_quiet() {
    let dir = tempfile::tempdir().unwrap();
    let (catalog, state) = common::fixture_v1_copy(dir.path());
    for shell in ["bash", "zsh", "fish"] {
        let out = at(&catalog, &state).args(["completions", shell]).output().unwrap();
        let script = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success() && script.contains("fetch-weights") && script.contains("bench-annoy"), "{shell}");
    }
    let man = at(&catalog, &state).arg("man").output().unwrap();
    let page = String::from_utf8_lossy(&man.stdout);
    assert!(man.status.success() && page.contains(".TH lookalike"), "{page}");

    // Descriptors made in memory give a note on stderr, which --quiet leaves out.
    std::fs::remove_file(state.join("descriptors.lkd")).unwrap();
    let noisy = at(&catalog, &state).args(["query", "--item", "5", "--json"]).output().unwrap();
    assert!(String::from_utf8_lossy(&noisy.stderr).contains("note: searching exactly"));
    let quiet = at(&catalog, &state).args(["--quiet", "query", "--item", "5", "--json"]).output().unwrap();
    assert!(quiet.status.success() && quiet.stderr.is_empty(), "{}", String::from_utf8_lossy(&quiet.stderr));
    assert_eq!(quiet.stdout, noisy.stdout);
    let verbose = at(&catalog, &state).args(["--verbose", "query", "--item", "5", "--json"]).output().unwrap();
    let said = String::from_utf8_lossy(&verbose.stderr);
    assert!(said.contains("config: ") && said.contains("1 queries in"), "{said}");
    assert_eq!(verbose.stdout, noisy.stdout, "--verbose writes to stderr only");
}

#[test]
fn a_closed_pipe_ends_a_printing_command_quietly() {
    use std::io::Read;
    use std::os::unix::process::ExitStatusExt;
    let dir = tempfile::tempdir().unwrap();
    let (catalog, state) = common::fixture_v1_copy(dir.path());
    // 400 item queries print far more than a pipe holds; the reader stops after 100 bytes.
    let items: Vec<&str> = std::iter::repeat_n(["--item", "5"], 400).flatten().collect();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_lookalike"))
        .arg("--catalog")
        .arg(&catalog)
        .arg("--state-dir")
        .arg(&state)
        .args(["query", "-k", "20", "--json"])
        .args(&items)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut head = [0u8; 100];
    child.stdout.take().unwrap().read_exact(&mut head).unwrap();
    let mut stderr = String::new();
    child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    let status = child.wait().unwrap();
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(status.signal(), Some(libc::SIGPIPE), "ended by {status:?}: {stderr}");
}
