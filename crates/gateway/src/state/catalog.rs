//! The merged view of every ready upstream: tools, prompts, resources and
//! resource templates, and the routing maps from an exposed name or URI back to
//! the server that owns it. Tools and prompts are namespaced `SERVER<sep>NAME`
//! unless the server has `prefix = "never"`. Resource URIs are left unchanged
//! by default so that links inside content keep working; a server with
//! `resource_uris = "namespaced"` has its URIs and templates exposed as
//! `NAME+URI` (its name put before the scheme), and `resource` maps an
//! exposed URI back to the server's own. URIs are routed by exact URI first,
//! then by template. A name or URI two servers both claim is reported in
//! `collisions` (and the log); the first server in config order keeps it. The catalog is
//! immutable: a change builds a new one, swapped in whole. So each tier's
//! list pages are serialised once per catalog, in each era's shape, and then
//! served as bytes (`tier_page`): a 5,000-tool list is a megabyte.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use mcpgate_proto::jsonrpc::{push_json_str, to_raw};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::config::{Prefix, ResourceUris, Rules, Tier};

/// What one server offered at its last listing.
#[derive(Debug, Default, Clone)]
pub struct ServerLists {
    pub tools: Vec<Map<String, Value>>,
    pub prompts: Vec<Map<String, Value>>,
    pub resources: Vec<Map<String, Value>>,
    pub templates: Vec<Map<String, Value>>,
}

/// One server's contribution, in config order.
pub struct Contribution<'a> {
    pub server: &'a Arc<str>,
    pub prefix: Prefix,
    pub resource_uris: ResourceUris,
    pub lists: &'a ServerLists,
}

/// Where an exposed name leads: the server, and its own name for the tool or
/// prompt (for a resource, its own URI).
#[derive(Debug, Clone)]
pub struct Route {
    pub server: Arc<str>,
    pub name: String,
}

/// The scheme prefix a server's namespaced resource URIs carry: its name in
/// lower case (URI schemes are case-insensitive, and clients lower them),
/// `_` as `-` (not allowed in a scheme), then `+`.
pub(crate) fn resource_namespace(server: &str) -> String {
    let mut ns: String = server
        .chars()
        .map(|c| match c {
            '_' => '-',
            c => c.to_ascii_lowercase(),
        })
        .collect();
    ns.push('+');
    ns
}

#[derive(Default)]
pub struct Catalog {
    pub generation: u64,
    pub tools: Vec<Box<RawValue>>,
    pub prompts: Vec<Box<RawValue>>,
    pub resources: Vec<Box<RawValue>>,
    pub templates: Vec<Box<RawValue>>,
    tool_routes: HashMap<String, Route>,
    prompt_routes: HashMap<String, Route>,
    resource_routes: HashMap<String, Route>,
    template_routes: Vec<(UriTemplate, Arc<str>)>,
    /// Servers with namespaced resource URIs → their prefix (`resource_namespace`).
    resource_ns: HashMap<Arc<str>, String>,
    pub collisions: Vec<String>,
    pub tool_counts: HashMap<Arc<str>, usize>,
    /// Names last offered by servers that are down now: calling one says the
    /// server is unavailable rather than that the name does not exist.
    offline: HashMap<String, Arc<str>>,
    /// Per tier: which entries of each list it may see (positions into the lists above).
    views: HashMap<String, View>,
    /// Pages already serialised, per (list, tier, first entry, page size, shape).
    pages: Mutex<HashMap<PageKey, Arc<RawValue>>>,
    /// Tools whose arguments are mirrored in `Mcp-Param-*` headers (2026-07-28
    /// `x-mcp-header`): exposed name → (argument, header suffix).
    tool_headers: HashMap<String, Vec<(String, String)>>,
}

/// What one tier sees: positions into the catalog's lists, and the servers
/// behind them.
#[derive(Debug, Default)]
pub struct View {
    pub tools: Vec<u32>,
    pub prompts: Vec<u32>,
    pub resources: Vec<u32>,
    pub templates: Vec<u32>,
    /// Servers offering at least one thing the tier sees (sorted): the only
    /// ones its `logging/setLevel` may reach and whose logs it may read.
    pub servers: Vec<Arc<str>>,
}

/// The shape a list page is served in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PageShape {
    /// As session-based clients get it.
    Plain,
    /// Decorated for 2026-07-28 clients: `resultType` and the caching hints.
    Modern,
}

