//! Who may do what: the `auth` mode, `[plans]` (a tenant's plan → a tier) and
//! `[tiers.NAME]` (glob allow/deny rules over namespaced tool names, resource
//! URIs and prompt names; a rate limit per key; a cap on concurrent calls per
//! tenant; a cap on open sessions per tenant; the compute-token cost of a
//! call). A plan that names no tier is a
//! configuration error: a mistake here must stop the gateway, never quietly
//! hand out an empty or a full tier.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use mcpgate_store::glob_match;
use serde_json::{Map, Value};
use tokio::sync::Semaphore;

use super::{ConfigError, Walker, type_name};

/// How clients authenticate on `/mcp`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    /// Anonymous, as tenant `local`; loopback only.
    None,
    /// `Authorization: Bearer mcpg_<id>_<secret>`.
    Keys,
}

/// The tenant every anonymous request belongs to when `auth = "none"`.
pub const LOCAL_TENANT: &str = "local";
/// The plan of the `local` tenant; unless `[plans]` maps it, it gets [`Tier::unrestricted`].
pub const LOCAL_PLAN: &str = "local";

/// Sessions one tenant may hold open when its tier does not say
/// (`max_sessions`): one tenant can never fill the gateway's whole table.
pub(crate) const DEFAULT_TENANT_MAX_SESSIONS: usize = 1000;

/// Glob allow and deny lists: a name is allowed when some allow rule matches and no deny rule does.
#[derive(Debug, Clone, Default)]
pub struct Rules {
    pub allow: Vec<String>,
    pub deny: Vec<String>,
}

impl Rules {
    pub fn allows(&self, name: &str) -> bool {
        self.allow.iter().any(|p| glob_match(p, name))
            && !self.deny.iter().any(|p| glob_match(p, name))
    }

    fn everything() -> Rules {
        Rules {
            allow: vec!["*".into()],
            deny: Vec::new(),
        }
    }
}

/// A token-bucket rate: `count` per `per`, with bursts of up to `burst`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    pub count: u32,
    pub per: Duration,
    pub burst: u32,
}

impl Rate {
    /// Time for one token to come back.
    pub fn interval(&self) -> Duration {
        self.per / self.count.max(1)
    }
}

#[derive(Debug, Clone)]
pub struct Tier {
    pub name: String,
    pub tools: Rules,
    pub resources: Rules,
    pub prompts: Rules,
    /// Per key, on `tools/call`, `resources/read` and `prompts/get`.
    pub rate: Option<Rate>,
    /// Per tenant: calls in flight at once.
    pub max_concurrent: Option<usize>,
    /// Per tenant: sessions open at once (the gateway-wide `max_sessions`
    /// still bounds them all).
    pub max_sessions: usize,
    /// Compute tokens a `tools/call` costs unless a `costs` glob matches first.
    pub cost: i64,
    /// `(tool glob, cost)` in config order; the first match wins. Also applies to
    /// prompt names and resource URIs, which cost 0 unless listed.
    pub costs: Vec<(String, i64)>,
}

impl Tier {
    /// Everything visible, no limits: the anonymous `local` tenant's default
    /// tier. It is the only tenant, so only the gateway-wide `max_sessions`
    /// bounds its sessions.
    pub fn unrestricted() -> Tier {
        Tier {
            name: "builtin:unrestricted".into(),
            tools: Rules::everything(),
            resources: Rules::everything(),
            prompts: Rules::everything(),
            rate: None,
            max_concurrent: None,
            max_sessions: usize::MAX,
            cost: 1,
            costs: Vec::new(),
        }
    }

    /// The compute-token cost of calling `name` (a tool, or with `is_tool` false a prompt or URI).
    pub fn cost_of(&self, name: &str, is_tool: bool) -> i64 {
        self.costs
            .iter()
            .find(|(g, _)| glob_match(g, name))
            .map(|(_, c)| *c)
            .unwrap_or(if is_tool { self.cost } else { 0 })
    }
}

