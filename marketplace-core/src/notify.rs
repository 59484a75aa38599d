//! The mails the marketplace sends, rendered from the templates in `templates/`
//! (plain text and HTML; user-provided text is escaped in HTML).

use minijinja::{Environment, Value, context};
use serde::Serialize;

use crate::address::Address;
use crate::error::{Error, Result};
use crate::ids::{CheckoutId, MessageId};
use crate::marketplace::Marketplace;
use crate::money::Money;
use crate::order::{Order, OrderStatus};
use crate::outbox::{OutboxMessage, OutboxStatus};
use crate::payout::Payout;
use crate::storage::Storage;
use crate::user::{SellerStatus, User};

/// An event that sends a mail.
pub(crate) enum Notification<'a> {
    VerifyEmail {
        user: &'a User,
        token: &'a str,
    },
    PasswordReset {
        user: &'a User,
        token: &'a str,
    },
    SellerDecision {
        seller: &'a User,
    },
    OrderConfirmation {
        buyer: &'a User,
        checkout_id: CheckoutId,
        orders: &'a [Order],
    },
    NewOrder {
        seller: &'a User,
        order: &'a Order,
    },
    StatusChanged {
        buyer: &'a User,
        order: &'a Order,
        from: OrderStatus,
    },
    PayoutPaid {
        seller: &'a User,
        payout: &'a Payout,
    },
}

const TEMPLATES: &[(&str, &str)] = &[
    ("layout.html", include_str!("../templates/layout.html")),
    (
        "verify_email.txt",
        include_str!("../templates/verify_email.txt"),
    ),
    (
        "verify_email.html",
        include_str!("../templates/verify_email.html"),
    ),
    (
        "password_reset.txt",
        include_str!("../templates/password_reset.txt"),
    ),
    (
        "password_reset.html",
        include_str!("../templates/password_reset.html"),
    ),
    (
        "payout_paid.txt",
        include_str!("../templates/payout_paid.txt"),
    ),
    (
        "payout_paid.html",
        include_str!("../templates/payout_paid.html"),
    ),
    (
        "seller_decision.txt",
        include_str!("../templates/seller_decision.txt"),
    ),
    (
        "seller_decision.html",
        include_str!("../templates/seller_decision.html"),
    ),
    (
        "order_confirmation.txt",
        include_str!("../templates/order_confirmation.txt"),
    ),
    (
        "order_confirmation.html",
        include_str!("../templates/order_confirmation.html"),
    ),
    ("new_order.txt", include_str!("../templates/new_order.txt")),
    (
        "new_order.html",
        include_str!("../templates/new_order.html"),
    ),
    (
        "status_changed.txt",
        include_str!("../templates/status_changed.txt"),
    ),
    (
        "status_changed.html",
        include_str!("../templates/status_changed.html"),
    ),
];

