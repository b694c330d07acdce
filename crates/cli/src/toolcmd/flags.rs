//! Command-line flags from a tool's JSON Schema. Property `foo_bar` is
//! `--foo-bar` (the underscore spelling works too); values are typed from the
//! schema; booleans take `--flag` / `--no-flag`; arrays take a repeated flag or
//! a JSON array; objects take dotted flags or a JSON object; `--json` gives the
//! whole arguments object (`-` reads it from stdin); `@file` reads a value from
//! a file (`@@` escapes a literal `@`). Values are used byte for byte: nothing is
//! re-parsed the way a shell would.

use serde_json::{Map, Value};

use mcpgate_gateway::config::edit_distance;

use super::{ToolSpec, UsageError};

/// Reads a file's contents for an `@path` value.
pub(crate) type ReadFile<'a> = &'a dyn Fn(&str) -> std::io::Result<String>;
/// Reads standard input for `--json -`.
pub(crate) type ReadStdin<'a> = &'a dyn Fn() -> std::io::Result<String>;

/// The flag spelling of a property name.
pub(crate) fn flag_name(prop: &str) -> String {
    prop.replace('_', "-")
}

/// The schema's properties, in order.
pub(crate) fn properties(schema: &Value) -> Vec<(&str, &Value)> {
    schema
        .get("properties")
        .and_then(Value::as_object)
        .map(|m| m.iter().map(|(k, v)| (k.as_str(), v)).collect())
        .unwrap_or_default()
}

pub(crate) fn required(schema: &Value) -> Vec<&str> {
    schema
        .get("required")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// The JSON type a schema names ("string", "integer", ...), looking through `anyOf`/`oneOf`.
pub(crate) fn type_of(schema: &Value) -> Option<&str> {
    match schema.get("type") {
        Some(Value::String(t)) => Some(t),
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).find(|t| *t != "null"),
        _ => {
            if schema.get("properties").is_some() {
                return Some("object");
            }
            if let Some(e) = enum_values(schema) {
                return e.first().map(|v| match v {
                    Value::Number(n) if n.is_i64() => "integer",
                    Value::Number(_) => "number",
                    Value::Bool(_) => "boolean",
                    _ => "string",
                });
            }
            ["anyOf", "oneOf"]
                .iter()
                .filter_map(|k| schema.get(*k)?.as_array())
                .flatten()
                .find_map(type_of)
        }
    }
}

/// Allowed values: `enum`, or `anyOf`/`oneOf` of `const`s.
pub(crate) fn enum_values(schema: &Value) -> Option<Vec<Value>> {
    if let Some(e) = schema.get("enum").and_then(Value::as_array) {
        return Some(e.clone());
    }
    for k in ["anyOf", "oneOf"] {
        if let Some(alts) = schema.get(k).and_then(Value::as_array) {
            let consts: Option<Vec<Value>> = alts.iter().map(|a| a.get("const").cloned()).collect();
            if let Some(c) = consts.filter(|c| !c.is_empty()) {
                return Some(c);
            }
        }
    }
    None
}

