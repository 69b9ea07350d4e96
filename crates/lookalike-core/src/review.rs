//! Keep and drop decisions on duplicate photos, recorded while reviewing the groups of
//! `lookalike dupes` (the TUI's review view) and exported by `dupes --decisions`. They
//! are a list for the user's own tools: lookalike never deletes or moves catalog files.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::catalog;
use crate::error::{Error, IoContext, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    Keep,
    Drop,
}

impl Decision {
    pub fn name(self) -> &'static str {
        match self {
            Decision::Keep => "keep",
            Decision::Drop => "drop",
        }
    }
}

/// The decisions by catalog key (stable across index runs, unlike rows).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decisions {
    decisions: BTreeMap<String, Decision>,
}

/// One decision as exported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decided {
    pub id: String,
    pub rel: String,
    pub decision: Decision,
}

impl Decisions {
    /// The decisions saved at `path` (none when there is no file yet).
    pub fn load(path: &Path) -> Result<Decisions> {
        match std::fs::read(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Decisions::default()),
            read => serde_json::from_slice(&read.at("cannot read", path)?).map_err(|e| Error::damaged(path, e)),
        }
    }

    /// Replaces the file at `path` atomically: a crash keeps the old decisions or the new.
    pub fn save(&self, path: &Path) -> Result<()> {
        let json = serde_json::to_vec_pretty(self).map_err(|e| Error::failed("saving review decisions", e))?;
        crate::files::write_atomic(path, &json)
    }

    pub fn get(&self, rel: &str) -> Option<Decision> {
        self.decisions.get(rel).copied()
    }

    /// Records a decision on `rel` (`None` forgets it).
    pub fn set(&mut self, rel: &str, decision: Option<Decision>) {
        match decision {
            Some(d) => self.decisions.insert(rel.to_string(), d),
            None => self.decisions.remove(rel),
        };
    }

    pub fn len(&self) -> usize {
        self.decisions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.decisions.is_empty()
    }

    /// Every decision, by catalog key.
    pub fn list(&self) -> Vec<Decided> {
        let decided = |(rel, &decision): (&String, &Decision)| Decided {
            id: catalog::product_id(rel).to_string(),
            rel: rel.clone(),
            decision,
        };
        self.decisions.iter().map(decided).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decisions_survive_a_save_and_a_forgotten_one_is_gone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("review.json");
        assert!(Decisions::load(&path).unwrap().is_empty());
        let mut d = Decisions::default();
        d.set("images/1.jpg", Some(Decision::Keep));
        d.set("images/2.jpg", Some(Decision::Drop));
        d.set("images/3.jpg", Some(Decision::Drop));
        d.set("images/3.jpg", None);
        d.save(&path).unwrap();
        let back = Decisions::load(&path).unwrap();
        assert_eq!(back, d);
        let ids: Vec<(String, Decision)> = back.list().into_iter().map(|x| (x.id, x.decision)).collect();
        assert_eq!(ids, vec![("1".into(), Decision::Keep), ("2".into(), Decision::Drop)]);
    }

    #[test]
    fn a_damaged_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("review.json");
        std::fs::write(&path, b"{\"decisions\": {\"a.jpg\": \"maybe\"}}").unwrap();
        let err = Decisions::load(&path).unwrap_err().to_string();
        assert!(err.contains("review.json") && err.contains("damaged"), "{err}");
    }
}
