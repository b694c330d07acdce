//! Other clients' MCP config files, taken as they are: JSONC (VS Code's
//! comments and trailing commas), VS Code's variables (`${input:ID}` from
//! `MCPGATE_INPUT_<ID>`, `${env:NAME}`, `${workspaceFolder}`, `${userHome}`),
//! `envFile`, Windsurf's `serverUrl`, and Cline's `alwaysAllow` /
//! `autoApprove` (dropped with a warning: the gateway's tiers decide). Every
//! client form is rewritten into mcpgate's own before the walker sees it, so
//! there is one set of rules; `mcpgate import` prints the result as TOML.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::ConfigError;

/// Server keys other clients write that mean nothing to a gateway: dropped,
/// with a warning saying why.
const IGNORED_SERVER_KEYS: &[(&str, &str)] = &[
    (
        "alwaysAllow",
        "Cline's auto-approval; the gateway's tiers decide what may be called",
    ),
    (
        "autoApprove",
        "auto-approval; the gateway's tiers decide what may be called",
    ),
    ("dev", "VS Code's development mode (watch, debug)"),
    ("networkTimeout", "Cline's network timeout; use `timeout`"),
];

/// Removes `//` and `/* */` comments outside strings, and commas before a
/// closing `}` or `]`. Newlines are kept, so JSON errors keep their line numbers.
pub(crate) fn strip_jsonc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    let mut in_string = false;
    while let Some(c) = chars.next() {
        if in_string {
            out.push(c);
            match c {
                '\\' => {
                    if let Some(n) = chars.next() {
                        out.push(n);
                    }
                }
                '"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match (c, chars.peek()) {
            ('"', _) => {
                in_string = true;
                out.push(c);
            }
            ('/', Some('/')) => {
                for n in chars.by_ref() {
                    if n == '\n' {
                        out.push('\n');
                        break;
                    }
                }
            }
            ('/', Some('*')) => {
                chars.next();
                let mut prev = ' ';
                for n in chars.by_ref() {
                    if n == '\n' {
                        out.push('\n');
                    }
                    if prev == '*' && n == '/' {
                        break;
                    }
                    prev = n;
                }
            }
            _ => out.push(c),
        }
    }
    drop_trailing_commas(&out)
}

/// Drops a `,` followed (past whitespace) by `}` or `]`, outside strings.
fn drop_trailing_commas(text: &str) -> String {
    let bytes: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut in_string = false;
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if in_string {
            out.push(c);
            if c == '\\' && i + 1 < bytes.len() {
                out.push(bytes[i + 1]);
                i += 1;
            } else if c == '"' {
                in_string = false;
            }
        } else if c == '"' {
            in_string = true;
            out.push(c);
        } else if c == ',' {
            let next = bytes[i + 1..].iter().find(|c| !c.is_whitespace());
            if !matches!(next, Some('}' | ']')) {
                out.push(c);
            }
        } else {
            out.push(c);
        }
        i += 1;
    }
    out
}

/// The environment variable that answers VS Code's `${input:ID}`:
/// `MCPGATE_INPUT_` and the id in upper case, other characters as `_`.
pub fn input_variable(id: &str) -> String {
    let id: String = id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    format!("MCPGATE_INPUT_{id}")
}

/// Values given for `${input:ID}` at a prompt (by the CLI, on a terminal):
/// consulted before the environment, so nothing has to be put in it.
static PROVIDED: std::sync::Mutex<BTreeMap<String, String>> =
    std::sync::Mutex::new(BTreeMap::new());

/// Supplies the value of an input variable (`MCPGATE_INPUT_<ID>`) for this
/// process, as if it were set in the environment.
pub fn provide_input(variable: &str, value: &str) {
    mcpgate_proto::locks::lock(&PROVIDED).insert(variable.to_owned(), value.to_owned());
}

/// A value given with [`provide_input`].
pub(crate) fn provided(variable: &str) -> Option<String> {
    mcpgate_proto::locks::lock(&PROVIDED).get(variable).cloned()
}

