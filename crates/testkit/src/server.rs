//! The fixture's MCP behaviour: [`Fixture`], an rmcp [`ServerHandler`] that
//! answers tools/resources/prompts/completion/logging/subscription requests
//! the way the conformance suite's server scenarios expect, plus the
//! gateway-test tools `echo`, `sleep`, `exit` and `toggle_lists` (which
//! changes the tool and prompt lists and announces it); the tools and prompt that
//! ask the client for input live in [`crate::mrtr_tools`], the pieces
//! every handler shares in `util.rs`. One instance
//! serves one session (stdio connection or Streamable HTTP session);
//! per-session state is the log level and the set of subscribed resource URIs.

// Logging, sampling and resources/subscribe are deprecated in rmcp (SEP-2577)
// but are exactly what the 2025-11-25 conformance scenarios exercise.
#![allow(deprecated)]

use std::{
    collections::BTreeSet,
    sync::{
        Mutex,
        atomic::{AtomicBool, AtomicU8, Ordering},
    },
    time::Duration,
};

use rmcp::{
    ErrorData as McpError, RoleServer, ServerHandler,
    model::{
        CallToolRequestParams, CallToolResponse, CallToolResult, CompleteRequestParams,
        CompleteResult, CompletionInfo, ContentBlock, GetPromptRequestParams, GetPromptResponse,
        GetPromptResult, Implementation, JsonObject, ListPromptsResult,
        ListResourceTemplatesResult, ListResourcesResult, ListToolsResult, LoggingLevel,
        LoggingMessageNotificationParam, PaginatedRequestParams, ProgressNotificationParam,
        ProgressToken, PromptMessage, PromptsCapability, ReadResourceRequestParams,
        ReadResourceResponse, ReadResourceResult, Reference, ResourceContents, ResourcesCapability,
        Role, ServerCapabilities, ServerConfig, SetLevelRequestParams, SubscribeRequestParams,
        ToolsCapability, UnsubscribeRequestParams,
    },
    service::RequestContext,
};
use serde_json::{Value, json};

use crate::{
    catalog,
    mrtr_tools::{self, legacy, modern},
    util::{DEFAULT_NAME, error_result, level_rank, send_peer_request, text_result},
};

/// How often `sleep` reports progress.
const PROGRESS_PERIOD_MS: u64 = 100;
const PROGRESS_PERIOD: Duration = Duration::from_millis(PROGRESS_PERIOD_MS);
/// Upper bound for `sleep` (one day), keeping deadline arithmetic in range.
const MAX_SLEEP_MS: u64 = 86_400_000;

/// Log level meaning "no `logging/setLevel` received yet": the rank of
/// `debug`, so everything is sent.
const LEVEL_UNSET: u8 = 0;

/// The fixture server handler. Cheap to construct; build one per session.
#[derive(Debug)]
pub struct Fixture {
    name: String,
    /// Rank of the minimum level set via `logging/setLevel` (see [`level_rank`]).
    log_level: AtomicU8,
    subscriptions: Mutex<BTreeSet<String>>,
    /// Extra `synthetic_*` tools listed after the static catalogue (benchmarks).
    synthetic_tools: usize,
    /// Where `echo` notes each message it is called with, one line each,
    /// before it answers (tests that must know which calls reached it).
    call_log: Option<std::sync::Arc<std::fs::File>>,
}

/// Whether `toggle_lists` has added `toggled_tool` and `toggled_prompt`. One
/// per process, not per session: a 2026-07-28 client (the gateway re-listing
/// after the change, say) gets a fresh handler for every request.
static TOGGLED: AtomicBool = AtomicBool::new(false);

impl Default for Fixture {
    fn default() -> Self {
        Self::new(DEFAULT_NAME)
    }
}

