//! `/console`: the billing-admin web console, server-rendered HTML with no scripts or
//! external assets. `session` holds sign-in state, CSRF and roles; each page is its own
//! module; `html`, `charts` and `forms` are the shared markup, SVG and form reading.

pub mod accounts;
pub mod billing_settings;
pub mod charts;
pub mod credits;
pub mod dashboard;
pub mod forms;
pub mod html;
pub mod prices;
pub mod session;
pub mod sign_in;
pub mod trust_levels;
pub mod wallets;

pub(crate) use session::COOKIE;
