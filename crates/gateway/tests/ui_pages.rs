//! The web page's forms and pages, in process (`router(app).oneshot`):
//! workflows created and edited with each error beside its field, version
//! history, the run form made from the params, a run refused with the
//! reason shown when runs cannot start; the usage page's date range and
//! the audit export for a tenant's session; the audit table's pages and
//! filters over real ledger rows.

use axum::http::StatusCode;

mod common;
use common::ui::Ui;

fn form(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| {
            format!(
                "{k}={}",
                form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>()
            )
        })
        .collect::<Vec<_>>()
        .join("&")
}

#[tokio::test]
async fn workflows_are_made_and_edited_in_forms_with_errors_by_field_and_history() {
    let ui = Ui::new("ui-wf").await;
    let cookie = ui.sign_in(&ui.tenant_key).await;
    let csrf = ui.csrf(&cookie).await;

    // No command for agent = command: the error sits by the command field.
    let a = ui
        .post(
            "/ui/workflows",
            Some(&cookie),
            &form(&[("csrf", &csrf), ("name", "greet"), ("agent", "command")]),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "the form again");
    assert!(a.body.contains("id=\"err-command\""), "{}", a.body);
    assert!(
        a.body
            .contains("aria-invalid=\"true\" aria-describedby=\"err-command\"")
    );
    // A bad name and bad params JSON are both named.
    let a = ui
        .post(
            "/ui/workflows",
            Some(&cookie),
            &form(&[
                ("csrf", &csrf),
                ("name", "9 bad"),
                ("agent", "command"),
                ("command", "true"),
                ("params", "{nope"),
            ]),
        )
        .await;
    assert!(a.body.contains("id=\"err-name\""), "{}", a.body);
    assert!(a.body.contains("id=\"err-params\""), "{}", a.body);
    assert!(
        a.body.contains("value=\"9 bad\""),
        "the form keeps what was typed"
    );

    // A good one is stored (version 1) and its page has the run form.
    let params = r#"{"who": {"required": true, "description": "whom to greet"}, "times": {"default": "2", "pattern": "[0-9]+"}}"#;
    let a = ui
        .post(
            "/ui/workflows",
            Some(&cookie),
            &form(&[
                ("csrf", &csrf),
                ("name", "greet"),
                ("agent", "command"),
                ("command", "sh\n-c\necho hi"),
                ("prompt", "greet {{who}} {{times}} times"),
                ("params", params),
                ("timeout", "30s"),
            ]),
        )
        .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
    let page = ui.get("/ui/workflows/greet", Some(&cookie)).await;
    assert_eq!(page.status, StatusCode::OK);
    let b = &page.body;
    assert!(
        b.contains("<label for=\"p-who\">who (required)</label>"),
        "{b}"
    );
    assert!(b.contains("name=\"p.who\""));
    assert!(
        b.contains("id=\"p-times\" name=\"p.times\" type=\"text\" value=\"2\""),
        "{b}"
    );
    assert!(b.contains("whom to greet"));
    assert!(b.contains("Version 1 ·"), "history: {b}");
    let stored = ui
        .app
        .store
        .workflow_history("greet")
        .await
        .expect("history");
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].tenant.as_deref(), Some("acme"));

    // An edit with a field error keeps version 1; a good edit makes version 2.
    let a = ui
        .post(
            "/ui/workflows/greet",
            Some(&cookie),
            &form(&[
                ("csrf", &csrf),
                ("agent", "command"),
                ("command", "sh\n-c\necho hi"),
                ("timeout", "soon"),
            ]),
        )
        .await;
    assert!(a.body.contains("id=\"err-timeout\""), "{}", a.body);
    let a = ui
        .post(
            "/ui/workflows/greet",
            Some(&cookie),
            &form(&[
                ("csrf", &csrf),
                ("agent", "command"),
                ("command", "sh\n-c\necho hello"),
                ("description", "second"),
                ("prompt", "greet {{who}}"),
                ("params", r#"{"who": {"required": true}}"#),
            ]),
        )
        .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
    let page = ui.get("/ui/workflows/greet", Some(&cookie)).await;
    assert!(page.body.contains("Version 2 ·") && page.body.contains("Version 1 ·"));
    assert!(page.body.contains("saves version 3"));
    assert_eq!(
        ui.app
            .store
            .workflow_history("greet")
            .await
            .expect("h")
            .len(),
        2
    );

    // A run without its required param: the param is named on the page.
    let a = ui
        .post(
            "/ui/workflows/greet/runs",
            Some(&cookie),
            &form(&[("csrf", &csrf), ("p.who", "")]),
        )
        .await;
    assert!(a.body.contains("id=\"run-error\""), "{}", a.body);
    assert!(a.body.contains("who"), "{}", a.body);
    // Runs cannot start in this in-process app (no runner): the page says why.
    let a = ui
        .post(
            "/ui/workflows/greet/runs",
            Some(&cookie),
            &form(&[("csrf", &csrf), ("p.who", "world")]),
        )
        .await;
    assert!(a.body.contains("runs are not available"), "{}", a.body);

    // The admin's list shows the tenant's workflow; the run list is empty.
    let admin = ui.sign_in(&ui.admin_key).await;
    let list = ui.get("/ui/workflows", Some(&admin)).await;
    assert!(list.body.contains("/ui/workflows/greet"));
    let runs = ui.get("/ui/runs?status=running", Some(&admin)).await;
    assert_eq!(runs.status, StatusCode::OK);
    assert!(runs.body.contains("No runs."));
    let bad = ui.get("/ui/runs?status=sleeping", Some(&admin)).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn usage_takes_a_date_range_and_exports_are_held_to_the_tenant() {
    let ui = Ui::new("ui-usage").await;
    let admin = ui.sign_in(&ui.admin_key).await;
    let a = ui
        .get(
            "/ui/usage?from=2026-01-01&to=2026-01-07&by=key",
            Some(&admin),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert!(a.body.contains("value=\"2026-01-01\""));
    assert!(a.body.contains("data-total=\"0\""));
    // Seven days, one bar slot each: the first and last labels are the range's.
    assert!(
        a.body.contains(">2026-01-01<") && a.body.contains("2026-01-07"),
        "{}",
        a.body
    );
    for bad in [
        "/ui/usage?from=2026-02-30",
        "/ui/usage?from=2026-01-09&to=2026-01-01",
        "/ui/usage?bucket=week",
        "/ui/usage?by=moon",
        "/ui/audit?range=forever",
    ] {
        assert_eq!(
            ui.get(bad, Some(&admin)).await.status,
            StatusCode::BAD_REQUEST,
            "{bad}"
        );
    }
    let tenant = ui.sign_in(&ui.tenant_key).await;
    let a = ui
        .get("/ui/audit/export?format=json&tenant=other", Some(&tenant))
        .await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.body.trim(), "[]");
    let a = ui.get("/ui/audit/export?format=xml", Some(&tenant)).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn the_audit_table_pages_and_filters_real_ledger_rows() {
    use mcpgate_store::{CallRecord, Outcome, now_ms};
    let ui = Ui::new("ui-audit").await;
    ui.app
        .store
        .add_tenant("other", "pro", None, None)
        .await
        .expect("tenant");
    let ledger = ui.app.store.ledger();
    let rec = |tenant: &str, name: &str, i: i64| CallRecord {
        ts_ms: now_ms() - 1000 + i,
        tenant: tenant.to_owned(),
        key_id: None,
        session: None,
        method: "tools/call".to_owned(),
        name: name.to_owned(),
        upstream: Some("fx".to_owned()),
        cost: 1,
        arg_bytes: 2,
        args: None,
        run_id: None,
    };
    for i in 0..60 {
        let r = ledger
            .reserve(rec("acme", "fx__echo", i))
            .await
            .expect("reserve");
        let outcome = if i % 10 == 0 {
            Outcome::ToolError
        } else {
            Outcome::Ok
        };
        ledger.finish(r.id, outcome, 1000, None, false);
    }
    let r = ledger
        .reserve(rec("other", "fx__secret", 0))
        .await
        .expect("reserve");
    ledger.finish(r.id, Outcome::Ok, 1000, None, false);
    // finish is queued: wait until the ledger shows every row ended.
    let filter = mcpgate_store::AuditFilter {
        tenant: None,
        name_glob: None,
        since_ms: None,
        limit: Some(1000),
        run: None,
    };
    for _ in 0..200 {
        let rows = ui.app.store.audit(&filter).await.expect("audit");
        if rows.len() == 61 && rows.iter().all(|r| r.outcome != "pending") {
            break;
        }
        tokio::task::yield_now().await;
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }

    let admin = ui.sign_in(&ui.admin_key).await;
    let page = ui.get("/ui/audit", Some(&admin)).await;
    assert!(page.body.contains("61 rows"), "{}", page.body);
    assert_eq!(page.body.matches("<tr><td>").count(), 50, "fifty to a page");
    assert!(page.body.contains("page=1\">Older</a>"));
    let second = ui.get("/ui/audit?page=1", Some(&admin)).await;
    assert_eq!(second.body.matches("<tr><td>").count(), 11);
    assert!(second.body.contains("page=0\">Newer</a>"));
    let errors = ui
        .get("/ui/audit?outcome=tool_error&tenant=acme", Some(&admin))
        .await;
    assert!(errors.body.contains("6 rows"), "{}", errors.body);
    assert!(errors.body.contains("<option selected>tool_error</option>"));
    // A date range: everything was today; a range ending yesterday has none.
    let today = mcpgate_store::format_ts(now_ms());
    let today = &today[..10];
    let dated = ui
        .get(
            &format!("/ui/audit?range=all&from={today}&to={today}"),
            Some(&admin),
        )
        .await;
    assert!(dated.body.contains("61 rows"), "{today}: {}", dated.body);
    let before = ui
        .get(
            "/ui/audit?range=all&from=2020-01-01&to=2020-01-31",
            Some(&admin),
        )
        .await;
    assert!(before.body.contains("0 rows"), "{}", before.body);
    let bad = ui.get("/ui/audit?to=2020-02-30", Some(&admin)).await;
    assert_eq!(bad.status, axum::http::StatusCode::BAD_REQUEST);
    let glob = ui.get("/ui/audit?tool=fx__sec*", Some(&admin)).await;
    assert!(glob.body.contains("1 rows") && glob.body.contains("fx__secret"));

    // A tenant sees its own rows only, whatever it asks for.
    let tenant = ui.sign_in(&ui.tenant_key).await;
    let mine = ui.get("/ui/audit?tenant=other", Some(&tenant)).await;
    assert!(mine.body.contains("60 rows"), "{}", mine.body);
    assert!(!mine.body.contains("fx__secret"));
    let csv = ui
        .get(
            "/ui/audit/export?format=csv&outcome=tool_error",
            Some(&tenant),
        )
        .await;
    assert_eq!(csv.body.lines().count(), 7, "{}", csv.body);
    let usage = ui.get("/ui/usage?by=tool", Some(&tenant)).await;
    assert!(
        usage.body.contains("id=\"chart-calls\" data-total=\"60\""),
        "{}",
        usage.body
    );
    assert!(!usage.body.contains("fx__secret"));
    let usage = ui.get("/ui/usage?by=tenant", Some(&admin)).await;
    assert!(usage.body.contains("id=\"chart-calls\" data-total=\"61\""));
    assert!(usage.body.contains("id=\"chart-cost\" data-total=\"61\""));
}