impl Fixture {
    /// A fixture reporting `name` as `serverInfo.name`.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            log_level: AtomicU8::new(LEVEL_UNSET),
            subscriptions: Mutex::new(BTreeSet::new()),
            synthetic_tools: 0,
            call_log: None,
        }
    }

    /// Appends each `echo` message to `file` (one `write` per line) before
    /// answering the call.
    pub fn with_call_log(mut self, file: std::sync::Arc<std::fs::File>) -> Self {
        self.call_log = Some(file);
        self
    }

    /// Also list `n` synthetic tools `synthetic_0 .. synthetic_{n-1}` (see
    /// [`catalog::synthetic_tools`]); calling one echoes its `message`.
    pub fn with_synthetic_tools(mut self, n: usize) -> Self {
        self.synthetic_tools = n;
        self
    }

    /// The resource URIs this session is subscribed to.
    pub fn subscriptions(&self) -> Vec<String> {
        self.subscriptions
            .lock()
            .map(|set| set.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Send a `notifications/message` unless the session's level filters it out.
    async fn log(&self, context: &RequestContext<RoleServer>, level: LoggingLevel, data: Value) {
        if level_rank(level) < self.log_level.load(Ordering::Relaxed) {
            return;
        }
        let params = LoggingMessageNotificationParam::new(level, data).with_logger(DEFAULT_NAME);
        // A closed peer only means nobody is listening any more.
        let _ = context.peer.notify_logging_message(params).await;
    }

    async fn progress(
        context: &RequestContext<RoleServer>,
        token: &ProgressToken,
        progress: f64,
        total: f64,
        message: Option<String>,
    ) {
        let mut params = ProgressNotificationParam::new(token.clone(), progress).with_total(total);
        if let Some(message) = message {
            params = params.with_message(message);
        }
        let _ = context.peer.notify_progress(params).await;
    }

    async fn tool_with_logging(&self, context: &RequestContext<RoleServer>) -> CallToolResult {
        self.log(context, LoggingLevel::Info, json!("Tool execution started"))
            .await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        self.log(context, LoggingLevel::Info, json!("Tool processing data"))
            .await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        self.log(
            context,
            LoggingLevel::Info,
            json!("Tool execution completed"),
        )
        .await;
        text_result("Tool with logging executed successfully")
    }

    async fn tool_with_progress(context: &RequestContext<RoleServer>) -> CallToolResult {
        let token = context.meta.get_progress_token();
        for (step, progress) in [0.0, 50.0, 100.0].into_iter().enumerate() {
            if step > 0 {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            if let Some(token) = &token {
                let message = format!("Completed step {progress} of 100");
                Self::progress(context, token, progress, 100.0, Some(message)).await;
            }
        }
        text_result("Tool with progress executed successfully")
    }

    async fn sleep(context: &RequestContext<RoleServer>, args: &JsonObject) -> CallToolResult {
        let Some(ms) = args
            .get("ms")
            .and_then(Value::as_u64)
            .filter(|ms| *ms <= MAX_SLEEP_MS)
        else {
            return error_result("argument `ms` must be an integer between 0 and 86400000");
        };
        let token = context.meta.get_progress_token();
        let start = tokio::time::Instant::now();
        let mut ticker = tokio::time::interval_at(start + PROGRESS_PERIOD, PROGRESS_PERIOD);
        let finished = tokio::time::sleep_until(start + Duration::from_millis(ms));
        tokio::pin!(finished);
        let mut elapsed_ms = 0u64;
        loop {
            tokio::select! {
                biased;
                () = &mut finished => break,
                () = context.ct.cancelled() => return error_result("cancelled"),
                _ = ticker.tick(), if token.is_some() => {
                    // Report the scheduled elapsed time (100, 200, ...) so
                    // tests can assert exact values.
                    elapsed_ms += PROGRESS_PERIOD_MS;
                    if let Some(token) = &token {
                        Self::progress(context, token, elapsed_ms as f64, ms as f64, None).await;
                    }
                }
            }
        }
        text_result(format!("slept {ms} ms"))
    }

    async fn sampling(context: &RequestContext<RoleServer>, args: &JsonObject) -> CallToolResult {
        let Some(prompt) = args.get("prompt").and_then(Value::as_str) else {
            return error_result("argument `prompt` must be a string");
        };
        if context
            .client_capabilities()
            .and_then(|caps| caps.sampling)
            .is_none()
        {
            return error_result("client does not support sampling");
        }
        let params = json!({
            "messages": [
                { "role": "user", "content": { "type": "text", "text": prompt } }
            ],
            "maxTokens": 100
        });
        match peer_request(context, "sampling/createMessage", params).await {
            Ok(result) => {
                let text = result
                    .pointer("/content/text")
                    .and_then(Value::as_str)
                    .unwrap_or("No response");
                text_result(format!("LLM response: {text}"))
            }
            Err(message) => error_result(format!("sampling failed: {message}")),
        }
    }

    async fn elicitation(
        context: &RequestContext<RoleServer>,
        message: &str,
        schema: Value,
        prefix: &str,
    ) -> CallToolResult {
        if context
            .client_capabilities()
            .and_then(|caps| caps.elicitation)
            .is_none()
        {
            return error_result("client does not support elicitation");
        }
        let params = json!({ "message": message, "requestedSchema": schema });
        match peer_request(context, "elicitation/create", params).await {
            Ok(result) => {
                let action = result
                    .get("action")
                    .and_then(Value::as_str)
                    .unwrap_or("unknown");
                let content = result.get("content").cloned().unwrap_or_else(|| json!({}));
                text_result(format!("{prefix}: action={action}, content={content}"))
            }
            Err(message) => error_result(format!("elicitation failed: {message}")),
        }
    }
}

/// [`send_peer_request`], returning the client's result as JSON and any
/// failure as text.
async fn peer_request(
    context: &RequestContext<RoleServer>,
    method: &str,
    params: Value,
) -> Result<Value, String> {
    let result = send_peer_request(context, method, params)
        .await
        .map_err(|e| e.to_string())?;
    serde_json::to_value(result).map_err(|e| e.to_string())
}

fn string_arg<'a>(args: Option<&'a JsonObject>, name: &str) -> Result<&'a str, McpError> {
    args.and_then(|args| args.get(name))
        .and_then(Value::as_str)
        .ok_or_else(|| McpError::invalid_params(format!("missing string argument `{name}`"), None))
}