/// `auth`, `[plans]`, `[tiers]` and the audit switch, read from the top level.
#[derive(Debug, Clone)]
pub struct Policy {
    pub auth: AuthMode,
    /// plan → tier name.
    pub plans: BTreeMap<String, String>,
    pub tiers: BTreeMap<String, Arc<Tier>>,
    /// Record each call's arguments in the audit log (off: only their size).
    pub audit_arguments: bool,
    /// Keep the usage ledger at all. Only `auth = "none"` may turn it off
    /// (quotas and the audit trail of keyed tenants depend on it).
    pub audit: bool,
    /// `ledger_sync`: how a reservation is made durable in the ledger's
    /// journal (SQLite) before its call is forwarded: `"write"` (default;
    /// survives `kill -9`, as the store's own commits do) or `"fdatasync"`
    /// (survives a power loss too; one sync shared by concurrent calls).
    pub ledger_sync: mcpgate_store::JournalSync,
}

impl Default for Policy {
    fn default() -> Policy {
        Policy {
            auth: AuthMode::None,
            plans: BTreeMap::new(),
            tiers: BTreeMap::new(),
            audit_arguments: false,
            audit: true,
            ledger_sync: mcpgate_store::JournalSync::Write,
        }
    }
}

impl Policy {
    /// The tier a plan maps to; `None` for an unmapped plan (which callers must treat as an error).
    pub fn tier_for_plan(&self, plan: &str) -> Option<Arc<Tier>> {
        match self.plans.get(plan) {
            Some(t) => self.tiers.get(t).cloned(),
            None if plan == LOCAL_PLAN => Some(Arc::new(Tier::unrestricted())),
            None => None,
        }
    }

    /// The error for a plan `[plans]` does not map, in words an operator can act on.
    pub fn unmapped_plan(&self, tenant: &str, plan: &str) -> String {
        let known: Vec<&str> = self.plans.keys().map(String::as_str).collect();
        format!(
            "tenant '{tenant}' has plan '{plan}', which [plans] does not map to a tier; add `{plan} = \"<tier>\"` under [plans]{}",
            if known.is_empty() {
                " (no plans are configured)".to_owned()
            } else {
                format!(" (mapped plans: {})", known.join(", "))
            }
        )
    }
}

const TIER_KEYS: &[&str] = &[
    "tools",
    "deny_tools",
    "resources",
    "deny_resources",
    "prompts",
    "deny_prompts",
    "rate",
    "burst",
    "max_concurrent",
    "max_sessions",
    "cost",
    "costs",
];

impl Walker {
    pub(super) fn policy(&self, top: &Map<String, Value>) -> Result<Policy, ConfigError> {
        let auth = match top.get("auth") {
            None => AuthMode::None,
            Some(v) => match self.string("auth", v)?.as_str() {
                "none" => AuthMode::None,
                "keys" => AuthMode::Keys,
                other => {
                    return Err(self.err(
                        "auth",
                        format!("{other:?} is not \"keys\" (bearer API keys) or \"none\" (anonymous, loopback only)"),
                    ));
                }
            },
        };
        let mut tiers = BTreeMap::new();
        if let Some(v) = top.get("tiers") {
            let t = v
                .as_object()
                .ok_or_else(|| self.err("tiers", "must be a table of tiers"))?;
            for (name, tv) in t {
                tiers.insert(name.clone(), Arc::new(self.tier(name, tv)?));
            }
        }
        let mut plans = BTreeMap::new();
        if let Some(v) = top.get("plans") {
            for (plan, tier) in self.string_map("plans", v)? {
                if !tiers.contains_key(&tier) {
                    let known: Vec<&str> = tiers.keys().map(String::as_str).collect();
                    return Err(self.err(
                        &format!("plans.{plan}"),
                        format!(
                            "names tier {tier:?}, which is not defined; defined tiers: {}",
                            if known.is_empty() {
                                "none (add a [tiers.NAME] table)".to_owned()
                            } else {
                                known.join(", ")
                            }
                        ),
                    ));
                }
                plans.insert(plan, tier);
            }
        }
        let audit = self.opt_bool(top, "audit")?.unwrap_or(true);
        if !audit && auth == AuthMode::Keys {
            return Err(self.err(
                "audit",
                "cannot be false with auth = \"keys\": balances and the audit trail need the usage ledger",
            ));
        }
        let ledger_sync = match top.get("ledger_sync") {
            None => mcpgate_store::JournalSync::Write,
            Some(v) => match self.string("ledger_sync", v)?.as_str() {
                "write" => mcpgate_store::JournalSync::Write,
                "fdatasync" => mcpgate_store::JournalSync::Data,
                other => {
                    return Err(self.err(
                        "ledger_sync",
                        format!("{other:?} is not \"write\" or \"fdatasync\""),
                    ));
                }
            },
        };
        Ok(Policy {
            auth,
            plans,
            tiers,
            audit_arguments: self.opt_bool(top, "audit_arguments")?.unwrap_or(false),
            audit,
            ledger_sync,
        })
    }

