//! The fixture's static catalogue: tool definitions (names, descriptions,
//! input schemas), resources, the resource template, prompts, and the fixed
//! payloads (test image, test audio, texts) the MCP conformance suite's
//! server scenarios ask for. Behaviour lives in [`crate::server`]; this module
//! only owns the data, so tests can assert against the same constants.

use std::sync::{Arc, LazyLock};

use rmcp::model::{JsonObject, Prompt, PromptArgument, Resource, ResourceTemplate, Tool};
use serde_json::{Value, json};

/// A 1x1 red RGBA PNG, base64 encoded (same pixel the suite's reference server uses).
pub const TEST_IMAGE_PNG_BASE64: &str = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg==";

/// A minimal, well-formed WAV file (8 kHz, mono, 16 bit, one silent sample), base64 encoded.
pub const TEST_AUDIO_WAV_BASE64: &str =
    "UklGRiYAAABXQVZFZm10IBAAAAABAAEAQB8AAAB9AAACABAAZGF0YQIAAAAAAA==";

/// Text returned by `test_simple_text`.
pub const SIMPLE_TEXT: &str = "This is a simple text response for testing.";
/// Text of the error result returned by `test_error_handling`.
pub const ERROR_TEXT: &str = "This tool intentionally returns an error for testing";
/// URI and text of the resource embedded by `test_embedded_resource`.
pub const EMBEDDED_RESOURCE_URI: &str = "test://embedded-resource";
/// Text of the resource embedded by `test_embedded_resource`.
pub const EMBEDDED_RESOURCE_TEXT: &str = "This is an embedded resource content.";
/// URI of the JSON resource embedded by `test_multiple_content_types`.
pub const MIXED_CONTENT_RESOURCE_URI: &str = "test://mixed-content-resource";

/// URI of the static text resource.
pub const STATIC_TEXT_URI: &str = "test://static-text";
/// Contents of the static text resource.
pub const STATIC_TEXT: &str = "This is the content of the static text resource.";
/// URI of the static binary (PNG) resource.
pub const STATIC_BINARY_URI: &str = "test://static-binary";
/// URI of the resource the subscribe scenarios subscribe to.
pub const WATCHED_RESOURCE_URI: &str = "test://watched-resource";
/// Contents of the watched resource.
pub const WATCHED_RESOURCE_TEXT: &str = "Watched resource content";
/// The resource template; `{id}` is substituted on read.
pub const TEMPLATE_URI: &str = "test://template/{id}/data";
/// Prefix of URIs matching [`TEMPLATE_URI`].
pub const TEMPLATE_PREFIX: &str = "test://template/";
/// Suffix of URIs matching [`TEMPLATE_URI`].
pub const TEMPLATE_SUFFIX: &str = "/data";

/// Name of the tool whose input schema exercises JSON Schema 2020-12 keywords.
pub const JSON_SCHEMA_2020_12_TOOL: &str = "json_schema_2020_12_tool";

/// Every tool the fixture offers, in a stable order.
pub fn tools() -> &'static [Tool] {
    static TOOLS: LazyLock<Vec<Tool>> = LazyLock::new(build_tools);
    &TOOLS
}

/// `n` synthetic tools `synthetic_0 .. synthetic_{n-1}`, each taking one string
/// argument, for benchmarks that need large catalogues (`mcpgate-fixture --tools N`).
pub fn synthetic_tools(n: usize) -> Vec<Tool> {
    (0..n)
        .map(|i| {
            Tool::new(
                format!("synthetic_{i}"),
                format!("Synthetic benchmark tool number {i}; echoes its `message` argument"),
                string_arg("message", "Text to echo back"),
            )
        })
        .collect()
}

/// The tool that toggles [`toggled_tool`] and [`toggled_prompt`].
pub const TOGGLE_TOOL: &str = "toggle_lists";

/// The tool listed only while toggled on (calling it returns "toggled").
pub fn toggled_tool() -> Tool {
    Tool::new("toggled_tool", "Listed only after toggle_lists", no_args())
}

/// The prompt listed only while toggled on.
pub fn toggled_prompt() -> Prompt {
    Prompt::new(
        "toggled_prompt",
        Some("Listed only after toggle_lists"),
        None,
    )
}

/// Every direct resource the fixture offers.
pub fn resources() -> Vec<Resource> {
    vec![
        Resource::new(STATIC_TEXT_URI, "static-text")
            .with_title("Static Text Resource")
            .with_description("A static text resource for testing")
            .with_mime_type("text/plain"),
        Resource::new(STATIC_BINARY_URI, "static-binary")
            .with_title("Static Binary Resource")
            .with_description("A static binary resource (PNG image) for testing")
            .with_mime_type("image/png"),
        Resource::new(WATCHED_RESOURCE_URI, "watched-resource")
            .with_title("Watched Resource")
            .with_description("A resource clients may subscribe to")
            .with_mime_type("text/plain"),
    ]
}

