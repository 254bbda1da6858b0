//! What any machine on the director's link may send to the ARP watch (`lvs_hc::arp`), as
//! arbitrary bytes: `parse_arp_reply` (an ARP packet, as an `AF_PACKET` datagram socket hands
//! it over) and `parse_neighbour_advert` (an ICMPv6 message, as a raw ICMPv6 socket hands it
//! over).
//!
//! Neither panics. An ARP packet that parses is the first 28 bytes of the input, which it
//! writes back exactly (the rest is padding). A neighbour advertisement that parses is for the
//! address in bytes 8..24, and its MAC, if any, is in the input.

#![no_main]

use std::net::Ipv6Addr;

use libfuzzer_sys::fuzz_target;
use lvs_hc::arp::{parse_arp_reply, parse_neighbour_advert};

fuzz_target!(|data: &[u8]| {
    if let Some(packet) = parse_arp_reply(data) {
        assert_eq!(&packet.to_bytes()[..], &data[..28], "an ARP packet reads back as it came");
        let _ = packet.sender_mac.to_string();
    }
    if let Some(advert) = parse_neighbour_advert(data) {
        let mut target = [0u8; 16];
        target.copy_from_slice(&data[8..24]);
        assert_eq!(advert.target, Ipv6Addr::from(target));
        if let Some(mac) = advert.mac {
            assert!(
                data.windows(6).any(|w| w == mac.0),
                "the MAC {mac} is in the message"
            );
        }
    }
});