impl PageShape {
    /// What goes before the list's own members.
    fn prefix(self) -> &'static str {
        match self {
            PageShape::Plain => "",
            PageShape::Modern => {
                "\"resultType\":\"complete\",\"ttlMs\":0,\"cacheScope\":\"private\","
            }
        }
    }
}

type PageKey = (ListKind, String, usize, usize, PageShape);

/// Which list a `*/list` request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ListKind {
    Tools,
    Prompts,
    Resources,
    Templates,
}

impl ListKind {
    fn key(self) -> &'static str {
        match self {
            ListKind::Tools => "tools",
            ListKind::Prompts => "prompts",
            ListKind::Resources => "resources",
            ListKind::Templates => "resourceTemplates",
        }
    }
}

impl Catalog {
    pub fn build(generation: u64, separator: &str, parts: &[Contribution<'_>]) -> Catalog {
        let mut c = Catalog {
            generation,
            ..Catalog::default()
        };
        for part in parts {
            let exposed = |name: &str| match part.prefix {
                Prefix::Always => format!("{}{separator}{name}", part.server),
                Prefix::Never => name.to_owned(),
            };
            let count = add_named(
                "tool",
                &part.lists.tools,
                &exposed,
                part.server,
                &mut c.tool_routes,
                &mut c.tools,
                &mut c.collisions,
            );
            c.tool_counts.insert(part.server.clone(), count);
            add_named(
                "prompt",
                &part.lists.prompts,
                &exposed,
                part.server,
                &mut c.prompt_routes,
                &mut c.prompts,
                &mut c.collisions,
            );
            let ns = match part.resource_uris {
                ResourceUris::Namespaced => {
                    let ns = resource_namespace(part.server);
                    c.resource_ns.insert(part.server.clone(), ns.clone());
                    Some(ns)
                }
                ResourceUris::Unchanged => None,
            };
            let expose = |uri: &str| match &ns {
                Some(ns) => format!("{ns}{uri}"),
                None => uri.to_owned(),
            };
            for res in &part.lists.resources {
                let Some(uri) = res.get("uri").and_then(Value::as_str) else {
                    continue;
                };
                let public = expose(uri);
                if let Some(prev) = c.resource_routes.get(&public) {
                    let hint = if ns.is_some() {
                        String::new()
                    } else {
                        format!(
                            "; set resource_uris = \"namespaced\" on '{}' (or at the top) to expose both",
                            part.server
                        )
                    };
                    c.collisions.push(format!(
                        "resource {public:?} is offered by both '{}' and '{}'; '{}' keeps it{hint}",
                        prev.server, part.server, prev.server
                    ));
                    continue;
                }
                c.resource_routes.insert(
                    public.clone(),
                    Route {
                        server: part.server.clone(),
                        name: uri.to_owned(),
                    },
                );
                c.resources.push(match ns {
                    Some(_) => renamed(res, "uri", &public),
                    None => to_raw(res),
                });
            }
            for t in &part.lists.templates {
                let Some(tpl) = t.get("uriTemplate").and_then(Value::as_str) else {
                    continue;
                };
                let public = expose(tpl);
                if let Some((_, prev)) = c.template_routes.iter().find(|(t, _)| t.source == public)
                {
                    c.collisions.push(format!(
                        "resource template {public:?} is offered by both '{prev}' and '{}'; '{prev}' keeps it{}",
                        part.server,
                        if ns.is_some() {
                            String::new()
                        } else {
                            format!(
                                "; set resource_uris = \"namespaced\" on '{}' (or at the top) to expose both",
                                part.server
                            )
                        }
                    ));
                    continue;
                }
                c.template_routes
                    .push((UriTemplate::parse(&public), part.server.clone()));
                c.templates.push(match ns {
                    Some(_) => renamed(t, "uriTemplate", &public),
                    None => to_raw(t),
                });
            }
        }
        for t in c.tools.iter().filter(|t| t.get().contains("x-mcp-header")) {
            let name = serde_json::from_str::<Value>(t.get())
                .ok()
                .and_then(|v| v.get("name")?.as_str().map(str::to_owned));
            let params = mcpgate_proto::modern::header_params(t);
            if let (Some(name), false) = (name, params.is_empty()) {
                c.tool_headers.insert(name, params);
            }
        }
        c
    }

    /// Whether any tool maps arguments to `Mcp-Param-*` headers.
    pub fn has_header_params(&self) -> bool {
        !self.tool_headers.is_empty()
    }

    /// The exposed name of `server`'s tool `name`, when it declares header-mapped arguments.
    pub fn exposed_tool(&self, server: &str, name: &str) -> Option<String> {
        self.tool_headers
            .keys()
            .find(|exposed| {
                self.tool_routes
                    .get(*exposed)
                    .is_some_and(|r| r.name == name && r.server.as_ref() == server)
            })
            .cloned()
    }

    /// A tool's header-mapped arguments: (argument, `Mcp-Param-` suffix).
    pub fn header_params(&self, tool: &str) -> &[(String, String)] {
        self.tool_headers.get(tool).map_or(&[], Vec::as_slice)
    }

    /// Records what a server that is down offered when it was last up.
    pub fn add_offline(&mut self, separator: &str, part: &Contribution<'_>) {
        let exposed = |name: &str| match part.prefix {
            Prefix::Always => format!("{}{separator}{name}", part.server),
            Prefix::Never => name.to_owned(),
        };
        for entry in part.lists.tools.iter().chain(&part.lists.prompts) {
            if let Some(name) = entry.get("name").and_then(Value::as_str) {
                let public = exposed(name);
                if !self.tool_routes.contains_key(&public)
                    && !self.prompt_routes.contains_key(&public)
                {
                    self.offline.insert(public, part.server.clone());
                }
            }
        }
    }

    /// The down server that last offered this tool or prompt name.
    pub fn offline_owner(&self, name: &str) -> Option<&Arc<str>> {
        self.offline.get(name)
    }

    pub fn tool(&self, name: &str) -> Option<&Route> {
        self.tool_routes.get(name)
    }

    pub fn prompt(&self, name: &str) -> Option<&Route> {
        self.prompt_routes.get(name)
    }

    /// The server owning an exposed resource URI (listed exactly, or matching
    /// a template), and the URI as that server knows it.
    pub fn resource(&self, uri: &str) -> Option<Route> {
        if let Some(r) = self.resource_routes.get(uri) {
            return Some(r.clone());
        }
        let (_, server) = self.template_routes.iter().find(|(t, _)| t.matches(uri))?;
        let own = match self.resource_ns.get(server) {
            // The template starts with the prefix, so a match does too.
            Some(ns) => uri.strip_prefix(ns.as_str())?,
            None => uri,
        };
        Some(Route {
            server: server.clone(),
            name: own.to_owned(),
        })
    }

    /// [`Catalog::resource`] for a URI that `tier` may read; a URI the tier
    /// may not read is answered exactly like one that does not exist.
    pub(crate) fn resource_for(&self, uri: &str, tier: &Tier) -> Option<Route> {
        self.resource(uri).filter(|_| tier.resources.allows(uri))
    }

    /// The prefix `server`'s resource URIs are exposed under, if namespaced.
    pub(crate) fn resource_namespace_of(&self, server: &str) -> Option<&str> {
        self.resource_ns.get(server).map(String::as_str)
    }

    /// Computes what each tier sees ([`Catalog::log_tiers`] reports it).
    pub fn index_tiers<'t>(&mut self, tiers: impl IntoIterator<Item = &'t Tier>) {
        // The views change: pages built from the old ones go.
        self.pages
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        fn pick(items: &[Box<RawValue>], key: &str, rules: &Rules) -> Vec<u32> {
            #[derive(serde::Deserialize)]
            struct Named<'a> {
                #[serde(borrow, default)]
                name: Option<std::borrow::Cow<'a, str>>,
                #[serde(borrow, default)]
                uri: Option<std::borrow::Cow<'a, str>>,
                #[serde(borrow, default, rename = "uriTemplate")]
                template: Option<std::borrow::Cow<'a, str>>,
            }
            (0u32..)
                .zip(items)
                .filter(|(_, item)| {
                    serde_json::from_str::<Named<'_>>(item.get()).is_ok_and(|n| {
                        let v = match key {
                            "name" => n.name,
                            "uri" => n.uri,
                            _ => n.template,
                        };
                        v.is_some_and(|v| rules.allows(&v))
                    })
                })
                .map(|(i, _)| i)
                .collect()
        }
        for tier in tiers {
            let mut view = View {
                tools: pick(&self.tools, "name", &tier.tools),
                prompts: pick(&self.prompts, "name", &tier.prompts),
                resources: pick(&self.resources, "uri", &tier.resources),
                templates: pick(&self.templates, "template", &tier.resources),
                servers: Vec::new(),
            };
            view.servers = self.servers_behind(tier, &view.templates);
            self.views.insert(tier.name.clone(), view);
        }
    }

    /// Logs the names and URIs two servers both claim: with `previous`, only
    /// those it did not have. Called, like [`Catalog::log_tiers`], once the
    /// first discovery has ended, so a clash is logged once rather than at
    /// every upstream that comes up.
    pub fn log_collisions(&self, previous: Option<&Catalog>) {
        for msg in &self.collisions {
            if previous.is_some_and(|p| p.collisions.contains(msg)) {
                continue;
            }
            tracing::warn!("name collision: {msg}");
        }
    }

    /// Logs what each tier sees, so that a tier exposing nothing is obvious
    /// at start-up rather than discovered by a user; with `previous`, only
    /// the tiers whose counts changed since it. Called once the first
    /// discovery has ended, not while upstreams are still starting.
    pub fn log_tiers(&self, previous: Option<&Catalog>) {
        let counts = |c: &Catalog, name: &str| {
            c.views.get(name).map(|v| {
                (
                    v.tools.len(),
                    v.prompts.len(),
                    v.resources.len(),
                    v.templates.len(),
                    c.tools.len(),
                )
            })
        };
        let mut names: Vec<&String> = self.views.keys().collect();
        names.sort();
        for name in names {
            let Some(now) = counts(self, name) else {
                continue;
            };
            if previous.is_some_and(|p| counts(p, name) == Some(now)) {
                continue;
            }
            let (tools, prompts, resources, templates, all_tools) = now;
            let msg = format!(
                "tier '{name}' exposes {tools} of {all_tools} tools, {prompts} of {} prompts, \
                 {resources} of {} resources, {templates} of {} resource templates",
                self.prompts.len(),
                self.resources.len(),
                self.templates.len(),
            );
            if tools == 0 && all_tools > 0 {
                tracing::warn!(
                    "{msg}; check its `tools` globs against the names in `mcpgate tools`"
                );
            } else {
                tracing::info!("{msg}");
            }
        }
    }

    /// The servers offering something `tier` sees (`templates`: the
    /// positions of the templates it sees, which `template_routes` shares).
    fn servers_behind(&self, tier: &Tier, templates: &[u32]) -> Vec<Arc<str>> {
        let named = |routes: &HashMap<String, Route>, rules: &Rules| -> Vec<Arc<str>> {
            routes
                .iter()
                .filter(|(name, _)| rules.allows(name))
                .map(|(_, r)| r.server.clone())
                .collect()
        };
        let mut servers = named(&self.tool_routes, &tier.tools);
        servers.extend(named(&self.prompt_routes, &tier.prompts));
        servers.extend(
            self.resource_routes
                .iter()
                .filter(|(uri, _)| tier.resources.allows(uri))
                .map(|(_, r)| r.server.clone()),
        );
        servers.extend(
            templates
                .iter()
                .filter_map(|i| self.template_routes.get(usize::try_from(*i).ok()?))
                .map(|(_, s)| s.clone()),
        );
        servers.sort();
        servers.dedup();
        servers
    }

    /// What a tier sees; `None` when the catalog was not indexed for it (everything).
    pub fn view(&self, tier: &str) -> Option<&View> {
        self.views.get(tier)
    }

    /// Whether `tier` sees anything `server` offers (a tier the catalog was
    /// not indexed for sees everything, as in `view`).
    pub(crate) fn tier_sees_server(&self, tier: &str, server: &str) -> bool {
        self.view(tier).is_none_or(|v| {
            v.servers
                .binary_search_by(|s| s.as_ref().cmp(server))
                .is_ok()
        })
    }

    /// One page of a merged list as a raw result object, with `nextCursor` when
    /// more remain; with a view, only the entries it includes.
    pub fn page(
        &self,
        kind: ListKind,
        cursor: Option<&str>,
        page_size: usize,
        view: Option<&View>,
    ) -> Result<Box<RawValue>, String> {
        self.build_page(kind, start_of(cursor)?, page_size, view, PageShape::Plain)
    }

    /// The page a tier sees, in `shape`, serialised once per catalog: pages
    /// starting where the gateway's own cursors point are kept; any other
    /// start is built each time (a client may send any cursor). A tier the
    /// catalog does not know sees nothing.
    pub fn tier_page(
        &self,
        kind: ListKind,
        cursor: Option<&str>,
        page_size: usize,
        tier: &str,
        shape: PageShape,
    ) -> Result<Arc<RawValue>, String> {
        let start = start_of(cursor)?;
        let empty = View::default();
        let view = self.views.get(tier).unwrap_or(&empty);
        if start % page_size.max(1) != 0 {
            return self
                .build_page(kind, start, page_size, Some(view), shape)
                .map(Arc::from);
        }
        let key = (kind, tier.to_owned(), start, page_size, shape);
        let pages = || self.pages.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(page) = pages().get(&key) {
            return Ok(page.clone());
        }
        // Built outside the lock; two first readers may both build it.
        let page: Arc<RawValue> =
            Arc::from(self.build_page(kind, start, page_size, Some(view), shape)?);
        pages().insert(key, page.clone());
        Ok(page)
    }

    fn build_page(
        &self,
        kind: ListKind,
        start: usize,
        page_size: usize,
        view: Option<&View>,
        shape: PageShape,
    ) -> Result<Box<RawValue>, String> {
        let (items, visible) = match kind {
            ListKind::Tools => (&self.tools, view.map(|v| &v.tools)),
            ListKind::Prompts => (&self.prompts, view.map(|v| &v.prompts)),
            ListKind::Resources => (&self.resources, view.map(|v| &v.resources)),
            ListKind::Templates => (&self.templates, view.map(|v| &v.templates)),
        };
        let len = visible.map_or(items.len(), Vec::len);
        let at = |i: usize| -> &RawValue {
            match visible {
                Some(v) => &items[v[i] as usize],
                None => &items[i],
            }
        };
        let start = start.min(len);
        let end = (start + page_size).min(len);
        let mut out =
            String::with_capacity(128 + (start..end).map(|i| at(i).get().len() + 1).sum::<usize>());
        out.push('{');
        out.push_str(shape.prefix());
        out.push('"');
        out.push_str(kind.key());
        out.push_str("\":[");
        for i in start..end {
            if i > start {
                out.push(',');
            }
            out.push_str(at(i).get());
        }
        out.push(']');
        if end < len {
            out.push_str(",\"nextCursor\":");
            push_json_str(&mut out, &encode_cursor(end));
        }
        out.push('}');
        RawValue::from_string(out).map_err(|e| e.to_string())
    }
}

