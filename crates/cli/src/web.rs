//! What the two web pages share (`taskq dashboard` over a queue, and
//! `taskq run --dashboard` over one run): where they may listen, the token
//! that guards them, HTML escaping, and the responses' security headers.
//!
//! Safe by default:
//! 1. a page listens on a loopback address unless told otherwise, and
//!    refuses any other address without a token;
//! 2. with a token, every request must carry it (`Authorization: Bearer`,
//!    or the cookie set by opening `/?token=…` once);
//! 3. every page is sent with a Content-Security-Policy that allows only
//!    its own inline style and script, and may not be framed.

use std::net::{SocketAddr, ToSocketAddrs};

use taskq::Error;
use tiny_http::{Header, Request, Response};

/// A response with an in-memory body.
pub(crate) type Page = Response<std::io::Cursor<Vec<u8>>>;

/// Where a page listens and with which token: checked, then bound.
pub(crate) struct Listen {
    /// The flag that names the address, for errors (`--addr`).
    pub addr_flag: &'static str,
    /// The flag that names the token, for errors (`--auth-token`).
    pub token_flag: &'static str,
    /// The environment variable that may hold the token.
    pub token_env: &'static str,
    /// An example address, for errors.
    pub example: &'static str,
}

impl Listen {
    /// Resolves `addr` and checks `token` against it.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for an address that does not parse, an empty
    /// token, or an address that is not a loopback one while no token is
    /// set.
    pub(crate) fn check(&self, addr: &str, token: Option<&str>) -> Result<SocketAddr, Error> {
        let resolved = addr
            .to_socket_addrs()
            .map_err(|e| {
                Error::config(
                    self.addr_flag,
                    format!(
                        "expected HOST:PORT (for example {}), got {addr:?}: {e}",
                        self.example
                    ),
                )
            })?
            .next()
            .ok_or_else(|| {
                Error::config(self.addr_flag, format!("{addr:?} resolves to nothing"))
            })?;
        match token {
            Some(t) if t.trim().is_empty() => {
                return Err(Error::config(self.token_flag, "must not be empty"))
            }
            None if !resolved.ip().is_loopback() => {
                return Err(Error::config(
                    self.token_flag,
                    format!(
                        "is required to listen on {resolved}, which is not a loopback address: \
                         set {} or {} (or listen on 127.0.0.1)",
                        self.token_flag, self.token_env
                    ),
                ))
            }
            _ => {}
        }
        Ok(resolved)
    }

    /// Listens on an address [`check`](Self::check) returned.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when it cannot be bound (in use, not local).
    pub(crate) fn bind(
        &self,
        resolved: SocketAddr,
    ) -> Result<(tiny_http::Server, SocketAddr), Error> {
        let server = tiny_http::Server::http(resolved).map_err(|e| {
            Error::config(self.addr_flag, format!("cannot listen on {resolved}: {e}"))
        })?;
        let bound = server.server_addr().to_ip().expect("an IP listener");
        Ok((server, bound))
    }
}

/// What [`authenticate`] decided.
pub(crate) enum Access {
    /// Go on.
    Granted,
    /// Answer with this (a refusal, or the redirect that sets the cookie).
    Answer(Page),
}

/// With a token, every request carries it. Opening `/?token=T` once sets a
/// cookie (HttpOnly, SameSite=Strict) and redirects to the page without
/// the token in the address.
pub(crate) fn authenticate(request: &Request, token: Option<&str>, path: &str) -> Access {
    let Some(token) = token else {
        return Access::Granted;
    };
    let bearer = header(request, "Authorization")
        .and_then(|v| v.strip_prefix("Bearer ").map(str::to_string));
    let cookie = header(request, "Cookie").and_then(|c| {
        c.split(';')
            .filter_map(|kv| kv.trim().strip_prefix("taskq_token=").map(str::to_string))
            .next()
    });
    let query = request.url().split_once('?').map_or("", |(_, q)| q);
    let from_query = form_urlencoded::parse(query.as_bytes())
        .find(|(k, v)| k == "token" && !v.is_empty())
        .map(|(_, v)| v.into_owned());
    let given = bearer.or(cookie).or(from_query.clone());
    if !given.as_deref().is_some_and(|g| same_secret(g, token)) {
        return Access::Answer(plain(
            401,
            "unauthorized: this dashboard needs its token (Authorization: Bearer TOKEN, or open /?token=TOKEN once)",
        ));
    }
    if from_query.is_some() {
        let cookie = format!(
            "taskq_token={}; HttpOnly; SameSite=Strict; Path=/",
            query_value(token)
        );
        return Access::Answer(redirect(path).with_header(hdr("Set-Cookie", &cookie)));
    }
    Access::Granted
}