fn show(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Parses the flags after `TOOL` into the tool's arguments object.
pub(crate) fn parse_args(
    tool: &ToolSpec,
    args: &[String],
    read_file: ReadFile<'_>,
    stdin: ReadStdin<'_>,
) -> Result<Value, UsageError> {
    let schema = &tool.input_schema;
    let props = properties(schema);
    let mut out = Map::new();
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        let Some(body) = arg.strip_prefix("--") else {
            return Err(UsageError(format!(
                "unexpected argument {arg:?}: values follow a flag, like --name value"
            )));
        };
        let (name, inline) = match body.split_once('=') {
            Some((n, v)) => (n, Some(v.to_owned())),
            None => (body, None),
        };
        // Takes the flag's value: inline, or the next argument.
        let value = |i: &mut usize| -> Result<String, UsageError> {
            if let Some(v) = &inline {
                return Ok(v.clone());
            }
            *i += 1;
            args.get(*i)
                .cloned()
                .ok_or_else(|| UsageError(format!("--{name} needs a value")))
        };
        if name == "json" {
            let raw = load(&value(&mut i)?, read_file, Some(stdin))?;
            match serde_json::from_str::<Value>(&raw) {
                Ok(Value::Object(m)) => out.extend(m),
                _ => {
                    return Err(UsageError(
                        "--json expects a JSON object (or - to read one from stdin)".into(),
                    ));
                }
            }
            i += 1;
            continue;
        }
        let mut path: Vec<&str> = name.split('.').collect();
        let negated =
            path.len() == 1 && lookup(&props, path[0]).is_none() && path[0].starts_with("no-");
        if negated {
            path[0] = &path[0][3..];
        }
        let Some((prop, prop_schema)) = lookup(&props, path[0]) else {
            return Err(unknown_flag(name, &props));
        };
        // Walk dotted segments into nested object schemas.
        let mut keys = vec![prop.to_owned()];
        let mut sub = prop_schema;
        for seg in &path[1..] {
            if type_of(sub) != Some("object") {
                return Err(UsageError(format!(
                    "--{} is not an object, so --{name} means nothing",
                    flag_name(prop)
                )));
            }
            let nested = properties(sub);
            match lookup(&nested, seg) {
                Some((k, s)) => {
                    keys.push(k.to_owned());
                    sub = s;
                }
                None if sub.get("properties").is_none()
                    || sub.get("additionalProperties") != Some(&Value::Bool(false)) =>
                {
                    keys.push((*seg).to_owned());
                    sub = &Value::Null;
                }
                None => return Err(unknown_flag(name, &nested)),
            }
        }
        let flag = format!("--{name}");
        let typed = if type_of(sub) == Some("boolean") {
            match &inline {
                Some(v) => parse_bool(&flag, v)?,
                None if negated => Value::Bool(false),
                None => Value::Bool(true),
            }
        } else if negated {
            return Err(unknown_flag(name, &props));
        } else {
            let raw = load(&value(&mut i)?, read_file, None)?;
            if type_of(sub) == Some("array") {
                let item_schema = sub.get("items").unwrap_or(&Value::Null);
                let parsed = if raw.trim_start().starts_with('[') {
                    serde_json::from_str::<Value>(&raw)
                        .map_err(|e| UsageError(format!("{flag}: not a JSON array: {e}")))?
                } else {
                    Value::Array(vec![typed_value(&flag, item_schema, &raw)?])
                };
                // Repeated flags accumulate.
                let slot = slot(&mut out, &keys);
                match (slot.take(), parsed) {
                    (Value::Array(mut old), Value::Array(new)) => {
                        old.extend(new);
                        *slot = Value::Array(old);
                    }
                    (_, new) => *slot = new,
                }
                i += 1;
                continue;
            }
            typed_value(&flag, sub, &raw)?
        };
        *slot(&mut out, &keys) = typed;
        i += 1;
    }
    let missing: Vec<String> = required(schema)
        .into_iter()
        .filter(|r| !out.contains_key(*r))
        .map(|r| {
            let t = props
                .iter()
                .find(|(k, _)| *k == r)
                .and_then(|(_, s)| type_of(s))
                .unwrap_or("value");
            format!("--{} ({t})", flag_name(r))
        })
        .collect();
    if !missing.is_empty() {
        let s = if missing.len() == 1 { "" } else { "s" };
        return Err(UsageError(format!(
            "missing required flag{s} {}",
            missing.join(", ")
        )));
    }
    Ok(Value::Object(out))
}

/// Finds a property by flag spelling (`foo-bar`) or property spelling (`foo_bar`).
fn lookup<'a>(props: &[(&'a str, &'a Value)], name: &str) -> Option<(&'a str, &'a Value)> {
    props
        .iter()
        .find(|(k, _)| *k == name || flag_name(k) == name || flag_name(k) == flag_name(name))
        .copied()
}

