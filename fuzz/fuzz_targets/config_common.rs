//! What both config targets do with the text: parse it as if read from a file
//! in a directory that does not exist (so relative `cwd`, `data_dir` and auth
//! `file` paths resolve to nothing), and when it is accepted, use the result
//! the way the gateway does at start-up: look up every plan's tier, match
//! names against every tier's glob rules, price calls and compute rates.

use std::path::Path;

use mcpgate_gateway::Config;

pub(crate) fn run(file_name: &str, data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let path = Path::new("/nonexistent-mcpgate-fuzz").join(file_name);
    let config = match Config::parse(&path, &text) {
        Ok(c) => c,
        Err(e) => {
            // Errors must render (they are printed to the operator).
            let _ = e.to_string();
            return;
        }
    };
    assert!(config.page_size >= 1, "page_size 0 was accepted");
    let _ = format!("{config:?}");
    let mut names: Vec<String> = vec!["".into(), "x".into(), "time__now".into()];
    for s in &config.servers {
        names.push(format!("{}{}tool", s.name, config.separator));
        names.push(format!("{}://r", s.name));
    }
    let policy = &config.policy;
    for plan in policy.plans.keys() {
        assert!(
            policy.tier_for_plan(plan).is_some(),
            "plan {plan:?} was accepted but maps to no tier"
        );
        let _ = policy.unmapped_plan("t", plan);
    }
    for tier in policy.tiers.values() {
        for name in &names {
            let _ = tier.tools.allows(name);
            let _ = tier.resources.allows(name);
            let _ = tier.prompts.allows(name);
            assert!(
                tier.cost_of(name, true) >= 0,
                "a negative cost was accepted"
            );
            assert!(
                tier.cost_of(name, false) >= 0,
                "a negative cost was accepted"
            );
        }
        if let Some(rate) = tier.rate {
            let _ = rate.interval();
        }
    }
}
