//! Help text for mounted commands, written for a person and a model alike:
//! `SERVER --help` lists tools one line each; `SERVER TOOL --help` gives the
//! description, every flag with its type, allowed values, default and a
//! `required` mark, and one example line. Also the agent prompt section that
//! `mount --prompt` writes.

use std::fmt::Write as _;

use serde_json::Value;

use super::ToolSpec;
use super::flags::{enum_values, flag_name, properties, required, type_of};

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

/// A plausible example value for a flag.
fn example_value(schema: &Value) -> String {
    if let Some(v) = enum_values(schema).and_then(|e| e.first().cloned()) {
        return show(&v);
    }
    match type_of(schema) {
        Some("integer") => "1".into(),
        Some("number") => "1.5".into(),
        Some("array") => "'[\"a\"]'".into(),
        Some("object") => "'{}'".into(),
        _ => "'text'".into(),
    }
}

pub(crate) fn tool_help(command: &str, tool: &ToolSpec) -> String {
    let schema = &tool.input_schema;
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
            let ty = type_of(s).unwrap_or("json");
            let shape = match ty {
                "boolean" => format!("--{0} | --no-{0}", flag_name(name)),
                "array" => format!(
                    "--{} <{}> (repeat, or a JSON array)",
                    flag_name(name),
                    type_of(s.get("items").unwrap_or(&Value::Null)).unwrap_or("value")
                ),
                "object" => {
                    let nested: Vec<String> = properties(s)
                        .iter()
                        .map(|(k, v)| {
                            format!(
                                "--{}.{} <{}>",
                                flag_name(name),
                                flag_name(k),
                                type_of(v).unwrap_or("value")
                            )
                        })
                        .collect();
                    if nested.is_empty() {
                        format!("--{0}.KEY <value> | --{0} '<json>'", flag_name(name))
                    } else {
                        format!("{} | --{} '<json>'", nested.join(" "), flag_name(name))
                    }
                }
                _ => format!("--{} <{ty}>", flag_name(name)),
            };
            let mut notes = Vec::new();
            if req.contains(name) {
                notes.push("required".to_owned());
            }
            if let Some(e) = enum_values(s) {
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
        }
        out.push_str("  --json '<object>' | --json -   all arguments as JSON (- reads stdin)\n");
        out.push_str("  --json                          (alone) print the whole result as JSON\n");
        out.push_str("  Any value may be @FILE to read it from a file.\n");
    }
    let mut example = format!("{command} {}", tool.name);
    for (name, s) in props.iter().filter(|(n, _)| req.contains(n)) {
        if type_of(s) == Some("boolean") {
            let _ = write!(example, " --{}", flag_name(name));
        } else {
            let _ = write!(example, " --{} {}", flag_name(name), example_value(s));
        }
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
