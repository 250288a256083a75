//! Generated secret values: drawn from the operating system's CSPRNG, each character uniform
//! over the requested alphabet (rejection sampling, so no character is favoured by a modulo).

use app::onboarding::Alphabet;
use secrecy::SecretString;

/// A new value of `length` characters from `alphabet`.
pub fn generate_secret(length: usize, alphabet: Alphabet) -> SecretString {
    let characters = alphabet.characters();
    let n = characters.len();
    // The largest multiple of n that fits a byte: bytes at or above it are drawn again.
    let limit = 256 - (256 % n);
    let mut value = String::with_capacity(length);
    let mut pool = [0u8; 64];
    while value.len() < length {
        getrandom::fill(&mut pool).expect("the operating system's random source is available");
        for &byte in &pool {
            if usize::from(byte) < limit && value.len() < length {
                value.push(char::from(characters[usize::from(byte) % n]));
            }
        }
    }
    SecretString::from(value)
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;

    #[test]
    fn values_have_the_length_and_alphabet_asked_for() {
        for alphabet in Alphabet::ALL {
            for length in [1, 16, 64, 200] {
                let value = generate_secret(length, alphabet);
                let value = value.expose_secret();
                assert_eq!(value.len(), length);
                assert!(value.bytes().all(|b| alphabet.characters().contains(&b)), "{alphabet:?}");
            }
        }
    }

    #[test]
    fn every_character_of_the_alphabet_turns_up_and_values_differ() {
        let values: Vec<String> = (0..50)
            .map(|_| generate_secret(64, Alphabet::AlphanumericSymbols).expose_secret().to_owned())
            .collect();
        let all: String = values.concat();
        for &c in Alphabet::AlphanumericSymbols.characters() {
            assert!(all.contains(char::from(c)), "{} never drawn in 3200 characters", c as char);
        }
        let distinct: std::collections::HashSet<_> = values.iter().collect();
        assert_eq!(distinct.len(), values.len());
    }
}
