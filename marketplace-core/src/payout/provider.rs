//! What a payout goes through: the [`PayoutProvider`] trait, the manual
//! default and a simulated provider with faults on demand.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;

use crate::ids::{PayoutId, UserId};
use crate::money::Money;

/// What a provider is asked to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PayoutInstruction {
    /// The payout.
    pub payout_id: PayoutId,
    /// The seller.
    pub seller_id: UserId,
    /// The seller's email.
    pub seller_email: String,
    /// The amount.
    pub amount: Money,
    /// Carried by every call for this payout; the same key means the same payout.
    pub idempotency_key: String,
}

/// What a provider answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PayoutSent {
    /// The transfer is done.
    Paid {
        /// The provider's reference for it.
        reference: String,
    },
    /// Accepted; its outcome is reported later (by an admin for manual payouts).
    Submitted,
}

/// Why a provider did not pay.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PayoutError {
    /// The provider refused: nothing was sent, the payout failed.
    #[error("declined: {0}")]
    Declined(String),
    /// No certain answer (a timeout, a lost connection): the money may or may not
    /// have moved.
    #[error("outcome unknown: {0}")]
    Unknown(String),
}

/// Sends payouts to sellers. Implementations must treat the idempotency key as
/// the identity of the transfer: a second call with the same key never pays again.
#[async_trait]
pub trait PayoutProvider: Send + Sync + 'static {
    /// A short name recorded on each payout (`manual`, `stripe`...).
    fn name(&self) -> &str;

    /// Sends one payout.
    async fn send(
        &self,
        payout: &PayoutInstruction,
    ) -> std::result::Result<PayoutSent, PayoutError>;
}

/// The default provider: the operator pays by hand (a bank transfer) and marks
/// each payout paid, with the transfer's reference, or failed.
#[derive(Clone, Copy, Debug, Default)]
pub struct ManualPayouts;

#[async_trait]
impl PayoutProvider for ManualPayouts {
    fn name(&self) -> &str {
        "manual"
    }

    async fn send(&self, _: &PayoutInstruction) -> std::result::Result<PayoutSent, PayoutError> {
        Ok(PayoutSent::Submitted)
    }
}

/// What the simulated provider does with the next call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SimulatedOutcome {
    /// Pays.
    Pay,
    /// Declines with this reason.
    Decline(String),
    /// Pays, then answers as if the connection dropped.
    PayThenTimeout,
    /// Answers as if the connection dropped before anything happened.
    Timeout,
}

/// A provider for tests and demonstrations: pays into an in-memory book, one
/// transfer per idempotency key, with faults injected on demand.
#[derive(Debug, Default)]
pub struct SimulatedPayouts {
    state: Mutex<Simulated>,
}

#[derive(Debug, Default)]
struct Simulated {
    script: std::collections::VecDeque<SimulatedOutcome>,
    transfers: HashMap<String, (Money, String)>,
    calls: usize,
}

impl SimulatedPayouts {
    /// A provider that pays every call.
    pub fn new() -> SimulatedPayouts {
        SimulatedPayouts::default()
    }

    /// Queues what the next calls do (after the queue runs out, calls pay).
    pub fn script(&self, outcomes: impl IntoIterator<Item = SimulatedOutcome>) {
        self.lock().script.extend(outcomes);
    }

    /// The transfers made, by idempotency key: amount and reference.
    pub fn transfers(&self) -> HashMap<String, (Money, String)> {
        self.lock().transfers.clone()
    }

    /// How many calls were made (repeats included).
    pub fn calls(&self) -> usize {
        self.lock().calls
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Simulated> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait]
impl PayoutProvider for SimulatedPayouts {
    fn name(&self) -> &str {
        "simulated"
    }

    async fn send(&self, p: &PayoutInstruction) -> std::result::Result<PayoutSent, PayoutError> {
        let mut s = self.lock();
        s.calls += 1;
        let outcome = s.script.pop_front().unwrap_or(SimulatedOutcome::Pay);
        let pay = |s: &mut Simulated| {
            let n = s.transfers.len() + 1;
            s.transfers
                .entry(p.idempotency_key.clone())
                .or_insert_with(|| (p.amount, format!("sim-{n:06}")))
                .1
                .clone()
        };
        match outcome {
            SimulatedOutcome::Pay => Ok(PayoutSent::Paid {
                reference: pay(&mut s),
            }),
            SimulatedOutcome::Decline(why) => Err(PayoutError::Declined(why)),
            SimulatedOutcome::PayThenTimeout => {
                pay(&mut s);
                Err(PayoutError::Unknown("the connection dropped".into()))
            }
            SimulatedOutcome::Timeout => Err(PayoutError::Unknown("timed out".into())),
        }
    }
}
