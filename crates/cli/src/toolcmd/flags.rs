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
            let consts: Option<Vec<Value>> = alts
                .iter()
                .filter(|a| a.get("type").and_then(Value::as_str) != Some("null"))
                .map(|a| a.get("const").cloned())
                .collect();
            if let Some(c) = consts.filter(|c| !c.is_empty()) {
                return Some(c);
            }
        }
    }
    None
}

/// The schema with local `$ref`s (`#/$defs/...`, as pydantic and zod emit)
/// replaced by what they point to, and one-entry `allOf` wrappers opened, so the
/// rest of this module sees plain nested schemas. Keys beside a `$ref` (its
/// description, default) win over the target's. Recursive definitions stop
/// after a few levels (an untyped `{}` from there on).
pub(crate) fn inline_refs(root: &Value) -> Value {
    fn merge(root: &Value, target: &Value, siblings: &Map<String, Value>, depth: usize) -> Value {
        let mut out = walk(root, target, depth + 1);
        if let Value::Object(o) = &mut out {
            for (k, x) in siblings {
                o.insert(k.clone(), walk(root, x, depth));
            }
        }
        out
    }
    fn walk(root: &Value, v: &Value, depth: usize) -> Value {
        match v {
            Value::Object(m) => {
                if let Some(r) = m.get("$ref").and_then(Value::as_str) {
                    let rest: Map<String, Value> = m
                        .iter()
                        .filter(|(k, _)| *k != "$ref")
                        .map(|(k, x)| (k.clone(), x.clone()))
                        .collect();
                    return match r.strip_prefix('#').and_then(|p| root.pointer(p)) {
                        Some(t) if depth < 8 => merge(root, t, &rest, depth),
                        _ => Value::Object(rest),
                    };
                }
                if let (None, Some([one])) = (
                    m.get("type"),
                    m.get("allOf").and_then(Value::as_array).map(Vec::as_slice),
                ) {
                    let rest: Map<String, Value> = m
                        .iter()
                        .filter(|(k, _)| *k != "allOf")
                        .map(|(k, x)| (k.clone(), x.clone()))
                        .collect();
                    return merge(root, one, &rest, depth);
                }
                Value::Object(
                    m.iter()
                        .filter(|(k, _)| *k != "$defs" && *k != "definitions")
                        .map(|(k, x)| (k.clone(), walk(root, x, depth)))
                        .collect(),
                )
            }
            Value::Array(a) => Value::Array(a.iter().map(|x| walk(root, x, depth)).collect()),
            other => other.clone(),
        }
    }
    walk(root, root, 0)
}

/// Every JSON type a schema allows, when it says so definitely (`type`, or
/// `anyOf`/`oneOf` branches that each name theirs); None means "don't check".
fn allowed_types(schema: &Value) -> Option<Vec<&str>> {
    match schema.get("type") {
        Some(Value::String(t)) => Some(vec![t.as_str()]),
        Some(Value::Array(ts)) => Some(ts.iter().filter_map(Value::as_str).collect()),
        _ => {
            let alts = ["anyOf", "oneOf"]
                .iter()
                .find_map(|k| schema.get(*k)?.as_array())?;
            let mut all = Vec::new();
            for a in alts {
                all.extend(allowed_types(a)?);
            }
            Some(all)
        }
    }
}

fn json_type_matches(t: &str, v: &Value) -> bool {
    match t {
        "string" => v.is_string(),
        "integer" => v.is_i64() || v.is_u64(),
        "number" => v.is_number(),
        "boolean" => v.is_boolean(),
        "array" => v.is_array(),
        "object" => v.is_object(),
        "null" => v.is_null(),
        _ => true,
    }
}

/// Checks a value given as JSON (an array flag's items, an object flag's value)
/// against the schema's declared types and enums, recursing into known
/// properties and items. Only what the schema states definitely is checked; the
/// server has the last word.
fn check_json(flag: &str, at: &str, schema: &Value, v: &Value) -> Result<(), UsageError> {
    if let Some(types) = allowed_types(schema)
        && !types.iter().any(|t| json_type_matches(t, v))
    {
        let want: Vec<&str> = types
            .iter()
            .map(|t| match *t {
                "integer" => "an integer",
                "array" => "an array",
                "object" => "an object",
                "string" => "a string",
                "number" => "a number",
                "boolean" => "a boolean",
                other => other,
            })
            .collect();
        let want = want.join(" or ");
        return Err(UsageError(format!(
            "{flag}: {at} should be {want}, got {v}"
        )));
    }
    if let Some(allowed) = enum_values(schema).filter(|a| !a.contains(v)) {
        let list: Vec<String> = allowed.iter().map(show).collect();
        return Err(UsageError(format!(
            "{flag}: {at} must be one of: {} (got {v})",
            list.join(", ")
        )));
    }
    match v {
        Value::Object(m) => {
            for (k, s) in properties(schema) {
                if let Some(x) = m.get(k) {
                    check_json(flag, &format!("{at}.{k}"), s, x)?;
                }
            }
        }
        Value::Array(a) => {
            if let Some(items) = schema.get("items") {
                for (n, x) in a.iter().enumerate() {
                    check_json(flag, &format!("{at}[{n}]"), items, x)?;
                }
            }
        }
        _ => {}
    }
    Ok(())
}