/// The compiled mail templates.
pub(crate) struct Templates(Environment<'static>);

impl Templates {
    pub(crate) fn new() -> Result<Templates> {
        let mut env = Environment::new();
        // `.html` templates escape every value; `.txt` ones do not.
        env.set_auto_escape_callback(|name| {
            if name.ends_with(".html") {
                minijinja::AutoEscape::Html
            } else {
                minijinja::AutoEscape::None
            }
        });
        for (name, source) in TEMPLATES {
            env.add_template(name, source).map_err(Error::internal)?;
        }
        Ok(Templates(env))
    }

    fn render(&self, name: &str, ctx: &Value) -> Result<(String, String)> {
        let render = |ext: &str| {
            self.0
                .get_template(&format!("{name}.{ext}"))
                .and_then(|t| t.render(ctx))
                .map_err(Error::internal)
        };
        Ok((render("txt")?, render("html")?))
    }
}

#[derive(Serialize)]
struct ItemCtx {
    title: String,
    quantity: u32,
    price: String,
    total: String,
}

#[derive(Serialize)]
struct OrderCtx {
    id: String,
    store: String,
    items: Vec<ItemCtx>,
    /// Units over all lines.
    units: u32,
    total: String,
    /// When it was placed, `2026-11-25 14:03 UTC`.
    placed: String,
}

fn order_ctx(o: &Order) -> OrderCtx {
    OrderCtx {
        id: o.id.to_string(),
        store: o.store_name.clone(),
        items: o
            .items
            .iter()
            .map(|i| ItemCtx {
                title: i.title.clone(),
                quantity: i.quantity,
                price: money(i.effective_price),
                total: money(i.line_total),
            })
            .collect(),
        units: o.items.iter().map(|i| i.quantity).sum(),
        total: money(o.total),
        placed: o.created_at.format("%Y-%m-%d %H:%M UTC").to_string(),
    }
}

/// An amount as a mail shows it: the currency's own decimals (two for USD, none
/// for JPY, three for BHD), thousands grouped, the ISO code after (`1,234.50 USD`):
/// unambiguous for buyers of any country (`$` alone is also CAD, AUD...), and the
/// same code the API and the storefront show.
pub(crate) fn money(m: Money) -> String {
    let (units, minor) = m.currency.split(m.amount.unsigned_abs());
    let units = units.to_string();
    let mut grouped = String::with_capacity(units.len() + units.len() / 3);
    for (i, c) in units.chars().enumerate() {
        if i > 0 && (units.len() - i).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(c);
    }
    let sign = if m.amount < 0 { "-" } else { "" };
    format!(
        "{sign}{grouped}{} {}",
        m.currency.fraction(minor),
        m.currency
    )
}

/// What happened to an order, as the buyer reads it after "Your order from X".
fn status_phrase(status: OrderStatus) -> &'static str {
    match status {
        OrderStatus::Pending => "is waiting for the seller",
        OrderStatus::Accepted => "was accepted",
        OrderStatus::Packed => "is packed",
        OrderStatus::Shipped => "has shipped",
        OrderStatus::Delivered => "was delivered",
        OrderStatus::Cancelled => "was cancelled",
        OrderStatus::ReturnRequested => "is being returned",
        OrderStatus::Returned => "was returned",
    }
}

fn one_line(a: &Address) -> String {
    let mut parts = vec![a.name.clone(), a.line1.clone()];
    parts.extend(a.line2.clone());
    parts.push(format!("{} {}", a.postal_code, a.city));
    parts.extend(a.region.clone());
    parts.push(a.country.clone());
    parts.join(", ")
}

fn greeting(u: &User) -> String {
    u.name
        .clone()
        .unwrap_or_else(|| u.email.as_str().to_owned())
}

