//! Small pieces of wording shared by everything lvs-hc says to the operator.

/// `1 service`, `2 services`: a count with the word that fits it.
pub fn plural(n: usize, one: &str, many: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {many}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_takes_the_singular_and_every_other_count_the_plural() {
        assert_eq!(plural(1, "probe", "probes"), "1 probe");
        assert_eq!(plural(0, "probe", "probes"), "0 probes");
        assert_eq!(
            plural(2, "consecutive pass", "consecutive passes"),
            "2 consecutive passes"
        );
    }
}