/// Whether an object schema accepts keys it does not list.
fn open_object(schema: &Value) -> bool {
    properties(schema).is_empty()
        || matches!(
            schema.get("additionalProperties"),
            Some(Value::Bool(true) | Value::Object(_))
        )
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
    let schema = &inline_refs(&tool.input_schema);
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
        if name == "json" && lookup(&props, "json").is_none() {
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
        // `--no-x` (also `--no-x.y`) when there is no property `no_x` itself.
        let negated = lookup(&props, path[0]).is_none()
            && path[0]
                .strip_prefix("no-")
                .is_some_and(|p| lookup(&props, p).is_some());
        if negated {
            path[0] = &path[0][3..];
        }
        let Some((prop, prop_schema)) = lookup(&props, path[0]) else {
            return Err(unknown_flag(name, "", &props));
        };
        // Walk dotted segments into nested object schemas.
        let mut keys = vec![prop.to_owned()];
        let mut sub = prop_schema;
        let mut prefix = format!("{}.", flag_name(prop));
        for seg in &path[1..] {
            if type_of(sub) != Some("object") {
                return Err(UsageError(format!(
                    "--{} is not an object, so --{name} means nothing",
                    prefix.trim_end_matches('.')
                )));
            }
            let nested = properties(sub);
            match lookup(&nested, seg) {
                Some((k, s)) => {
                    keys.push(k.to_owned());
                    sub = s;
                    prefix.push_str(&flag_name(k));
                    prefix.push('.');
                }
                None if open_object(sub) => {
                    keys.push((*seg).to_owned());
                    sub = match sub.get("additionalProperties") {
                        Some(s @ Value::Object(_)) => s,
                        _ => &Value::Null,
                    };
                    prefix.push_str(seg);
                    prefix.push('.');
                }
                None => return Err(unknown_flag(name, &prefix, &nested)),
            }
        }
        let flag = format!("--{name}");
        let typed = if type_of(sub) == Some("boolean") {
            match &inline {
                Some(_) if negated => {
                    return Err(UsageError(format!("{flag} takes no value")));
                }
                Some(v) => parse_bool(&flag, v)?,
                None if negated => Value::Bool(false),
                // `--flag true` / `--flag false` as two arguments.
                None => match args.get(i + 1).map(String::as_str) {
                    Some(v @ ("true" | "false")) => {
                        i += 1;
                        Value::Bool(v == "true")
                    }
                    _ => Value::Bool(true),
                },
            }
        } else if negated {
            return Err(UsageError(format!(
                "{flag}: --no-... only goes with boolean flags, and --{} is not one",
                &name[3..]
            )));
        } else {
            let raw = load(&value(&mut i)?, read_file, None)?;
            if type_of(sub) == Some("array") {
                let item_schema = sub.get("items").unwrap_or(&Value::Null);
                let new = array_value(&flag, item_schema, &raw)?;
                // Repeated flags accumulate.
                let slot = slot(&mut out, &keys);
                match slot.take() {
                    Value::Array(mut old) => {
                        old.extend(new);
                        *slot = Value::Array(old);
                    }
                    _ => *slot = Value::Array(new),
                }
                i += 1;
                continue;
            }
            typed_value(&flag, sub, &raw)?
        };
        *slot(&mut out, &keys) = typed;
        i += 1;
    }
    let out = Value::Object(out);
    let mut missing = Vec::new();
    missing_required(schema, &out, "", &mut missing);
    if !missing.is_empty() {
        let s = if missing.len() == 1 { "" } else { "s" };
        return Err(UsageError(format!(
            "missing required flag{s} {}",
            missing.join(", ")
        )));
    }
    Ok(out)
}

