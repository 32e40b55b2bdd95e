//! Building the HTTP request for one event: pure, so it is unit-tested without a network.

use base64::Engine as _;
use herald_core::binding::{encode_binary, encode_structured, HttpMessage};
use herald_core::signing::sign;
use herald_core::subscription::{ContentMode, SinkCredential};

use super::WebhookConfig;
use crate::sinks::Outbound;

/// Headers and body of the request for `out` under `cfg` (the URL and method are the
/// config's). Herald's own headers come last so custom headers cannot override them.
/// `oauth_token` is the OAuth2 access token when the credential is OAUTH2.
pub fn build_request(
    cfg: &WebhookConfig,
    out: &Outbound,
    oauth_token: Option<&str>,
) -> HttpMessage {
    let mut msg = match cfg.mode {
        ContentMode::Structured => encode_structured(&out.event, cfg.pretty),
        ContentMode::Binary => encode_binary(&out.event),
    };
    let mut headers: Vec<(String, String)> = cfg
        .headers
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    match &cfg.credential {
        Some(SinkCredential::Plain { identifier, secret }) => {
            let token =
                base64::engine::general_purpose::STANDARD.encode(format!("{identifier}:{secret}"));
            headers.push(("authorization".into(), format!("Basic {token}")));
        }
        Some(SinkCredential::Accesstoken {
            accesstoken,
            accesstokentype,
            ..
        }) => {
            let kind = accesstokentype.as_deref().unwrap_or("Bearer");
            headers.push(("authorization".into(), format!("{kind} {accesstoken}")));
        }
        Some(SinkCredential::Apikey { apikey, headername }) => {
            headers.push((headername.to_ascii_lowercase(), apikey.clone()));
        }
        Some(SinkCredential::Oauth2 { .. }) => {
            if let Some(token) = oauth_token {
                headers.push(("authorization".into(), format!("Bearer {token}")));
            }
        }
        None => {}
    }
    headers.append(&mut msg.headers);
    headers.push(("webhook-id".into(), out.msg_id.clone()));
    headers.push(("webhook-timestamp".into(), out.timestamp.to_string()));
    if let Some(key) = &cfg.signing_key {
        headers.push((
            "webhook-signature".into(),
            sign(key, &out.msg_id, out.timestamp, &msg.body),
        ));
    }
    msg.headers = headers;
    msg
}

/// The sink URL with `{{type}}` (and its alias `{{trigger}}`) replaced by the event type,
/// percent-encoded as a path segment.
pub fn expand_url(template: &str, event_type: &str) -> String {
    if !template.contains("{{") {
        return template.to_string();
    }
    let encoded = herald_core::topic::encode_path_segment(event_type);
    template
        .replace("{{type}}", &encoded)
        .replace("{{trigger}}", &encoded)
}

#[cfg(test)]
mod tests {
    use super::*;
    use herald_core::signing::{secret_key, verify};
    use herald_core::{Data, Event};
    use std::collections::BTreeMap;
    use std::time::Duration;

    fn cfg(mode: ContentMode) -> WebhookConfig {
        WebhookConfig {
            url: "http://x".into(),
            parsed_url: None,
            method: "POST".into(),
            headers: BTreeMap::from([("x-team".to_string(), "blue".to_string())]),
            mode,
            credential: Some(SinkCredential::Accesstoken {
                accesstoken: "tok".into(),
                accesstokentype: None,
                accesstokenexpiresutc: None,
            }),
            signing_key: secret_key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
            timeout: Duration::from_secs(1),
            non_retryable: vec![],
            pretty: false,
        }
    }

    fn out() -> Outbound {
        let mut e = Event::new("1", "/s", "t");
        e.data = Some(Data::Json(serde_json::json!({"a": 1})));
        Outbound {
            event: e,
            msg_id: "msg_1".into(),
            timestamp: 1_700_000_000,
        }
    }

    fn header<'a>(m: &'a HttpMessage, name: &str) -> Option<&'a str> {
        m.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn binary_mode_is_signed_with_custom_headers() {
        let m = build_request(&cfg(ContentMode::Binary), &out(), None);
        assert_eq!(header(&m, "ce-type"), Some("t"));
        assert_eq!(header(&m, "x-team"), Some("blue"));
        assert_eq!(header(&m, "authorization"), Some("Bearer tok"));
        assert_eq!(m.body, br#"{"a":1}"#);
        let key = secret_key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        assert!(verify(
            &key,
            "msg_1",
            1_700_000_000,
            &m.body,
            header(&m, "webhook-signature").unwrap()
        ));
    }

    #[test]
    fn url_templates_take_the_event_type() {
        assert_eq!(
            expand_url("http://x/hooks/{{type}}", "order.created"),
            "http://x/hooks/order.created"
        );
        assert_eq!(
            expand_url("http://x/{{trigger}}?t={{type}}", "a b/c"),
            "http://x/a%20b%2Fc?t=a%20b%2Fc"
        );
        assert_eq!(expand_url("http://x/plain", "t"), "http://x/plain");
    }

    #[test]
    fn api_key_goes_in_its_header() {
        let mut c = cfg(ContentMode::Binary);
        c.credential = Some(SinkCredential::Apikey {
            apikey: "k-1".into(),
            headername: "X-Api-Key".into(),
        });
        let m = build_request(&c, &out(), None);
        assert_eq!(header(&m, "x-api-key"), Some("k-1"));
        c.credential = Some(SinkCredential::Oauth2 {
            accesstokenurl: "http://t".into(),
            clientid: "c".into(),
            clientsecret: "s".into(),
            scope: None,
        });
        assert_eq!(
            header(&build_request(&c, &out(), Some("tok")), "authorization"),
            Some("Bearer tok")
        );
    }

    #[test]
    fn structured_mode_carries_the_whole_event() {
        let m = build_request(&cfg(ContentMode::Structured), &out(), None);
        assert!(header(&m, "ce-type").is_none());
        let v: serde_json::Value = serde_json::from_slice(&m.body).unwrap();
        assert_eq!(v["type"], "t");
        assert_eq!(v["data"]["a"], 1);
        assert!(m
            .content_type
            .unwrap()
            .starts_with("application/cloudevents+json"));
    }
}
