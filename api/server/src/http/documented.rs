//! An operation's error responses, documented from the codes it answers.
//!
//! A handler names its codes once (`problems!`); each code carries its own status
//! ([`Code::status`]), so the responses — one per status, listing its codes in
//! `x-codes` and the description — follow, and a code cannot be documented under a status
//! it never has. What every route answers alike (credentials, rate limits, bodies, the
//! database) is added by [`super::contract`] into the same lists.

use std::collections::BTreeMap;

use cloak_proto::Code;
use utoipa::openapi::content::ContentBuilder;
use utoipa::openapi::extensions::ExtensionsBuilder;
use utoipa::openapi::{Ref, RefOr, Response, ResponseBuilder};

/// `"`a`"`, `"`a` or `b`"`, `"`a`, `b` or `c`"`.
pub fn describe(codes: &[&str]) -> String {
    let quoted: Vec<String> = codes.iter().map(|c| format!("`{c}`")).collect();
    match quoted.split_last() {
        None => String::new(),
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
    }
}

/// The problem responses for `codes`, grouped by status.
pub fn responses(codes: &[Code]) -> BTreeMap<String, RefOr<Response>> {
    let mut by_status: BTreeMap<u16, Vec<&'static str>> = BTreeMap::new();
    for code in codes {
        let names = by_status.entry(code.status()).or_default();
        if !names.contains(&code.as_str()) {
            names.push(code.as_str());
        }
    }
    by_status
        .into_iter()
        .map(|(status, names)| {
            let response = ResponseBuilder::new()
                .description(describe(&names))
                .content(
                    "application/problem+json",
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("Problem")))
                        .build(),
                )
                .extensions(Some(ExtensionsBuilder::new().add("x-codes", names).build()))
                .build();
            (status.to_string(), RefOr::T(response))
        })
        .collect()
}

/// Declares a unit type whose `IntoResponses` documents the given codes, for a handler's
/// `responses(...)`: `problems!(CreateInviteProblems: DevicePending, NotOwnUser, NotFound);`.
macro_rules! problems {
    ($name:ident: $($code:ident),+ $(,)?) => {
        #[doc = concat!("The problems this operation answers: ", $("`", stringify!($code), "` "),+)]
        pub struct $name;

        impl utoipa::IntoResponses for $name {
            fn responses() -> std::collections::BTreeMap<
                String,
                utoipa::openapi::RefOr<utoipa::openapi::Response>,
            > {
                $crate::http::documented::responses(&[$(cloak_proto::Code::$code),+])
            }
        }
    };
}
pub(crate) use problems;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_group_by_their_own_status_and_name_themselves() {
        let r = responses(&[Code::DevicePending, Code::NotFound, Code::NotOwnUser]);
        assert_eq!(r.keys().collect::<Vec<_>>(), ["403", "404"]);
        let json = serde_json::to_value(&r["403"]).unwrap();
        assert_eq!(
            json["x-codes"],
            serde_json::json!(["device_pending", "not_own_user"])
        );
        assert_eq!(json["description"], "`device_pending` or `not_own_user`");
        assert_eq!(describe(&["a", "b", "c"]), "`a`, `b` or `c`");
    }
}