fn completions(candidates: &[&str], prefix: &str) -> CompletionInfo {
    let values: Vec<String> = candidates
        .iter()
        .filter(|c| c.starts_with(prefix))
        .map(|c| (*c).to_owned())
        .collect();
    CompletionInfo::with_all_values(values).unwrap_or_default()
}

/// The `{id}` of a URI matching [`catalog::TEMPLATE_URI`].
fn template_id(uri: &str) -> Option<&str> {
    let id = uri
        .strip_prefix(catalog::TEMPLATE_PREFIX)?
        .strip_suffix(catalog::TEMPLATE_SUFFIX)?;
    (!id.is_empty() && !id.contains('/')).then_some(id)
}

impl ServerHandler for Fixture {
    fn get_info(&self) -> ServerConfig {
        let mut capabilities = ServerCapabilities::default();
        capabilities.tools = Some(ToolsCapability::default());
        let mut resources = ResourcesCapability::default();
        resources.subscribe = Some(true);
        capabilities.resources = Some(resources);
        capabilities.prompts = Some(PromptsCapability::default());
        capabilities.logging = Some(JsonObject::new());
        capabilities.completions = Some(JsonObject::new());
        ServerConfig::new(capabilities)
            .with_server_info(Implementation::new(&self.name, env!("CARGO_PKG_VERSION")))
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        let mut tools = catalog::tools().to_vec();
        tools.extend(catalog::synthetic_tools(self.synthetic_tools));
        if TOGGLED.load(Ordering::Relaxed) {
            tools.push(catalog::toggled_tool());
        }
        Ok(ListToolsResult::with_all_items(tools))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        // 2026-07-28 requests get native multi-round-trip answers (rmcp
        // refuses the legacy tools' server-to-client requests there).
        if modern::speaks_mrtr(&context)
            && let Some(outcome) = modern::call_tool_natively(&request, &context).await
        {
            return outcome;
        }
        let args = request.arguments.unwrap_or_default();
        let result = match request.name.as_ref() {
            // Benchmark hot path: no logging, no allocation beyond the reply.
            "echo" => match args.get("message").and_then(Value::as_str) {
                Some(message) => {
                    if let Some(log) = &self.call_log {
                        use std::io::Write as _;
                        let line = format!("{message}\n");
                        if let Err(e) = (&**log).write_all(line.as_bytes()) {
                            return Err(McpError::internal_error(
                                format!("cannot write the call log: {e}"),
                                None,
                            ));
                        }
                    }
                    text_result(message)
                }
                None => error_result("argument `message` must be a string"),
            },
            "sleep" => Self::sleep(&context, &args).await,
            "exit" => std::process::exit(1),
            catalog::TOGGLE_TOOL => {
                let on = !TOGGLED.fetch_xor(true, Ordering::Relaxed);
                // A closed peer only means nobody is listening any more.
                let _ = context.peer.notify_tool_list_changed().await;
                let _ = context.peer.notify_prompt_list_changed().await;
                text_result(if on { "on" } else { "off" })
            }
            "toggled_tool" => text_result("toggled"),
            "inspect_meta" => {
                let meta = serde_json::to_value(&context.meta).unwrap_or(Value::Null);
                let mut r = text_result(meta.to_string());
                r.structured_content = Some(meta);
                r
            }
            "inspect" => {
                let args = Value::Object(args.clone());
                let mut r = text_result(args.to_string());
                r.structured_content = Some(args);
                r
            }
            "test_simple_text" => text_result(catalog::SIMPLE_TEXT),
            "test_image_content" => CallToolResult::success(vec![ContentBlock::image(
                catalog::TEST_IMAGE_PNG_BASE64,
                "image/png",
            )]),
            "test_audio_content" => CallToolResult::success(vec![ContentBlock::audio(
                catalog::TEST_AUDIO_WAV_BASE64,
                "audio/wav",
            )]),
            "test_embedded_resource" => {
                CallToolResult::success(vec![ContentBlock::resource(ResourceContents::text(
                    catalog::EMBEDDED_RESOURCE_TEXT,
                    catalog::EMBEDDED_RESOURCE_URI,
                ))])
            }
            "test_multiple_content_types" => CallToolResult::success(vec![
                ContentBlock::text("Multiple content types test:"),
                ContentBlock::image(catalog::TEST_IMAGE_PNG_BASE64, "image/png"),
                ContentBlock::resource(
                    ResourceContents::text(
                        json!({ "test": "data", "value": 123 }).to_string(),
                        catalog::MIXED_CONTENT_RESOURCE_URI,
                    )
                    .with_mime_type("application/json"),
                ),
            ]),
            "test_tool_with_logging" => self.tool_with_logging(&context).await,
            "test_tool_with_progress" => Self::tool_with_progress(&context).await,
            "test_error_handling" => error_result(catalog::ERROR_TEXT),
            "test_reconnection" => {
                tokio::time::sleep(Duration::from_millis(400)).await;
                text_result("Reconnection test completed successfully")
            }
            "test_sampling" => Self::sampling(&context, &args).await,
            "test_elicitation" => {
                let message = args
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or("Please provide your information");
                Self::elicitation(
                    &context,
                    message,
                    catalog::elicitation_schema(),
                    "User response",
                )
                .await
            }
            "test_elicitation_sep1034_defaults" => {
                Self::elicitation(
                    &context,
                    "Please review and update the form fields with defaults",
                    catalog::elicitation_defaults_schema(),
                    "Elicitation completed",
                )
                .await
            }
            "test_elicitation_sep1330_enums" => {
                Self::elicitation(
                    &context,
                    "Please select options from the enum fields",
                    catalog::elicitation_enums_schema(),
                    "Elicitation completed",
                )
                .await
            }
            "test_input_required_result_elicitation" | "test_streaming_elicitation" => {
                legacy::greet_by_name(&context).await?
            }
            "test_input_required_result_sampling" => legacy::capital_question(&context).await?,
            "test_input_required_result_list_roots" => legacy::client_roots(&context).await?,
            "test_input_required_result_request_state" => {
                legacy::confirm(&context, "state-ok", "state-not-ok").await?
            }
            "test_input_required_result_tampered_state" => {
                legacy::confirm(&context, "tamper-check passed", "tamper-check failed").await?
            }
            "test_input_required_result_multiple_inputs" => {
                legacy::multiple_inputs(&context).await?
            }
            "test_input_required_result_multi_round" => legacy::multi_round(&context).await?,
            "test_input_required_result_capabilities" => legacy::capabilities(&context).await,
            "test_missing_capability" => legacy::missing_capability(&context).await?,
            "test_logging_tool" => legacy::logging_tool(&context).await,
            "test_header_param" => mrtr_tools::header_param(&args),
            catalog::JSON_SCHEMA_2020_12_TOOL => text_result(format!(
                "JSON Schema 2020-12 tool called with: {}",
                Value::Object(args)
            )),
            other
                if other.strip_prefix("synthetic_").is_some_and(|n| {
                    n.parse::<usize>().is_ok_and(|n| n < self.synthetic_tools)
                }) =>
            {
                text_result(string_arg(Some(&args), "message")?)
            }
            other => {
                return Err(McpError::invalid_params(
                    format!("Unknown tool: {other}"),
                    None,
                ));
            }
        };
        Ok(result.into())
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, McpError> {
        Ok(ListResourcesResult::with_all_items(catalog::resources()))
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, McpError> {
        Ok(ListResourceTemplatesResult::with_all_items(
            catalog::resource_templates(),
        ))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, McpError> {
        let uri = request.uri.as_str();
        let contents = match uri {
            catalog::STATIC_TEXT_URI => ResourceContents::text(catalog::STATIC_TEXT, uri),
            catalog::STATIC_BINARY_URI => {
                ResourceContents::blob(catalog::TEST_IMAGE_PNG_BASE64, uri)
                    .with_mime_type("image/png")
            }
            catalog::WATCHED_RESOURCE_URI => {
                ResourceContents::text(catalog::WATCHED_RESOURCE_TEXT, uri)
            }
            _ => match template_id(uri) {
                Some(id) => ResourceContents::text(
                    json!({ "id": id, "templateTest": true, "data": format!("Data for ID: {id}") })
                        .to_string(),
                    uri,
                )
                .with_mime_type("application/json"),
                None => {
                    return Err(McpError::resource_not_found(
                        format!("Resource not found: {uri}"),
                        Some(json!({ "uri": uri })),
                    ));
                }
            },
        };
        Ok(ReadResourceResult::new(vec![contents]).into())
    }

    async fn subscribe(
        &self,
        request: SubscribeRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        if let Ok(mut set) = self.subscriptions.lock() {
            set.insert(request.uri);
        }
        Ok(())
    }

    async fn unsubscribe(
        &self,
        request: UnsubscribeRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        if let Ok(mut set) = self.subscriptions.lock() {
            set.remove(&request.uri);
        }
        Ok(())
    }

    async fn list_prompts(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, McpError> {
        let mut prompts = catalog::prompts();
        if TOGGLED.load(Ordering::Relaxed) {
            prompts.push(catalog::toggled_prompt());
        }
        Ok(ListPromptsResult::with_all_items(prompts))
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, McpError> {
        let args = request.arguments.as_ref();
        let messages = match request.name.as_str() {
            "test_simple_prompt" => vec![PromptMessage::new_text(
                Role::User,
                "This is a simple prompt for testing.",
            )],
            "test_prompt_with_arguments" => {
                let arg1 = string_arg(args, "arg1")?;
                let arg2 = string_arg(args, "arg2")?;
                vec![PromptMessage::new_text(
                    Role::User,
                    format!("Prompt with arguments: arg1='{arg1}', arg2='{arg2}'"),
                )]
            }
            "test_prompt_with_embedded_resource" => {
                let uri = string_arg(args, "resourceUri")?;
                vec![
                    PromptMessage::new(
                        Role::User,
                        ContentBlock::resource(ResourceContents::text(
                            "Embedded resource content for testing.",
                            uri,
                        )),
                    ),
                    PromptMessage::new_text(
                        Role::User,
                        "Please process the embedded resource above.",
                    ),
                ]
            }
            "test_prompt_with_image" => vec![
                PromptMessage::new(
                    Role::User,
                    ContentBlock::image(catalog::TEST_IMAGE_PNG_BASE64, "image/png"),
                ),
                PromptMessage::new_text(Role::User, "Please analyze the image above."),
            ],
            catalog::INPUT_REQUIRED_PROMPT if modern::speaks_mrtr(&context) => {
                return modern::context_prompt_natively(&request);
            }
            catalog::INPUT_REQUIRED_PROMPT => legacy::context_prompt(&context).await?,
            other => {
                return Err(McpError::invalid_params(
                    format!("Unknown prompt: {other}"),
                    None,
                ));
            }
        };
        Ok(GetPromptResult::new(messages).into())
    }

    async fn complete(
        &self,
        request: CompleteRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<CompleteResult, McpError> {
        let argument = &request.argument;
        let completion = match &request.r#ref {
            Reference::Prompt(prompt)
                if prompt.name == "test_prompt_with_arguments"
                    && (argument.name == "arg1" || argument.name == "arg2") =>
            {
                completions(catalog::PROMPT_ARG_COMPLETIONS, &argument.value)
            }
            Reference::Resource(resource)
                if resource.uri == catalog::TEMPLATE_URI && argument.name == "id" =>
            {
                completions(catalog::TEMPLATE_ID_COMPLETIONS, &argument.value)
            }
            _ => completions(&[], ""),
        };
        Ok(CompleteResult::new(completion))
    }

    async fn set_level(
        &self,
        request: SetLevelRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        self.log_level
            .store(level_rank(request.level), Ordering::Relaxed);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_ids() {
        assert_eq!(template_id("test://template/123/data"), Some("123"));
        assert_eq!(template_id("test://template//data"), None);
        assert_eq!(template_id("test://template/a/b/data"), None);
        assert_eq!(template_id("test://static-text"), None);
    }

    #[test]
    fn completion_filters_by_prefix() {
        assert_eq!(
            completions(catalog::PROMPT_ARG_COMPLETIONS, "par").values,
            ["paris", "park", "party"]
        );
        assert!(
            completions(catalog::PROMPT_ARG_COMPLETIONS, "zzz")
                .values
                .is_empty()
        );
    }
}
