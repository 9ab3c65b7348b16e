//! The strict codec every generated service uses (`codec_path` in build.rs). It is prost's codec
//! except that an undecodable request is the client's mistake, `INVALID_ARGUMENT`, where
//! tonic-prost answers `INTERNAL` (docs/reliability.md M1, M2).

use std::marker::PhantomData;

use prost::Message;
use tonic::Status;
use tonic::codec::{BufferSettings, Codec, DecodeBuf, Decoder};
use tonic_prost::ProstEncoder;

use crate::error::{Error, FieldViolation, Problem};
use crate::reason;

#[derive(Debug, Clone)]
pub struct StrictCodec<T, U> {
    _types: PhantomData<(T, U)>,
}

impl<T, U> Default for StrictCodec<T, U> {
    fn default() -> Self {
        Self {
            _types: PhantomData,
        }
    }
}

impl<T, U> Codec for StrictCodec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = StrictDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstEncoder::new(BufferSettings::default())
    }

    fn decoder(&mut self) -> Self::Decoder {
        StrictDecoder { _type: PhantomData }
    }
}

#[derive(Debug, Clone)]
pub struct StrictDecoder<U> {
    _type: PhantomData<U>,
}

impl<U: Message + Default> Decoder for StrictDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        U::decode(buf).map(Some).map_err(|err| {
            // prost's text names generated types and offsets: useful to a developer, harmless.
            Error::InvalidArgument {
                problem: Problem::new(
                    reason::MALFORMED_REQUEST,
                    "the request is not a valid protobuf message",
                ),
                violations: vec![FieldViolation {
                    field: String::new(),
                    description: err.to_string(),
                }],
            }
            .into()
        })
    }
}
