//! Layered configuration shared by the control plane and the node agent: defaults in code →
//! TOML file → environment (`<PREFIX><SECTION>__<KEY>`) → `section.key=value` overrides, with
//! unknown keys and wrong types refused by name. Each binary validates the result itself.
//!
//! A crate of its own: both binaries need it, and it has nothing to do with the wire contract
//! (it used to live in `flatrender-proto`). `figment` was the alternative; it does not refuse
//! unknown keys by name across layers nor read the `a,b` list syntax from the environment
//! without more code than this file.

use std::path::{Path, PathBuf};

use serde::{Serialize, de::DeserializeOwned};

/// A layer could not be read or did not fit the configuration's shape.
#[derive(Debug, thiserror::Error)]
pub enum LayeredConfigError {
    /// The TOML file could not be read.
    #[error("config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A layer named an unknown key or gave a value of the wrong type.
    #[error("{origin}: {message}")]
    Parse {
        /// Where the bad value came from.
        origin: String,
        /// What is wrong (names the key).
        message: String,
    },
}

/// Loads `T`: its `Default`, then `file`, then the `env_prefix`-ed variables among `vars`, then
/// `overrides`. Environment values keep the default's type: integers and booleans are parsed,
/// lists are comma-separated, anything else is a string. `not_config` names variables under the
/// prefix that are not settings (a config-file path, another program's prefix when it ends in
/// `_`); every other prefixed variable must be a known key, so a misspelt one is an error.
pub fn load_layered<T: Serialize + DeserializeOwned + Default>(
    file: Option<&Path>,
    env_prefix: &str,
    not_config: &[&str],
    vars: impl IntoIterator<Item = (String, String)>,
    overrides: &[String],
) -> Result<T, LayeredConfigError> {
    let parse_error = |origin: &str, message: String| LayeredConfigError::Parse {
        origin: origin.to_owned(),
        message,
    };
    let mut merged = toml::Table::try_from(T::default()).map_err(|error| parse_error("defaults", error.to_string()))?;
    if let Some(path) = file {
        let text = std::fs::read_to_string(path).map_err(|source| LayeredConfigError::Read {
            path: path.into(),
            source,
        })?;
        let table: toml::Table = text.parse().map_err(|error: toml::de::Error| {
            parse_error(&format!("config file {}", path.display()), error.to_string())
        })?;
        merge(&mut merged, table);
    }
    let mut env_vars: Vec<(String, String)> = vars
        .into_iter()
        .filter(|(name, _)| name.starts_with(env_prefix))
        .filter(|(name, _)| {
            !not_config.iter().any(|skip| {
                if skip.ends_with('_') {
                    name.starts_with(skip)
                } else {
                    name == skip
                }
            })
        })
        .collect();
    env_vars.sort();
    for (name, value) in env_vars {
        let key = name[env_prefix.len()..].to_ascii_lowercase().replace("__", ".");
        set_key(&mut merged, &key, &value, &format!("environment variable {name}"))?;
    }
    for assignment in overrides {
        let (key, value) = assignment
            .split_once('=')
            .ok_or_else(|| parse_error(&format!("override {assignment:?}"), "expected key=value".into()))?;
        set_key(&mut merged, key.trim(), value, &format!("override {key}"))?;
    }
    toml::Value::Table(merged)
        .try_into()
        .map_err(|error: toml::de::Error| parse_error("configuration", error.to_string()))
}

fn merge(base: &mut toml::Table, overlay: toml::Table) {
    for (key, value) in overlay {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(base_table)), toml::Value::Table(overlay_table)) => {
                merge(base_table, overlay_table)
            }
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

