//! Tests of the catalog: namespacing, collisions, paging, tier views and
//! their cached pages, URI templates.

use super::*;
use serde_json::json;

#[test]
fn namespaced_resource_uris_keep_both_servers_and_map_back() {
    let a: Arc<str> = Arc::from("docs");
    let b: Arc<str> = Arc::from("My_Files");
    let lists = ServerLists {
        resources: vec![obj(json!({"uri": "file:///a", "name": "a"}))],
        templates: vec![obj(json!({"uriTemplate": "test://t/{id}", "name": "t"}))],
        ..Default::default()
    };
    let part = |server, resource_uris| Contribution {
        server,
        prefix: Prefix::Always,
        resource_uris,
        lists: &lists,
    };
    // Unchanged on both: the first keeps the URI, and the clash says what to set.
    let plain = Catalog::build(
        1,
        "__",
        &[
            part(&a, ResourceUris::Unchanged),
            part(&b, ResourceUris::Unchanged),
        ],
    );
    assert_eq!(plain.resources.len(), 1);
    assert_eq!(plain.templates.len(), 1);
    assert_eq!(plain.collisions.len(), 2, "{:?}", plain.collisions);
    assert!(
        plain.collisions[1].contains("resource template \"test://t/{id}\""),
        "{:?}",
        plain.collisions
    );
    let msg = &plain.collisions[0];
    assert!(
        msg.contains("'docs'") && msg.contains("'My_Files'") && msg.contains("resource_uris"),
        "{msg}"
    );
    // One namespaced: both reachable, each read maps back to the server's own URI.
    let c = Catalog::build(
        1,
        "__",
        &[
            part(&a, ResourceUris::Unchanged),
            part(&b, ResourceUris::Namespaced),
        ],
    );
    assert!(c.collisions.is_empty(), "{:?}", c.collisions);
    assert_eq!(c.resources.len(), 2);
    assert!(
        c.resources[1]
            .get()
            .contains("\"uri\":\"my-files+file:///a\"")
    );
    assert!(
        c.templates[1]
            .get()
            .contains("\"uriTemplate\":\"my-files+test://t/{id}\"")
    );
    let r = c.resource("my-files+file:///a").unwrap();
    assert_eq!(
        (r.server.as_ref(), r.name.as_str()),
        ("My_Files", "file:///a")
    );
    let r = c.resource("file:///a").unwrap();
    assert_eq!((r.server.as_ref(), r.name.as_str()), ("docs", "file:///a"));
    let r = c.resource("my-files+test://t/7").unwrap();
    assert_eq!(
        (r.server.as_ref(), r.name.as_str()),
        ("My_Files", "test://t/7")
    );
    let r = c.resource("test://t/7").unwrap();
    assert_eq!((r.server.as_ref(), r.name.as_str()), ("docs", "test://t/7"));
    assert!(c.resource("docs+file:///a").is_none());
    assert_eq!(c.resource_namespace_of("My_Files"), Some("my-files+"));
    assert_eq!(c.resource_namespace_of("docs"), None);
}

fn obj(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap()
}

#[test]
fn namespacing_routes_and_collisions_are_reported() {
    let a: Arc<str> = Arc::from("a");
    let b: Arc<str> = Arc::from("b");
    let la = ServerLists {
        tools: vec![obj(
            json!({"name": "echo", "inputSchema": {"type": "object"}, "x-extra": 1}),
        )],
        resources: vec![obj(json!({"uri": "file:///a", "name": "a"}))],
        templates: vec![obj(
            json!({"uriTemplate": "test://template/{id}/data", "name": "t"}),
        )],
        ..Default::default()
    };
    let lb = ServerLists {
        tools: vec![
            obj(json!({"name": "echo"})),
            obj(json!({"name": "a__echo"})),
        ],
        resources: vec![obj(json!({"uri": "file:///a", "name": "dup"}))],
        ..Default::default()
    };
    let c = Catalog::build(
        1,
        "__",
        &[
            Contribution {
                server: &a,
                prefix: Prefix::Always,
                resource_uris: ResourceUris::Unchanged,
                lists: &la,
            },
            Contribution {
                server: &b,
                prefix: Prefix::Never,
                resource_uris: ResourceUris::Unchanged,
                lists: &lb,
            },
        ],
    );
    assert_eq!(c.tool("a__echo").unwrap().server.as_ref(), "a");
    assert_eq!(c.tool("a__echo").unwrap().name, "echo");
    assert_eq!(c.tool("echo").unwrap().server.as_ref(), "b");
    assert_eq!(c.collisions.len(), 2, "{:?}", c.collisions);
    assert!(
        c.tools[0].get().contains("\"x-extra\":1"),
        "unknown fields pass through"
    );
    assert_eq!(c.resource("file:///a").unwrap().server.as_ref(), "a");
    assert_eq!(
        c.resource("test://template/42/data")
            .unwrap()
            .server
            .as_ref(),
        "a"
    );
    assert!(c.resource("test://template/4/2/data").is_none());
    assert!(c.resource("nope://x").is_none());
}