/// VS Code's workspace folder for a config file: the parent of `.vscode/`
/// for `.vscode/mcp.json`, else the file's own folder.
fn workspace_folder(path: &Path) -> PathBuf {
    let dir = path.parent().unwrap_or(Path::new("")).to_path_buf();
    let dir = if dir.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        dir
    };
    let dir = std::fs::canonicalize(&dir).unwrap_or(dir);
    if dir.file_name().is_some_and(|n| n == ".vscode") {
        dir.parent().map(Path::to_path_buf).unwrap_or(dir)
    } else {
        dir
    }
}

/// Rewrites VS Code's variables into mcpgate's `${VAR}`: `${input:ID}` →
/// `${MCPGATE_INPUT_ID}`, `${env:NAME}` → `${NAME}`, `${workspaceFolder}` and
/// `${userHome}` → the path (with any `${` in it escaped). Other `${...}` stay.
fn translate_vars(s: &str, workspace: &Path) -> String {
    if !s.contains("${") {
        return s.to_owned();
    }
    let literal = |p: &Path| p.display().to_string().replace("${", "$${");
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find("${") {
        let after = &rest[i + 2..];
        let Some(end) = after.find('}') else { break };
        out.push_str(&rest[..i]);
        let var = &after[..end];
        match var.split_once(':') {
            Some(("input", id)) => {
                out.push_str(&format!("${{{}}}", input_variable(id)));
            }
            Some(("env", name)) => out.push_str(&format!("${{{name}}}")),
            _ if var == "workspaceFolder" => out.push_str(&literal(workspace)),
            _ if var == "userHome" => match std::env::var_os("HOME") {
                Some(h) => out.push_str(&literal(Path::new(&h))),
                None => out.push_str("${HOME}"),
            },
            _ => out.push_str(&rest[i..i + 2 + end + 1]),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    out
}

fn translate_tree(v: &mut Value, workspace: &Path) {
    match v {
        Value::String(s) => *s = translate_vars(s, workspace),
        Value::Array(a) => a.iter_mut().for_each(|x| translate_tree(x, workspace)),
        Value::Object(o) => o.values_mut().for_each(|x| translate_tree(x, workspace)),
        _ => {}
    }
}

/// Rewrites a client's JSON config into mcpgate's form in place: variables
/// translated, `serverUrl` renamed to `url`, auto-approval keys dropped, the
/// top-level `inputs` (VS Code's prompts) dropped once read, and `envFile`
/// resolved against the workspace folder (it is loaded when the server is
/// read). Returns notes on what was dropped or must be set.
pub(crate) fn normalize_object(top: &mut Map<String, Value>, path: &Path) -> Vec<String> {
    let workspace = workspace_folder(path);
    let mut notes = Vec::new();
    if let Some(Value::Array(inputs)) = top.get("inputs") {
        for input in inputs {
            if let Some(id) = input.get("id").and_then(Value::as_str) {
                let what = input
                    .get("description")
                    .and_then(Value::as_str)
                    .map(|d| format!(" ({d})"))
                    .unwrap_or_default();
                notes.push(format!(
                    "input {id:?}{what} is read from the environment variable {}",
                    input_variable(id)
                ));
            }
        }
    }
    top.remove("inputs");
    for key in ["servers", "mcpServers"] {
        let Some(Value::Object(servers)) = top.get_mut(key) else {
            continue;
        };
        for (name, server) in servers.iter_mut() {
            let Value::Object(s) = server else { continue };
            for v in s.values_mut() {
                translate_tree(v, &workspace);
            }
            if !s.contains_key("url")
                && let Some(u) = s.remove("serverUrl")
            {
                s.insert("url".into(), u);
            }
            for (k, why) in IGNORED_SERVER_KEYS {
                if s.remove(*k).is_some() {
                    notes.push(format!("{key}.{name}.{k} ignored: {why}"));
                }
            }
            if let Some(Value::String(f)) = s.get("envFile") {
                let p = workspace.join(f);
                s.insert("envFile".into(), Value::String(p.display().to_string()));
            }
        }
    }
    notes
}

/// Reads a `.env` file (`NAME=value` lines, `#` comments, optional `export `,
/// optional quotes) for a server's `envFile`. Values are taken literally.
pub(crate) fn read_env_file(path: &Path) -> Result<BTreeMap<String, String>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut vars = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let Some((name, value)) = line.split_once('=') else {
            return Err(format!(
                "{} line {}: expected NAME=value",
                path.display(),
                i + 1
            ));
        };
        let name = name.trim();
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!(
                "{} line {}: {name:?} is not a variable name",
                path.display(),
                i + 1
            ));
        }
        let value = value.trim();
        let value = match value.chars().next() {
            Some(q @ ('"' | '\'')) if value.len() >= 2 && value.ends_with(q) => {
                &value[1..value.len() - 1]
            }
            _ => value.split(" #").next().unwrap_or(value).trim_end(),
        };
        vars.insert(name.to_owned(), value.to_owned());
    }
    Ok(vars)
}