/// One array flag's value: a JSON array (its items checked against `items`),
/// or a single item. A value that only looks like an array (`[WIP] fix`) is an
/// item when items are strings.
fn array_value(flag: &str, item_schema: &Value, raw: &str) -> Result<Vec<Value>, UsageError> {
    if !raw.trim_start().starts_with('[') {
        return Ok(vec![typed_value(flag, item_schema, raw)?]);
    }
    let item_type = type_of(item_schema);
    match serde_json::from_str::<Value>(raw) {
        // For arrays of arrays, `[1,2]` is one item and `[[1,2]]` the whole value.
        Ok(Value::Array(items))
            if item_type != Some("array") || items.iter().all(Value::is_array) =>
        {
            for (n, x) in items.iter().enumerate() {
                check_json(flag, &format!("item {n}"), item_schema, x)?;
            }
            Ok(items)
        }
        Ok(_) => Ok(vec![typed_value(flag, item_schema, raw)?]),
        Err(_) if matches!(item_type, Some("string") | None) => {
            Ok(vec![typed_value(flag, item_schema, raw)?])
        }
        Err(e) => Err(UsageError(format!("{flag}: not a JSON array: {e}"))),
    }
}

/// Required properties missing from `value`: the top level's, and those of any
/// nested object that was given (`--filter.x` without `--filter.state`).
fn missing_required(schema: &Value, value: &Value, prefix: &str, out: &mut Vec<String>) {
    let Value::Object(m) = value else { return };
    let props = properties(schema);
    for r in required(schema) {
        if !m.contains_key(r) {
            let t = lookup(&props, r)
                .and_then(|(_, s)| type_of(s))
                .unwrap_or("value");
            out.push(format!("--{prefix}{} ({t})", flag_name(r)));
        }
    }
    for (k, s) in props {
        if let Some(v) = m.get(k)
            && type_of(s) == Some("object")
        {
            missing_required(s, v, &format!("{prefix}{}.", flag_name(k)), out);
        }
    }
}

/// Finds a property by flag spelling (`foo-bar`) or property spelling (`foo_bar`).
fn lookup<'a>(props: &[(&'a str, &'a Value)], name: &str) -> Option<(&'a str, &'a Value)> {
    props
        .iter()
        .find(|(k, _)| *k == name)
        .or_else(|| {
            props
                .iter()
                .find(|(k, _)| flag_name(k) == name || flag_name(k) == flag_name(name))
        })
        .copied()
}