/// Every tool name, following cursors through pages of two.
fn walk_tools(c: &Catalog, view: Option<&View>) -> Vec<String> {
    let mut cursor: Option<String> = None;
    let mut seen = Vec::new();
    loop {
        let raw = c.page(ListKind::Tools, cursor.as_deref(), 2, view).unwrap();
        let page: Value = serde_json::from_str(raw.get()).unwrap();
        for t in page["tools"].as_array().unwrap() {
            seen.push(t["name"].as_str().unwrap().to_owned());
        }
        match page.get("nextCursor") {
            Some(n) => cursor = Some(n.as_str().unwrap().to_owned()),
            None => return seen,
        }
    }
}

#[test]
fn pages_follow_cursors_to_the_end() {
    let s: Arc<str> = Arc::from("s");
    let l = ServerLists {
        tools: (0..5)
            .map(|i| obj(json!({"name": format!("t{i}")})))
            .collect(),
        ..Default::default()
    };
    let c = Catalog::build(
        1,
        "__",
        &[Contribution {
            server: &s,
            prefix: Prefix::Always,
            resource_uris: ResourceUris::Unchanged,
            lists: &l,
        }],
    );
    assert_eq!(
        walk_tools(&c, None),
        ["s__t0", "s__t1", "s__t2", "s__t3", "s__t4"]
    );
    assert!(c.page(ListKind::Tools, Some("bogus"), 2, None).is_err());
}

#[test]
fn a_tier_view_pages_only_what_it_may_see() {
    let s: Arc<str> = Arc::from("s");
    let l = ServerLists {
        tools: (0..6)
            .map(|i| obj(json!({"name": format!("t{i}")})))
            .collect(),
        prompts: vec![obj(json!({"name": "p"}))],
        ..Default::default()
    };
    let mut c = Catalog::build(
        1,
        "__",
        &[Contribution {
            server: &s,
            prefix: Prefix::Always,
            resource_uris: ResourceUris::Unchanged,
            lists: &l,
        }],
    );
    let mut tier = Tier::unrestricted();
    tier.name = "odd".into();
    tier.tools = Rules {
        allow: vec!["s__t*".into()],
        deny: vec!["s__t0".into(), "s__t2".into(), "s__t4".into()],
    };
    tier.prompts = Rules::default();
    c.index_tiers([&tier]);
    let view = c.view("odd");
    assert!(view.is_some());
    assert_eq!(walk_tools(&c, view), ["s__t1", "s__t3", "s__t5"]);
    let prompts: Value =
        serde_json::from_str(c.page(ListKind::Prompts, None, 10, view).unwrap().get()).unwrap();
    assert_eq!(prompts["prompts"], json!([]));
}