/// Escapes `s` for HTML text and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Escapes `s` for a URL query value.
pub(crate) fn query_value(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// A request header's value, by case-insensitive name.
pub(crate) fn header(request: &Request, name: &str) -> Option<String> {
    request
        .headers()
        .iter()
        .find(|h| h.field.as_str().as_str().eq_ignore_ascii_case(name))
        .map(|h| h.value.as_str().to_string())
}

/// Compares without stopping at the first difference.
pub(crate) fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// An HTML page with the security headers.
pub(crate) fn html(status: u16, body: String) -> Page {
    Response::from_string(body)
        .with_status_code(status)
        .with_header(hdr("Content-Type", "text/html; charset=utf-8"))
        .with_header(hdr("Cache-Control", "no-store"))
        .with_header(hdr("X-Content-Type-Options", "nosniff"))
        .with_header(hdr("X-Frame-Options", "DENY"))
        .with_header(hdr(
            "Content-Security-Policy",
            "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; \
             connect-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'",
        ))
}

/// A JSON document.
pub(crate) fn json(body: String) -> Page {
    Response::from_string(body)
        .with_header(hdr("Content-Type", "application/json"))
        .with_header(hdr("Cache-Control", "no-store"))
        .with_header(hdr("X-Content-Type-Options", "nosniff"))
}

/// A header from static parts.
pub(crate) fn hdr(k: &str, v: &str) -> Header {
    Header::from_bytes(k, v).expect("a valid header")
}

/// A plain-text answer.
pub(crate) fn plain(status: u16, text: &str) -> Page {
    Response::from_string(format!("{text}\n"))
        .with_status_code(status)
        .with_header(hdr("Content-Type", "text/plain; charset=utf-8"))
}

/// A redirect after a POST (303: the browser follows with a GET).
pub(crate) fn redirect(to: &str) -> Page {
    Response::from_string(String::new())
        .with_status_code(303)
        .with_header(hdr("Location", to))
}

/// The pages' shared style sheet.
pub(crate) const STYLE: &str = "body{font:14px system-ui,sans-serif;margin:1.5em;color:#222}\
table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}\
th{background:#f3f3f3}td.n{text-align:right;font-variant-numeric:tabular-nums}\
nav a{margin-right:1em}.err{color:#a00}.ok{color:#060}code{font-size:13px}\
.bar{display:inline-block;width:240px;height:12px;border:1px solid #999;vertical-align:middle;background:#fff}\
.bar>span{display:block;height:100%;background:#36c}";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_leaves_no_markup() {
        assert_eq!(
            esc(r#"<script>alert("x")</script> & 'y'"#),
            "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;y&#39;"
        );
    }

    #[test]
    fn secrets_compare_by_value() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd"));
        assert!(!same_secret("abc", "abcd"));
    }

    #[test]
    fn a_token_is_required_off_loopback_and_not_on_it() {
        let l = Listen {
            addr_flag: "--addr",
            token_flag: "--auth-token",
            token_env: "TASKQ_DASHBOARD_TOKEN",
            example: "127.0.0.1:8080",
        };
        let e = l.check("0.0.0.0:0", None).unwrap_err().to_string();
        assert!(
            e.contains("--auth-token") && e.contains("not a loopback"),
            "{e}"
        );
        let e = l.check("127.0.0.1:0", Some("  ")).unwrap_err().to_string();
        assert!(e.contains("must not be empty"), "{e}");
        let e = l.check("nowhere", None).unwrap_err().to_string();
        assert!(e.contains("--addr") && e.contains("HOST:PORT"), "{e}");
        assert!(l.check("127.0.0.1:0", None).is_ok());
        assert!(l.check("0.0.0.0:0", Some("t")).is_ok());
        let (server, bound) = l.bind(l.check("127.0.0.1:0", None).unwrap()).unwrap();
        assert!(bound.ip().is_loopback() && bound.port() != 0);
        let e = l.bind(bound).err().expect("the port is taken").to_string();
        assert!(e.contains("--addr") && e.contains("cannot listen"), "{e}");
        drop(server);
    }
}
