//! Resource URIs two servers both offer: without `resource_uris =
//! "namespaced"` the first server keeps the URI and the log names both
//! servers and the option; with it, both stay reachable under `NAME+URI`,
//! and reads (exact and by template), subscriptions, completions and the URIs
//! inside results are mapped between the client's and the server's form.
//! Two real fixture processes offering the same URIs.

#![allow(clippy::unwrap_used)] // a test: a panic is the failure report

use std::time::Duration;

use crate::common::client::Client;
use crate::common::*;
use serde_json::{Value, json};

fn uris(result: &Value, list: &str, key: &str) -> Vec<String> {
    result[list]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r[key].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_uri_two_servers_offer_is_kept_by_the_first_and_the_clash_is_logged() {
    let config = format!(
        "{}{}{}",
        fixture_server("alpha", ""),
        fixture_server("beta", ""),
        fixture_server("gamma", "")
    );
    let gw = Gateway::start("resource-clash", &config);
    gw.wait_ready(Duration::from_secs(30));
    let mut c = Client::new(&gw);
    c.initialize().await;
    let r = c.request("resources/list", json!({})).await;
    let listed = uris(r.result(), "resources", "uri");
    assert_eq!(
        listed.iter().filter(|u| *u == "test://static-text").count(),
        1,
        "{listed:?}"
    );
    let templates = uris(
        c.request("resources/templates/list", json!({}))
            .await
            .result(),
        "resourceTemplates",
        "uriTemplate",
    );
    assert_eq!(templates, ["test://template/{id}/data"]);
    // Logged once the first discovery has ended (the tier counts come right
    // after), and once only, however many upstreams came up.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !gw.stderr().contains(" exposes ") {
        assert!(std::time::Instant::now() < deadline, "{}", gw.stderr());
        std::thread::sleep(Duration::from_millis(20));
    }
    let log = gw.stderr();
    let clash: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("\"test://static-text\" is offered by both 'alpha' and 'beta'"))
        .collect();
    assert_eq!(clash.len(), 1, "{log}");
    assert!(
        clash[0].contains("WARN")
            && clash[0].contains("'alpha' keeps it")
            && clash[0].contains("set resource_uris = \"namespaced\" on 'beta'"),
        "{log}"
    );
    assert_eq!(
        log.matches("resource template \"test://template/{id}/data\" is offered by both")
            .count(),
        2,
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespaced_resource_uris_keep_both_servers_reachable() {
    let config = format!(
        "{}{}",
        fixture_server("alpha", ""),
        fixture_server("Beta_2", "resource_uris = \"namespaced\"")
    );
    let gw = Gateway::start("resource-ns", &config);
    gw.wait_ready(Duration::from_secs(30));
    assert!(
        !gw.stderr().contains("is offered by both"),
        "{}",
        gw.stderr()
    );
    let mut c = Client::new(&gw);
    c.initialize().await;

    let listed = uris(
        c.request("resources/list", json!({})).await.result(),
        "resources",
        "uri",
    );
    assert!(
        listed.contains(&"test://static-text".to_owned()),
        "{listed:?}"
    );
    assert!(
        listed.contains(&"beta-2+test://static-text".to_owned()),
        "{listed:?}"
    );
    let templates = uris(
        c.request("resources/templates/list", json!({}))
            .await
            .result(),
        "resourceTemplates",
        "uriTemplate",
    );
    assert!(
        templates.contains(&"test://template/{id}/data".to_owned())
            && templates.contains(&"beta-2+test://template/{id}/data".to_owned()),
        "{templates:?}"
    );

    // Both servers answer their own read; the content's URI reads as the client asked.
    for uri in ["test://static-text", "beta-2+test://static-text"] {
        let r = c.request("resources/read", json!({"uri": uri})).await;
        let content = &r.result()["contents"][0];
        assert_eq!(content["uri"], uri, "{}", r.body);
        assert!(
            content["text"].as_str().unwrap().contains("static"),
            "{}",
            r.body
        );
    }
    // By template: the namespaced form routes to Beta_2 with its own URI.
    let r = c
        .request(
            "resources/read",
            json!({"uri": "beta-2+test://template/7/data"}),
        )
        .await;
    let content = &r.result()["contents"][0];
    assert_eq!(
        content["uri"], "beta-2+test://template/7/data",
        "{}",
        r.body
    );
    assert!(
        content["text"].as_str().unwrap().contains("Data for ID: 7"),
        "{}",
        r.body
    );
    // A namespaced prefix no server has is not found.
    let r = c
        .request("resources/read", json!({"uri": "alpha+test://static-text"}))
        .await;
    assert!(!r.has_result(), "{}", r.body);

    // An embedded resource in a tool result carries the namespaced URI; the
    // other server's stays as it was.
    let r = c.call("Beta_2__test_embedded_resource", json!({})).await;
    assert_eq!(
        r.result()["content"][0]["resource"]["uri"],
        "beta-2+test://embedded-resource",
        "{}",
        r.body
    );
    let r = c.call("alpha__test_embedded_resource", json!({})).await;
    assert_eq!(
        r.result()["content"][0]["resource"]["uri"],
        "test://embedded-resource",
        "{}",
        r.body
    );

    // Subscriptions and completions reach the server under its own URI
    // (the fixture refuses a template completion for any other URI).
    let r = c
        .request(
            "resources/subscribe",
            json!({"uri": "beta-2+test://watched-resource"}),
        )
        .await;
    assert!(r.has_result(), "{}", r.body);
    let r = c
        .request(
            "resources/unsubscribe",
            json!({"uri": "beta-2+test://watched-resource"}),
        )
        .await;
    assert!(r.has_result(), "{}", r.body);
    let r = c
        .request(
            "completion/complete",
            json!({"ref": {"type": "ref/resource", "uri": "beta-2+test://template/{id}/data"},
                   "argument": {"name": "id", "value": "1"}}),
        )
        .await;
    assert!(
        !r.result()["completion"]["values"]
            .as_array()
            .unwrap()
            .is_empty(),
        "{}",
        r.body
    );
}
