//! Error messages with their causes: one line naming an error and every `source()` below it,
//! for logs and for the messages meshport shows an operator.

/// The error and its causes, `outer: inner: innermost`: many libraries' own messages ("An error
/// occurred with the request") do not tell an operator what went wrong.
pub fn with_sources(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
