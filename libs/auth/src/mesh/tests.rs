use super::*;
use crate::random_secret;

fn user(subject: &str) -> User {
    User {
        subject: subject.into(),
        role: Role::User,
        credential: Credential::ApiKey {
            scopes: vec![Scope::Read],
        },
    }
}

fn pair() -> (AssertionSigner, AssertionVerifier, SecretString) {
    let secret = random_secret();
    let signer = AssertionSigner::new(Service::Gateway)
        .with_link(Service::Project, &secret)
        .expect("signer");
    let verifier = AssertionVerifier::new(Service::Project, &[(Service::Gateway, secret.clone())])
        .expect("verifier");
    (signer, verifier, secret)
}

#[test]
fn an_assertion_carries_the_caller_the_user_and_the_address() {
    let (signer, verifier, _) = pair();
    let address: IpAddr = "203.0.113.7".parse().expect("ip");
    let token = signer
        .sign(Service::Project, Some(&user("alice")), Some(address))
        .expect("sign");
    let assertion = verifier.verify(&token).expect("valid");
    assert_eq!(assertion.caller, Service::Gateway);
    assert_eq!(assertion.user, Some(user("alice")));
    assert_eq!(assertion.client_address, Some(address));
}

#[test]
fn another_services_secret_or_audience_is_refused() {
    let (signer, verifier, secret) = pair();
    // Signed by a secret the callee does not hold.
    let stranger = AssertionSigner::new(Service::Gateway)
        .with_link(Service::Project, &random_secret())
        .expect("signer");
    let token = stranger.sign(Service::Project, None, None).expect("sign");
    assert_eq!(verifier.verify(&token), Err(AssertionError::UnknownKey));
    // A signer without a link to storage signs nothing for it.
    assert_eq!(
        signer.sign(Service::Storage, None, None),
        Err(AssertionError::NoLink(Service::Gateway, Service::Storage))
    );
    // Meant for generation, replayed at project: the same secret (were an
    // operator to reuse one) still does not make it project's.
    let reused = AssertionSigner::new(Service::Gateway)
        .with_link(Service::Generation, &secret)
        .expect("signer");
    let token = reused.sign(Service::Generation, None, None).expect("sign");
    assert_eq!(
        verifier.verify(&token),
        Err(AssertionError::WrongAudience("generation".into()))
    );
}

#[test]
fn a_links_secret_speaks_only_for_its_caller() {
    // Storage holds generation's link secret; generation still cannot claim
    // to be project with it.
    let generation = random_secret();
    let verifier = AssertionVerifier::new(
        Service::Storage,
        &[
            (Service::Generation, generation.clone()),
            (Service::Project, random_secret()),
        ],
    )
    .expect("verifier");
    let posing = AssertionSigner::new(Service::Project)
        .with_link(Service::Storage, &generation)
        .expect("signer");
    let token = posing.sign(Service::Storage, None, None).expect("sign");
    assert_eq!(verifier.verify(&token), Err(AssertionError::UnknownKey));
    let honest = AssertionSigner::new(Service::Generation)
        .with_link(Service::Storage, &generation)
        .expect("signer");
    let token = honest.sign(Service::Storage, None, None).expect("sign");
    assert_eq!(
        verifier.verify(&token).expect("valid").caller,
        Service::Generation
    );
}

fn encode(secret: &SecretString, claims: &Claims) -> String {
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some(key_id(secret));
    jsonwebtoken::encode(
        &header,
        claims,
        &EncodingKey::from_secret(secret.expose_secret().as_bytes()),
    )
    .expect("encode")
}

#[test]
fn expired_long_lived_future_and_unsigned_assertions_are_refused() {
    let (_, verifier, secret) = pair();
    let now = Utc::now().timestamp();
    let claims = |iat: i64, exp: i64| Claims {
        iss: Service::Gateway.claim(),
        aud: Service::Project.claim(),
        iat,
        exp,
        user: None,
        addr: None,
    };
    let expired = encode(&secret, &claims(now - 120, now - 90));
    assert_eq!(verifier.verify(&expired), Err(AssertionError::Expired));
    let long_lived = encode(&secret, &claims(now, now + 3600));
    assert_eq!(verifier.verify(&long_lived), Err(AssertionError::Invalid));
    let future = encode(&secret, &claims(now + 600, now + 620));
    assert_eq!(verifier.verify(&future), Err(AssertionError::Invalid));
    // The same claims with `alg: none`.
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let unsigned = format!(
        "{}.{}.",
        b64.encode(format!(
            r#"{{"alg":"none","typ":"JWT","kid":"{}"}}"#,
            key_id(&secret)
        )),
        b64.encode(serde_json::to_vec(&claims(now, now + 10)).expect("json"))
    );
    assert_eq!(verifier.verify(&unsigned), Err(AssertionError::Invalid));
}

#[test]
fn an_access_token_is_not_an_assertion() {
    let secret = random_secret();
    let keys = crate::TokenKeys::new(&secret).expect("keys");
    let (token, _) = keys
        .issue_with_role("alice", Some("admin"), chrono::Duration::seconds(20))
        .expect("token");
    let verifier =
        AssertionVerifier::new(Service::Project, &[(Service::Gateway, secret)]).expect("verifier");
    assert!(verifier.verify(&token).is_err());
}

#[test]
fn rotation_accepts_old_and_new_secrets_until_the_old_is_dropped() {
    let (old, new) = (random_secret(), random_secret());
    let link = |secret: &SecretString| {
        AssertionSigner::new(Service::Gateway)
            .with_link(Service::Project, secret)
            .expect("signer")
    };
    let (before, after) = (link(&old), link(&new));
    let both = AssertionVerifier::new(
        Service::Project,
        &[
            (Service::Gateway, old.clone()),
            (Service::Gateway, new.clone()),
        ],
    )
    .expect("verifier");
    for signer in [&before, &after] {
        let token = signer.sign(Service::Project, None, None).expect("sign");
        assert!(both.verify(&token).is_ok());
    }
    let dropped =
        AssertionVerifier::new(Service::Project, &[(Service::Gateway, new)]).expect("verifier");
    let token = before.sign(Service::Project, None, None).expect("sign");
    assert_eq!(dropped.verify(&token), Err(AssertionError::UnknownKey));
}

#[test]
fn secret_lists_parse_or_say_what_is_wrong() {
    let (new, old) = ("n".repeat(40), "o".repeat(40));
    let parsed = parse_secrets(&format!(" {new} , {old} ")).expect("two secrets");
    assert_eq!(parsed.len(), 2);
    assert_eq!(parsed[0].expose_secret(), new, "the first signs");
    assert!(
        parse_secrets(" , ")
            .expect_err("empty")
            .contains("no secret")
    );
    assert!(
        parse_secrets(&format!("{new},short"))
            .expect_err("short")
            .contains("secret 2 of 2")
    );
    assert_eq!(
        link_variable(Service::Gateway, Service::Project),
        "CADENZA_MESH_GATEWAY_TO_PROJECT_SECRET"
    );
}

#[test]
fn identity_names_round_trip_and_nothing_else_is_one() {
    for service in Service::ALL {
        assert_eq!(
            Service::from_identity_name(&service.identity_name()),
            Some(service)
        );
    }
    assert_eq!(Service::from_identity_name("project"), None);
    assert_eq!(
        Service::from_identity_name("cadenza-project.default.svc"),
        None
    );
    assert_eq!(
        Service::from_identity_name("evil.identity.cadenza.internal"),
        None
    );
}
