//! Arbitrary bytes through the webhook's decoder and the engine, as `POST /validate` does.
#![no_main]

use libfuzzer_sys::fuzz_target;
use volguard::admission::ReviewIn;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let slice = serde_json::from_slice::<ReviewIn>(data);
    // The webhook's decoder (one UTF-8 check, then `from_str`, borrowing) accepts exactly
    // what `from_slice` accepts, with the same error text, and decodes the same request.
    match (&slice, volguard::admission::decode(data)) {
        (Ok(review), Ok(req)) => {
            let r = review
                .request
                .as_ref()
                .expect("decode() accepted a review without request");
            let policy = &*common::STRICT;
            assert_eq!(r.judge(policy), req.judge(policy));
            assert_eq!(
                (&r.uid, &r.kind, &r.user_info.groups),
                (&req.uid, &req.kind, &req.user_info.groups)
            );
        }
        (Ok(_), Err(e)) => assert!(
            !matches!(
                e,
                volguard::admission::DecodeError::MalformedJson(_)
                    | volguard::admission::DecodeError::Invalid(_)
            ),
            "from_slice accepted what decode() rejects: {e}"
        ),
        (
            Err(s),
            Err(
                volguard::admission::DecodeError::MalformedJson(e)
                | volguard::admission::DecodeError::Invalid(e),
            ),
        ) => {
            assert_eq!(s.to_string(), e.to_string());
        }
        (Err(s), r) => panic!(
            "decode() disagrees with from_slice ({s}): {:?}",
            r.map(|r| r.uid)
        ),
    }
    if let Ok(review) = slice {
        common::judge(&review);
    }
    // `volguard check` reads bare objects too.
    if let Ok(obj) = serde_json::from_slice::<volguard::Object>(data) {
        let kind = obj.kind.clone();
        common::judge_object(
            &kind,
            "default",
            volguard::Operation::Create,
            &obj,
            None,
            "u",
        );
    }
});
