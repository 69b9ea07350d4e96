//! Product metadata: the Kaggle `styles.csv` schema (declared once, below), its rows, and
//! filters over them as data, so that any index (in memory or in a database) can apply them.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::{Error, IoContext, Result};

/// Declares the metadata schema once: the struct's fields, the `Field` enum and the
/// `styles.csv` column names all come from this one table.
macro_rules! schema {
    ($($field:ident: $variant:ident => $column:literal),* $(,)?) => {
        /// One row of a Kaggle-style `styles.csv`.
        #[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
        pub struct Product {
            $(#[serde(rename = $column)] pub $field: String,)*
        }

        /// A metadata column.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Field {
            $($variant,)*
        }

        impl Field {
            pub const ALL: &'static [Field] = &[$(Field::$variant,)*];

            /// The column's `styles.csv` name, which filters and eval labels use.
            pub fn column(self) -> &'static str {
                match self {
                    $(Field::$variant => $column,)*
                }
            }
        }

        impl Product {
            pub fn get(&self, field: Field) -> &str {
                match field {
                    $(Field::$variant => &self.$field,)*
                }
            }

            fn slot(&mut self, field: Field) -> &mut String {
                match field {
                    $(Field::$variant => &mut self.$field,)*
                }
            }
        }
    };
}

schema! {
    id: Id => "id",
    gender: Gender => "gender",
    master_category: MasterCategory => "masterCategory",
    sub_category: SubCategory => "subCategory",
    article_type: ArticleType => "articleType",
    base_colour: BaseColour => "baseColour",
    season: Season => "season",
    year: Year => "year",
    usage: Usage => "usage",
    name: Name => "productDisplayName",
}

impl std::fmt::Display for Field {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str(self.column())
    }
}

impl Field {
    pub fn from_column(name: &str) -> Option<Field> {
        Field::ALL.iter().copied().find(|f| f.column() == name)
    }

    /// "id, gender, ...", for messages that list the allowed names.
    pub fn columns() -> String {
        Field::ALL.iter().map(|f| f.column()).collect::<Vec<_>>().join(", ")
    }
}

impl Product {
    /// A field by its `styles.csv` column name, or `None` for an unknown name.
    pub fn field(&self, name: &str) -> Option<&str> {
        Field::from_column(name).map(|f| self.get(f))
    }

    /// A product from (field, value) pairs; the rest stay empty.
    pub fn with(values: &[(Field, &str)]) -> Product {
        let mut p = Product::default();
        for (f, v) in values {
            *p.slot(*f) = v.to_string();
        }
        p
    }
}

/// A `styles.csv` row that could not be used.
#[derive(Debug, Clone, Serialize)]
pub struct RowError {
    pub line: u64,
    pub reason: String,
}

#[derive(Debug, Default)]
pub struct Metadata {
    pub products: HashMap<String, Product>,
    pub errors: Vec<RowError>,
    pub source: Option<PathBuf>,
}

impl Metadata {
    pub fn get(&self, id: &str) -> Option<&Product> {
        self.products.get(id)
    }

    /// Reads a `styles.csv`; a malformed row is recorded with its line number and skipped.
    pub fn load(path: &Path) -> Result<Metadata> {
        let file = std::fs::File::open(path).at("cannot open labels", path)?;
        Metadata::parse(std::io::BufReader::new(file), path)
    }

    /// Reads a `styles.csv` from any reader (a downloaded object); `path` names it.
    pub fn parse(input: impl std::io::Read, path: &Path) -> Result<Metadata> {
        let bad = |reason: String| Error::Catalog { catalog: path.display().to_string(), reason };
        let mut reader = csv::ReaderBuilder::new().flexible(true).from_reader(input);
        let headers = reader.headers().map_err(|e| bad(format!("cannot read the header row: {e}")))?.clone();
        let col = |name: &str| headers.iter().position(|h| h.trim() == name);
        let id_col = col(Field::Id.column()).ok_or_else(|| bad("no `id` column".into()))?;
        let columns: Vec<(Field, usize)> = Field::ALL.iter().filter_map(|&f| col(f.column()).map(|c| (f, c))).collect();
        let mut meta = Metadata { source: Some(path.to_path_buf()), ..Default::default() };
        for (i, record) in reader.records().enumerate() {
            let line = i as u64 + 2;
            let record = match record {
                Ok(r) => r,
                Err(err) => {
                    let line = err.position().map_or(line, |p| p.line());
                    meta.errors.push(RowError { line, reason: err.to_string() });
                    continue;
                }
            };
            let line = record.position().map_or(line, |p| p.line());
            if record.len() != headers.len() {
                meta.errors.push(RowError {
                    line,
                    reason: format!("{} fields, the header has {}", record.len(), headers.len()),
                });
                continue;
            }
            let id = record.get(id_col).unwrap_or("").trim().to_string();
            if id.is_empty() {
                meta.errors.push(RowError { line, reason: "empty id".into() });
                continue;
            }
            let mut product = Product::default();
            for &(field, c) in &columns {
                *product.slot(field) = record.get(c).unwrap_or("").trim().to_string();
            }
            meta.products.insert(id, product);
        }
        Ok(meta)
    }
}