fn set_key(table: &mut toml::Table, key: &str, raw: &str, origin: &str) -> Result<(), LayeredConfigError> {
    let parse_error = |message: String| LayeredConfigError::Parse {
        origin: origin.to_owned(),
        message,
    };
    let (section, field) = key
        .split_once('.')
        .ok_or_else(|| parse_error(format!("key {key:?} must be section.field")))?;
    let Some(toml::Value::Table(section_table)) = table.get_mut(section) else {
        return Err(parse_error(format!("unknown section {section:?} in key {key:?}")));
    };
    // Keep the default's type: a number stays a number, a list a list, anything else a string.
    let value = match section_table.get(field) {
        None => return Err(parse_error(format!("unknown key {key:?}"))),
        Some(toml::Value::Integer(_)) => toml::Value::Integer(
            raw.trim()
                .parse()
                .map_err(|_| parse_error(format!("{key} must be an integer")))?,
        ),
        Some(toml::Value::Float(_)) => toml::Value::Float(
            raw.trim()
                .parse()
                .map_err(|_| parse_error(format!("{key} must be a number")))?,
        ),
        Some(toml::Value::Boolean(_)) => toml::Value::Boolean(
            raw.trim()
                .parse()
                .map_err(|_| parse_error(format!("{key} must be true or false")))?,
        ),
        Some(toml::Value::Array(_)) => toml::Value::Array(
            raw.split(',')
                .map(str::trim)
                .filter(|item| !item.is_empty())
                .map(|item| toml::Value::String(item.to_owned()))
                .collect(),
        ),
        Some(_) => toml::Value::String(raw.to_owned()),
    };
    section_table.insert(field.to_owned(), value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Default, PartialEq, Serialize, serde::Deserialize)]
    #[serde(default, deny_unknown_fields)]
    struct Sample {
        section: Section,
    }

    #[derive(Debug, PartialEq, Serialize, serde::Deserialize)]
    #[serde(default, deny_unknown_fields)]
    struct Section {
        count: i64,
        name: String,
        list: Vec<String>,
        flag: bool,
    }

    impl Default for Section {
        fn default() -> Self {
            Self {
                count: 1,
                name: "a".into(),
                list: vec!["x".into()],
                flag: false,
            }
        }
    }

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(key, value)| (key.to_string(), value.to_string()))
            .collect()
    }

    /// Env values keep the default's type, lists split on commas, overrides win.
    #[test]
    fn layers_keep_types() {
        let loaded: Sample = load_layered(
            None,
            "APP_",
            &[],
            vars(&[
                ("APP_SECTION__COUNT", "5"),
                ("APP_SECTION__LIST", "a, b"),
                ("APP_SECTION__FLAG", "true"),
            ]),
            &["section.name=z".into()],
        )
        .unwrap();
        assert_eq!(
            loaded.section,
            Section {
                count: 5,
                name: "z".into(),
                list: vec!["a".into(), "b".into()],
                flag: true
            }
        );
    }

    /// Variables named as not settings are skipped (exact names, and prefixes ending in `_`);
    /// every other prefixed variable still has to be a known key.
    #[test]
    fn variables_that_are_not_settings_are_skipped() {
        let loaded: Sample = load_layered(
            None,
            "APP_",
            &["APP_CONFIG", "APP_OTHER_"],
            vars(&[
                ("APP_CONFIG", "/etc/app.toml"),
                ("APP_OTHER_SECTION__X", "1"),
                ("APP_SECTION__COUNT", "2"),
            ]),
            &[],
        )
        .unwrap();
        assert_eq!(loaded.section.count, 2);
        let error =
            load_layered::<Sample>(None, "APP_", &["APP_CONFIG"], vars(&[("APP_CONFIGS", "x")]), &[]).unwrap_err();
        assert!(error.to_string().contains("APP_CONFIGS"), "{error}");
    }

    /// Unknown keys and bad values name the key.
    #[test]
    fn errors_name_the_key() {
        let error = load_layered::<Sample>(None, "APP_", &[], vars(&[("APP_SECTION__NOPE", "1")]), &[]).unwrap_err();
        assert!(error.to_string().contains("section.nope"), "{error}");
        let error = load_layered::<Sample>(None, "APP_", &[], vec![], &["section.count=x".into()]).unwrap_err();
        assert!(
            error.to_string().contains("section.count must be an integer"),
            "{error}"
        );
    }
}
