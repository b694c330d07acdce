//! Reading the ledger back: usage summaries and audit filters (tenant,
//! name glob, since, limit), with the same answers on both backends.

use mcpgate_store::{AuditFilter, Backend, Outcome, UsageSummary};

use crate::common::{Db, backend_tests, call_at, on_backend};

const T0: i64 = 1_700_000_000_000;

fn filter(
    tenant: Option<&str>,
    glob: Option<&str>,
    since: Option<i64>,
    limit: Option<i64>,
) -> AuditFilter {
    AuditFilter {
        tenant: tenant.map(str::to_owned),
        name_glob: glob.map(str::to_owned),
        since_ms: since,
        limit,
        run: None,
    }
}

backend_tests!(audit_rows_carry_and_filter_by_the_run, worker_threads = 2);
async fn audit_rows_carry_and_filter_by_the_run(backend: Backend) {
    on_backend(backend, "audit_run", |db: Db| async move {
        let store = db.open_with_acme(Some(100)).await;
        let ledger = store.ledger();
        let mut by_run = call_at("acme", "echo", 1, T0);
        by_run.run_id = Some("run_one".into());
        ledger.reserve(by_run).await.unwrap();
        ledger.deny(
            {
                let mut r = call_at("acme", "hidden", 0, T0);
                r.run_id = Some("run_one".into());
                r
            },
            Outcome::DeniedHidden,
            None,
        );
        ledger
            .reserve(call_at("acme", "echo", 1, T0))
            .await
            .unwrap();
        ledger.flush().await.unwrap();
        let rows = store
            .audit(&AuditFilter {
                run: Some("run_one".into()),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(rows.len(), 2, "{rows:?}");
        assert!(rows.iter().all(|r| r.run_id.as_deref() == Some("run_one")));
        let all = store.audit(&AuditFilter::default()).await.unwrap();
        assert_eq!(all.len(), 3);
        assert_eq!(all.iter().filter(|r| r.run_id.is_none()).count(), 1);
    })
    .await;
}

backend_tests!(summaries_and_audit_filters, worker_threads = 2);
async fn summaries_and_audit_filters(backend: Backend) {
    on_backend(backend, "summaries_audit", |db: Db| async move {
        let store = db.open_with_acme(Some(100)).await;
        store.add_tenant("beta", "free", None, None).await.unwrap();
        let ledger = store.ledger();

        // acme: fs.read_file ok (cost 2, 100 us) at T0, fs.read_file
        // tool_error refunded (200 us) at T0+1000, fs.write_file denied_rate
        // at T0+2000, Fs.Upper ok (cost 1, 50 us) at T0+3000, a%b pending
        // (cost 5) at T0+4000. beta: web_search ok at T0+1500, a_b timeout at T0+5000.
        let r = ledger
            .reserve(call_at("acme", "fs.read_file", 2, T0))
            .await
            .unwrap();
        ledger.finish(r.id, Outcome::Ok, 100, None, false);
        let r = ledger
            .reserve(call_at("acme", "fs.read_file", 2, T0 + 1000))
            .await
            .unwrap();
        ledger.finish(r.id, Outcome::ToolError, 200, Some("isError".into()), true);
        ledger.deny(
            call_at("acme", "fs.write_file", 3, T0 + 2000),
            Outcome::DeniedRate,
            None,
        );
        let r = ledger
            .reserve(call_at("acme", "Fs.Upper", 1, T0 + 3000))
            .await
            .unwrap();
        ledger.finish(r.id, Outcome::Ok, 50, None, false);
        ledger
            .reserve(call_at("acme", "a%b", 5, T0 + 4000))
            .await
            .unwrap();
        let r = ledger
            .reserve(call_at("beta", "web_search", 1, T0 + 1500))
            .await
            .unwrap();
        ledger.finish(r.id, Outcome::Ok, 7, None, false);
        let r = ledger
            .reserve(call_at("beta", "a_b", 1, T0 + 5000))
            .await
            .unwrap();
        ledger.finish(r.id, Outcome::Timeout, 9, None, false);
        ledger.flush().await.unwrap();

        let summary =
            |tenant: &str, name: &str, calls, ok, errors, denied, cost, dur| UsageSummary {
                tenant: tenant.to_owned(),
                name: name.to_owned(),
                calls,
                ok,
                errors,
                denied,
                interrupted: 0,
                cost,
                total_duration_us: dur,
            };
        assert_eq!(
            store.usage_summary(None, None).await.unwrap(),
            vec![
                summary("acme", "Fs.Upper", 1, 1, 0, 0, 1, 50),
                summary("acme", "a%b", 1, 0, 0, 0, 5, 0),
                summary("acme", "fs.read_file", 2, 1, 1, 0, 2, 300),
                summary("acme", "fs.write_file", 1, 0, 0, 1, 0, 0),
                summary("beta", "a_b", 1, 0, 1, 0, 1, 9),
                summary("beta", "web_search", 1, 1, 0, 0, 1, 7),
            ]
        );
        assert_eq!(
            store
                .usage_summary(Some("acme"), Some(T0 + 1000))
                .await
                .unwrap(),
            vec![
                summary("acme", "Fs.Upper", 1, 1, 0, 0, 1, 50),
                summary("acme", "a%b", 1, 0, 0, 0, 5, 0),
                summary("acme", "fs.read_file", 1, 0, 1, 0, 0, 200),
                summary("acme", "fs.write_file", 1, 0, 0, 1, 0, 0),
            ]
        );
        assert_eq!(
            store.usage_summary(Some("nobody"), None).await.unwrap(),
            vec![]
        );

        let names = async |f: AuditFilter| -> Vec<String> {
            store
                .audit(&f)
                .await
                .unwrap()
                .into_iter()
                .map(|r| r.name)
                .collect()
        };
        // Newest first.
        assert_eq!(
            names(AuditFilter::default()).await,
            [
                "a_b",
                "a%b",
                "Fs.Upper",
                "fs.write_file",
                "web_search",
                "fs.read_file",
                "fs.read_file"
            ]
        );
        assert_eq!(
            names(filter(Some("beta"), None, None, None)).await,
            ["a_b", "web_search"]
        );
        // Globs are case-sensitive; `*` and `?` are the only specials.
        assert_eq!(
            names(filter(None, Some("fs.*"), None, None)).await,
            ["fs.write_file", "fs.read_file", "fs.read_file"]
        );
        assert_eq!(
            names(filter(None, Some("*_file"), None, None)).await,
            ["fs.write_file", "fs.read_file", "fs.read_file"]
        );
        assert_eq!(
            names(filter(None, Some("?s.*"), None, None)).await,
            ["Fs.Upper", "fs.write_file", "fs.read_file", "fs.read_file"]
        );
        assert_eq!(names(filter(None, Some("a%b"), None, None)).await, ["a%b"]);
        assert_eq!(names(filter(None, Some("a_b"), None, None)).await, ["a_b"]);
        assert_eq!(
            names(filter(None, Some("a?b"), None, None)).await,
            ["a_b", "a%b"]
        );
        assert_eq!(
            names(filter(None, Some("[a]*"), None, None)).await,
            Vec::<String>::new()
        );
        assert_eq!(
            names(filter(None, Some("*"), None, Some(2))).await,
            ["a_b", "a%b"]
        );
        // Since and limit, combined with the others.
        assert_eq!(
            names(filter(Some("acme"), Some("*"), Some(T0 + 1000), Some(3))).await,
            ["a%b", "Fs.Upper", "fs.write_file"]
        );
        assert_eq!(
            names(filter(None, None, Some(T0 + 4500), None)).await,
            ["a_b"]
        );
        assert_eq!(
            names(filter(None, None, None, Some(0))).await,
            Vec::<String>::new()
        );
        assert!(
            store
                .audit(&filter(None, None, None, Some(-1)))
                .await
                .is_err()
        );

        // Full records.
        let recs = store
            .audit(&filter(Some("acme"), Some("fs.read_file"), None, None))
            .await
            .unwrap();
        assert_eq!(recs.len(), 2);
        assert_eq!(recs[0].ts_ms, T0 + 1000);
        assert_eq!(recs[0].outcome, "tool_error");
        assert_eq!(recs[0].error.as_deref(), Some("isError"));
        assert_eq!(recs[0].cost, 0);
        assert_eq!(recs[1].outcome, "ok");
        assert_eq!(recs[1].session.as_deref(), Some("session-1"));
        assert_eq!(recs[1].upstream.as_deref(), Some("up"));
        let json = serde_json::to_value(&recs[1]).unwrap();
        assert_eq!(json["outcome"], "ok");
        assert_eq!(
            serde_json::to_value(Outcome::DeniedQuota).unwrap(),
            "denied_quota"
        );
        for o in Outcome::ALL {
            assert_eq!(serde_json::to_value(o).unwrap(), o.as_str());
        }
    })
    .await;
}
