//! Email addresses as account names: normalised so that one mailbox is one account.

/// Longest address SMTP can carry.
pub const MAX_EMAIL: usize = 254;

/// Trims and lower-cases `raw`, then checks it looks like `local@domain.tld`.
/// Unicode is kept as given (after lower-casing): addresses are compared, never
/// interpreted, so a confusable address is simply a different account.
pub fn normalise(raw: &str) -> Result<String, &'static str> {
    let email = raw.trim().to_lowercase();
    if email.is_empty() || email.chars().count() > MAX_EMAIL {
        return Err("must be an email address of at most 254 characters");
    }
    if email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("must not contain spaces or control characters");
    }
    let Some((local, domain)) = email.rsplit_once('@') else {
        return Err("must be an email address such as name@example.com");
    };
    let domain_ok = domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains("..");
    if local.is_empty() || local.contains('@') || !domain_ok {
        return Err("must be an email address such as name@example.com");
    }
    Ok(email)
}

#[cfg(test)]
mod tests {
    use super::normalise;

    #[test]
    fn addresses_are_trimmed_and_lower_cased() {
        assert_eq!(
            normalise("  Alice@Example.COM ").as_deref(),
            Ok("alice@example.com")
        );
        assert_eq!(
            normalise("o'brien+tag@mail.example.org").as_deref(),
            Ok("o'brien+tag@mail.example.org")
        );
        for bad in [
            "",
            "alice",
            "alice@",
            "@example.com",
            "a@b",
            "a b@example.com",
            "a@@example.com",
            "a@example..com",
        ] {
            assert!(normalise(bad).is_err(), "{bad}");
        }
        assert!(normalise(&format!("{}@example.com", "a".repeat(250))).is_err());
    }
}
