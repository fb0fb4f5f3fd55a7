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