    fn tier(&self, name: &str, v: &Value) -> Result<Tier, ConfigError> {
        let key = format!("tiers.{name}");
        let k = |sub: &str| format!("{key}.{sub}");
        let t = v
            .as_object()
            .ok_or_else(|| self.err(&key, "must be a table"))?;
        self.unknown_keys(&key, t, TIER_KEYS)?;
        let list = |sub: &str| -> Result<Vec<String>, ConfigError> {
            match t.get(sub) {
                Some(v) => self.strings(&k(sub), v),
                None => Ok(Vec::new()),
            }
        };
        let rules = |allow: &str, deny: &str| -> Result<Rules, ConfigError> {
            Ok(Rules {
                allow: list(allow)?,
                deny: list(deny)?,
            })
        };
        let burst = match t.get("burst") {
            None => None,
            Some(v) => Some(
                v.as_u64()
                    .and_then(|n| u32::try_from(n).ok())
                    .filter(|n| *n > 0)
                    .ok_or_else(|| self.err(&k("burst"), "must be a positive integer"))?,
            ),
        };
        let rate = match t.get("rate") {
            None => None,
            Some(v) => {
                let s = self.string(&k("rate"), v)?;
                let (count, per) = parse_rate(&s).ok_or_else(|| {
                    self.err(
                        &k("rate"),
                        format!("{s:?} is not a rate like \"120/min\", \"10/s\" or \"1000/h\""),
                    )
                })?;
                Some(Rate {
                    count,
                    per,
                    burst: burst.unwrap_or(count),
                })
            }
        };
        let cost = |key: &str, v: &Value| -> Result<i64, ConfigError> {
            v.as_i64().filter(|n| *n >= 0).ok_or_else(|| {
                self.err(
                    key,
                    format!("must be a non-negative integer, found {}", type_name(v)),
                )
            })
        };
        let mut costs = Vec::new();
        if let Some(v) = t.get("costs") {
            let m = v
                .as_object()
                .ok_or_else(|| self.err(&k("costs"), "must be a table of \"glob\" = cost"))?;
            for (glob, c) in m {
                costs.push((glob.clone(), cost(&format!("{}.{glob:?}", k("costs")), c)?));
            }
        }
        Ok(Tier {
            name: name.to_owned(),
            tools: rules("tools", "deny_tools")?,
            resources: rules("resources", "deny_resources")?,
            prompts: rules("prompts", "deny_prompts")?,
            rate,
            max_concurrent: match t.get("max_concurrent") {
                None => None,
                // A semaphore holds at most MAX_PERMITS; more would panic on
                // the tier's first call.
                Some(v) => Some(
                    v.as_u64()
                        .and_then(|n| usize::try_from(n).ok())
                        .filter(|n| (1..=Semaphore::MAX_PERMITS).contains(n))
                        .ok_or_else(|| {
                            self.err(
                                &k("max_concurrent"),
                                format!(
                                    "must be a positive integer of at most {}",
                                    Semaphore::MAX_PERMITS
                                ),
                            )
                        })?,
                ),
            },
            max_sessions: match t.get("max_sessions") {
                None => DEFAULT_TENANT_MAX_SESSIONS,
                Some(v) => v
                    .as_u64()
                    .and_then(|n| usize::try_from(n).ok())
                    .filter(|n| *n > 0)
                    .ok_or_else(|| {
                        self.err(
                            &k("max_sessions"),
                            format!(
                                "must be a positive integer (sessions one tenant may hold open), found {}",
                                match v {
                                    Value::Number(n) => n.to_string(),
                                    other => type_name(other).to_owned(),
                                }
                            ),
                        )
                    })?,
            },
            cost: match t.get("cost") {
                Some(v) => cost(&k("cost"), v)?,
                None => 1,
            },
            costs,
        })
    }
}