/// Every resource template the fixture offers.
pub fn resource_templates() -> Vec<ResourceTemplate> {
    vec![
        ResourceTemplate::new(TEMPLATE_URI, "template")
            .with_title("Resource Template")
            .with_description("A resource template with parameter substitution")
            .with_mime_type("application/json"),
    ]
}

/// The prompt whose `prompts/get` asks the client for input first (see
/// [`crate::mrtr_tools`]).
pub const INPUT_REQUIRED_PROMPT: &str = "test_input_required_result_prompt";

/// Every prompt the fixture offers.
pub fn prompts() -> Vec<Prompt> {
    let arg = |name: &str, description: &str| {
        PromptArgument::new(name)
            .with_description(description)
            .with_required(true)
    };
    vec![
        Prompt::new(
            "test_simple_prompt",
            Some("A simple prompt without arguments"),
            None,
        )
        .with_title("Simple Test Prompt"),
        Prompt::new(
            "test_prompt_with_arguments",
            Some("A prompt with required arguments"),
            Some(vec![
                arg("arg1", "First test argument"),
                arg("arg2", "Second test argument"),
            ]),
        )
        .with_title("Prompt With Arguments"),
        Prompt::new(
            "test_prompt_with_embedded_resource",
            Some("A prompt that includes an embedded resource"),
            Some(vec![arg("resourceUri", "URI of the resource to embed")]),
        )
        .with_title("Prompt With Embedded Resource"),
        Prompt::new(
            "test_prompt_with_image",
            Some("A prompt that includes image content"),
            None,
        )
        .with_title("Prompt With Image"),
        Prompt::new(
            INPUT_REQUIRED_PROMPT,
            Some("A prompt that asks the user for context (elicitation) before it is built"),
            None,
        )
        .with_title("Prompt Requiring Input"),
    ]
}

/// Candidate completions for `arg1`/`arg2` of `test_prompt_with_arguments`.
pub const PROMPT_ARG_COMPLETIONS: &[&str] = &["paris", "park", "party", "testValue1", "testValue2"];
/// Candidate completions for `{id}` of the resource template.
pub const TEMPLATE_ID_COMPLETIONS: &[&str] = &["1", "2", "3", "123"];

/// The `requestedSchema` sent by `test_elicitation`.
pub fn elicitation_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "username": { "type": "string", "description": "User's response" },
            "email": { "type": "string", "description": "User's email address" }
        },
        "required": ["username", "email"]
    })
}

/// The `requestedSchema` sent by `test_elicitation_sep1034_defaults`: a default for every primitive type.
pub fn elicitation_defaults_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "name": { "type": "string", "description": "User name", "default": "John Doe" },
            "age": { "type": "integer", "description": "User age", "default": 30 },
            "score": { "type": "number", "description": "User score", "default": 95.5 },
            "status": {
                "type": "string",
                "description": "User status",
                "enum": ["active", "inactive", "pending"],
                "default": "active"
            },
            "verified": { "type": "boolean", "description": "Verification status", "default": true }
        },
        "required": []
    })
}

/// The `requestedSchema` sent by `test_elicitation_sep1330_enums`: all five enum shapes of SEP-1330.
pub fn elicitation_enums_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "untitledSingle": {
                "type": "string",
                "description": "Select one option",
                "enum": ["option1", "option2", "option3"]
            },
            "titledSingle": {
                "type": "string",
                "description": "Select one option with titles",
                "oneOf": [
                    { "const": "value1", "title": "First Option" },
                    { "const": "value2", "title": "Second Option" },
                    { "const": "value3", "title": "Third Option" }
                ]
            },
            "legacyEnum": {
                "type": "string",
                "description": "Select one option (legacy)",
                "enum": ["opt1", "opt2", "opt3"],
                "enumNames": ["Option One", "Option Two", "Option Three"]
            },
            "untitledMulti": {
                "type": "array",
                "description": "Select multiple options",
                "minItems": 1,
                "maxItems": 3,
                "items": { "type": "string", "enum": ["option1", "option2", "option3"] }
            },
            "titledMulti": {
                "type": "array",
                "description": "Select multiple options with titles",
                "minItems": 1,
                "maxItems": 3,
                "items": {
                    "anyOf": [
                        { "const": "value1", "title": "First Choice" },
                        { "const": "value2", "title": "Second Choice" },
                        { "const": "value3", "title": "Third Choice" }
                    ]
                }
            }
        },
        "required": []
    })
}