#[test]
fn tier_pages_are_built_once_per_catalog_in_each_shape() {
    let s: Arc<str> = Arc::from("s");
    let l = ServerLists {
        tools: (0..5)
            .map(|i| obj(json!({"name": format!("t{i}")})))
            .collect(),
        ..Default::default()
    };
    let mut c = Catalog::build(
        1,
        "__",
        &[Contribution {
            server: &s,
            prefix: Prefix::Always,
            resource_uris: ResourceUris::Unchanged,
            lists: &l,
        }],
    );
    let mut tier = Tier::unrestricted();
    tier.name = "all".into();
    c.index_tiers([&tier]);
    let plain = c
        .tier_page(ListKind::Tools, None, 2, "all", PageShape::Plain)
        .unwrap();
    let again = c
        .tier_page(ListKind::Tools, None, 2, "all", PageShape::Plain)
        .unwrap();
    assert!(Arc::ptr_eq(&plain, &again), "served from memory");
    let v: Value = serde_json::from_str(plain.get()).unwrap();
    assert_eq!(v["tools"].as_array().map(Vec::len), Some(2));
    assert_eq!(v["nextCursor"], "mcpgate:2");
    assert!(v.get("resultType").is_none(), "{v}");
    // The 2026-07-28 shape carries resultType and the caching hints.
    let modern = c
        .tier_page(
            ListKind::Tools,
            Some("mcpgate:4"),
            2,
            "all",
            PageShape::Modern,
        )
        .unwrap();
    let m: Value = serde_json::from_str(modern.get()).unwrap();
    assert_eq!(m["resultType"], "complete");
    assert_eq!(m["ttlMs"], 0);
    assert_eq!(m["cacheScope"], "private");
    assert_eq!(m["tools"], json!([{"name": "s__t4"}]));
    assert!(m.get("nextCursor").is_none(), "{m}");
    // A start the gateway never hands out is built, not kept.
    let odd = c
        .tier_page(
            ListKind::Tools,
            Some("mcpgate:1"),
            2,
            "all",
            PageShape::Plain,
        )
        .unwrap();
    let odd_again = c
        .tier_page(
            ListKind::Tools,
            Some("mcpgate:1"),
            2,
            "all",
            PageShape::Plain,
        )
        .unwrap();
    assert!(!Arc::ptr_eq(&odd, &odd_again));
    assert_eq!(c.pages.lock().unwrap().len(), 2);
    // An unknown tier sees nothing; new views drop the kept pages.
    let none: Value = serde_json::from_str(
        c.tier_page(ListKind::Tools, None, 2, "nobody", PageShape::Plain)
            .unwrap()
            .get(),
    )
    .unwrap();
    assert_eq!(none["tools"], json!([]));
    c.index_tiers([&tier]);
    assert!(c.pages.lock().unwrap().is_empty());
    assert!(
        c.tier_page(ListKind::Tools, Some("bogus"), 2, "all", PageShape::Plain)
            .is_err()
    );
}

#[test]
fn a_tier_sees_the_servers_behind_what_it_sees() {
    let (a, b, c, d): (Arc<str>, Arc<str>, Arc<str>, Arc<str>) = (
        Arc::from("a"),
        Arc::from("b"),
        Arc::from("c"),
        Arc::from("d"),
    );
    let tools = ServerLists {
        tools: vec![obj(json!({"name": "echo"}))],
        ..Default::default()
    };
    let prompts = ServerLists {
        prompts: vec![obj(json!({"name": "p"}))],
        ..Default::default()
    };
    let resources = ServerLists {
        resources: vec![obj(json!({"uri": "file:///r"}))],
        ..Default::default()
    };
    let templates = ServerLists {
        templates: vec![obj(json!({"uriTemplate": "t://{id}"}))],
        ..Default::default()
    };
    let part = |server, lists| Contribution {
        server,
        prefix: Prefix::Always,
        resource_uris: ResourceUris::Unchanged,
        lists,
    };
    let mut cat = Catalog::build(
        1,
        "__",
        &[
            part(&a, &tools),
            part(&b, &prompts),
            part(&c, &resources),
            part(&d, &templates),
        ],
    );
    let mut narrow = Tier::unrestricted();
    narrow.name = "narrow".into();
    narrow.tools = Rules::default();
    narrow.prompts = Rules {
        allow: vec!["*".into()],
        deny: Vec::new(),
    };
    narrow.resources = Rules {
        allow: vec!["t://*".into()],
        deny: Vec::new(),
    };
    let all = Tier::unrestricted();
    cat.index_tiers([&narrow, &all]);
    let seen = |tier: &str| -> Vec<&str> {
        ["a", "b", "c", "d"]
            .into_iter()
            .filter(|s| cat.tier_sees_server(tier, s))
            .collect()
    };
    assert_eq!(seen("narrow"), ["b", "d"]);
    assert_eq!(seen(&all.name), ["a", "b", "c", "d"]);
    assert_eq!(seen("not indexed"), ["a", "b", "c", "d"]);
}