/// Adds named entries (tools or prompts) under their exposed names; a name
/// already taken is reported as a collision and the earlier server keeps it.
/// Returns how many were added.
fn add_named(
    what: &str,
    entries: &[Map<String, Value>],
    exposed: &dyn Fn(&str) -> String,
    server: &Arc<str>,
    routes: &mut HashMap<String, Route>,
    out: &mut Vec<Box<RawValue>>,
    collisions: &mut Vec<String>,
) -> usize {
    let mut added = 0;
    for entry in entries {
        let Some(name) = entry.get("name").and_then(Value::as_str) else {
            continue;
        };
        let public = exposed(name);
        if let Some(prev) = routes.get(&public) {
            collisions.push(format!(
                "{what} {public:?} is offered by both '{}' and '{server}'; '{}' keeps it",
                prev.server, prev.server
            ));
            continue;
        }
        routes.insert(
            public.clone(),
            Route {
                server: server.clone(),
                name: name.to_owned(),
            },
        );
        out.push(renamed(entry, "name", &public));
        added += 1;
    }
    added
}

/// Where a page starts, from the client's cursor.
fn start_of(cursor: Option<&str>) -> Result<usize, String> {
    match cursor {
        None => Ok(0),
        Some(c) => decode_cursor(c).ok_or_else(|| format!("invalid cursor {c:?}")),
    }
}

