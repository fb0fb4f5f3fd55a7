//! The WebSocket wire of an agent socket (RFC 6455), both halves, with the limits that
//! keep one agent from growing the hub's memory.
//!
//! Reading: [`FrameDecoder`] looks at a frame's header before it takes the payload, so a
//! frame that declares more than the limit fails the connection (1009) while its payload
//! is still on the wire, instead of being buffered whole first. Fragmented messages are
//! reassembled within the same limit, and protocol violations fail the connection with
//! the code RFC 6455 gives them (1002, or 1007 for text that is not UTF-8).
//!
//! Writing: the response body is a stream that encodes the session's frames as the HTTP
//! dispatcher asks for them, so frames wait in the session's bounded channel, not in a
//! second queue, and the socket's output buffer holds about one frame at a time.

use std::{
    pin::Pin,
    task::{Context, Poll},
};

use actix_http::{
    body::{BodyStream, MessageBody},
    ws::{self, CloseCode, CloseReason, Codec, Frame, Item, Message, ProtocolError},
};
use actix_web::{web, HttpRequest, HttpResponse};
use bytes::{Bytes, BytesMut};
use bytestring::ByteString;
use futures_util::{Stream, StreamExt};
use tokio::sync::mpsc;
use tokio_util::codec::{Decoder, Encoder};

/// What the session hands the write half, in order. The rare variants are boxed to keep
/// this at the size of a `String`: every socket's channel allocates a block of 32 of them
/// up front.
pub enum Outbound {
    Text(String),
    Ping,
    Pong(Box<Bytes>),
    Close(Box<CloseReason>),
}
const _: () = assert!(std::mem::size_of::<Outbound>() <= std::mem::size_of::<String>());

/// Why the hub fails a connection: the close code and a reason for the peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub code: CloseCode,
    pub reason: String,
}

impl Violation {
    fn too_big(limit: usize) -> Self {
        Self {
            code: CloseCode::Size,
            reason: format!("message larger than the {limit}-byte limit"),
        }
    }

    fn protocol(e: &ProtocolError) -> Self {
        Self {
            code: CloseCode::Protocol,
            reason: format!("protocol violation: {e}"),
        }
    }

    fn not_utf8() -> Self {
        Self {
            code: CloseCode::Invalid,
            reason: "a text message that is not valid UTF-8".to_owned(),
        }
    }

    pub fn close_reason(&self) -> CloseReason {
        CloseReason {
            code: self.code,
            description: Some(self.reason.clone()),
        }
    }
}

/// The payload length a frame's header declares, once enough of the header is there
/// (`None` before). Only the length matters here: everything else is the codec's to check.
pub fn declared_len(buf: &[u8]) -> Option<u64> {
    let len7 = buf.get(1)? & 0x7f;
    match len7 {
        126 => Some(u64::from(u16::from_be_bytes([*buf.get(2)?, *buf.get(3)?]))),
        127 => {
            let bytes: [u8; 8] = buf.get(2..10)?.try_into().ok()?;
            Some(u64::from_be_bytes(bytes))
        }
        n => Some(u64::from(n)),
    }
}

/// Turns the bytes an agent sends into messages. Pure: fed by [`FrameReader`], tested
/// without a socket.
pub struct FrameDecoder {
    codec: Codec,
    buf: BytesMut,
    /// Largest frame, and largest reassembled message.
    limit: usize,
    /// A fragmented message being reassembled: whether it is text, and its bytes so far.
    partial: Option<(bool, BytesMut)>,
    /// Set once the connection has failed; nothing more is decoded.
    failed: bool,
}

impl FrameDecoder {
    pub fn new(limit: usize) -> Self {
        Self {
            codec: Codec::new().max_size(limit),
            buf: BytesMut::new(),
            limit,
            partial: None,
            failed: false,
        }
    }

    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes waiting to be decoded: at most one frame's header and payload within the
    /// limit, plus what arrived with them in the last chunk.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The next whole message, `Ok(None)` when more bytes are needed, or the violation
    /// that fails the connection.
    pub fn next_message(&mut self) -> Result<Option<Message>, Violation> {
        if self.failed {
            return Ok(None);
        }
        let result = self.decode();
        if result.is_err() {
            self.failed = true;
            self.buf = BytesMut::new();
            self.partial = None;
        }
        result
    }