/// The input schema of [`JSON_SCHEMA_2020_12_TOOL`], exactly as the suite expects it preserved.
pub fn json_schema_2020_12() -> Value {
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "$defs": {
            "address": {
                "$anchor": "addressDef",
                "type": "object",
                "properties": {
                    "street": { "type": "string" },
                    "city": { "type": "string" }
                }
            }
        },
        "properties": {
            "name": { "type": "string" },
            "address": { "$ref": "#/$defs/address" },
            "contactMethod": { "type": "string", "enum": ["phone", "email"] },
            "phone": { "type": "string" },
            "email": { "type": "string" }
        },
        "allOf": [
            { "anyOf": [ { "required": ["phone"] }, { "required": ["email"] } ] }
        ],
        "if": {
            "properties": { "contactMethod": { "const": "phone" } },
            "required": ["contactMethod"]
        },
        "then": { "required": ["phone"] },
        "else": { "required": ["email"] },
        "additionalProperties": false
    })
}

/// The input schema of `test_header_param`: one string argument that the
/// client mirrors into an HTTP header (`x-mcp-header`), kept verbatim.
pub fn header_param_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "region": { "type": "string", "x-mcp-header": "Region" }
        },
        "required": ["region"]
    })
}

fn object(value: Value) -> Arc<JsonObject> {
    match value {
        Value::Object(map) => Arc::new(map),
        _ => Arc::new(JsonObject::new()),
    }
}

fn no_args() -> Arc<JsonObject> {
    object(json!({ "type": "object", "properties": {} }))
}

fn string_arg(name: &str, description: &str) -> Arc<JsonObject> {
    object(json!({
        "type": "object",
        "properties": { name: { "type": "string", "description": description } },
        "required": [name]
    }))
}

