//! A minimal reader of the protobuf wire format (proto2 as Kubernetes uses it: no groups).

/// How a field's value is laid out on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireType {
    Varint,
    Fixed64,
    Len,
    Fixed32,
}

impl std::fmt::Display for WireType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            WireType::Varint => "varint",
            WireType::Fixed64 => "fixed64",
            WireType::Len => "length-delimited",
            WireType::Fixed32 => "fixed32",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("data ends in the middle of a value at byte {0}")]
    Truncated(usize),
    #[error("varint longer than 10 bytes at byte {0}")]
    VarintTooLong(usize),
    #[error("invalid wire type {wire_type} at byte {at}")]
    InvalidWireType { wire_type: u64, at: usize },
    #[error("invalid field number {number} at byte {at}")]
    InvalidFieldNumber { number: u64, at: usize },
}

pub type Result<T, E = WireError> = std::result::Result<T, E>;

/// A cursor over one message's bytes.
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    pub fn is_empty(&self) -> bool {
        self.pos >= self.buf.len()
    }

    pub fn varint(&mut self) -> Result<u64> {
        let start = self.pos;
        let mut value: u64 = 0;
        for i in 0..10 {
            let Some(&byte) = self.buf.get(self.pos) else {
                return Err(WireError::Truncated(start));
            };
            self.pos += 1;
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(WireError::VarintTooLong(start))
    }

    /// Reads a field key: the field number and its wire type.
    pub fn key(&mut self) -> Result<(u32, WireType)> {
        let at = self.pos;
        let key = self.varint()?;
        let wire_type = match key & 7 {
            0 => WireType::Varint,
            1 => WireType::Fixed64,
            2 => WireType::Len,
            5 => WireType::Fixed32,
            // 3 and 4 are the deprecated groups, which Kubernetes never emits.
            other => {
                return Err(WireError::InvalidWireType {
                    wire_type: other,
                    at,
                });
            }
        };
        let number = key >> 3;
        match u32::try_from(number) {
            Ok(n) if (1..=0x1fff_ffff).contains(&n) => Ok((n, wire_type)),
            _ => Err(WireError::InvalidFieldNumber { number, at }),
        }
    }

    pub fn bytes(&mut self) -> Result<&'a [u8]> {
        let start = self.pos;
        let len = self.varint()?;
        let end = usize::try_from(len)
            .ok()
            .and_then(|len| self.pos.checked_add(len))
            .filter(|&end| end <= self.buf.len())
            .ok_or(WireError::Truncated(start))?;
        let out = &self.buf[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    pub fn fixed64(&mut self) -> Result<u64> {
        let start = self.pos;
        let raw = self
            .buf
            .get(start..start + 8)
            .ok_or(WireError::Truncated(start))?;
        self.pos += 8;
        let mut arr = [0u8; 8];
        arr.copy_from_slice(raw);
        Ok(u64::from_le_bytes(arr))
    }

    pub fn fixed32(&mut self) -> Result<u32> {
        let start = self.pos;
        let raw = self
            .buf
            .get(start..start + 4)
            .ok_or(WireError::Truncated(start))?;
        self.pos += 4;
        let mut arr = [0u8; 4];
        arr.copy_from_slice(raw);
        Ok(u32::from_le_bytes(arr))
    }

    /// Skips a value of a field the schema does not know (Go's decoder ignores those too).
    pub fn skip(&mut self, wire_type: WireType) -> Result<()> {
        match wire_type {
            WireType::Varint => self.varint().map(drop),
            WireType::Fixed64 => self.fixed64().map(drop),
            WireType::Len => self.bytes().map(drop),
            WireType::Fixed32 => self.fixed32().map(drop),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_decode_little_endian_base_128() {
        let cases: &[(&[u8], u64)] = &[
            (&[0x00], 0),
            (&[0x01], 1),
            (&[0xac, 0x02], 300),
            (
                &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
                u64::MAX,
            ),
        ];
        for (bytes, want) in cases {
            assert_eq!(Reader::new(bytes).varint(), Ok(*want), "{bytes:?}");
        }
    }

    #[test]
    fn varints_that_never_end_or_run_past_the_data_are_errors() {
        assert_eq!(
            Reader::new(&[0x80, 0x80]).varint(),
            Err(WireError::Truncated(0))
        );
        assert_eq!(
            Reader::new(&[0xff; 11]).varint(),
            Err(WireError::VarintTooLong(0))
        );
    }

    #[test]
    fn keys_split_into_field_number_and_wire_type() {
        assert_eq!(Reader::new(&[0x0a]).key(), Ok((1, WireType::Len)));
        assert_eq!(Reader::new(&[0x10]).key(), Ok((2, WireType::Varint)));
        assert!(matches!(
            Reader::new(&[0x0b]).key(),
            Err(WireError::InvalidWireType { .. })
        ));
        assert!(matches!(
            Reader::new(&[0x02]).key(),
            Err(WireError::InvalidFieldNumber { .. })
        ));
    }

    #[test]
    fn length_delimited_values_longer_than_the_data_are_errors() {
        assert_eq!(Reader::new(&[0x02, b'a', b'b']).bytes(), Ok(&b"ab"[..]));
        assert_eq!(
            Reader::new(&[0x03, b'a', b'b']).bytes(),
            Err(WireError::Truncated(0))
        );
        let huge = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01];
        assert_eq!(Reader::new(&huge).bytes(), Err(WireError::Truncated(0)));
    }
}