fn encode_cursor(offset: usize) -> String {
    let mut s = String::from("mcpgate:");
    let _ = write!(s, "{offset}");
    s
}

fn decode_cursor(c: &str) -> Option<usize> {
    c.strip_prefix("mcpgate:")?.parse().ok()
}

fn renamed(entry: &Map<String, Value>, key: &str, name: &str) -> Box<RawValue> {
    let mut e = entry.clone();
    e.insert(key.to_owned(), Value::String(name.to_owned()));
    to_raw(&e)
}

/// An RFC 6570 template reduced to what routing needs: literal text and
/// variables; a `{+var}` or `{#var}` may span `/`, a plain `{var}` may not.
#[derive(Debug, Clone)]
pub(crate) struct UriTemplate {
    /// The template as written.
    source: String,
    parts: Vec<Part>,
}

#[derive(Debug, Clone)]
enum Part {
    Lit(String),
    Var { reserved: bool },
    Query,
}

/// The longest URI matched against templates. Longer ones match none: no
/// server names a resource by a URI this long, and the cap bounds the work a
/// client can ask for on every `resources/read` (see [`UriTemplate::matches`]).
pub(crate) const MAX_TEMPLATE_URI: usize = 64 * 1024;

impl UriTemplate {
    pub(crate) fn parse(t: &str) -> UriTemplate {
        let mut parts = Vec::new();
        let mut rest = t;
        while let Some(i) = rest.find('{') {
            if i > 0 {
                parts.push(Part::Lit(rest[..i].to_owned()));
            }
            let Some(end) = rest[i..].find('}') else {
                parts.push(Part::Lit(rest[i..].to_owned()));
                rest = "";
                break;
            };
            let expr = &rest[i + 1..i + end];
            parts.push(match expr.chars().next() {
                Some('?') | Some('&') => Part::Query,
                Some('+') | Some('#') => Part::Var { reserved: true },
                _ => Part::Var { reserved: false },
            });
            rest = &rest[i + end + 1..];
        }
        if !rest.is_empty() {
            parts.push(Part::Lit(rest.to_owned()));
        }
        UriTemplate {
            source: t.to_owned(),
            parts,
        }
    }

