//! The few fields of a JSON body that name an event: `type`, `id`, `event_id`,
//! `challenge` and `event.type`.
//!
//! Read leniently and without building the whole document: a body is whatever the sender
//! sent, so a field of an unexpected type, or a body that is not JSON at all, yields no
//! event name rather than an error, and a large payload is only scanned, never copied.

use std::fmt;

use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Envelope {
    /// Top-level `type` (Stripe's event type, Slack's callback type, a generic event's).
    pub kind: Option<String>,
    /// Top-level `id` (Stripe's event id).
    pub id: Option<String>,
    /// Top-level `event_id` (Slack's).
    pub event_id: Option<String>,
    /// Top-level `challenge` (Slack's `url_verification`).
    pub challenge: Option<String>,
    /// `event.type` (Slack's inner event).
    pub event_kind: Option<String>,
}

impl Envelope {
    /// The envelope of a JSON object body; empty for anything else.
    pub fn parse(body: &[u8]) -> Self {
        let starts_as_object = body
            .iter()
            .find(|b| !b.is_ascii_whitespace())
            .is_some_and(|b| *b == b'{');
        if !starts_as_object {
            return Self::default();
        }
        serde_json::from_slice(body).unwrap_or_default()
    }
}

impl<'de> Deserialize<'de> for Envelope {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(EnvelopeVisitor)
    }
}

struct EnvelopeVisitor;

impl<'de> Visitor<'de> for EnvelopeVisitor {
    type Value = Envelope;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Envelope, A::Error> {
        let mut out = Envelope::default();
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "type" => out.kind = map.next_value::<MaybeString>()?.0,
                "id" => out.id = map.next_value::<MaybeString>()?.0,
                "event_id" => out.event_id = map.next_value::<MaybeString>()?.0,
                "challenge" => out.challenge = map.next_value::<MaybeString>()?.0,
                "event" => out.event_kind = map.next_value::<InnerType>()?.0,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(out)
    }
}

/// A string, or `None` for a value of any other type (which is skipped over).
struct MaybeString(Option<String>);

impl<'de> Deserialize<'de> for MaybeString {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(MaybeStringVisitor).map(MaybeString)
    }
}

struct MaybeStringVisitor;

impl<'de> Visitor<'de> for MaybeStringVisitor {
    type Value = Option<String>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Some(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(Some(v))
    }
    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(None)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(None)
    }
}

/// The `type` string of an object, or `None` for anything else.
struct InnerType(Option<String>);

impl<'de> Deserialize<'de> for InnerType {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(InnerTypeVisitor).map(InnerType)
    }
}

struct InnerTypeVisitor;

impl<'de> Visitor<'de> for InnerTypeVisitor {
    type Value = Option<String>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut kind = None;
        while let Some(key) = map.next_key::<String>()? {
            if key == "type" {
                kind = map.next_value::<MaybeString>()?.0;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(kind)
    }
    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_naming_fields_and_skips_the_rest() {
        let e = Envelope::parse(
            br#"{"token":"x","event":{"user":"U1","type":"app_mention","blocks":[{"type":"rich_text"}]},
                "type":"event_callback","event_id":"Ev1","id":"evt_1","challenge":"c","n":[1,{"a":null}]}"#,
        );
        assert_eq!(
            e,
            Envelope {
                kind: Some("event_callback".into()),
                id: Some("evt_1".into()),
                event_id: Some("Ev1".into()),
                challenge: Some("c".into()),
                event_kind: Some("app_mention".into()),
            }
        );
    }

