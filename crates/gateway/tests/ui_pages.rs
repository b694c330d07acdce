//! The web page's forms and pages, in process (`router(app).oneshot`):
//! workflows created and edited with each error beside its field, version
//! history, the run form made from the params, a run refused with the
//! reason shown when runs cannot start; the usage page's date range and
//! the audit export for a tenant's session.

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
