//! SCIM: any text is a filter or a `400 invalidFilter`, and a parsed filter evaluates without
//! panicking; any JSON body is a user or a 400, and a parsed user survives the round trip through
//! its JSON; a PATCH applies or is refused with a 4xx, and what it returns stays within the limits.
#![no_main]
use libfuzzer_sys::fuzz_target;
use prodex::core::directory::ScimUser;
use prodex::core::scim::{
    apply_patch, matches, parse_filter, parse_user, user_json, user_name_eq, MAX_EMAILS, MAX_PREFIXES,
};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let user = ScimUser {
        id: "u-1".into(),
        user_name: "bjensen@example.com".into(),
        external_id: Some("00u1ab".into()),
        emails: vec!["bjensen@example.com".into(), "babs@example.org".into()],
        active: true,
        role: Some("viewer".into()),
        tenant_id: Some("tenant-a".into()),
        key_prefixes: vec!["team-a-".into()],
        ..ScimUser::default()
    };
    match parse_filter(text) {
        Ok(f) => {
            let hit = matches(&f, &user);
            if let Some(name) = user_name_eq(&f) {
                assert!(!hit || name.to_lowercase() == user.user_name.to_lowercase());
            }
        }
        Err(e) => assert_eq!((e.status, e.scim_type), (400, Some("invalidFilter"))),
    }
    let Ok(body) = serde_json::from_str::<serde_json::Value>(text) else { return };
    match parse_user(&body) {
        Ok(fields) => {
            let mut created = ScimUser { id: "u-2".into(), ..ScimUser::default() };
            fields.clone().apply(&mut created);
            assert_eq!(parse_user(&user_json(&created, "https://gw/scim/v2")).ok(), Some(fields));
        }
        Err(e) => assert_eq!(e.status, 400),
    }
    match apply_patch(&user, &body) {
        Ok(patched) => {
            assert!(!patched.user_name.trim().is_empty());
            assert!(patched.emails.len() <= MAX_EMAILS && patched.key_prefixes.len() <= MAX_PREFIXES);
            assert_eq!((patched.id.as_str(), patched.version), ("u-1", user.version));
        }
        Err(e) => assert_eq!(e.status, 400),
    }
});