    fn decode(&mut self) -> Result<Option<Message>, Violation> {
        loop {
            if let Some(len) = declared_len(&self.buf) {
                if len > self.limit as u64 {
                    return Err(Violation::too_big(self.limit));
                }
            }
            let frame = match self.codec.decode(&mut self.buf) {
                Ok(Some(frame)) => frame,
                Ok(None) => return Ok(None),
                Err(ProtocolError::Overflow) => return Err(Violation::too_big(self.limit)),
                Err(e) => return Err(Violation::protocol(&e)),
            };
            let message = match frame {
                Frame::Text(bytes) => Message::Text(text(bytes)?),
                Frame::Binary(bytes) => Message::Binary(bytes),
                Frame::Ping(bytes) => Message::Ping(bytes),
                Frame::Pong(bytes) => Message::Pong(bytes),
                Frame::Close(reason) => Message::Close(reason),
                Frame::Continuation(item) => match self.continue_message(item)? {
                    Some(message) => message,
                    None => continue,
                },
            };
            return Ok(Some(message));
        }
    }

    /// Adds one fragment; the whole message once its last fragment is in. The codec has
    /// already refused fragments out of order (a continuation with nothing started, a new
    /// message inside another, a fragmented control frame).
    fn continue_message(&mut self, item: Item) -> Result<Option<Message>, Violation> {
        let (is_text, bytes, last) = match item {
            Item::FirstText(b) => (Some(true), b, false),
            Item::FirstBinary(b) => (Some(false), b, false),
            Item::Continue(b) => (None, b, false),
            Item::Last(b) => (None, b, true),
        };
        if let Some(is_text) = is_text {
            self.partial = Some((is_text, BytesMut::new()));
        }
        let Some((is_text, message)) = self.partial.as_mut() else {
            return Err(Violation::protocol(&ProtocolError::ContinuationNotStarted));
        };
        if message.len() + bytes.len() > self.limit {
            return Err(Violation::too_big(self.limit));
        }
        message.extend_from_slice(&bytes);
        if !last {
            return Ok(None);
        }
        let is_text = *is_text;
        let Some((_, message)) = self.partial.take() else {
            return Ok(None);
        };
        let bytes = message.freeze();
        Ok(Some(if is_text {
            Message::Text(text(bytes)?)
        } else {
            Message::Binary(bytes)
        }))
    }
}

fn text(bytes: Bytes) -> Result<ByteString, Violation> {
    ByteString::try_from(bytes).map_err(|_| Violation::not_utf8())
}

/// The read half of an agent socket: messages, in order, until the peer's stream ends or
/// a violation fails the connection. It reads from the wire only when the decoder needs
/// more, so what it buffers stays within the frame limit.
pub struct FrameReader {
    payload: actix_http::Payload,
    decoder: FrameDecoder,
    ended: bool,
}

impl FrameReader {
    pub async fn next(&mut self) -> Option<Result<Message, Violation>> {
        loop {
            match self.decoder.next_message() {
                Ok(Some(message)) => return Some(Ok(message)),
                Err(violation) => {
                    self.ended = true;
                    return Some(Err(violation));
                }
                Ok(None) if self.ended => return None,
                Ok(None) => {}
            }
            match self.payload.next().await {
                Some(Ok(bytes)) => self.decoder.push(&bytes),
                // The peer's stream is over (an error is a peer gone mid-frame): whatever
                // whole frames came before it were decoded above.
                Some(Err(e)) => {
                    tracing::debug!(error = %e, "agent socket read ended");
                    self.ended = true;
                }
                None => self.ended = true,
            }
        }
    }
}

/// Accepts the WebSocket handshake. The response streams what the session sends on `out`;
/// the reader yields what the agent sends, frames and messages up to `limit` bytes.
pub fn accept(
    req: &HttpRequest,
    payload: web::Payload,
    out: mpsc::Receiver<Outbound>,
    limit: usize,
) -> Result<(HttpResponse, FrameReader), actix_web::Error> {
    let mut response = ws::handshake(req.head())?;
    let body = BodyStream::new(FrameWriter {
        rx: out,
        codec: Codec::new(),
        payload: None,
        done: false,
    });
    let response = response.message_body(body.boxed())?;
    let reader = FrameReader {
        payload: payload.into_inner(),
        decoder: FrameDecoder::new(limit),
        ended: false,
    };
    Ok((response.into(), reader))
}

