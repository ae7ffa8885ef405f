//! The Jupyter wire format: multipart ZeroMQ frames `[ids…, <IDS|MSG>, signature, header,
//! parent_header, metadata, content, buffers…]`, HMAC-SHA256 signatures checked in constant
//! time, and a replay guard that refuses a signature it has already seen.

use std::collections::{HashSet, VecDeque};

use bytes::Bytes;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Map, Value, json};
use sha2::Sha256;
use zeromq::ZmqMessage;

const DELIMITER: &[u8] = b"<IDS|MSG>";
pub const PROTOCOL_VERSION: &str = "5.3";

/// Why an incoming message was dropped.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("no <IDS|MSG> delimiter")]
    NoDelimiter,
    #[error("fewer than five frames after the delimiter")]
    Truncated,
    #[error("bad signature")]
    BadSignature,
    #[error("replayed message (signature already seen)")]
    Replayed,
    #[error("frame {0} is not JSON: {1}")]
    NotJson(&'static str, serde_json::Error),
    #[error("header has no msg_type")]
    NoMsgType,
}

/// Signs and verifies messages with the connection file's key (no key: no signing).
pub struct Signer {
    mac: Option<Hmac<Sha256>>,
}

impl Signer {
    pub fn new(scheme: &str, key: &str) -> Result<Self, String> {
        if key.is_empty() {
            return Ok(Self { mac: None });
        }
        if scheme != "hmac-sha256" {
            return Err(format!("unsupported signature scheme {scheme:?} (only hmac-sha256)"));
        }
        let mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).map_err(|e| e.to_string())?;
        Ok(Self { mac: Some(mac) })
    }

    pub fn sign(&self, parts: &[&[u8]]) -> String {
        match &self.mac {
            None => String::new(),
            Some(mac) => {
                let mut mac = mac.clone();
                for part in parts {
                    mac.update(part);
                }
                hex::encode(mac.finalize().into_bytes())
            }
        }
    }

    /// Constant-time check of a hex signature.
    pub fn verify(&self, signature: &[u8], parts: &[&[u8]]) -> bool {
        let Some(mac) = &self.mac else { return true };
        let Ok(expected) = hex::decode(signature) else { return false };
        let mut mac = mac.clone();
        for part in parts {
            mac.update(part);
        }
        mac.verify_slice(&expected).is_ok()
    }

    pub fn is_signing(&self) -> bool {
        self.mac.is_some()
    }
}

/// Remembers recent signatures so a captured message cannot be played again.
pub struct ReplayGuard {
    seen: HashSet<Bytes>,
    order: VecDeque<Bytes>,
    capacity: usize,
}

impl ReplayGuard {
    pub fn new(capacity: usize) -> Self {
        Self { seen: HashSet::new(), order: VecDeque::new(), capacity }
    }

    /// Records the signature; false if it was seen before.
    pub fn check(&mut self, signature: &Bytes) -> bool {
        if signature.is_empty() {
            return true; // unsigned session: nothing to replay-check
        }
        if !self.seen.insert(signature.clone()) {
            return false;
        }
        self.order.push_back(signature.clone());
        if self.order.len() > self.capacity
            && let Some(old) = self.order.pop_front() {
                self.seen.remove(&old);
            }
        true
    }
}

/// A verified incoming message. The header is kept verbatim to be echoed as the parent.
#[derive(Debug, Clone)]
pub struct Incoming {
    pub identities: Vec<Bytes>,
    pub header: Value,
    pub msg_type: String,
    pub metadata: Value,
    pub content: Value,
    /// When the kernel read it off the socket: a failed execute aborts only the executes
    /// that arrived before its reply went out.
    pub received: std::time::Instant,
}

impl Incoming {
    pub fn msg_id(&self) -> &str {
        self.header.get("msg_id").and_then(Value::as_str).unwrap_or("")
    }

    pub fn session(&self) -> &str {
        self.header.get("session").and_then(Value::as_str).unwrap_or("")
    }

    pub fn username(&self) -> &str {
        self.header.get("username").and_then(Value::as_str).unwrap_or("kernel")
    }
}

/// Splits, verifies and parses a received multipart message.
pub fn decode(
    message: ZmqMessage,
    signer: &Signer,
    replays: &mut ReplayGuard,
) -> Result<Incoming, WireError> {
    let frames = message.into_vec();
    let split = frames.iter().position(|f| f.as_ref() == DELIMITER).ok_or(WireError::NoDelimiter)?;
    let rest = &frames[split + 1..];
    if rest.len() < 5 {
        return Err(WireError::Truncated);
    }
    let parts = [rest[1].as_ref(), rest[2].as_ref(), rest[3].as_ref(), rest[4].as_ref()];
    if !signer.verify(&rest[0], &parts) {
        return Err(WireError::BadSignature);
    }
    if !replays.check(&rest[0]) {
        return Err(WireError::Replayed);
    }
    let json = |name, bytes: &Bytes| serde_json::from_slice::<Value>(bytes).map_err(|e| WireError::NotJson(name, e));
    let header = json("header", &rest[1])?;
    let msg_type = header.get("msg_type").and_then(Value::as_str).ok_or(WireError::NoMsgType)?.to_string();
    Ok(Incoming {
        identities: frames[..split].to_vec(),
        header,
        msg_type,
        metadata: json("metadata", &rest[3])?,
        content: json("content", &rest[4])?,
        received: std::time::Instant::now(),
    })
}

