//! Sending an object's bytes back as a server stream.

use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use cadenza_proto::v1::GetObjectResponse;
use futures::stream::BoxStream;
use futures::{Stream, StreamExt};
use object_store::GetResultPayload;
use tonic::Status;

use crate::grpc::store_status;

/// Bytes per message sent back by GetObject.
pub const READ_CHUNK: usize = 256 << 10;
/// Bytes per read of a local file: four messages per trip to the blocking pool.
const FILE_READ: u64 = 4 * READ_CHUNK as u64;

/// The bytes of a get, in large pieces. The local filesystem hands over the open
/// file, which is read here a megabyte at a time instead of through the store's
/// 8 KiB stream; other stores stream as they do.
pub fn payload_stream(
    result: object_store::GetResult,
) -> BoxStream<'static, object_store::Result<Bytes>> {
    let range = result.range.clone();
    match result.payload {
        GetResultPayload::File(file, _) => file_blocks(Arc::new(file), range).boxed(),
        GetResultPayload::Stream(stream) => stream,
    }
}

fn file_blocks(
    file: Arc<std::fs::File>,
    range: Range<u64>,
) -> impl Stream<Item = object_store::Result<Bytes>> + Send + 'static {
    futures::stream::try_unfold(range.start, move |offset| {
        let file = file.clone();
        let end = range.end;
        async move {
            if offset >= end {
                return Ok(None);
            }
            let length = (end - offset).min(FILE_READ) as usize;
            let block = tokio::task::spawn_blocking(move || -> std::io::Result<Bytes> {
                let mut block = vec![0u8; length];
                file.read_exact_at(&mut block, offset)?;
                Ok(Bytes::from(block))
            })
            .await
            .map_err(|err| object_store::Error::Generic {
                store: "LocalFileSystem",
                source: Box::new(err),
            })?
            .map_err(|err| object_store::Error::Generic {
                store: "LocalFileSystem",
                source: Box::new(err),
            })?;
            Ok(Some((block, offset + length as u64)))
        }
    })
}

/// `first` (the object's info), then the bytes of `upstream` in messages of
/// [`READ_CHUNK`]. Stores hand out small buffers (8 KiB from the local
/// filesystem); sending each as a message would cost a frame and a wake-up per
/// 8 KiB. Large buffers (a memory store's whole object) are cut, uncopied.
pub fn chunked(
    first: GetObjectResponse,
    mut upstream: impl Stream<Item = object_store::Result<Bytes>> + Send + Unpin + 'static,
) -> impl Stream<Item = Result<GetObjectResponse, Status>> + Send + 'static {
    let message = |chunk: Bytes| GetObjectResponse { info: None, chunk };
    async_stream::try_stream! {
        yield first;
        let mut buffer = BytesMut::new();
        while let Some(bytes) = upstream.next().await {
            let mut bytes = bytes.map_err(store_status)?;
            metrics::counter!("cadenza_storage_bytes_out_total").increment(bytes.len() as u64);
            // Whole messages cut from a large buffer are slices of it, not copies.
            while buffer.is_empty() && bytes.len() >= READ_CHUNK {
                yield message(bytes.split_to(READ_CHUNK));
            }
            let mut rest = &bytes[..];
            while !rest.is_empty() {
                if buffer.capacity() == 0 {
                    buffer.reserve(READ_CHUNK);
                }
                let take = (READ_CHUNK - buffer.len()).min(rest.len());
                buffer.extend_from_slice(&rest[..take]);
                rest = &rest[take..];
                if buffer.len() == READ_CHUNK {
                    yield message(buffer.split().freeze());
                }
            }
        }
        if !buffer.is_empty() {
            yield message(buffer.freeze());
        }
    }
}