    #[test]
    fn fields_of_another_type_name_nothing() {
        let e = Envelope::parse(br#"{"type":7,"id":{"x":"y"},"event":"message","event_id":[1]}"#);
        assert_eq!(e, Envelope::default());
        let e = Envelope::parse(br#"{"type":"a.b","event":[{"type":"x"}]}"#);
        assert_eq!(e.kind.as_deref(), Some("a.b"));
        assert_eq!(e.event_kind, None);
    }

    #[test]
    fn bodies_that_are_not_a_json_object_name_nothing() {
        for body in [
            &b""[..],
            b"token=x&type=y",
            b"[1,2]",
            b"{\"type\":\"x\"",
            b"{\"type\":\"x\"} trailing",
            b"\xff\xfe",
        ] {
            assert_eq!(Envelope::parse(body), Envelope::default(), "{body:?}");
        }
        // Escapes are decoded like any JSON reader would.
        let e = Envelope::parse(br#" {"type":"caf\u00e9"}"#);
        assert_eq!(e.kind.as_deref(), Some("café"));
    }
}

#[cfg(test)]
mod proptests {
    use proptest::prelude::*;
    use serde_json::{Map, Value};

    use super::*;
    use crate::providers::test_support::arb;

    /// Any JSON, with the naming fields' keys more likely than chance would make them.
    fn json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>()
                .prop_filter("JSON has no NaN or infinity", |f| f.is_finite())
                .prop_map(Value::from),
            any::<String>().prop_map(Value::String),
        ];
        let key = prop_oneof![
            prop::sample::select(vec!["type", "id", "event_id", "challenge", "event"])
                .prop_map(str::to_owned),
            any::<String>(),
        ];
        leaf.prop_recursive(4, 48, 6, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::vec((key.clone(), inner), 0..6)
                    .prop_map(|fields| Value::Object(fields.into_iter().collect::<Map<_, _>>())),
            ]
        })
    }

    /// The envelope read the slow way, from the whole document.
    fn expected(v: &Value) -> Envelope {
        let Some(top) = v.as_object() else {
            return Envelope::default();
        };
        let text =
            |o: &Map<String, Value>, k: &str| o.get(k).and_then(Value::as_str).map(str::to_owned);
        Envelope {
            kind: text(top, "type"),
            id: text(top, "id"),
            event_id: text(top, "event_id"),
            challenge: text(top, "challenge"),
            event_kind: top
                .get("event")
                .and_then(Value::as_object)
                .and_then(|e| text(e, "type")),
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(arb::CASES))]

        #[test]
        fn any_bytes_are_read_without_panicking(
            body in prop_oneof![
                arb::body(),
                arb::body().prop_map(|b| [b"{".as_slice(), &b].concat()),
                arb::body().prop_map(|b| [br#"{"type":"#.as_slice(), &b].concat()),
            ],
        ) {
            let e = Envelope::parse(&body);
            match serde_json::from_slice::<Value>(&body) {
                Ok(v) => prop_assert_eq!(e, expected(&v)),
                // Not JSON names nothing. (Valid JSON nested past serde_json's limit of
                // 128 would be read, but random bytes do not make it.)
                Err(_) => prop_assert_eq!(e, Envelope::default()),
            }
        }

        #[test]
        fn any_json_reads_as_the_whole_document_says(v in json(), pretty in any::<bool>()) {
            let body = if pretty {
                serde_json::to_vec_pretty(&v).unwrap()
            } else {
                serde_json::to_vec(&v).unwrap()
            };
            prop_assert_eq!(Envelope::parse(&body), expected(&v));
        }

        /// Skipped values are skipped without recursion (serde_json keeps its own stack of
        /// brackets), and a naming field holding an array or object is skipped the same
        /// way: no depth overflows the stack or hides the fields around it.
        #[test]
        fn nesting_of_any_depth_anywhere_is_skipped(
            depth in 1usize..20_000,
            place in 0usize..4,
            kind in any::<String>(),
        ) {
            let deep = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
            let quoted = Value::String(kind.clone()).to_string();
            let (body, want) = match place {
                0 => (
                    format!(r#"{{"data":{deep},"type":{quoted}}}"#),
                    Envelope { kind: Some(kind), ..Envelope::default() },
                ),
                1 => (
                    format!(r#"{{"type":{deep},"id":{quoted}}}"#),
                    Envelope { id: Some(kind), ..Envelope::default() },
                ),
                2 => (
                    format!(r#"{{"event":{{"blocks":{deep},"type":{quoted}}}}}"#),
                    Envelope { event_kind: Some(kind), ..Envelope::default() },
                ),
                _ => (
                    format!(r#"{{"event":{deep},"challenge":{quoted}}}"#),
                    Envelope { challenge: Some(kind), ..Envelope::default() },
                ),
            };
            prop_assert_eq!(Envelope::parse(body.as_bytes()), want);
        }
    }
}
