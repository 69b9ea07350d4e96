//! The shared AWS config and credentials files (`~/.aws/config`, `~/.aws/credentials`),
//! which object_store does not read: the settings of profile `AWS_PROFILE` (default
//! `default`) that the environment leaves unset. Static keys, session tokens, region and
//! `endpoint_url`; SSO, `credential_process` and role chains need the environment set by
//! the AWS CLI (`eval "$(aws configure export-credentials --format env)"`).

use std::path::PathBuf;

use object_store::aws::AmazonS3ConfigKey;

/// Profile keys, the variable that wins over each, and the object_store setting.
const KEYS: [(&str, &str, AmazonS3ConfigKey); 5] = [
    ("aws_access_key_id", "AWS_ACCESS_KEY_ID", AmazonS3ConfigKey::AccessKeyId),
    ("aws_secret_access_key", "AWS_SECRET_ACCESS_KEY", AmazonS3ConfigKey::SecretAccessKey),
    ("aws_session_token", "AWS_SESSION_TOKEN", AmazonS3ConfigKey::Token),
    ("region", "AWS_REGION", AmazonS3ConfigKey::Region),
    ("endpoint_url", "AWS_ENDPOINT_URL", AmazonS3ConfigKey::Endpoint),
];

/// The profile's settings for what the environment does not set. A missing or unreadable
/// file contributes nothing: the environment may be all there is.
pub fn settings_missing_from_env() -> Vec<(AmazonS3ConfigKey, String)> {
    settings(&|name| std::env::var(name).ok(), dirs::home_dir())
}

fn settings(env: &dyn Fn(&str) -> Option<String>, home: Option<PathBuf>) -> Vec<(AmazonS3ConfigKey, String)> {
    let env = |name: &str| env(name).filter(|v| !v.is_empty());
    let aws_file = |variable: &str, name: &str| {
        env(variable).map(PathBuf::from).or_else(|| home.as_ref().map(|h| h.join(".aws").join(name)))
    };
    let profile = env("AWS_PROFILE").unwrap_or_else(|| "default".into());
    // The config file names sections `[profile NAME]`, except `[default]`.
    let config_section = if profile == "default" { profile.clone() } else { format!("profile {profile}") };
    let files = [
        (aws_file("AWS_SHARED_CREDENTIALS_FILE", "credentials"), profile.clone()),
        (aws_file("AWS_CONFIG_FILE", "config"), config_section),
    ];
    let mut found: Vec<(AmazonS3ConfigKey, String)> = Vec::new();
    for (path, section) in files {
        let Some(ini) = path.and_then(|p| ini::Ini::load_from_file(p).ok()) else { continue };
        let Some(values) = ini.section(Some(section.as_str())) else { continue };
        for (key, variable, setting) in &KEYS {
            let region_set = *variable == "AWS_REGION" && env("AWS_DEFAULT_REGION").is_some();
            if env(variable).is_some() || region_set || found.iter().any(|(k, _)| k == setting) {
                continue;
            }
            if let Some(v) = values.get(*key).filter(|v| !v.is_empty()) {
                found.push((*setting, v.to_string()));
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_profile_fills_what_the_environment_leaves_unset() {
        let home = tempfile::tempdir().unwrap();
        std::fs::create_dir(home.path().join(".aws")).unwrap();
        let credentials = "[default]\naws_access_key_id = DEFAULTKEY\n\n[shop]\naws_access_key_id = SHOPKEY\naws_secret_access_key = SHOPSECRET\n";
        std::fs::write(home.path().join(".aws/credentials"), credentials).unwrap();
        std::fs::write(
            home.path().join(".aws/config"),
            "[profile shop]\nregion = eu-west-3\nendpoint_url = http://127.0.0.1:9\n",
        )
        .unwrap();
        let vars = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string())
        };
        let got = |pairs: &'static [(&'static str, &'static str)]| {
            let mut s: Vec<(String, String)> = settings(&vars(pairs), Some(home.path().to_path_buf()))
                .into_iter()
                .map(|(k, v)| (k.as_ref().to_string(), v))
                .collect();
            s.sort();
            s
        };
        let pair = |k: &str, v: &str| (k.to_string(), v.to_string());
        assert_eq!(got(&[]), [pair("aws_access_key_id", "DEFAULTKEY")]);
        assert_eq!(
            got(&[("AWS_PROFILE", "shop"), ("AWS_REGION", "us-east-1")]),
            [
                pair("aws_access_key_id", "SHOPKEY"),
                pair("aws_endpoint", "http://127.0.0.1:9"),
                pair("aws_secret_access_key", "SHOPSECRET")
            ]
        );
        assert_eq!(got(&[("AWS_ACCESS_KEY_ID", "ENVKEY")]), []);
        assert_eq!(got(&[("AWS_PROFILE", "nobody")]), []);
    }
}