    /// Whether `uri` fits the template. The URI comes from a client, so this
    /// never backtracks: adjacent variables over a long URI once took time
    /// exponential in the number of variables.
    pub(crate) fn matches(&self, uri: &str) -> bool {
        self.match_counting(uri).0
    }

    /// Whether `uri` matches, and the work it took (offsets visited plus
    /// literal bytes compared). The walk keeps, after each part, the sorted
    /// set of offsets at which the parts so far can end, so it costs at most
    /// about (parts + literal bytes) × URI length, with the URI capped at
    /// [`MAX_TEMPLATE_URI`].
    fn match_counting(&self, uri: &str) -> (bool, u64) {
        if uri.len() > MAX_TEMPLATE_URI {
            return (false, 0);
        }
        let bytes = uri.as_bytes();
        let n = bytes.len();
        let mut work = 0u64;
        let mut at = vec![0usize];
        for (i, part) in self.parts.iter().enumerate() {
            let last = i + 1 == self.parts.len();
            let mut next = Vec::new();
            match part {
                Part::Lit(l) => {
                    for &off in &at {
                        work += 1 + l.len() as u64;
                        if bytes[off..].starts_with(l.as_bytes()) {
                            next.push(off + l.len());
                        }
                    }
                }
                Part::Query => {
                    // An optional query: it may match nothing, or (as the
                    // last part) everything from a `?` on.
                    for &off in &at {
                        work += 1;
                        if off == n || (last && bytes[off] == b'?') {
                            return (true, work);
                        }
                    }
                    next = at;
                }
                Part::Var { reserved } => {
                    // Each start `p` may end anywhere in (p, stop(p)]: the
                    // end of the URI, or for a plain variable the next `/`,
                    // `?` or `#`. Starts are sorted and stop(p) grows with
                    // p, so the union is one forward sweep.
                    let mut emitted = 0usize;
                    let mut sep = 0usize;
                    for &p in &at {
                        let stop = if *reserved {
                            n
                        } else {
                            sep = sep.max(p);
                            while sep < n && !matches!(bytes[sep], b'/' | b'?' | b'#') {
                                sep += 1;
                                work += 1;
                            }
                            sep
                        };
                        for q in (p + 1).max(emitted + 1)..=stop {
                            work += 1;
                            if uri.is_char_boundary(q) {
                                next.push(q);
                            }
                        }
                        emitted = emitted.max(stop);
                    }
                }
            }
            if next.is_empty() {
                return (false, work);
            }
            at = next;
        }
        (at.last() == Some(&n), work)
    }
}

#[cfg(test)]
#[path = "catalog_tests.rs"]
mod tests;
