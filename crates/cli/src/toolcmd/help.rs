//! Help text for mounted commands, written for a person and a model alike:
//! `SERVER --help` lists tools one line each; `SERVER TOOL --help` gives the
//! description, every flag with its type, allowed values, default and a
//! `required` mark, and one example line. Also the agent prompt section that
//! `mount --prompt` writes.

use std::fmt::Write as _;

use serde_json::Value;

use super::ToolSpec;
use super::flags::{enum_values, flag_name, inline_refs, properties, required, type_of};

/// The first sentence (or line) of a description, at most ~100 characters.
pub(crate) fn one_line(desc: &str) -> String {
    let line = desc
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("");
    let sentence = match line.find(". ") {
        Some(i) => &line[..=i],
        None => line,
    };
    if sentence.chars().count() > 100 {
        let cut: String = sentence.chars().take(97).collect();
        format!("{}...", cut.trim_end())
    } else {
        sentence.to_owned()
    }
}

fn show(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

pub(crate) fn server_help(command: &str, tools: &[ToolSpec]) -> String {
    let mut out = format!("Usage: {command} TOOL [--flag value ...]\n\nTools:\n");
    let width = tools
        .iter()
        .map(|t| t.name.len())
        .max()
        .unwrap_or(0)
        .min(40);
    for t in tools {
        let _ = writeln!(out, "  {:<width$}  {}", t.name, one_line(&t.description));
    }
    let _ = writeln!(
        out,
        "\nRun `{command} TOOL --help` for a tool's flags and an example."
    );
    out
}

/// A word for the shell: bare when it is safe, single-quoted otherwise.
fn shell_word(s: &str) -> String {
    let safe = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:@,+=%".contains(c));
    if safe {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// A plausible example value for a flag (or for one item of an array flag).
fn example_value(schema: &Value) -> String {
    if let Some(v) = enum_values(schema).and_then(|e| e.first().cloned()) {
        return shell_word(&show(&v));
    }
    if let Some(d) = schema.get("default").filter(|d| !d.is_null()) {
        return match d {
            Value::String(s) => format!("'{}'", s.replace('\'', r"'\''")),
            other => shell_word(&other.to_string()),
        };
    }
    match type_of(schema) {
        Some("integer") => "1".into(),
        Some("number") => "1.5".into(),
        Some("boolean") => "true".into(),
        Some("array") => "'[]'".into(),
        Some("object") => "'{}'".into(),
        _ => "'text'".into(),
    }
}

/// The example's flags for one property: its required leaves for an object
/// that has any, one item for an array, the bare flag for a boolean.
fn example_flags(flag: &str, schema: &Value, out: &mut String) {
    match type_of(schema) {
        Some("boolean") => {
            let _ = write!(out, " --{flag}");
        }
        Some("array") => {
            let item = schema.get("items").unwrap_or(&Value::Null);
            let _ = write!(out, " --{flag} {}", example_value(item));
        }
        Some("object") if !required(schema).is_empty() => {
            let props = properties(schema);
            for r in required(schema) {
                let s = props
                    .iter()
                    .find(|(k, _)| *k == r)
                    .map_or(&Value::Null, |(_, s)| *s);
                example_flags(&format!("{flag}.{}", flag_name(r)), s, out);
            }
        }
        _ => {
            let _ = write!(out, " --{flag} {}", example_value(schema));
        }
    }
}

/// Help lines for one property and, for an object, its nested properties.
/// `required_note` is what its `required` mark says: "required", or "required
/// with --parent" when the parent object itself is optional.
fn flag_rows(flag: &str, s: &Value, required_note: Option<&str>, depth: usize, out: &mut String) {
    let ty = type_of(s).unwrap_or("json");
    let nested = if ty == "object" {
        properties(s)
    } else {
        Vec::new()
    };
    let shape = match ty {
        "boolean" => format!("--{flag} | --no-{flag}"),
        "array" => format!(
            "--{flag} <{}> (repeat, or a JSON array)",
            type_of(s.get("items").unwrap_or(&Value::Null)).unwrap_or("value")
        ),
        "object" if nested.is_empty() => format!("--{flag}.KEY <value> | --{flag} '<json>'"),
        "object" => format!("--{flag} '<json>', or the dotted flags below"),
        _ => format!("--{flag} <{ty}>"),
    };
    let mut notes = Vec::new();
    if let Some(r) = required_note {
        notes.push(r.to_owned());
    }
    let allowed = enum_values(s).or_else(|| s.get("items").and_then(enum_values));
    if let Some(e) = allowed {
        notes.push(format!(
            "one of: {}",
            e.iter().map(show).collect::<Vec<_>>().join(", ")
        ));
    }
    if let Some(d) = s.get("default") {
        notes.push(format!("default: {}", show(d)));
    }
    let _ = write!(out, "  {shape}");
    if !notes.is_empty() {
        let _ = write!(out, "  [{}]", notes.join("; "));
    }
    out.push('\n');
    if let Some(d) = s
        .get("description")
        .and_then(Value::as_str)
        .filter(|d| !d.trim().is_empty())
    {
        let _ = writeln!(out, "      {}", d.trim().replace('\n', " "));
    }
    if depth >= 6 {
        return;
    }
    let req = required(s);
    for (k, sub) in nested {
        let note = match (req.contains(&k), required_note) {
            (false, _) => None,
            (true, Some("required")) => Some("required".to_owned()),
            (true, _) => Some(format!("required with --{flag}")),
        };
        flag_rows(
            &format!("{flag}.{}", flag_name(k)),
            sub,
            note.as_deref(),
            depth + 1,
            out,
        );
    }
}

pub(crate) fn tool_help(command: &str, tool: &ToolSpec) -> String {
    let schema = &inline_refs(&tool.input_schema);
    let req = required(schema);
    let mut out = format!("Usage: {command} {} [flags]\n\n", tool.name);
    if !tool.description.trim().is_empty() {
        let _ = writeln!(out, "{}\n", tool.description.trim());
    }
    let props = properties(schema);
    if props.is_empty() {
        out.push_str("This tool takes no flags.\n");
    } else {
        out.push_str("Flags:\n");
        for (name, s) in &props {
            let note = req.contains(name).then_some("required");
            flag_rows(&flag_name(name), s, note, 0, &mut out);
        }
        out.push_str("  --json '<object>' | --json -   all arguments as JSON (- reads stdin)\n");
        out.push_str("  --json                          (alone) print the whole result as JSON\n");
        out.push_str("  Any value may be @FILE to read it from a file (@@ for a literal @).\n");
    }
    let mut example = format!("{command} {}", tool.name);
    for (name, s) in props.iter().filter(|(n, _)| req.contains(n)) {
        example_flags(&flag_name(name), s, &mut example);
    }
    let _ = writeln!(out, "\nExample:\n  {example}");
    out
}

/// The agent prompt section: Markdown inside `<mcp-clis>` tags.
pub(crate) fn prompt_section(commands: &[(String, Vec<ToolSpec>)]) -> String {
    let mut out = String::from("<mcp-clis>\n## Tools available as shell commands\n\n");
    out.push_str(
        "Each command below is an MCP server; each subcommand is one of its tools. Run them \
         in the shell like any program. Flags come from the tool's parameters (`foo_bar` is \
         `--foo-bar`); pass all arguments at once with `--json '{...}'`. Exit codes: 0 ok, \
         1 the tool reported an error (message on stderr), 2 wrong usage (nothing was sent), \
         3 connection or auth error.\n",
    );
    for (command, tools) in commands {
        let _ = writeln!(out, "\n### `{command}`\n");
        for t in tools {
            let _ = writeln!(
                out,
                "- `{command} {}` — {}",
                t.name,
                one_line(&t.description)
            );
        }
        let _ = writeln!(
            out,
            "\nHelp: `{command} --help` lists the tools; `{command} TOOL --help` shows flags and an example."
        );
    }
    out.push_str("</mcp-clis>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn nested_flags_examples_and_quoting() {
        let tool = ToolSpec {
            name: "search".into(),
            description: "Finds things.".into(),
            input_schema: json!({"type": "object", "properties": {
                "ids": {"type": "array", "items": {"type": "integer"}},
                "mode": {"type": "string", "enum": ["a b", "c"]},
                "q": {"$ref": "#/$defs/Q"},
                "opt": {"type": "object", "properties": {"x": {"type": "integer"}}, "required": ["x"]}},
                "required": ["ids", "mode", "q"],
                "$defs": {"Q": {"type": "object", "properties": {
                    "text": {"type": "string"}, "exact": {"type": "boolean"}}, "required": ["text", "exact"]}}}),
        };
        let h = tool_help("srv", &tool);
        assert!(h.contains("  --q.text <string>  [required]\n"), "{h}");
        assert!(
            h.contains("  --q.exact | --no-q.exact  [required]\n"),
            "{h}"
        );
        assert!(
            h.contains("  --opt.x <integer>  [required with --opt]\n"),
            "{h}"
        );
        assert!(h.contains("[required; one of: a b, c]"), "{h}");
        assert!(
            h.ends_with("Example:\n  srv search --ids 1 --mode 'a b' --q.text 'text' --q.exact\n"),
            "{h}"
        );
    }

    #[test]
    fn shell_words() {
        assert_eq!(shell_word("open"), "open");
        assert_eq!(shell_word("a b"), "'a b'");
        assert_eq!(shell_word("it's"), r"'it'\''s'");
        assert_eq!(shell_word(""), "''");
    }
}
