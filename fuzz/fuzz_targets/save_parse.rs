//! The `ipvsadm-save -n` parser on arbitrary text: it returns a table or an error, never
//! panics; and a table it reads renders (`render_save`) to text that reads back as the same
//! table, save for thresholds (`-x`, `-y`), which `ipvsadm-save` does not print.

#![no_main]

use libfuzzer_sys::fuzz_target;
use lvs_hc_core::{parse_save, render_save, Table};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let table = match parse_save(&text) {
        Ok(table) => table,
        Err(e) => {
            let _ = e.to_string();
            return;
        }
    };
    let saved = render_save(&table);
    let again = parse_save(&saved)
        .unwrap_or_else(|e| panic!("render_save output does not parse: {e}\n{saved}"));
    assert_eq!(
        again,
        without_thresholds(table),
        "the table changed through render_save:\n{saved}"
    );
});

fn without_thresholds(mut table: Table) -> Table {
    for service in table.services.values_mut() {
        for dest in service.dests.values_mut() {
            dest.upper = 0;
            dest.lower = 0;
        }
    }
    table
}