fn unknown_flag(name: &str, props: &[(&str, &Value)]) -> UsageError {
    let valid: Vec<String> = props
        .iter()
        .map(|(k, _)| format!("--{}", flag_name(k)))
        .collect();
    let close = props.iter().map(|(k, _)| flag_name(k)).find(|k| {
        k.starts_with(name) || name.starts_with(k.as_str()) || edit_distance(k, name) <= 2
    });
    let hint = close
        .map(|c| format!(" (did you mean --{c}?)"))
        .unwrap_or_default();
    let list = if valid.is_empty() {
        "this tool takes no flags".to_owned()
    } else {
        format!("valid flags: {}", valid.join(", "))
    };
    UsageError(format!("unknown flag --{name}{hint}; {list}"))
}

/// The value at a key path, creating objects on the way.
fn slot<'a>(out: &'a mut Map<String, Value>, keys: &[String]) -> &'a mut Value {
    let (first, rest) = keys.split_first().expect("at least one key");
    let mut cur = out.entry(first.clone()).or_insert(Value::Null);
    for k in rest {
        if !cur.is_object() {
            *cur = Value::Object(Map::new());
        }
        let Value::Object(m) = cur else {
            unreachable!("just made an object")
        };
        cur = m.entry(k.clone()).or_insert(Value::Null);
    }
    cur
}

/// Resolves `@file` (and `-` for stdin where allowed); `@@x` is the literal `@x`.
fn load(
    raw: &str,
    read_file: ReadFile<'_>,
    stdin: Option<ReadStdin<'_>>,
) -> Result<String, UsageError> {
    if let Some(lit) = raw.strip_prefix("@@") {
        return Ok(format!("@{lit}"));
    }
    if let Some(path) = raw.strip_prefix('@') {
        return read_file(path).map_err(|e| UsageError(format!("cannot read {path}: {e}")));
    }
    if let (Some(stdin), "-") = (stdin, raw) {
        return stdin().map_err(|e| UsageError(format!("cannot read stdin: {e}")));
    }
    Ok(raw.to_owned())
}

fn parse_bool(flag: &str, v: &str) -> Result<Value, UsageError> {
    match v {
        "true" | "yes" | "1" => Ok(Value::Bool(true)),
        "false" | "no" | "0" => Ok(Value::Bool(false)),
        _ => Err(UsageError(format!(
            "{flag} expects true or false, got {v:?}"
        ))),
    }
}

