//! The `[server]` settings, with the write token from `LOOKALIKE_SERVER_TOKEN` when set.

use std::net::SocketAddr;

use lookalike_core::Config;
use serde::Deserialize;

/// The bearer token of the write endpoints; never printed.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Token(String);

impl Token {
    /// Whether an `Authorization` header value carries this token (compared in time
    /// independent of where the strings differ).
    pub fn admits(&self, header: &str) -> bool {
        let Some(given) = header.strip_prefix("Bearer ") else { return false };
        let (a, b) = (given.trim().as_bytes(), self.0.as_bytes());
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(<hidden>)")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address to listen on; loopback unless you mean to expose it.
    pub listen: SocketAddr,
    /// Largest request body, in KiB (an uploaded photo).
    pub max_body_kib: usize,
    /// Item searches running at once (image searches share the batch worker).
    pub max_concurrent: usize,
    /// Searches waiting at most; more are answered 503 with Retry-After.
    pub max_queue: usize,
    /// Longest a search may take before the answer is 503.
    pub timeout_s: u64,
    /// Photos embedded in one model call at most; 0 means `[model] batch_size`.
    pub batch_size: usize,
    /// How long the batch worker waits for more photos after the first, in ms.
    pub batch_wait_ms: u64,
    /// Bearer token of `POST /v1/index`; without one (here or in `LOOKALIKE_SERVER_TOKEN`)
    /// write endpoints are refused.
    pub token: Option<Token>,
    /// Whether `{"url": ...}` queries may make the server fetch a photo.
    pub allow_url_fetch: bool,
    /// Largest photo a URL query may fetch, in KiB.
    pub url_max_kib: usize,
    /// Longest a URL fetch may take, in seconds.
    pub url_timeout_s: u64,
    /// Memory for cached thumbnails, in MiB.
    pub thumbnail_cache_mib: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            max_body_kib: 16 * 1024,
            max_concurrent: 4,
            max_queue: 64,
            timeout_s: 30,
            batch_size: 0,
            batch_wait_ms: 2,
            token: None,
            allow_url_fetch: false,
            url_max_kib: 16 * 1024,
            url_timeout_s: 10,
            thumbnail_cache_mib: 64,
        }
    }
}

impl ServerConfig {
    /// The `[server]` section of a configuration; unknown keys are errors naming them.
    /// `LOOKALIKE_SERVER_TOKEN`, when set and not empty, replaces `token`.
    pub fn from_config(config: &Config) -> anyhow::Result<ServerConfig> {
        let mut parsed: ServerConfig =
            config.server.clone().try_into().map_err(|e| anyhow::anyhow!("invalid [server] section: {e}"))?;
        if parsed.max_concurrent == 0 || parsed.max_body_kib == 0 || parsed.timeout_s == 0 || parsed.url_timeout_s == 0
        {
            anyhow::bail!(
                "invalid [server] section: max_concurrent, max_body_kib, timeout_s and url_timeout_s must be at least 1"
            );
        }
        if let Some(token) = std::env::var("LOOKALIKE_SERVER_TOKEN").ok().filter(|t| !t.is_empty()) {
            parsed.token = Some(Token(token));
        }
        if parsed.token.as_ref().is_some_and(|t| t.0.len() < 16) {
            anyhow::bail!("invalid [server] section: the token must be at least 16 characters");
        }
        if parsed.batch_size == 0 {
            parsed.batch_size = config.batch();
        }
        Ok(parsed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_is_checked_whole_and_never_shown() {
        let t = Token("0123456789abcdef".into());
        assert!(t.admits("Bearer 0123456789abcdef"));
        assert!(!t.admits("Bearer 0123456789abcde"));
        assert!(!t.admits("Bearer 0123456789abcdeF"));
        assert!(!t.admits("0123456789abcdef"));
        assert!(!format!("{:?}", ServerConfig { token: Some(t), ..Default::default() }).contains("0123"));
    }
}
