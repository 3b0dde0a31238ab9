//! Reads the `#[validate(...)]` rules of the wire types in `api/proto/src` and writes them
//! as a table (`$OUT_DIR/constraints.rs`) that `http::contract` carries into the OpenAPI
//! schemas: the validator's rules are the one source of both the checks and the document.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;

use syn::punctuated::Punctuated;
use syn::{Expr, ExprLit, Fields, Item, Lit, Meta, Token, Type};

#[derive(Default)]
struct Rule {
    min: Option<i128>,
    max: Option<i128>,
    length: bool,
    range: bool,
    url: bool,
    email: bool,
}

fn int(expr: &Expr, consts: &HashMap<String, i128>) -> Option<i128> {
    match expr {
        Expr::Lit(ExprLit {
            lit: Lit::Int(i), ..
        }) => i.base10_parse().ok(),
        Expr::Unary(u) if matches!(u.op, syn::UnOp::Neg(_)) => int(&u.expr, consts).map(|v| -v),
        Expr::Path(p) => p
            .path
            .get_ident()
            .and_then(|i| consts.get(&i.to_string()).copied()),
        Expr::Paren(p) => int(&p.expr, consts),
        _ => None,
    }
}

fn bounds(meta: &Meta, consts: &HashMap<String, i128>, rule: &mut Rule) {
    let Meta::List(list) = meta else { return };
    let Ok(args) = list.parse_args_with(Punctuated::<Meta, Token![,]>::parse_terminated) else {
        return;
    };
    for arg in args {
        if let Meta::NameValue(nv) = arg {
            let value = int(&nv.value, consts);
            if nv.path.is_ident("min") {
                rule.min = value;
            } else if nv.path.is_ident("max") {
                rule.max = value;
            } else if nv.path.is_ident("equal") {
                rule.min = value;
                rule.max = value;
            }
        }
    }
}

fn rule_of(attrs: &[syn::Attribute], consts: &HashMap<String, i128>) -> Option<Rule> {
    let mut rule = Rule::default();
    let mut any = false;
    for attr in attrs.iter().filter(|a| a.path().is_ident("validate")) {
        let Ok(metas) = attr.parse_args_with(Punctuated::<Meta, Token![,]>::parse_terminated)
        else {
            continue;
        };
        for meta in metas {
            let path = meta.path();
            if path.is_ident("length") {
                rule.length = true;
                bounds(&meta, consts, &mut rule);
            } else if path.is_ident("range") {
                rule.range = true;
                bounds(&meta, consts, &mut rule);
            } else if path.is_ident("url") {
                rule.url = true;
            } else if path.is_ident("email") {
                rule.email = true;
            } else {
                continue;
            }
            any = true;
        }
    }
    any.then_some(rule)
}

/// The wire name of a field (`#[serde(rename = "…")]`, else its own).
fn wire_name(field: &syn::Field) -> Option<String> {
    let mut name = field.ident.as_ref()?.to_string();
    for attr in field.attrs.iter().filter(|a| a.path().is_ident("serde")) {
        let _ = attr.parse_nested_meta(|m| {
            if m.path.is_ident("rename") {
                let lit: syn::LitStr = m.value()?.parse()?;
                name = lit.value();
            } else if let Ok(v) = m.value() {
                let _: Expr = v.parse()?;
            }
            Ok(())
        });
    }
    Some(name.trim_start_matches("r#").to_owned())
}

/// `bytes` for base64 byte strings, `items` for lists, `text` for strings, `number` else.
fn shape(ty: &Type) -> &'static str {
    let text = quote_type(ty);
    if text.contains("Vec<u8>") || text.contains("[u8") {
        "bytes"
    } else if text.contains("Vec<") {
        "items"
    } else if text.contains("String") || text.contains("str") {
        "text"
    } else {
        "number"
    }
}

fn quote_type(ty: &Type) -> String {
    let mut s = String::new();
    let _ = write!(s, "{}", quote_like(ty));
    s.replace(' ', "")
}

fn quote_like(ty: &Type) -> String {
    use quote::ToTokens as _;
    ty.to_token_stream().to_string()
}

fn opt(v: Option<i128>) -> String {
    v.map_or("None".into(), |v| format!("Some({v})"))
}

fn main() {
    let dir = Path::new("../proto/src");
    println!("cargo:rerun-if-changed=../proto/src");
    let mut rows = String::new();
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    files.sort();
    for path in files
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "rs"))
    {
        let Ok(text) = std::fs::read_to_string(path) else {
            continue;
        };
        let Ok(file) = syn::parse_file(&text) else {
            continue;
        };
        let mut consts = HashMap::new();
        for item in &file.items {
            if let Item::Const(c) = item
                && let Some(v) = int(&c.expr, &HashMap::new())
            {
                consts.insert(c.ident.to_string(), v);
            }
        }
        for item in &file.items {
            let Item::Struct(s) = item else { continue };
            let Fields::Named(fields) = &s.fields else {
                continue;
            };
            let params = s
                .attrs
                .iter()
                .any(|a| a.path().is_ident("derive") && quote_like_attr(a).contains("IntoParams"));
            for field in &fields.named {
                let (Some(rule), Some(name)) = (rule_of(&field.attrs, &consts), wire_name(field))
                else {
                    continue;
                };
                let format = if rule.url {
                    "Some(\"uri\")"
                } else if rule.email {
                    "Some(\"email\")"
                } else {
                    "None"
                };
                let kind = if rule.range {
                    "number"
                } else {
                    shape(&field.ty)
                };
                let _ = writeln!(
                    rows,
                    "    Constraint {{ schema: {:?}, property: {:?}, parameter: {params}, kind: {kind:?}, min: {}, max: {}, format: {format} }},",
                    s.ident.to_string(),
                    name,
                    opt(rule.min),
                    opt(rule.max),
                );
            }
        }
    }
    let out = format!(
        "/// Generated by build.rs from the `#[validate]` rules of `api/proto/src`.\npub(crate) const CONSTRAINTS: &[Constraint] = &[\n{rows}];\n"
    );
    let dest =
        Path::new(&std::env::var("OUT_DIR").unwrap_or_else(|_| ".".into())).join("constraints.rs");
    if let Err(e) = std::fs::write(&dest, out) {
        println!("cargo:warning=could not write {}: {e}", dest.display());
    }
}

fn quote_like_attr(a: &syn::Attribute) -> String {
    use quote::ToTokens as _;
    a.to_token_stream().to_string()
}
