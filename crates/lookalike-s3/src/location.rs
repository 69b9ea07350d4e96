//! `s3://bucket/prefix` and `s3://bucket/key` URLs.

use std::fmt;

/// A bucket and a key or key prefix in it (no leading or trailing `/`; empty for the
/// whole bucket).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Location {
    pub bucket: String,
    pub key: String,
}

impl S3Location {
    pub fn parse(url: &str) -> Result<S3Location, String> {
        let rest = url.strip_prefix("s3://").ok_or_else(|| format!("{url:?} is not an s3://bucket/prefix URL"))?;
        let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(format!("{url:?} names no bucket: use s3://bucket/prefix"));
        }
        let valid = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || ".-_".contains(c);
        if !bucket.chars().all(valid) {
            return Err(format!("{url:?}: bucket {bucket:?} is not a valid bucket name"));
        }
        let key = key.trim_matches('/');
        if key.split('/').any(|part| part.is_empty() && !key.is_empty()) {
            return Err(format!("{url:?}: the key has an empty part (`//`)"));
        }
        Ok(S3Location { bucket: bucket.to_string(), key: key.to_string() })
    }

    /// A local folder name for what lives here: `s3-<last part of the prefix or bucket>`.
    pub fn folder_name(&self) -> String {
        let tail = self.key.rsplit('/').next().filter(|t| !t.is_empty()).unwrap_or(&self.bucket);
        format!("s3-{tail}").chars().filter(|c| c.is_alphanumeric() || *c == '-' || *c == '_').collect()
    }

    /// The key of `rel` under this prefix.
    pub fn child(&self, rel: &str) -> String {
        if self.key.is_empty() {
            rel.to_string()
        } else {
            format!("{}/{rel}", self.key)
        }
    }
}

impl fmt::Display for S3Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            write!(f, "s3://{}", self.bucket)
        } else {
            write!(f, "s3://{}/{}", self.bucket, self.key)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_into_bucket_and_prefix() {
        let l = S3Location::parse("s3://shop-photos/catalog/2026/").unwrap();
        assert_eq!((l.bucket.as_str(), l.key.as_str()), ("shop-photos", "catalog/2026"));
        assert_eq!(l.child("a/b.jpg"), "catalog/2026/a/b.jpg");
        assert_eq!(l.to_string(), "s3://shop-photos/catalog/2026");
        let root = S3Location::parse("s3://b").unwrap();
        assert_eq!((root.key.as_str(), root.child("x.jpg").as_str()), ("", "x.jpg"));
        assert_eq!(root.to_string(), "s3://b");
    }

    #[test]
    fn bad_urls_say_why() {
        assert!(S3Location::parse("http://b/p").unwrap_err().contains("not an s3://"));
        assert!(S3Location::parse("s3:///p").unwrap_err().contains("no bucket"));
        assert!(S3Location::parse("s3://Bad_Bucket/p").unwrap_err().contains("not a valid bucket"));
        assert!(S3Location::parse("s3://b/a//c").unwrap_err().contains("empty part"));
    }
}