#[test]
fn templates() {
    assert!(UriTemplate::parse("file:///{+path}").matches("file:///a/b/c"));
    assert!(!UriTemplate::parse("x://{a}").matches("x://a/b"));
    assert!(
        UriTemplate::parse("demo://resource/dynamic/text/{resourceId}")
            .matches("demo://resource/dynamic/text/7")
    );
    assert!(UriTemplate::parse("s://q{?x,y}").matches("s://q?x=1"));
    assert!(UriTemplate::parse("s://q{?x,y}").matches("s://q"));
    assert!(!UriTemplate::parse("s://{a}/{b}").matches("s://a/"));
    assert!(UriTemplate::parse("s://{a}/{b}").matches("s://é/ü"));
    assert!(UriTemplate::parse("s://{a}{b}.txt").matches("s://ab.txt"));
    assert!(!UriTemplate::parse("s://{a}{b}.txt").matches("s://a.txt"));
}

/// The matcher as it was: tries every split point of every variable.
/// Exponential in adjacent variables, but obviously right; the new walk
/// must agree with it on every small case.
fn backtracking(parts: &[Part], s: &str) -> bool {
    let Some((first, rest)) = parts.split_first() else {
        return s.is_empty();
    };
    match first {
        Part::Lit(l) => s
            .strip_prefix(l.as_str())
            .is_some_and(|r| backtracking(rest, r)),
        Part::Query => {
            s.is_empty() || (s.starts_with('?') && rest.is_empty()) || backtracking(rest, s)
        }
        Part::Var { reserved } => {
            let limit = if *reserved {
                s.len()
            } else {
                s.find(['/', '?', '#']).unwrap_or(s.len())
            };
            (1..=limit)
                .rev()
                .any(|n| s.is_char_boundary(n) && backtracking(rest, &s[n..]))
        }
    }
}

#[test]
fn template_walk_agrees_with_backtracking() {
    // A fixed pseudo-random sequence (xorshift), so a failure reproduces.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = |m: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % m
    };
    let pieces = ["{a}", "{+b}", "{#c}", "{?q}", "/", "a", "ab", "?", "é"];
    let alphabet = ["a", "b", "/", "?", "#", "é"];
    let mut matched = 0;
    for _ in 0..20_000 {
        let tpl: String = (0..1 + next(5))
            .map(|_| pieces[next(pieces.len() as u64) as usize])
            .collect();
        let uri: String = (0..next(9))
            .map(|_| alphabet[next(alphabet.len() as u64) as usize])
            .collect();
        let t = UriTemplate::parse(&tpl);
        let want = backtracking(&t.parts, &uri);
        assert_eq!(t.matches(&uri), want, "template {tpl:?}, uri {uri:?}");
        matched += usize::from(want);
    }
    assert!(matched > 1_000, "the cases exercise matches too: {matched}");
}

#[test]
fn regression_template_matching_does_not_backtrack_on_a_huge_uri() {
    // Adjacent variables and a literal that never comes: backtracking
    // tried every way to split the URI among the variables.
    let t = UriTemplate::parse("x://{+a}{+b}{c}{+d}{e}/z");
    let parts = t.parts.len() as u64;

    // 4 MiB from a client: over the cap, refused without looking.
    let huge = format!("x://{}", "a".repeat(4 << 20));
    assert_eq!(t.match_counting(&huge), (false, 0));

    // Just under the cap: one linear pass per part.
    let long = format!("x://{}", "a".repeat(MAX_TEMPLATE_URI - 4));
    let (hit, work) = t.match_counting(&long);
    assert!(!hit);
    let bound = 3 * parts * (long.len() as u64 + 1);
    assert!(work <= bound, "work {work} > bound {bound}");
    // The same shape that does match is found, at the same cost.
    let fits = format!("x://{}/z", "a".repeat(MAX_TEMPLATE_URI - 6));
    let (hit, work) = t.match_counting(&fits);
    assert!(hit);
    assert!(work <= bound, "work {work} > bound {bound}");
}