/// An unknown flag: says so, suggests a close one, and lists the valid ones
/// (for a dotted flag, those of the object it reaches into).
fn unknown_flag(name: &str, prefix: &str, props: &[(&str, &Value)]) -> UsageError {
    let valid: Vec<String> = props
        .iter()
        .map(|(k, _)| format!("{prefix}{}", flag_name(k)))
        .collect();
    let close = valid.iter().find(|k| {
        k.starts_with(name) || name.starts_with(k.as_str()) || edit_distance(k, name) <= 2
    });
    let hint = close
        .map(|c| format!(" (did you mean --{c}?)"))
        .unwrap_or_default();
    let list = if valid.is_empty() {
        "this tool takes no flags".to_owned()
    } else {
        let list: Vec<String> = valid.iter().map(|v| format!("--{v}")).collect();
        format!("valid flags: {}", list.join(", "))
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
            Ok(o @ Value::Object(_)) => {
                check_json(flag, "value", schema, &o)?;
                o
            }
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

    fn parse_with(schema: Value, args: &[&str]) -> Result<Value, UsageError> {
        let tool = ToolSpec {
            name: "t".into(),
            description: String::new(),
            input_schema: schema,
        };
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        parse_args(
            &tool,
            &args,
            &|_| Err(std::io::Error::other("no files")),
            &|| Ok("{}".into()),
        )
    }

    #[test]
    fn array_values_are_checked_and_bracketed_strings_are_items() {
        let s = json!({"type": "object", "properties": {
            "tags": {"type": "array", "items": {"type": "string"}},
            "nums": {"type": "array", "items": {"type": "integer"}},
            "kinds": {"type": "array", "items": {"type": "string", "enum": ["a", "b"]}}}});
        let ok = |a: &[&str]| parse_with(s.clone(), a).unwrap();
        let err = |a: &[&str]| parse_with(s.clone(), a).unwrap_err().0;
        assert_eq!(ok(&["--tags", "[WIP] fix"]), json!({"tags": ["[WIP] fix"]}));
        assert_eq!(
            ok(&["--tags", r#"["x","y"]"#, "--tags", "z"]),
            json!({"tags": ["x", "y", "z"]})
        );
        assert_eq!(
            err(&["--nums", r#"[1,"x"]"#]),
            r#"--nums: item 1 should be an integer, got "x""#
        );
        assert!(err(&["--nums", "[1,"]).contains("not a JSON array"));
        assert!(err(&["--kinds", r#"["a","c"]"#]).contains("must be one of: a, b"));
        assert!(err(&["--kinds", "c"]).contains("must be one of: a, b"));
    }

    #[test]
    fn booleans_take_true_false_and_negate_nested_flags() {
        let s = json!({"type": "object", "properties": {
            "verbose": {"type": "boolean"}, "text": {"type": "string"},
            "opts": {"type": "object", "properties": {"dry_run": {"type": "boolean"}}}}});
        let ok = |a: &[&str]| parse_with(s.clone(), a).unwrap();
        let err = |a: &[&str]| parse_with(s.clone(), a).unwrap_err().0;
        assert_eq!(ok(&["--verbose", "false"]), json!({"verbose": false}));
        assert_eq!(
            ok(&["--verbose", "--text", "x"]),
            json!({"verbose": true, "text": "x"})
        );
        assert_eq!(
            ok(&["--no-opts.dry-run"]),
            json!({"opts": {"dry_run": false}})
        );
        assert_eq!(err(&["--no-verbose=true"]), "--no-verbose takes no value");
        assert!(err(&["--no-text"]).contains("only goes with boolean flags"));
    }

    #[test]
    fn nested_flags_are_checked_like_top_level_ones() {
        let s = json!({"type": "object", "properties": {
            "filter": {"type": "object", "properties": {
                "state": {"type": "string"}, "since": {"type": "integer"}}, "required": ["state"]},
            "meta": {"type": "object"},
            "labels": {"type": "object", "properties": {"a": {"type": "string"}},
                       "additionalProperties": {"type": "integer"}}}});
        let ok = |a: &[&str]| parse_with(s.clone(), a).unwrap();
        let err = |a: &[&str]| parse_with(s.clone(), a).unwrap_err().0;
        assert_eq!(
            err(&["--filter.stat", "open"]),
            "unknown flag --filter.stat (did you mean --filter.state?); \
             valid flags: --filter.state, --filter.since"
        );
        assert_eq!(
            err(&["--filter.since", "3"]),
            "missing required flag --filter.state (string)"
        );
        assert!(err(&["--filter", r#"{"state": 1}"#]).contains("value.state should be a string"));
        // Free-form objects, and ones that allow more keys, take any key.
        assert_eq!(
            ok(&["--meta.anything", "x", "--labels.b", "2"]),
            json!({"meta": {"anything": "x"}, "labels": {"b": 2}})
        );
        assert!(err(&["--labels.b", "two"]).contains("--labels.b expects an integer"));
    }

    #[test]
    fn refs_to_defs_are_followed() {
        // As pydantic (FastMCP) writes nested models and optional literals.
        let s = json!({"type": "object", "properties": {
            "query": {"$ref": "#/$defs/Query", "description": "what to find"},
            "order": {"anyOf": [{"const": "asc"}, {"const": "desc"}, {"type": "null"}], "default": null}},
            "required": ["query"],
            "$defs": {"Query": {"type": "object", "properties": {
                "text": {"type": "string"}, "limit": {"type": "integer"},
                "next": {"anyOf": [{"$ref": "#/$defs/Query"}, {"type": "null"}]}},
                "required": ["text"]}}});
        let ok = |a: &[&str]| parse_with(s.clone(), a).unwrap();
        let err = |a: &[&str]| parse_with(s.clone(), a).unwrap_err().0;
        assert_eq!(
            ok(&["--query.text", "bug", "--query.limit", "5"]),
            json!({"query": {"text": "bug", "limit": 5}})
        );
        assert!(err(&["--query.limit", "x"]).contains("--query.limit expects an integer"));
        assert_eq!(
            err(&["--query.limit", "5"]),
            "missing required flag --query.text (string)"
        );
        assert!(err(&["--query.text", "a", "--order", "up"]).contains("must be one of: asc, desc"));
        // A recursive definition does not recurse forever.
        let v = inline_refs(&s);
        assert!(v.to_string().len() < 100_000);
    }

    #[test]
    fn a_property_named_json_is_a_flag_like_any_other() {
        let s = json!({"type": "object", "properties": {"json": {"type": "string"}}});
        assert_eq!(
            parse_with(s, &["--json", "{}"]).unwrap(),
            json!({"json": "{}"})
        );
    }
}