/// The write half: encodes the session's frames one at a time as the connection takes
/// them. It ends after a close frame, or with a plain one when the session is gone.
struct FrameWriter {
    rx: mpsc::Receiver<Outbound>,
    codec: Codec,
    /// A text frame's payload, to go right after the header just handed out.
    payload: Option<Bytes>,
    done: bool,
}

/// The header of an unmasked, final text frame (server to client) of `len` bytes.
fn text_header(len: usize) -> Bytes {
    let mut header = BytesMut::with_capacity(10);
    header.extend_from_slice(&[0x81]);
    if len < 126 {
        header.extend_from_slice(&[len as u8]);
    } else if let Ok(len) = u16::try_from(len) {
        header.extend_from_slice(&[126]);
        header.extend_from_slice(&len.to_be_bytes());
    } else {
        header.extend_from_slice(&[127]);
        header.extend_from_slice(&(len as u64).to_be_bytes());
    }
    header.freeze()
}

impl Stream for FrameWriter {
    type Item = Result<Bytes, ProtocolError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if let Some(payload) = this.payload.take() {
            return Poll::Ready(Some(Ok(payload)));
        }
        if this.done {
            return Poll::Ready(None);
        }
        let message = match this.rx.poll_recv(cx) {
            Poll::Pending => return Poll::Pending,
            // A delivery frame can be megabytes: its text goes out as it is, after a
            // header of its own, rather than copied into an encoding buffer first.
            Poll::Ready(Some(Outbound::Text(text))) => {
                let payload = Bytes::from(text.into_bytes());
                let header = text_header(payload.len());
                this.payload = Some(payload);
                return Poll::Ready(Some(Ok(header)));
            }
            Poll::Ready(Some(Outbound::Ping)) => Message::Ping(Bytes::new()),
            Poll::Ready(Some(Outbound::Pong(bytes))) => Message::Pong(*bytes),
            Poll::Ready(Some(Outbound::Close(reason))) => {
                this.done = true;
                Message::Close(Some(*reason))
            }
            Poll::Ready(None) => {
                this.done = true;
                Message::Close(None)
            }
        };
        let mut buf = BytesMut::new();
        Poll::Ready(Some(
            this.codec.encode(message, &mut buf).map(|()| buf.freeze()),
        ))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const LIMIT: usize = 4096;

    /// A client frame: masked with `mask`, as RFC 6455 requires of clients.
    fn frame(fin: bool, opcode: u8, payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
        let mut out = vec![if fin { 0x80 | opcode } else { opcode }];
        let len = payload.len();
        if len < 126 {
            out.push(0x80 | len as u8);
        } else if len <= 0xffff {
            out.push(0x80 | 126);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        } else {
            out.push(0x80 | 127);
            out.extend_from_slice(&(len as u64).to_be_bytes());
        }
        out.extend_from_slice(&mask);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        out
    }

    /// Feeds `bytes` in chunks of the given sizes, decoding after each as the reader does;
    /// every message, and the violation if one came.
    fn decode_chunked(bytes: &[u8], chunks: &[usize]) -> (Vec<Message>, Option<Violation>, usize) {
        let mut decoder = FrameDecoder::new(LIMIT);
        let (mut messages, mut most_buffered) = (Vec::new(), 0);
        let mut rest = bytes;
        let mut sizes = chunks.iter().cycle();
        while !rest.is_empty() {
            let n = (*sizes.next().unwrap_or(&1)).clamp(1, rest.len());
            decoder.push(&rest[..n]);
            rest = &rest[n..];
            most_buffered = most_buffered.max(decoder.buffered());
            loop {
                match decoder.next_message() {
                    Ok(Some(m)) => messages.push(m),
                    Ok(None) => break,
                    Err(v) => return (messages, Some(v), most_buffered),
                }
            }
        }
        (messages, None, most_buffered)
    }

    #[test]
    fn the_declared_length_is_read_from_each_header_form() {
        assert_eq!(declared_len(&[0x81]), None);
        assert_eq!(declared_len(&[0x81, 0x85]), Some(5));
        assert_eq!(declared_len(&[0x81, 0xfe, 0x01]), None);
        assert_eq!(declared_len(&[0x81, 0xfe, 0x01, 0x00]), Some(256));
        let mut long = vec![0x81, 0xff];
        long.extend_from_slice(&(1u64 << 40).to_be_bytes());
        assert_eq!(declared_len(&long), Some(1 << 40));
    }

