//! Balances held in memory when the ledger runs with a journal (see the
//! `journal` and `ledger` modules): the check and debit of a reservation
//! happen here, atomically under one lock, and the store is brought level
//! in the background.
//!
//! [`Account::apply`] is the store's own rule (the `debit!` SQL in the
//! `batch` module: a due monthly refill first, then the cost), so memory,
//! the writer's view of the stored row and the stored row itself move
//! alike. Changes made outside the process (a top-up with the CLI, a new
//! allowance) are carried over by difference ([`reconcile`]): the writer
//! knows what the stored row would be from its own writes alone; whatever
//! else changed it was done by someone else and is added to memory, which
//! keeps the debits of calls whose rows are not stored yet.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::clock::next_month_start_ms;
use crate::journal::Journal;

/// A tenant's balance state: the `tenants` row's `balance` (`None`:
/// unlimited), `monthly_allowance` and `resets_at`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Account {
    pub(crate) balance: Option<i64>,
    pub(crate) allowance: Option<i64>,
    pub(crate) resets_at: Option<i64>,
}

/// Why a debit was refused: the balance it saw and when it refills.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Short {
    pub(crate) balance: i64,
    pub(crate) resets_at_ms: Option<i64>,
}

impl Account {
    fn refill_due(&self, now_ms: i64) -> bool {
        self.allowance.is_some() && self.resets_at.is_some_and(|at| at <= now_ms)
    }

    /// The store's debit, unconditional: refill if due, then take the cost
    /// (an unlimited balance stays unlimited).
    pub(crate) fn apply(&mut self, cost: i64, now_ms: i64) {
        if self.refill_due(now_ms) {
            self.balance = self.allowance.map(|a| a.saturating_sub(cost));
            self.resets_at = Some(next_month_start_ms(now_ms));
        } else if let Some(b) = self.balance {
            self.balance = Some(b.saturating_sub(cost));
        }
    }

    /// Debits `cost` if the (refilled, if due) balance is unlimited or
    /// large enough, as the store's conditional debit does; returns the
    /// balance after. A refused debit changes nothing (not even a due
    /// refill: the next debit that passes carries it, in memory and in the
    /// store alike).
    pub(crate) fn try_debit(&mut self, cost: i64, now_ms: i64) -> Result<Option<i64>, Short> {
        let due = self.refill_due(now_ms);
        let effective = if due { self.allowance } else { self.balance };
        match effective {
            Some(b) if b < cost => Err(Short {
                balance: b,
                resets_at_ms: if due {
                    Some(next_month_start_ms(now_ms))
                } else {
                    self.resets_at
                },
            }),
            _ => {
                self.apply(cost, now_ms);
                Ok(self.balance)
            }
        }
    }

    /// Gives back a refunded cost (an unlimited balance stays unlimited).
    pub(crate) fn credit(&mut self, cost: i64) {
        if let Some(b) = self.balance {
            self.balance = Some(b.saturating_add(cost));
        }
    }
}

/// Carries into `memory` what changed in the stored row (`actual`) other
/// than by this process's own writes (`expected`).
pub(crate) fn reconcile(memory: &mut Account, expected: &Account, actual: &Account) {
    match (expected.balance, actual.balance) {
        (Some(e), Some(a)) if a != e => {
            memory.balance = Some(match memory.balance {
                Some(m) => m.saturating_add(a.saturating_sub(e)),
                None => a,
            });
        }
        (None, Some(a)) => memory.balance = Some(a),
        (_, None) => memory.balance = None,
        _ => {}
    }
    if actual.allowance != expected.allowance {
        memory.allowance = actual.allowance;
    }
    if actual.resets_at != expected.resets_at {
        memory.resets_at = actual.resets_at;
    }
}

/// The in-memory accounts, by tenant name.
pub(crate) type Accounts = HashMap<String, Account>;

/// The state of journal mode, shared by the ledger handles and the writer.
pub(crate) struct Journaled {
    pub(crate) journal: Journal,
    /// Balances by tenant, loaded on a tenant's first call.
    pub(crate) accounts: Mutex<Accounts>,
    /// Reserved calls not finished yet: usage id → (tenant, cost), for refunds.
    pub(crate) inflight: Mutex<HashMap<i64, (String, i64)>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debits_never_go_below_zero_and_refills_come_first() {
        let mut a = Account {
            balance: Some(5),
            allowance: None,
            resets_at: None,
        };
        assert_eq!(a.try_debit(3, 0), Ok(Some(2)));
        assert_eq!(
            a.try_debit(3, 0),
            Err(Short {
                balance: 2,
                resets_at_ms: None
            })
        );
        assert_eq!(a.balance, Some(2), "a refusal changes nothing");
        let month = next_month_start_ms(0);
        let mut m = Account {
            balance: Some(0),
            allowance: Some(10),
            resets_at: Some(month),
        };
        assert!(m.try_debit(1, month - 1).is_err());
        assert_eq!(m.try_debit(4, month), Ok(Some(6)), "refilled, then debited");
        assert_eq!(m.resets_at, Some(next_month_start_ms(month)));
        let mut unlimited = Account::default();
        assert_eq!(unlimited.try_debit(1_000, 0), Ok(None));
    }

    #[test]
    fn outside_changes_are_carried_over_by_difference() {
        // Memory is 30 below the store: calls whose rows are not stored yet.
        let expected = Account {
            balance: Some(100),
            ..Account::default()
        };
        let mut memory = Account {
            balance: Some(70),
            ..Account::default()
        };
        // Someone topped the tenant up by 50.
        let actual = Account {
            balance: Some(150),
            ..Account::default()
        };
        reconcile(&mut memory, &expected, &actual);
        assert_eq!(memory.balance, Some(120));
        // Nothing changed outside: memory stays as it is.
        let mut same = memory;
        reconcile(&mut same, &actual, &actual);
        assert_eq!(same, memory);
        // Made unlimited, then limited again.
        reconcile(&mut memory, &actual, &Account::default());
        assert_eq!(memory.balance, None);
        let limited = Account {
            balance: Some(9),
            allowance: Some(9),
            resets_at: Some(5),
        };
        reconcile(&mut memory, &Account::default(), &limited);
        assert_eq!(memory, limited);
    }
}