/// An outgoing message before signing.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub identities: Vec<Bytes>,
    pub msg_type: String,
    pub parent_header: Value,
    pub metadata: Value,
    pub content: Value,
    /// When the message was made (its header date), not when a socket task sent it.
    pub date: chrono::DateTime<chrono::Utc>,
}

impl Outgoing {
    /// A reply or output whose parent is `parent`.
    pub fn child_of(parent: Option<&Incoming>, msg_type: &str, content: Value) -> Self {
        Self {
            identities: parent.map(|p| p.identities.clone()).unwrap_or_default(),
            msg_type: msg_type.to_string(),
            parent_header: parent.map(|p| p.header.clone()).unwrap_or_else(|| json!({})),
            metadata: json!({}),
            content,
            date: chrono::Utc::now(),
        }
    }

    /// Frames ready to send, signed, with a fresh header from `session`.
    pub fn encode(&self, signer: &Signer, session: &str) -> ZmqMessage {
        let mut header = Map::new();
        header.insert("msg_id".into(), Value::String(uuid::Uuid::new_v4().to_string()));
        header.insert("session".into(), Value::String(session.to_string()));
        header.insert("username".into(), Value::String("lakebook".into()));
        header.insert(
            "date".into(),
            Value::String(self.date.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)),
        );
        header.insert("msg_type".into(), Value::String(self.msg_type.clone()));
        header.insert("version".into(), Value::String(PROTOCOL_VERSION.into()));
        let header = Bytes::from(serde_json::to_vec(&header).unwrap_or_default());
        let parent = Bytes::from(serde_json::to_vec(&self.parent_header).unwrap_or_default());
        let metadata = Bytes::from(serde_json::to_vec(&self.metadata).unwrap_or_default());
        let content = Bytes::from(serde_json::to_vec(&self.content).unwrap_or_default());
        let signature = signer.sign(&[&header, &parent, &metadata, &content]);
        let mut frames = self.identities.clone();
        frames.push(Bytes::from_static(DELIMITER));
        frames.push(Bytes::from(signature));
        frames.extend([header, parent, metadata, content]);
        // Never empty: the delimiter is always there.
        ZmqMessage::try_from(frames).unwrap_or_else(|_| ZmqMessage::from(DELIMITER.to_vec()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer() -> Signer {
        Signer::new("hmac-sha256", "secret").unwrap()
    }

    fn frames(msg: &ZmqMessage) -> Vec<Bytes> {
        msg.clone().into_vec()
    }

    #[test]
    fn round_trips_and_detects_tampering_and_replay() {
        let signer = signer();
        let mut out = Outgoing::child_of(None, "kernel_info_request", json!({}));
        out.identities = vec![Bytes::from_static(b"peer")];
        let msg = out.encode(&signer, "s1");
        let mut guard = ReplayGuard::new(8);
        let incoming = decode(msg.clone(), &signer, &mut guard).unwrap();
        assert_eq!(incoming.msg_type, "kernel_info_request");
        assert_eq!(incoming.identities, vec![Bytes::from_static(b"peer")]);
        assert!(matches!(decode(msg.clone(), &signer, &mut guard), Err(WireError::Replayed)));

        let mut tampered = frames(&out.encode(&signer, "s1"));
        let last = tampered.len() - 1;
        tampered[last] = Bytes::from_static(b"{\"x\":1}");
        let tampered = ZmqMessage::try_from(tampered).unwrap();
        assert!(matches!(decode(tampered, &signer, &mut guard), Err(WireError::BadSignature)));

        let mut unsigned = frames(&out.encode(&signer, "s1"));
        unsigned[2] = Bytes::new();
        let unsigned = ZmqMessage::try_from(unsigned).unwrap();
        assert!(matches!(decode(unsigned, &signer, &mut guard), Err(WireError::BadSignature)));
    }

    #[test]
    fn signature_matches_pythons_hmac() {
        // hmac.new(b"secret", b"abcd", hashlib.sha256).hexdigest()
        let expected = "3057ecbaeceffb90b97394a97267236eca9f9e5520dfe387831a22a0eb7709d2";
        assert_eq!(signer().sign(&[b"ab", b"cd"]), expected);
        assert!(signer().verify(expected.as_bytes(), &[b"abcd"]));
        assert!(!signer().verify(b"3057", &[b"abcd"]));
    }
}
