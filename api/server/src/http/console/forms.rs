//! Reading the console's settings forms field by field, so each mistake is shown beside
//! its input: fields arrive as text, numbers are parsed one by one, and the wire types'
//! own validators (the API's rules) check the result.

use std::collections::{BTreeMap, HashMap};
use std::str::FromStr;

use serde::Deserialize;

/// A settings form: its CSRF token and every other field as text.
#[derive(Deserialize, utoipa::ToSchema)]
#[schema(example = json!({
    "csrf": "fOErqHgqMvdDV877ge24wg6k11URXstAYzSLjMnUHzQ",
    "text_message": "1",
    "name.0": "new",
    "messages_per_window.0": "10"
}))]
pub struct SettingsForm {
    pub csrf: String,
    /// The form's fields (`field` or, in a table, `field.row`).
    #[serde(flatten)]
    pub fields: HashMap<String, String>,
}

/// The fields of a submitted form and the errors found in them, by field name.
pub struct Fields<'a> {
    map: &'a HashMap<String, String>,
    pub errors: BTreeMap<String, String>,
}

impl<'a> Fields<'a> {
    pub fn new(map: &'a HashMap<String, String>) -> Self {
        Self {
            map,
            errors: BTreeMap::new(),
        }
    }

    /// A field's text, trimmed ("" when absent).
    pub fn text(&self, key: &str) -> &'a str {
        self.map.get(key).map_or("", |v| v.trim())
    }

    pub fn checked(&self, key: &str) -> bool {
        !self.text(key).is_empty()
    }

    /// A whole number; absent or not a number is an error on the field.
    pub fn int<T: FromStr + Default>(&mut self, key: &str) -> T {
        match self.text(key).parse() {
            Ok(v) => v,
            Err(_) => {
                self.errors
                    .insert(key.to_owned(), "enter a whole number".into());
                T::default()
            }
        }
    }

    /// A whole number, or nothing when the field is blank.
    pub fn opt_int<T: FromStr + Default>(&mut self, key: &str) -> Option<T> {
        if self.text(key).is_empty() {
            None
        } else {
            Some(self.int(key))
        }
    }

    /// Puts a validator's field errors on the form's fields (`field` + `suffix`).
    pub fn validated(&mut self, result: Result<(), validator::ValidationErrors>, suffix: &str) {
        let Err(errors) = result else { return };
        for (field, list) in errors.field_errors() {
            if let Some(e) = list.first() {
                self.errors
                    .entry(format!("{field}{suffix}"))
                    .or_insert_with(|| describe(e));
            }
        }
    }

    pub fn error(&self, key: &str) -> Option<&str> {
        self.errors.get(key).map(String::as_str)
    }

    pub fn is_ok(&self) -> bool {
        self.errors.is_empty()
    }
}

/// A validator's rule in words.
pub fn describe(e: &validator::ValidationError) -> String {
    let param = |name: &str| e.params.get(name).map(ToString::to_string);
    match (e.code.as_ref(), param("min"), param("max"), param("equal")) {
        ("range", Some(min), Some(max), _) => format!("from {min} to {max}"),
        ("range", Some(min), None, _) => format!("at least {min}"),
        ("range", None, Some(max), _) => format!("at most {max}"),
        ("length", _, _, Some(n)) => format!("exactly {n} characters"),
        ("length", Some(min), Some(max), _) => format!("{min} to {max} characters"),
        ("length", None, Some(max), _) => format!("at most {max} characters"),
        _ => e
            .message
            .as_ref()
            .map_or_else(|| "not valid".into(), ToString::to_string),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use validator::Validate;

    #[derive(Validate)]
    struct Sample {
        #[validate(range(min = 1, max = 5))]
        n: u32,
        #[validate(length(min = 1, max = 3))]
        s: String,
    }

    #[test]
    fn parse_and_rule_errors_land_on_their_fields() {
        let map: HashMap<String, String> = [("a", " 7 "), ("b", "x"), ("c", "")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        let mut f = Fields::new(&map);
        assert_eq!(f.int::<i64>("a"), 7);
        assert_eq!(f.int::<i64>("b"), 0);
        assert_eq!(f.opt_int::<i64>("c"), None);
        assert_eq!(f.error("b"), Some("enter a whole number"));
        assert!(f.error("a").is_none() && !f.checked("c"));
        let sample = Sample {
            n: 9,
            s: "long".into(),
        };
        f.validated(sample.validate(), ".2");
        assert_eq!(f.error("n.2"), Some("from 1 to 5"));
        assert_eq!(f.error("s.2"), Some("1 to 3 characters"));
        assert!(!f.is_ok());
    }
}