/// `mcpgate import FILE`: the client's file as the equivalent `mcpgate.toml`,
/// with what was dropped or must be set in comments at the top.
pub fn to_toml(path: &Path) -> Result<String, ConfigError> {
    let err = |key: &str, message: String| ConfigError {
        file: path.display().to_string(),
        key: key.to_owned(),
        message,
    };
    let text = std::fs::read_to_string(path)
        .map_err(|e| err("-", format!("cannot read the file: {e}")))?;
    let tree: Value = serde_json::from_str(&strip_jsonc(&text)).map_err(|e| {
        err(
            &format!("line {} column {}", e.line(), e.column()),
            format!("not valid JSON: {e}"),
        )
    })?;
    let Value::Object(mut top) = tree else {
        return Err(err("-", "the top level must be an object".into()));
    };
    let notes = normalize_object(&mut top, path);
    if let Some(servers) = top.remove("mcpServers") {
        top.insert("servers".into(), servers);
    }
    // VS Code's `type: "stdio"` is implied by `command`; keep the file short.
    if let Some(Value::Object(servers)) = top.get_mut("servers") {
        for s in servers.values_mut().filter_map(Value::as_object_mut) {
            if s.get("type").and_then(Value::as_str) == Some("stdio") {
                s.remove("type");
            }
        }
    }
    let body = toml::to_string(&Value::Object(top))
        .map_err(|e| err("-", format!("cannot write it as TOML: {e}")))?;
    let mut out = format!(
        "# mcpgate.toml imported from {}\n",
        path.display().to_string().replace('\n', " ")
    );
    for n in &notes {
        out.push_str(&format!("# {}\n", n.replace('\n', " ")));
    }
    out.push('\n');
    out.push_str(&body);
    if !out.ends_with('\n') {
        out.push('\n');
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jsonc_comments_and_trailing_commas_go_strings_stay() {
        let text = "{\n  // a comment\n  \"a\": \"http://x//y\", /* block\n */ \"b\": [1, 2,],\n  \"c\": \"a,}\\\"//\",\n}\n";
        let v: Value = serde_json::from_str(&strip_jsonc(text)).expect("parses");
        assert_eq!(v["a"], "http://x//y");
        assert_eq!(v["b"], serde_json::json!([1, 2]));
        assert_eq!(v["c"], "a,}\"//");
        assert_eq!(strip_jsonc(text).lines().count(), text.lines().count());
    }

    #[test]
    fn vscode_variables_become_environment_references() {
        let ws = Path::new("/work/proj");
        assert_eq!(
            translate_vars("Bearer ${input:github-token}", ws),
            "Bearer ${MCPGATE_INPUT_GITHUB_TOKEN}"
        );
        assert_eq!(translate_vars("${env:HOME}/x", ws), "${HOME}/x");
        assert_eq!(
            translate_vars("${workspaceFolder}/data", ws),
            "/work/proj/data"
        );
        assert_eq!(translate_vars("${PLAIN} $${x}", ws), "${PLAIN} $${x}");
    }

    #[test]
    fn env_files_read_quotes_comments_and_export() {
        let dir = std::env::temp_dir().join(format!("mcpgate-envfile-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let f = dir.join(".env");
        std::fs::write(
            &f,
            "# secrets\nexport A=1\nB=\"two words\"\nC='x#y'\nD=plain # note\n\n",
        )
        .expect("write");
        let vars = read_env_file(&f).expect("reads");
        assert_eq!(vars["A"], "1");
        assert_eq!(vars["B"], "two words");
        assert_eq!(vars["C"], "x#y");
        assert_eq!(vars["D"], "plain");
        std::fs::write(&f, "not a line\n").expect("write");
        assert!(read_env_file(&f).unwrap_err().contains("line 1"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
