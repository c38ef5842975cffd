//! Decoding of request bodies sent with `Content-Encoding: gzip` or `deflate`.
//!
//! A gzip body may hold several members one after another, as RFC 1952 allows and `gunzip`
//! reads them, and every member is decoded. Bytes after the last member, or after a deflate
//! body's zlib stream, fail the body wherever the transport split it, so that a body is never
//! cut short without an error. A request with no body at all passes as it is. The decoded
//! body is read under the route's size limit, so a small compressed body cannot expand
//! without bound.

use std::pin::Pin;

use async_compression::tokio::bufread::{GzipDecoder, ZlibDecoder};
use axum::body::{Body, HttpBody as _};
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::TryStreamExt as _;
use tokio::io::{AsyncBufRead, AsyncBufReadExt as _, AsyncRead, AsyncReadExt as _};
use tokio_util::io::StreamReader;

/// Codings listed in `Accept-Encoding` when a request's coding is not supported.
const SUPPORTED_CODINGS: &str = "gzip, deflate";

/// Size of each decoded chunk handed to the route.
const CHUNK: usize = 16 * 1024;

/// Replaces a gzip or deflate request body with its decoded form, which the route reads, and
/// returns `None`, or returns a bare 415 with `Accept-Encoding` for any other coding. The
/// `Content-Encoding` header must be normalized first: lowercase, without `identity`, and on
/// one line.
pub(super) fn decode_body(request: &mut Request) -> Option<Response> {
    let coding = request.headers().get(header::CONTENT_ENCODING)?;
    let gzip = match coding.as_bytes() {
        b"gzip" | b"x-gzip" => true,
        b"deflate" => false,
        _ => {
            let mut rejection = StatusCode::UNSUPPORTED_MEDIA_TYPE.into_response();
            rejection
                .headers_mut()
                .insert(header::ACCEPT_ENCODING, HeaderValue::from_static(SUPPORTED_CODINGS));
            return Some(rejection);
        }
    };

    request.headers_mut().remove(header::CONTENT_ENCODING);
    // A request without a body, such as a GET, has nothing to decode.
    if request.body().size_hint().exact() == Some(0) {
        return None;
    }

    request.headers_mut().remove(header::CONTENT_LENGTH);
    let body = std::mem::take(request.body_mut());
    let compressed = StreamReader::new(body.into_data_stream().map_err(std::io::Error::other));
    *request.body_mut() = if gzip {
        let mut decoder = GzipDecoder::new(compressed);
        decoder.multiple_members(true);
        decoded_body(Box::pin(decoder), |decoder| decoder.get_pin_mut())
    } else {
        decoded_body(Box::pin(ZlibDecoder::new(compressed)), |decoder| decoder.get_pin_mut())
    };
    None
}

/// Returns a body that reads `decoder` to its end and then fails when the compressed input,
/// which `input` reaches, has bytes left.
fn decoded_body<D, R>(decoder: Pin<Box<D>>, input: fn(Pin<&mut D>) -> Pin<&mut R>) -> Body
where
    D: AsyncRead + Send + 'static,
    R: AsyncBufRead + Send + 'static,
{
    let chunks = futures::stream::try_unfold(decoder, move |mut decoder| async move {
        let mut chunk = vec![0; CHUNK];
        let read = decoder.read(&mut chunk).await?;
        if read > 0 {
            chunk.truncate(read);
            return Ok(Some((Bytes::from(chunk), decoder)));
        }

        let left = input(decoder.as_mut()).fill_buf().await?.len();
        if left > 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{left} or more bytes follow the compressed data"),
            ));
        }
        Ok(None)
    });
    Body::from_stream(chunks)
}
