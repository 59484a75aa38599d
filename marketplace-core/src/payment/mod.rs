//! Payments: one per checkout, through a [`PaymentProvider`].

mod provider;

pub use provider::{
    CaptureMode, ManualPayments, PaymentError, PaymentEvent, PaymentEventKind, PaymentIntent,
    PaymentProvider, ProviderPayment, ProviderState, SIMULATED_SIGNATURE, SimulatedFault,
    SimulatedPayment, SimulatedPayments, WebhookError, WebhookRequest,
};
