//! The versioned envelope around every message body.

use cadenza_proto::v1::{Envelope, envelope::Body};
use prost::Message;

/// The envelope layout this code writes and reads.
pub const SCHEMA_VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EnvelopeError {
    #[error("message is not a valid envelope: {0}")]
    Malformed(#[from] prost::DecodeError),
    #[error("envelope schema version {0} is not supported (this build reads {SCHEMA_VERSION})")]
    UnsupportedVersion(u32),
    #[error("envelope has no body")]
    Empty,
}

/// Wraps `body` with a fresh message id and the current trace context.
pub fn wrap(body: Body) -> Envelope {
    wrap_with_id(uuid::Uuid::new_v4(), body)
}

pub fn wrap_with_id(message_id: uuid::Uuid, body: Body) -> Envelope {
    Envelope {
        schema_version: SCHEMA_VERSION,
        message_id: message_id.to_string(),
        traceparent: cadenza_telemetry::trace::outgoing().traceparent(),
        sent_time: Some(cadenza_proto::timestamp(chrono::Utc::now())),
        body: Some(body),
    }
}

pub fn encode(envelope: &Envelope) -> Vec<u8> {
    envelope.encode_to_vec()
}

/// Decodes and checks an envelope; the error tells why a message is poison.
pub fn decode(bytes: &[u8]) -> Result<(Envelope, Body), EnvelopeError> {
    let mut envelope = Envelope::decode(bytes)?;
    if envelope.schema_version != SCHEMA_VERSION {
        return Err(EnvelopeError::UnsupportedVersion(envelope.schema_version));
    }
    let body = envelope.body.take().ok_or(EnvelopeError::Empty)?;
    Ok((envelope, body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use cadenza_proto::v1::StageWork;

    #[test]
    fn round_trips_and_rejects_unknown_versions() {
        let body = Body::StageWork(StageWork {
            stage_id: "s".into(),
            ..StageWork::default()
        });
        let envelope = wrap(body.clone());
        let (decoded, decoded_body) = decode(&encode(&envelope)).expect("decodes");
        assert_eq!(decoded.message_id, envelope.message_id);
        assert_eq!(decoded_body, body);

        let mut future = envelope.clone();
        future.schema_version = 2;
        assert!(matches!(
            decode(&encode(&future)),
            Err(EnvelopeError::UnsupportedVersion(2))
        ));
        assert!(matches!(
            decode(b"\xff\xff\xff"),
            Err(EnvelopeError::Malformed(_))
        ));
        let mut empty = envelope;
        empty.body = None;
        assert!(matches!(decode(&encode(&empty)), Err(EnvelopeError::Empty)));
    }
}