/// Parses "120/min", "10/s", "1000/h", "5000/day".
pub fn parse_rate(s: &str) -> Option<(u32, Duration)> {
    let (n, unit) = s.trim().split_once('/')?;
    let count: u32 = n.trim().parse().ok().filter(|n| *n > 0)?;
    let per = match unit.trim() {
        "s" | "sec" | "second" => Duration::from_secs(1),
        "m" | "min" | "minute" => Duration::from_secs(60),
        "h" | "hour" => Duration::from_secs(3600),
        "d" | "day" => Duration::from_secs(86400),
        _ => return None,
    };
    Some((count, per))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use std::path::Path;

    fn load(text: &str) -> Result<Config, ConfigError> {
        Config::parse(Path::new("t.toml"), text)
    }

    #[test]
    fn tiers_plans_rates_and_costs() {
        let c = load(
            r#"
auth = "keys"
[plans]
free = "free"
admin = "enterprise"
[tiers.free]
tools = ["time__*"]
deny_tools = ["time__secret*"]
rate = "60/min"
burst = 5
max_concurrent = 2
[tiers.free.costs]
"time__convert*" = 3
[tiers.enterprise]
tools = ["*"]
prompts = ["*"]
"#,
        )
        .expect("valid");
        let p = &c.policy;
        assert_eq!(p.auth, AuthMode::Keys);
        let free = p.tier_for_plan("free").expect("mapped");
        assert!(free.tools.allows("time__get_current_time"));
        assert!(!free.tools.allows("time__secret_thing"));
        assert!(!free.tools.allows("github__list_issues"));
        assert!(
            !free.prompts.allows("anything"),
            "an omitted list allows nothing"
        );
        assert_eq!(
            free.rate,
            Some(Rate {
                count: 60,
                per: Duration::from_secs(60),
                burst: 5
            })
        );
        assert_eq!(free.cost_of("time__convert_time", true), 3);
        assert_eq!(free.cost_of("time__get_current_time", true), 1);
        assert_eq!(free.cost_of("some://uri", false), 0);
        assert!(
            p.tier_for_plan("admin")
                .expect("mapped")
                .prompts
                .allows("x")
        );
        assert!(p.tier_for_plan("gold").is_none());
        assert!(p.tier_for_plan(LOCAL_PLAN).is_some());
        assert_eq!(free.max_sessions, DEFAULT_TENANT_MAX_SESSIONS);
    }

    #[test]
    fn max_sessions_is_a_positive_integer() {
        let c = load("[tiers.small]\nmax_sessions = 3\n").expect("valid");
        assert_eq!(c.policy.tiers["small"].max_sessions, 3);
        for bad in ["0", "-1", "2.5", "\"10\"", "true"] {
            let e = load(&format!("[tiers.small]\nmax_sessions = {bad}\n")).expect_err(bad);
            assert_eq!(e.key, "tiers.small.max_sessions", "{bad}");
            assert!(e.message.contains("positive integer"), "{}", e.message);
        }
        assert_eq!(Tier::unrestricted().max_sessions, usize::MAX);
    }

    #[test]
    fn a_plan_naming_a_missing_tier_is_an_error() {
        let e = load("[plans]\nadmin = \"enterprize\"\n[tiers.enterprise]\ntools = [\"*\"]\n")
            .expect_err("unknown tier");
        assert_eq!(e.key, "plans.admin");
        assert!(e.message.contains("enterprise"), "{}", e.message);
        let e = load("[tiers.free]\nrate = \"fast\"\n").expect_err("bad rate");
        assert_eq!(e.key, "tiers.free.rate");
        let e = load("[tiers.free]\ntool = [\"*\"]\n").expect_err("typo");
        assert!(e.message.contains("tools"), "{}", e.message);
        let e = load("ledger_sync = \"sometimes\"\n").expect_err("unknown sync");
        assert_eq!(e.key, "ledger_sync");
        assert_eq!(
            load("ledger_sync = \"fdatasync\"\n")
                .expect("valid")
                .policy
                .ledger_sync,
            mcpgate_store::JournalSync::Data
        );
        let e = load("auth = \"oauth\"\n").expect_err("unknown auth");
        assert_eq!(e.key, "auth");
        let e = load("auth = \"keys\"\naudit = false\n").expect_err("keys need the ledger");
        assert_eq!(e.key, "audit");
        assert!(
            !load("audit = false\n")
                .expect("anonymous may skip it")
                .policy
                .audit
        );
    }
}