    #[test]
    fn text_headers_match_the_codec_at_every_length_form() {
        for len in [0, 125, 126, 65_535, 65_536, 1 << 20] {
            let text = "a".repeat(len);
            let mut encoded = BytesMut::new();
            Codec::new()
                .encode(Message::Text(text.clone().into()), &mut encoded)
                .unwrap();
            let mut ours = text_header(len).to_vec();
            ours.extend_from_slice(text.as_bytes());
            assert_eq!(ours, encoded.to_vec(), "length {len}");
        }
    }

    #[test]
    fn an_oversized_frame_fails_on_its_header_alone() {
        let mut decoder = FrameDecoder::new(LIMIT);
        let mut header = vec![0x81, 0xff];
        header.extend_from_slice(&(1u64 << 30).to_be_bytes());
        decoder.push(&header);
        let violation = decoder.next_message().unwrap_err();
        assert_eq!(violation.code, CloseCode::Size);
        // Nothing more is decoded once the connection has failed.
        decoder.push(&frame(true, 0x1, b"{}", [1, 2, 3, 4]));
        assert_eq!(decoder.next_message().unwrap(), None);
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic_nor_buffer_past_one_frame(
            bytes in proptest::collection::vec(any::<u8>(), 0..20_000),
            chunks in proptest::collection::vec(1usize..3000, 1..8),
        ) {
            let (_, _, most_buffered) = decode_chunked(&bytes, &chunks);
            let largest_chunk = chunks.iter().max().copied().unwrap_or(1);
            // A header (at most 14 bytes) and a payload within the limit, plus the chunk
            // that completed it.
            prop_assert!(most_buffered <= LIMIT + 14 + largest_chunk);
        }

        #[test]
        fn a_text_message_in_any_fragments_comes_out_whole(
            text in "\\PC{0,600}",
            cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..5),
            mask in any::<[u8; 4]>(),
            chunks in proptest::collection::vec(1usize..64, 1..4),
        ) {
            let bytes = text.as_bytes();
            let mut points: Vec<usize> = cuts.iter().map(|i| i.index(bytes.len() + 1)).collect();
            points.sort_unstable();
            points.dedup();
            let mut wire = Vec::new();
            let mut pieces: Vec<&[u8]> = Vec::new();
            let mut start = 0;
            for p in points.into_iter().chain(std::iter::once(bytes.len())) {
                pieces.push(&bytes[start..p]);
                start = p;
            }
            for (i, piece) in pieces.iter().enumerate() {
                let opcode = if i == 0 { 0x1 } else { 0x0 };
                wire.extend(frame(i + 1 == pieces.len(), opcode, piece, mask));
                // A ping between fragments is allowed and comes out on its own.
                if i == 0 {
                    wire.extend(frame(true, 0x9, b"p", mask));
                }
            }
            let (messages, violation, _) = decode_chunked(&wire, &chunks);
            prop_assert_eq!(violation, None);
            let texts: Vec<String> = messages
                .iter()
                .filter_map(|m| match m {
                    Message::Text(t) => Some(t.to_string()),
                    _ => None,
                })
                .collect();
            prop_assert_eq!(texts, vec![text.clone()]);
        }

        #[test]
        fn messages_over_the_limit_fail_with_1009_however_they_are_cut(
            extra in 1usize..2000,
            parts in 1usize..6,
        ) {
            let payload = vec![b'a'; LIMIT + extra];
            let size = payload.len().div_ceil(parts);
            let pieces: Vec<&[u8]> = payload.chunks(size).collect();
            let mut wire = Vec::new();
            for (i, piece) in pieces.iter().enumerate() {
                let opcode = if i == 0 { 0x1 } else { 0x0 };
                wire.extend(frame(i + 1 == pieces.len(), opcode, piece, [9, 8, 7, 6]));
            }
            let (messages, violation, _) = decode_chunked(&wire, &[512]);
            prop_assert!(messages.is_empty());
            prop_assert_eq!(violation.map(|v| v.code), Some(CloseCode::Size));
        }
    }
}
