//! Every byte string a peer could send in one frame, against every frame type the Raft port
//! decodes. The decoder must return an error, never panic or abort; what does decode must
//! survive a round trip through the encoder.
#![no_main]

use libfuzzer_sys::fuzz_target;
use raftkv::net::frame::{self, Hello, Reply, Request};

fuzz_target!(|data: &[u8]| {
    if let Ok(hello) = frame::decode::<Hello>(data) {
        let again: Hello = frame::decode(&frame::encode(&hello).unwrap()).unwrap();
        assert_eq!(again, hello);
    }
    if let Ok(request) = frame::decode::<Request>(data) {
        let bytes = frame::encode(&request).unwrap();
        frame::decode::<Request>(&bytes).unwrap();
    }
    let _ = frame::decode::<Reply>(data);
});
