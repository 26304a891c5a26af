//! The contract's authentication: every call in either direction carries the node token as
//! `authorization: Bearer TOKEN`.

/// Adds the token to an outgoing request.
pub fn with_token<T>(token: &str, msg: T) -> tonic::Request<T> {
    let mut req = tonic::Request::new(msg);
    if let Ok(v) = format!("Bearer {token}").parse() {
        req.metadata_mut().insert("authorization", v);
    }
    req
}

/// Compares without an early exit, so timing does not reveal how much of a guess was right.
pub fn same_token(presented: &str, expected: &str) -> bool {
    presented.len() == expected.len() && presented.bytes().zip(expected.bytes()).fold(0u8, |a, (x, y)| a | (x ^ y)) == 0
}

/// A tonic interceptor refusing calls without the token.
pub fn token_interceptor(token: String) -> impl Fn(tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> + Clone {
    move |req: tonic::Request<()>| {
        let presented = req.metadata().get("authorization").and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
        match presented {
            Some(p) if same_token(p, &token) => Ok(req),
            _ => Err(tonic::Status::unauthenticated("a valid node token is required")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_exact_token_passes() {
        let check = token_interceptor("s3cret".into());
        assert!(check(with_token("s3cret", ())).is_ok());
        for wrong in ["s3cre", "s3cret!", "S3cret", ""] {
            assert!(check(with_token(wrong, ())).is_err(), "{wrong}");
        }
        assert!(check(tonic::Request::new(())).is_err());
    }
}
