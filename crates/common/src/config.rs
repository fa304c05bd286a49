use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

/// A config file that could not be used. The message always names the file,
/// and the key when the problem is with one value.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}: cannot read: {source}")]
    Read {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}: {reason}")]
    Syntax { file: PathBuf, reason: String },
    #[error("{file}: key `{key}`: {reason}")]
    Key {
        file: PathBuf,
        key: String,
        reason: String,
    },
    /// A value that parsed but is not valid (for example a port of 0 where
    /// one is required); raised by the validation step of each service.
    #[error("{file}: key `{key}`: {reason}")]
    Invalid {
        file: String,
        key: String,
        reason: String,
    },
}

impl ConfigError {
    /// A validation error for a key, where `file` is the config file or
    /// `command line` for a flag.
    pub fn invalid(
        file: impl Into<String>,
        key: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        ConfigError::Invalid {
            file: file.into(),
            key: key.into(),
            reason: reason.into(),
        }
    }
}

/// Reads and deserializes a TOML file.
pub fn load_toml<T: DeserializeOwned>(path: &Path) -> Result<T, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        file: path.to_path_buf(),
        source,
    })?;
    parse_toml(path, &text)
}

/// Deserializes TOML text; `path` is only used in error messages.
pub fn parse_toml<T: DeserializeOwned>(path: &Path, text: &str) -> Result<T, ConfigError> {
    let de = toml::Deserializer::parse(text).map_err(|e| ConfigError::Syntax {
        file: path.to_path_buf(),
        reason: e.to_string().trim().to_string(),
    })?;
    serde_path_to_error::deserialize(de).map_err(|e| {
        let key = e.path().to_string();
        let reason = e.inner().message().trim().to_string();
        if key.is_empty() || key == "." {
            ConfigError::Syntax {
                file: path.to_path_buf(),
                reason,
            }
        } else {
            ConfigError::Key {
                file: path.to_path_buf(),
                key,
                reason,
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "kebab-case")]
    struct Sample {
        #[allow(dead_code)]
        cache: Inner,
    }
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "kebab-case")]
    struct Inner {
        #[allow(dead_code)]
        max_size: crate::ByteSize,
    }

    #[test]
    fn error_names_file_and_key() {
        let err = parse_toml::<Sample>(Path::new("x.toml"), "[cache]\nmax-size = \"12 parsecs\"\n")
            .expect_err("must fail");
        let msg = err.to_string();
        assert!(msg.contains("x.toml"), "{msg}");
        assert!(msg.contains("cache.max-size"), "{msg}");
    }

    #[test]
    fn unknown_key_is_named() {
        let err = parse_toml::<Sample>(
            Path::new("y.toml"),
            "[cache]\nmax-size = \"1MiB\"\nbogus = 1\n",
        )
        .expect_err("must fail");
        let msg = err.to_string();
        assert!(msg.contains("y.toml") && msg.contains("bogus"), "{msg}");
    }
}