fn build_tools() -> Vec<Tool> {
    vec![
        Tool::new(
            "test_simple_text",
            "Tests simple text content response",
            no_args(),
        ),
        Tool::new(
            "test_image_content",
            "Tests image content response",
            no_args(),
        ),
        Tool::new(
            "test_audio_content",
            "Tests audio content response",
            no_args(),
        ),
        Tool::new(
            "test_embedded_resource",
            "Tests embedded resource content response",
            no_args(),
        ),
        Tool::new(
            "test_multiple_content_types",
            "Tests response with multiple content types (text, image, resource)",
            no_args(),
        ),
        Tool::new(
            "test_tool_with_logging",
            "Tests tool that emits log messages during execution",
            no_args(),
        ),
        Tool::new(
            "test_tool_with_progress",
            "Tests tool that reports progress notifications",
            no_args(),
        ),
        Tool::new(
            "test_error_handling",
            "Tests error response handling",
            no_args(),
        ),
        Tool::new(
            "test_reconnection",
            "Tests SSE stream reconnection (SEP-1699); this fixture answers after a short delay \
             without closing the stream itself",
            no_args(),
        ),
        Tool::new(
            "test_sampling",
            "Tests server-initiated sampling (LLM completion request)",
            string_arg("prompt", "The prompt to send to the LLM"),
        ),
        Tool::new(
            "test_elicitation",
            "Tests server-initiated elicitation (user input request)",
            string_arg("message", "The message to show the user"),
        ),
        Tool::new(
            "test_elicitation_sep1034_defaults",
            "Tests elicitation with default values per SEP-1034",
            no_args(),
        ),
        Tool::new(
            "test_elicitation_sep1330_enums",
            "Tests elicitation with enum schema improvements per SEP-1330",
            no_args(),
        ),
        Tool::new(
            JSON_SCHEMA_2020_12_TOOL,
            "Tool with JSON Schema 2020-12 features",
            object(json_schema_2020_12()),
        ),
        Tool::new(
            "echo",
            "Returns the given message as text content",
            string_arg("message", "The text to echo back"),
        ),
        Tool::new(
            "sleep",
            "Sleeps for the given number of milliseconds, reporting progress every 100 ms \
             when the request carries a progress token",
            object(json!({
                "type": "object",
                "properties": {
                    "ms": { "type": "integer", "minimum": 0, "description": "How long to sleep, in milliseconds" }
                },
                "required": ["ms"]
            })),
        ),
        Tool::new(
            "exit",
            "Terminates the server process with exit code 1 without answering",
            no_args(),
        ),
        Tool::new(
            TOGGLE_TOOL,
            "Adds the tool `toggled_tool` and the prompt `toggled_prompt` (or removes them \
             when present) and sends tools and prompts list_changed",
            no_args(),
        ),
        Tool::new(
            "inspect_meta",
            "Returns the request's _meta exactly as received (to test pass-through)",
            no_args(),
        ),
        Tool::new(
            "inspect",
            "Returns its arguments exactly as received, as JSON text and structured content. \
             Has one parameter of every JSON Schema kind, for testing tools-as-commands.",
            object(json!({
                "type": "object",
                "properties": {
                    "text": { "type": "string", "description": "Any string" },
                    "count": { "type": "integer", "description": "A whole number", "default": 1 },
                    "ratio": { "type": "number", "description": "Any number" },
                    "verbose": { "type": "boolean", "description": "A switch" },
                    "mode": { "type": "string", "enum": ["fast", "safe", "auto"], "description": "One of three modes" },
                    "tags": { "type": "array", "items": { "type": "string" }, "description": "Labels" },
                    "filter": {
                        "type": "object",
                        "description": "A nested object",
                        "properties": {
                            "state": { "type": "string", "enum": ["open", "closed"] },
                            "limits": { "type": "object", "properties": { "max": { "type": "integer" } } }
                        }
                    }
                },
                "required": ["text"]
            })),
        ),
        Tool::new(
            "test_input_required_result_elicitation",
            "Asks the user for their name (elicitation, input key `user_name`) and greets them",
            no_args(),
        ),
        Tool::new(
            "test_input_required_result_sampling",
            "Asks the client's LLM for the capital of France (sampling, input key \
             `capital_question`)",
            no_args(),
        ),
        Tool::new(
            "test_input_required_result_list_roots",
            "Lists the client's roots (roots/list, input key `client_roots`)",
            no_args(),
        ),
        Tool::new(
            "test_input_required_result_request_state",
            "Asks the user to confirm (elicitation, input key `confirm`); answers `state-ok` \
             when confirmed",
            no_args(),
        ),
        Tool::new(
            "test_input_required_result_multiple_inputs",
            "Sends an elicitation (`user_name`), a sampling request (`greeting`) and roots/list \
             (`client_roots`) at once and combines the answers",
            no_args(),
        ),
        Tool::new(
            "test_input_required_result_multi_round",
            "Asks for a name (`user_name`), then for a favourite colour (`favorite_color`), \
             one after the other",
            no_args(),
        ),
        Tool::new(
            "test_input_required_result_tampered_state",
            "Asks the user to confirm (elicitation, input key `confirm`); answers \
             `tamper-check passed` when confirmed",
            no_args(),
        ),
        Tool::new(
            "test_input_required_result_capabilities",
            "Sends an elicitation (`user_name`) and a sampling request (`capability_sample`) at \
             once and reports which succeeded; a refused one does not fail the call",
            no_args(),
        ),
        Tool::new(
            "test_missing_capability",
            "Sends a sampling request; a JSON-RPC error answer (e.g. -32021 for a client without \
             sampling) becomes this call's error unchanged",
            no_args(),
        ),
        Tool::new(
            "test_streaming_elicitation",
            "Asks the user for their name (elicitation, input key `user_name`) and greets them",
            no_args(),
        ),
        Tool::new(
            "test_logging_tool",
            "Sends one info-level notifications/message regardless of the session's log level",
            no_args(),
        ),
        Tool::new(
            "test_header_param",
            "Echoes its `region` argument, which clients mirror into an HTTP header \
             (`x-mcp-header`)",
            object(header_param_schema()),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tool(name: &str) -> &'static Tool {
        tools()
            .iter()
            .find(|tool| tool.name == name)
            .unwrap_or_else(|| panic!("tool {name} missing"))
    }

    #[test]
    fn tool_names_are_unique() {
        let mut names: Vec<&str> = tools().iter().map(|tool| tool.name.as_ref()).collect();
        names.sort_unstable();
        let before = names.len();
        names.dedup();
        assert_eq!(names.len(), before);
    }

    #[test]
    fn header_param_schema_keeps_x_mcp_header() {
        let schema = Value::Object((*tool("test_header_param").input_schema).clone());
        assert_eq!(schema, header_param_schema());
        assert_eq!(
            schema.pointer("/properties/region/x-mcp-header"),
            Some(&json!("Region"))
        );
        let listed = serde_json::to_value(tool("test_header_param")).unwrap_or_default();
        assert_eq!(
            listed.pointer("/inputSchema/properties/region/x-mcp-header"),
            Some(&json!("Region"))
        );
    }

    #[test]
    fn mrtr_prompt_is_listed_without_arguments() {
        let prompts = prompts();
        let prompt = prompts
            .iter()
            .find(|prompt| prompt.name == INPUT_REQUIRED_PROMPT)
            .unwrap_or_else(|| panic!("prompt missing"));
        assert!(prompt.arguments.as_ref().is_none_or(Vec::is_empty));
    }
}