/// A metadata condition: `field=value`, case-insensitive on the value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    pub field: Field,
    pub value: String,
}

impl std::str::FromStr for Filter {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (field, value) = s.split_once('=').ok_or_else(|| format!("{s:?} is not FIELD=VALUE"))?;
        let field = field.trim();
        let field = Field::from_column(field)
            .ok_or_else(|| format!("unknown field {field:?}: use one of {}", Field::columns()))?;
        Ok(Filter { field, value: value.trim().to_string() })
    }
}

impl Filter {
    pub fn matches(&self, product: Option<&Product>) -> bool {
        product.is_some_and(|p| p.get(self.field).eq_ignore_ascii_case(&self.value))
    }
}

/// At most `per` hits for each value of a metadata field (`--group-by`), for catalogs
/// that list one product in many shots. Items without a value are never grouped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grouping {
    pub field: Field,
    pub per: usize,
}

impl Grouping {
    /// `FIELD` (a styles.csv column) with at most `per` hits per value.
    pub fn new(field: &str, per: usize) -> Result<Grouping, String> {
        let field = Field::from_column(field.trim())
            .ok_or_else(|| format!("unknown field {field:?} to group by: use one of {}", Field::columns()))?;
        if per == 0 {
            return Err("at least 1 hit per group".to_string());
        }
        Ok(Grouping { field, per })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_commas_and_bad_rows() {
        let dir = tempfile::tempdir().unwrap();
        let csv = dir.path().join("styles.csv");
        std::fs::write(
            &csv,
            "id,gender,masterCategory,subCategory,articleType,baseColour,season,year,usage,productDisplayName\n\
             1,Men,Apparel,Topwear,Shirts,Blue,Fall,2011,Casual,\"Shirt, blue\"\n\
             2,Men,Apparel,Topwear,Shirts,Blue,Fall,2011,Casual,Shirt, blue, extra\n\
             3,Women,Footwear,Shoes,Heels,Red,Summer,2012,Party,Heels\n",
        )
        .unwrap();
        let meta = Metadata::load(&csv).unwrap();
        assert_eq!(meta.products.len(), 2);
        assert_eq!(meta.get("1").unwrap().name, "Shirt, blue");
        assert_eq!(meta.get("3").unwrap().field("articleType"), Some("Heels"));
        assert_eq!(meta.get("3").unwrap().gender, "Women");
        assert_eq!(meta.errors.len(), 1);
        assert_eq!(meta.errors[0].line, 3);
    }

    #[test]
    fn columns_in_any_order_land_in_their_fields() {
        let dir = tempfile::tempdir().unwrap();
        let csv = dir.path().join("styles.csv");
        std::fs::write(&csv, "baseColour,id,articleType\nRed,7,Heels\n").unwrap();
        let p = Metadata::load(&csv).unwrap().products.remove("7").unwrap();
        assert_eq!(p, Product::with(&[(Field::Id, "7"), (Field::BaseColour, "Red"), (Field::ArticleType, "Heels")]));
    }

    #[test]
    fn the_schema_serializes_and_parses_by_column_name() {
        let p = Product::with(&[(Field::ArticleType, "Heels"), (Field::Name, "Red heels")]);
        let json = serde_json::to_value(&p).unwrap();
        for &f in Field::ALL {
            assert_eq!(json[f.column()].as_str(), Some(p.get(f)), "{}", f.column());
            assert_eq!(Field::from_column(f.column()), Some(f));
        }
        let filter: Filter = "articleType = heels".parse().unwrap();
        assert!(filter.matches(Some(&p)) && !filter.matches(None));
        assert!("colour=red".parse::<Filter>().unwrap_err().contains("baseColour"));
    }
}
