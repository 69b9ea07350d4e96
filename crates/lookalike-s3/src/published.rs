//! [`S3Published`]: the published states under an `s3://bucket/prefix`
//! (`lookalike publish`, `lookalike pull`, `--state-dir s3://...`). Files stream up in
//! multipart uploads and down in chunks, so memory stays bounded at any store size.

use std::io::{Read, Write};
use std::path::Path;

use futures::StreamExt;
use lookalike_core::config::Config;
use lookalike_core::error::IoContext;
use lookalike_core::published::{Remote, SMALL_OBJECT_BYTES};
use lookalike_core::{Error, Result};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, WriteMultipart};

use crate::client::Client;
use crate::error::reason;
use crate::location::S3Location;

/// Parts of a multipart upload (S3 wants at least 5 MiB but for the last), and how many
/// are in flight at once.
const PART_BYTES: usize = 8 << 20;
const PARTS_IN_FLIGHT: usize = 4;

pub struct S3Published {
    location: S3Location,
    client: Client,
}

impl S3Published {
    pub fn open(url: &str, config: &Config) -> Result<S3Published> {
        let bad = |reason: String| Error::Published { at: url.to_string(), reason };
        let location = S3Location::parse(url).map_err(bad)?;
        let client = Client::new(&location.bucket, config.fetch).map_err(bad)?;
        Ok(S3Published { location, client })
    }

    fn path(&self, key: &str) -> Result<ObjectPath> {
        ObjectPath::parse(self.location.child(key)).map_err(|e| self.failed("", key, e.to_string()))
    }

    /// An error naming the operation and the object.
    fn failed(&self, operation: &str, key: &str, reason: String) -> Error {
        let at = format!("s3://{}/{}", self.location.bucket, self.location.child(key));
        Error::Published { at, reason: format!("{operation} {reason}").trim_start().to_string() }
    }

    fn object_error(&self, operation: &str, key: &str, e: &object_store::Error) -> Error {
        self.failed(operation, key, format!("failed: {}", reason(e)))
    }
}

impl Remote for S3Published {
    fn name(&self) -> String {
        self.location.to_string()
    }

    fn local_key(&self) -> (String, Vec<u8>) {
        self.client.local_key(&self.location)
    }

    fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let path = self.path(key)?;
        let got = self.client.runtime.block_on(async {
            match self.client.store.get(&path).await {
                Ok(got) if got.meta.size > SMALL_OBJECT_BYTES => Ok(Err(got.meta.size)),
                Ok(got) => got.bytes().await.map(|b| Ok(Some(b.to_vec()))),
                Err(object_store::Error::NotFound { .. }) => Ok(Ok(None)),
                Err(e) => Err(e),
            }
        });
        got.map_err(|e| self.object_error("GET", key, &e))?.map_err(|size| {
            self.failed("GET", key, format!("refused: {size} bytes, more than a pointer or manifest can be"))
        })
    }

    fn put(&self, key: &str, bytes: Vec<u8>) -> Result<()> {
        let path = self.path(key)?;
        self.client
            .runtime
            .block_on(self.client.store.put(&path, bytes.into()))
            .map_err(|e| self.object_error("PUT", key, &e))?;
        Ok(())
    }

    fn upload(&self, key: &str, file: &Path) -> Result<()> {
        let path = self.path(key)?;
        let mut reader = std::fs::File::open(file).at("cannot open", file)?;
        let failed = |e: object_store::Error| self.object_error("PUT (multipart)", key, &e);
        self.client.runtime.block_on(async {
            let upload = self.client.store.put_multipart(&path).await.map_err(failed)?;
            let mut write = WriteMultipart::new_with_chunk_size(upload, PART_BYTES);
            let mut buf = vec![0u8; 1 << 20];
            loop {
                let n = match reader.read(&mut buf) {
                    Ok(n) => n,
                    Err(e) => {
                        // An unfinished upload is aborted, so no part of it lingers.
                        let _ = write.abort().await;
                        return Err(Error::io("cannot read", file, e));
                    }
                };
                if n == 0 {
                    break;
                }
                write.wait_for_capacity(PARTS_IN_FLIGHT).await.map_err(failed)?;
                write.write(&buf[..n]);
            }
            write.finish().await.map_err(failed)?;
            Ok(())
        })
    }

    fn download(&self, key: &str, file: &Path) -> Result<bool> {
        let path = self.path(key)?;
        let mut out = std::fs::File::create(file).at("cannot create", file)?;
        self.client.runtime.block_on(async {
            let got = match self.client.store.get(&path).await {
                Ok(got) => got,
                Err(object_store::Error::NotFound { .. }) => return Ok(false),
                Err(e) => return Err(self.object_error("GET", key, &e)),
            };
            let mut chunks = got.into_stream();
            while let Some(chunk) = chunks.next().await {
                let chunk = chunk.map_err(|e| self.object_error("GET", key, &e))?;
                out.write_all(&chunk).at("cannot write", file)?;
            }
            Ok(true)
        })
    }

    fn list(&self, prefix: &str) -> Result<Vec<String>> {
        let strip = if self.location.key.is_empty() { String::new() } else { format!("{}/", self.location.key) };
        let under = self.path(prefix.trim_end_matches('/'))?;
        self.client.runtime.block_on(async {
            let mut keys = Vec::new();
            let mut listing = self.client.store.list(Some(&under));
            while let Some(meta) = listing.next().await {
                let meta = meta.map_err(|e| self.object_error("LIST", prefix, &e))?;
                let full = meta.location.as_ref();
                keys.push(full.strip_prefix(strip.as_str()).unwrap_or(full).to_string());
            }
            Ok(keys)
        })
    }

    fn delete(&self, key: &str) -> Result<()> {
        let path = self.path(key)?;
        self.client.runtime.block_on(self.client.store.delete(&path)).map_err(|e| self.object_error("DELETE", key, &e))
    }
}
