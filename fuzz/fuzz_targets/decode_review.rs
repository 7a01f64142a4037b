//! Arbitrary bytes through the webhook's decoder and the engine, as `POST /validate` does.
#![no_main]

use libfuzzer_sys::fuzz_target;
use volguard::admission::ReviewIn;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    if let Ok(review) = serde_json::from_slice::<ReviewIn>(data) {
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