impl<S: Storage> Marketplace<S> {
    /// Renders the mail of `n` as a pending outbox message due now.
    pub(crate) fn render(&self, n: &Notification<'_>) -> Result<OutboxMessage> {
        let cfg = &self.inner.config;
        let site = cfg.site_name.as_str();
        let url = cfg.public_url.trim_end_matches('/');
        let (kind, to, subject, ctx) = match n {
            Notification::VerifyEmail { user, token } => (
                "verify_email",
                *user,
                format!("Confirm your email address for {site}"),
                context! {
                    name => greeting(user), token => token,
                    link => format!("{url}/verify-email?token={token}"),
                    hours => cfg.auth.verify_email_ttl.num_hours(),
                },
            ),
            Notification::PasswordReset { user, token } => (
                "password_reset",
                *user,
                format!("Reset your {site} password"),
                context! {
                    name => greeting(user), token => token,
                    link => format!("{url}/reset-password?token={token}"),
                    minutes => cfg.auth.reset_password_ttl.num_minutes(),
                },
            ),
            Notification::SellerDecision { seller } => {
                let verified = seller.seller_status == Some(SellerStatus::Verified);
                let store = seller.store_name.clone().unwrap_or_default();
                let subject = if verified {
                    format!("Your store {store} is verified")
                } else {
                    format!("Your store {store} was not approved")
                };
                (
                    "seller_decision",
                    *seller,
                    subject,
                    context! { name => greeting(seller), store => store, verified => verified },
                )
            }
            Notification::OrderConfirmation {
                buyer,
                checkout_id,
                orders,
            } => {
                let total = orders
                    .iter()
                    .try_fold(Money::zero(cfg.currency), |acc, o| acc.checked_add(o.total))
                    .ok_or_else(|| Error::internal("checkout total overflow"))?;
                let address = orders
                    .first()
                    .map(|o| one_line(&o.address))
                    .unwrap_or_default();
                let units: u32 = orders
                    .iter()
                    .flat_map(|o| &o.items)
                    .map(|i| i.quantity)
                    .sum();
                (
                    "order_confirmation",
                    *buyer,
                    format!(
                        "Your {site} order is confirmed: {units} item{} for {}",
                        if units == 1 { "" } else { "s" },
                        money(total)
                    ),
                    context! {
                        name => greeting(buyer), checkout_id => checkout_id.to_string(),
                        orders => orders.iter().map(order_ctx).collect::<Vec<_>>(),
                        total => money(total), address => address, units => units,
                    },
                )
            }
            Notification::NewOrder { seller, order } => {
                let units: u32 = order.items.iter().map(|i| i.quantity).sum();
                (
                    "new_order",
                    *seller,
                    format!(
                        "New order for {}: {units} item{} for {}",
                        order.store_name,
                        if units == 1 { "" } else { "s" },
                        money(order.total)
                    ),
                    context! {
                        store => seller.store_name.clone().unwrap_or_default(),
                        order => order_ctx(order), address => one_line(&order.address),
                    },
                )
            }
            Notification::StatusChanged { buyer, order, from } => (
                "status_changed",
                *buyer,
                format!(
                    "Your order from {} {}",
                    order.store_name,
                    status_phrase(order.status)
                ),
                context! {
                    name => greeting(buyer), order => order_ctx(order),
                    status => order.status.as_str().replace('_', " "),
                    phrase => status_phrase(order.status),
                    previous => from.as_str().replace('_', " "),
                },
            ),
            Notification::PayoutPaid { seller, payout } => (
                "payout_paid",
                *seller,
                format!("{site} paid you {}", payout.amount),
                context! {
                    name => greeting(seller),
                    store => seller.store_name.clone().unwrap_or_default(),
                    amount => payout.amount.to_string(),
                    payout_id => payout.id.to_string(),
                    reference => payout.reference.clone().unwrap_or_default(),
                    link => format!("{url}/seller/payouts"),
                },
            ),
        };
        let ctx = context! { site => site, subject => &subject, ..ctx };
        let (text_body, html_body) = self.inner.templates.render(kind, &ctx)?;
        let now = self.now();
        Ok(OutboxMessage {
            id: MessageId(self.new_id()),
            kind: kind.to_owned(),
            recipient: to.email.as_str().to_owned(),
            subject,
            text_body,
            html_body,
            status: OutboxStatus::Pending,
            attempts: 0,
            next_attempt_at: now,
            last_error: None,
            created_at: now,
            delivered_at: None,
            claimed_by: None,
            claimed_until: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::money::Currency;

    #[test]
    fn mail_money_reads_like_a_shop() {
        let usd = |amount| {
            money(Money {
                amount,
                currency: Currency::USD,
            })
        };
        assert_eq!(usd(4449), "44.49 USD");
        assert_eq!(usd(5), "0.05 USD");
        assert_eq!(usd(123_456_789), "1,234,567.89 USD");
        assert_eq!(usd(100_000), "1,000.00 USD");
        assert_eq!(usd(99_999), "999.99 USD");
        assert_eq!(usd(-250), "-2.50 USD");
        let chf = Currency::parse("chf").map(|currency| {
            money(Money {
                amount: 99_900,
                currency,
            })
        });
        assert_eq!(chf.as_deref(), Some("999.00 CHF"));
        let other = |amount, code| {
            money(Money {
                amount,
                currency: Currency::parse(code).unwrap(),
            })
        };
        assert_eq!(other(1_234_567, "JPY"), "1,234,567 JPY");
        assert_eq!(other(1_250, "BHD"), "1.250 BHD");
        assert_eq!(other(-5, "KWD"), "-0.005 KWD");
    }
}