/// Types one value by its schema, checking enums.
fn typed_value(flag: &str, schema: &Value, raw: &str) -> Result<Value, UsageError> {
    let v = match type_of(schema) {
        Some("integer") => raw
            .trim()
            .parse::<i64>()
            .map(Value::from)
            .map_err(|_| UsageError(format!("{flag} expects an integer, got {raw:?}")))?,
        Some("number") => {
            let n: f64 = raw
                .trim()
                .parse()
                .map_err(|_| UsageError(format!("{flag} expects a number, got {raw:?}")))?;
            if n.fract() == 0.0 && n.abs() < 9e15 && !raw.contains('.') {
                Value::from(n as i64)
            } else {
                serde_json::Number::from_f64(n)
                    .map(Value::Number)
                    .ok_or_else(|| {
                        UsageError(format!("{flag} expects a finite number, got {raw:?}"))
                    })?
            }
        }
        Some("boolean") => parse_bool(flag, raw)?,
        Some("object") => match serde_json::from_str::<Value>(raw) {
            Ok(o @ Value::Object(_)) => o,
            _ => {
                return Err(UsageError(format!(
                    "{flag} expects a JSON object (or dotted flags like {flag}.key value)"
                )));
            }
        },
        Some("array") => serde_json::from_str::<Value>(raw)
            .map_err(|_| UsageError(format!("{flag} expects a JSON array")))?,
        Some("string") => Value::String(raw.to_owned()),
        _ => serde_json::from_str::<Value>(raw)
            .ok()
            .filter(|v| !v.is_string())
            .unwrap_or_else(|| Value::String(raw.to_owned())),
    };
    if let Some(allowed) = enum_values(schema).filter(|a| !a.contains(&v)) {
        let list: Vec<String> = allowed.iter().map(show).collect();
        return Err(UsageError(format!(
            "{flag} must be one of: {} (got {raw:?})",
            list.join(", ")
        )));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tool() -> ToolSpec {
        ToolSpec {
            name: "inspect".into(),
            description: "d".into(),
            input_schema: json!({"type": "object", "properties": {
                "text": {"type": "string"}, "max_count": {"type": "integer"}, "ratio": {"type": "number"},
                "verbose": {"type": "boolean"}, "mode": {"type": "string", "enum": ["fast", "safe"]},
                "level": {"oneOf": [{"const": "low"}, {"const": "high"}]},
                "tags": {"type": "array", "items": {"type": "integer"}},
                "filter": {"type": "object", "properties": {"state": {"type": "string"}, "lim": {"type": "object", "properties": {"max": {"type": "integer"}}}}}
            }, "required": ["text"]}),
        }
    }

    fn parse(args: &[&str]) -> Result<Value, UsageError> {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        parse_args(
            &tool(),
            &args,
            &|p| {
                if p == "f.txt" {
                    Ok("from file".into())
                } else {
                    Err(std::io::Error::other("nope"))
                }
            },
            &|| Ok(r#"{"text":"stdin"}"#.into()),
        )
    }

    #[test]
    fn every_kind_of_flag() {
        let v = parse(&[
            "--text",
            "a",
            "--max-count=3",
            "--ratio",
            "0.25",
            "--verbose",
            "--mode",
            "safe",
            "--level",
            "high",
            "--tags",
            "1",
            "--tags",
            "2",
            "--filter.state",
            "open",
            "--filter.lim.max",
            "9",
        ])
        .unwrap();
        assert_eq!(
            v,
            json!({"text": "a", "max_count": 3, "ratio": 0.25, "verbose": true, "mode": "safe", "level": "high",
            "tags": [1, 2], "filter": {"state": "open", "lim": {"max": 9}}})
        );
        let v = parse(&[
            "--text",
            "b",
            "--no-verbose",
            "--max_count",
            "1",
            "--tags",
            "[5,6]",
            "--filter",
            r#"{"state":"x"}"#,
        ])
        .unwrap();
        assert_eq!(
            v,
            json!({"text": "b", "verbose": false, "max_count": 1, "tags": [5, 6], "filter": {"state": "x"}})
        );
        assert_eq!(parse(&["--json", "-"]).unwrap(), json!({"text": "stdin"}));
        assert_eq!(
            parse(&["--json", r#"{"text":"j"}"#, "--ratio", "2"]).unwrap(),
            json!({"text": "j", "ratio": 2})
        );
        assert_eq!(
            parse(&["--text", "@f.txt"]).unwrap(),
            json!({"text": "from file"})
        );
        assert_eq!(
            parse(&["--text", "@@lit"]).unwrap(),
            json!({"text": "@lit"})
        );
    }

    #[test]
    fn strings_pass_byte_for_byte() {
        let weird = "it's \"q\" $HOME `x` \\ \n\t end ";
        assert_eq!(parse(&["--text", weird]).unwrap()["text"], weird);
        assert_eq!(parse(&[&format!("--text={weird}")]).unwrap()["text"], weird);
    }

    #[test]
    fn usage_errors_say_what_is_wrong() {
        let e = |a: &[&str]| parse(a).unwrap_err().0;
        assert!(e(&["--max-count", "1"]).contains("missing required flag --text (string)"));
        assert!(e(&["--text", "a", "--max-count", "x"]).contains("--max-count expects an integer"));
        assert!(e(&["--text", "a", "--mode", "slow"]).contains("must be one of: fast, safe"));
        assert!(e(&["--text", "a", "--mod", "fast"]).contains("did you mean --mode?"));
        assert!(e(&["--text"]).contains("--text needs a value"));
        assert!(e(&["--text", "a", "stray"]).contains("unexpected argument"));
        assert!(e(&["--text", "@missing"]).contains("cannot read missing"));
        assert!(e(&["--text", "a", "--verbose=maybe"]).contains("true or false"));
    }
}
