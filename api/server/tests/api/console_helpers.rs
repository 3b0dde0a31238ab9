//! A console session for tests (an account set up and signed in, its cookie and CSRF
//! token), and small readers of the console's HTML: a value by id, a table row's cells.

use serde_json::{Value, json};

use crate::helpers::TestApp;

pub const PASSWORD: &str = "correct horse battery staple";

/// A signed-in console account.
pub struct Console {
    client: reqwest::Client,
    base: String,
    pub cookie: String,
    pub csrf: String,
}

/// Form-encodes fields.
pub fn encode(fields: &[(&str, String)]) -> String {
    fields
        .iter()
        .map(|(k, v)| {
            let k = percent_encoding::utf8_percent_encode(k, percent_encoding::NON_ALPHANUMERIC);
            let v = percent_encoding::utf8_percent_encode(v, percent_encoding::NON_ALPHANUMERIC);
            format!("{k}={v}")
        })
        .collect::<Vec<_>>()
        .join("&")
}

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Posts a form without a session.
pub async fn post_form(app: &TestApp, path: &str, fields: &[(&str, String)]) -> reqwest::Response {
    no_redirects()
        .post(app.url(path))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(encode(fields))
        .send()
        .await
        .unwrap()
}

/// Sets up an account from its set-up link and signs in.
pub async fn set_up_and_sign_in(app: &TestApp, email: &str, setup_url: &str) -> Console {
    let token = setup_url.split("token=").nth(1).unwrap().to_owned();
    let done = post_form(
        app,
        "/console/setup",
        &[("token", token), ("password", PASSWORD.into())],
    )
    .await;
    assert_eq!(done.status(), 303, "set up");
    let resp = post_form(
        app,
        "/console/login",
        &[("email", email.into()), ("password", PASSWORD.into())],
    )
    .await;
    assert_eq!(resp.status(), 303, "signed in");
    let cookie = resp.headers()["set-cookie"].to_str().unwrap();
    let mut console = Console {
        client: no_redirects(),
        base: app.address.clone(),
        cookie: cookie.split(';').next().unwrap().to_owned(),
        csrf: String::new(),
    };
    let (status, page) = console.get("/console/accounts").await;
    assert_eq!(status, 200);
    console.csrf = attr_after(&page, "name=\"csrf\" value=\"").to_owned();
    assert!(!console.csrf.is_empty());
    console
}

/// An account with `role`, created through the API, set up and signed in.
pub async fn console_as(app: &TestApp, email: &str, role: &str) -> Console {
    let resp = app
        .post_json(
            "/v1/console/accounts",
            &app.api_key,
            &json!({"email": email, "role": role}),
        )
        .await;
    assert_eq!(resp.status(), 201);
    let v: Value = resp.json().await.unwrap();
    set_up_and_sign_in(app, email, v["setup_url"].as_str().unwrap()).await
}

impl Console {
    /// The same session posting another CSRF token.
    pub fn with_csrf(&self, csrf: &str) -> Console {
        Console {
            client: self.client.clone(),
            base: self.base.clone(),
            cookie: self.cookie.clone(),
            csrf: csrf.into(),
        }
    }

    pub async fn get(&self, path: &str) -> (u16, String) {
        let resp = self.get_raw(path).await;
        let status = resp.status().as_u16();
        (status, resp.text().await.unwrap())
    }

    pub async fn get_raw(&self, path: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.base))
            .header("cookie", &self.cookie)
            .send()
            .await
            .unwrap()
    }

    /// Posts a form with the session's CSRF token (and a fresh idempotency key) added.
    pub async fn post(&self, path: &str, fields: &[(&str, String)]) -> reqwest::Response {
        let mut all = vec![
            ("csrf", self.csrf.clone()),
            ("idempotency_key", uuid::Uuid::new_v4().simple().to_string()),
        ];
        all.extend(fields.iter().cloned());
        self.client
            .post(format!("{}{path}", self.base))
            .header("cookie", &self.cookie)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(encode(&all))
            .send()
            .await
            .unwrap()
    }
}

/// Where a redirect goes.
pub fn location(resp: &reqwest::Response) -> String {
    resp.headers()["location"].to_str().unwrap().to_owned()
}

/// The text after `marker` up to the next quote (an attribute's value).
pub fn attr_after<'a>(html: &'a str, marker: &str) -> &'a str {
    let Some(start) = html.find(marker) else {
        panic!("{marker} not in the page");
    };
    let rest = &html[start + marker.len()..];
    &rest[..rest.find('"').unwrap_or(rest.len())]
}

/// The text content of the element with this id.
pub fn text_of(html: &str, id: &str) -> String {
    let marker = format!("id=\"{id}\"");
    let Some(start) = html.find(&marker) else {
        panic!("no element #{id}");
    };
    let rest = &html[start..];
    let open_end = rest.find('>').unwrap() + 1;
    let rest = &rest[open_end..];
    strip_tags(&rest[..rest.find('<').unwrap_or(rest.len())])
}

/// The number in the element with this id.
pub fn number_of(html: &str, id: &str) -> i64 {
    text_of(html, id).trim().parse().unwrap()
}

fn strip_tags(text: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    for c in text.chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out.trim().to_owned()
}

/// The cells' texts of every table row whose opening tag contains `marker`.
pub fn rows(html: &str, marker: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut rest = html;
    while let Some(i) = rest.find("<tr") {
        rest = &rest[i..];
        let open = &rest[..rest.find('>').unwrap_or(rest.len())];
        let end = rest.find("</tr>").unwrap_or(rest.len());
        if open.contains(marker) {
            let row = &rest[..end];
            out.push(
                row.split("<td")
                    .skip(1)
                    .map(|cell| {
                        let cell = &cell[cell.find('>').map_or(0, |i| i + 1)..];
                        strip_tags(&cell[..cell.find("</td>").unwrap_or(cell.len())])
                    })
                    .collect(),
            );
        }
        rest = &rest[end.min(rest.len())..];
        if rest.len() <= 5 {
            break;
        }
        rest = &rest[5..];
    }
    out
}

/// The `data-value`s of the marks of the SVG chart with this id.
pub fn chart_values(html: &str, id: &str) -> Vec<i64> {
    let marker = format!("id=\"{id}\"");
    let Some(start) = html.find(&marker) else {
        panic!("no chart #{id}");
    };
    let svg = &html[start..];
    let svg = &svg[..svg.find("</svg>").unwrap()];
    svg.split("data-value=\"")
        .skip(1)
        .map(|v| v[..v.find('"').unwrap()].parse().unwrap())
        .collect()
}
