//! `[telemetry]`: where the gateway sends its traces. `otlp` is an
//! OTLP/HTTP collector: its base address (`http://collector:4318`, to which
//! `/v1/traces` is added) or the full traces URL (ending in `/v1/traces`).
//! `service_name` names this gateway in the traces (`mcpgate` by default).
//! Without the table no span is ever built (see `crate::telemetry`).

use serde_json::{Map, Value};

use super::{ConfigError, Walker};

/// `[telemetry]`, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TelemetryConfig {
    /// The URL spans are POSTed to (ends in `/v1/traces`).
    pub traces_url: String,
    /// `service.name` on every span's resource.
    pub service_name: String,
}

impl Walker {
    pub(super) fn telemetry(
        &self,
        top: &Map<String, Value>,
    ) -> Result<Option<TelemetryConfig>, ConfigError> {
        let Some(v) = top.get("telemetry") else {
            return Ok(None);
        };
        let t = v.as_object().ok_or_else(|| {
            self.err(
                "telemetry",
                "must be a table, like [telemetry] otlp = \"http://127.0.0.1:4318\"",
            )
        })?;
        self.unknown_keys("telemetry", t, &["otlp", "service_name"])?;
        let Some(otlp) = t.get("otlp") else {
            return Err(self.err(
                "telemetry.otlp",
                "is missing: the OTLP/HTTP collector, like \"http://127.0.0.1:4318\"",
            ));
        };
        let otlp = self.string("telemetry.otlp", otlp)?;
        if !(otlp.starts_with("http://") || otlp.starts_with("https://"))
            || reqwest::Url::parse(&otlp).is_err()
        {
            return Err(self.err(
                "telemetry.otlp",
                format!("{otlp:?} is not an http(s) URL like \"http://127.0.0.1:4318\""),
            ));
        }
        let base = otlp.trim_end_matches('/');
        let traces_url = if base.ends_with("/v1/traces") {
            base.to_owned()
        } else {
            format!("{base}/v1/traces")
        };
        let service_name = match t.get("service_name") {
            Some(v) => self.string("telemetry.service_name", v)?,
            None => "mcpgate".to_owned(),
        };
        Ok(Some(TelemetryConfig {
            traces_url,
            service_name,
        }))
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;
    use std::path::Path;

    fn load(text: &str) -> Result<Config, super::ConfigError> {
        Config::parse(Path::new("c.toml"), text)
    }

    #[test]
    fn telemetry_table() {
        assert_eq!(load("").expect("valid").telemetry, None);
        let c = load("[telemetry]\notlp = \"http://127.0.0.1:4318/\"\n").expect("valid");
        let t = c.telemetry.expect("set");
        assert_eq!(t.traces_url, "http://127.0.0.1:4318/v1/traces");
        assert_eq!(t.service_name, "mcpgate");
        let c = load(
            "[telemetry]\notlp = \"https://c.example/otlp/v1/traces\"\nservice_name = \"gw-a\"\n",
        )
        .expect("valid");
        let t = c.telemetry.expect("set");
        assert_eq!(t.traces_url, "https://c.example/otlp/v1/traces");
        assert_eq!(t.service_name, "gw-a");
        let e = load("[telemetry]\notlp = \"127.0.0.1:4318\"\n").expect_err("no scheme");
        assert_eq!(e.key, "telemetry.otlp");
        let e = load("[telemetry]\nservice_name = \"x\"\n").expect_err("no otlp");
        assert_eq!(e.key, "telemetry.otlp");
        let e = load("[telemetry]\notlp = \"http://h\"\notpl = 1\n").expect_err("typo");
        assert_eq!(e.key, "telemetry.otpl");
        assert!(e.message.contains("did you mean `otlp`"), "{e}");
    }
}
